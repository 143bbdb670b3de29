"""Long-lived children (a run's services): started in their own process group, output teed by a thread,
stopped with their whole group and everything else they started (proc/reaper.py)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from codex_orch.proc.groups import group_members, kill_group, reap_group
from codex_orch.proc.reaper import Unit, contain
from codex_orch.proc.stream import ProcRequest, StreamTee, log, pump


class Background:
    """A child started by `start_background`: it runs until `stop()`. A thread tees its output into the
    request's files (through the redactor) and hands complete lines of stdout to `on_line`."""

    def __init__(
        self,
        request: ProcRequest,
        on_line: Callable[[bytes], None] | None,
        proc: subprocess.Popen[bytes],
        unit: Unit,
    ) -> None:
        self.request = request
        self.proc = proc
        self.unit = unit
        self.pid = proc.pid
        self._quit = threading.Event()
        self._pump = threading.Thread(target=self._run_pump, args=(on_line,), name=f"pump-{proc.pid}", daemon=True)
        self._pump.start()

    def poll(self) -> int | None:
        """The leader's exit code (negative: killed by that signal), or None while it runs."""
        return self.proc.poll()

    def group_alive(self) -> bool:
        """Does any process of the service still run (the leader, or what it started, in its group or not)?"""
        return bool(self.unit.members())

    def stop(self) -> tuple[str, ...]:
        """Stop the whole group and whatever else the service started (a daemon that left the group),
        whether or not its leader still runs: INT, then TERM, each followed by up to `stop_grace`
        seconds for all of them to end, then KILL to whatever is left."""
        steps: list[str] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            members = self.unit.members()
            if not members:
                break
            in_group = set(group_members(self.pid))
            escaped = [pid for pid in members if pid not in in_group]
            others = f" and {len(escaped)} process(es) that left it" if escaped else ""
            steps.append(f"sent {signal.Signals(sig).name} to process group {self.pid}{others}")
            kill_group(self.pid, sig)
            for pid in escaped:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + self.request.stop_grace
            while self.unit.members() and time.monotonic() < deadline:
                time.sleep(0.05)
        if group_members(self.pid):
            steps.append(f"sent SIGKILL to process group {self.pid}")
            reap_group(self.pid)
        steps += self.unit.end()
        self._quit.set()
        self._pump.join(timeout=5.0)
        self.proc.wait()
        for step in steps:
            log.info("pid %d: %s", self.pid, step)
        return tuple(steps)

    def _run_pump(self, on_line: Callable[[bytes], None] | None) -> None:
        request, proc = self.request, self.proc
        merged = request.stderr_path == request.stdout_path
        with (
            open(request.stdout_path, "ab") as out_file,
            open(os.devnull if merged else request.stderr_path, "ab") as err_file,
        ):
            pipes = [p for p in (proc.stdout, proc.stderr) if p is not None]
            streams = {
                pipe.fileno(): StreamTee(
                    pipe.fileno(),
                    out_file if pipe is proc.stdout else err_file,
                    on_line if pipe is proc.stdout else None,
                    request.redactor,
                )
                for pipe in pipes
            }
            selector = selectors.DefaultSelector()
            drained_at: float | None = None
            try:
                for fd in streams:
                    os.set_blocking(fd, False)
                    selector.register(fd, selectors.EVENT_READ)
                while selector.get_map():
                    ready = pump(selector, streams, 0.2)
                    for fd in ready:
                        streams[fd].sink.flush()
                    if self._quit.is_set():
                        drained_at = drained_at or time.monotonic() + 2.0
                        if not ready or time.monotonic() > drained_at:
                            break  # stopped, and read to the end (or an outsider holds the pipe open)
            finally:
                selector.close()
                for stream in streams.values():
                    stream.close()
                for pipe in pipes:
                    pipe.close()


def start_background(request: ProcRequest, on_line: Callable[[bytes], None] | None = None) -> Background:
    """Start a long-lived child in its own process group, stdin closed, for the caller to `stop()`.

    stdout and stderr go to their files (one file, in order, when both paths are the same); the
    request's timeout, idle_timeout and stdin_data do not apply. Raises OSError when it cannot start."""
    if request.stdin_data is not None or request.timeout is not None or request.idle_timeout is not None:
        raise ValueError("a background process takes no stdin_data, timeout nor idle_timeout")
    request.stdout_path.parent.mkdir(parents=True, exist_ok=True)
    request.stderr_path.parent.mkdir(parents=True, exist_ok=True)
    merged = request.stderr_path == request.stdout_path
    unit = contain(os.path.basename(request.argv[0]))
    try:
        proc = subprocess.Popen(
            list(request.argv),
            cwd=request.cwd,
            env=unit.env(request.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merged else subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        unit.end()
        raise
    unit.attach(proc.pid)
    return Background(request, on_line, proc, unit)
