"""The one place that starts child processes.

A child runs in its own session and process group, stdin either closed or fed from a thread. Its
stdout is streamed: every byte goes to a file as it arrives and complete lines are handed to a
callback, so memory stays bounded however long the stream is. A wall-clock limit, an idle limit (no
stdout for N seconds) and a cancel event stop the whole group, escalating INT -> TERM -> KILL. When
the child's leader exits, whatever it left behind in its group is killed too: nothing survives.
`start_background` runs a long-lived child (a service) the same way until its `stop()`.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from codex_orch.redaction import Redactor, StreamRedactor

log = logging.getLogger(__name__)

MAX_LINE = 8 * 1024 * 1024  # a longer stdout line is written to disk but not handed on
STDERR_TAIL = 16 * 1024
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class ProcRequest:
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    stdout_path: Path
    stderr_path: Path
    stdin_data: bytes | None = None  # None: stdin is /dev/null
    timeout: float | None = None
    idle_timeout: float | None = None
    stop_grace: float = 5.0
    redactor: Redactor | None = None  # applied to what is written to the two files

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("argv must not be empty")


@dataclass(frozen=True)
class ProcOutcome:
    pid: int | None
    returncode: int | None  # negative: killed by that signal
    started: float
    ended: float
    timed_out: bool = False
    idle_out: bool = False
    cancelled: bool = False
    spawn_error: str | None = None
    stderr_tail: str = ""
    stop_steps: tuple[str, ...] = field(default=())
    oversized_lines: int = 0

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None

    @property
    def stopped(self) -> bool:
        return self.timed_out or self.idle_out or self.cancelled


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []  # no process at all, not even a zombie: no need to scan /proc
    except PermissionError:
        pass
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: fall back to asking the kernel about the group as a whole
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parens, so split after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry))
    return members


def kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap_group(pgid: int, wait: float = 5.0) -> bool:
    """SIGKILL every member of the group until none is left; True when the group is gone."""
    deadline = time.monotonic() + wait
    while True:
        members = group_members(pgid)
        if not members:
            return True
        if time.monotonic() > deadline:
            log.warning("process group %d still has members %s", pgid, members)
            return False
        kill_group(pgid, signal.SIGKILL)
        time.sleep(0.02)


def start_time(pid: int) -> float | None:
    """When a live process started (seconds since the epoch), from /proc; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def is_our_orphan(pgid: int, started: float, slack: float = 120.0) -> bool:
    """Is process group `pgid` still the agent an attempt started at `started` (epoch seconds)?

    A recorded pid can belong to an unrelated process by now (pids are reused after a reboot or a
    wrap-around), and killing its group would hurt the user. While any member of a group lives, its
    id cannot be reused; so a group without its leader is ours, and a group whose leader lives is
    ours only when that leader started when the attempt did."""
    if not group_members(pgid):
        return False
    leader = start_time(pgid)
    return leader is None or abs(leader - started) <= slack


class _Stream:
    """Tees one pipe into a file; splits stdout into bounded lines."""

    def __init__(
        self, fd: int, sink: BinaryIO, on_line: Callable[[bytes], None] | None, redactor: Redactor | None
    ) -> None:
        self.fd = fd
        self.sink = sink
        self.redact: StreamRedactor | None = redactor.stream() if redactor else None
        self.on_line = on_line
        self.partial = bytearray()
        self.overflow = False
        self.oversized = 0
        self.tail = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.sink.write(self.redact.feed(chunk) if self.redact else chunk)
        if self.on_line is None:
            self.tail += chunk
            if len(self.tail) > 2 * STDERR_TAIL:
                del self.tail[: len(self.tail) - STDERR_TAIL]
            return
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                self._keep(chunk[start:])
                return
            self._keep(chunk[start:nl])
            self._emit()
            start = nl + 1

    def _keep(self, piece: bytes) -> None:
        if self.overflow:
            return
        if len(self.partial) + len(piece) > MAX_LINE:
            self.overflow = True
            self.partial = bytearray()
            return
        self.partial += piece

    def _emit(self) -> None:
        if self.overflow:
            self.oversized += 1
            self.overflow = False
        elif self.partial and self.on_line is not None:
            self.on_line(bytes(self.partial))
        self.partial = bytearray()

    def close(self) -> None:
        if self.partial or self.overflow:
            self._emit()
        if self.redact:
            self.sink.write(self.redact.flush())
        self.sink.flush()


def _pump(selector: selectors.BaseSelector, streams: dict[int, _Stream], wait: float) -> set[int]:
    """Read whatever the pipes have within `wait` seconds; the fds that delivered data (at EOF a pipe is
    unregistered)."""
    fed: set[int] = set()
    for key, _ in selector.select(wait):
        fd = int(key.fd)
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            continue
        if not chunk:
            selector.unregister(fd)
            continue
        streams[fd].feed(chunk)
        fed.add(fd)
    return fed


def _feed_stdin(pipe: BinaryIO, data: bytes) -> None:
    try:
        pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def run_streaming(
    request: ProcRequest,
    on_line: Callable[[bytes], None],
    cancel: threading.Event | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ProcOutcome:
    """Run the child to the end (or until stopped); see the module docstring."""
    started = time.time()
    request.stdout_path.parent.mkdir(parents=True, exist_ok=True)
    with open(request.stdout_path, "ab") as out_file, open(request.stderr_path, "ab") as err_file:
        try:
            proc = subprocess.Popen(
                list(request.argv),
                cwd=request.cwd,
                env=dict(request.env),
                stdin=subprocess.PIPE if request.stdin_data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            message = f"cannot start {request.argv[0]!r}: {exc.strerror or exc}"
            err_file.write(message.encode() + b"\n")
            return ProcOutcome(pid=None, returncode=None, started=started, ended=time.time(), spawn_error=message)
        pgid = proc.pid
        if on_start is not None:
            on_start(proc.pid)
        writer = None
        if request.stdin_data is not None and proc.stdin is not None:
            writer = threading.Thread(target=_feed_stdin, args=(proc.stdin, request.stdin_data), daemon=True)
            writer.start()
        assert proc.stdout is not None
        assert proc.stderr is not None
        err_stream = _Stream(proc.stderr.fileno(), err_file, None, request.redactor)
        out_stream = _Stream(proc.stdout.fileno(), out_file, on_line, request.redactor)
        streams = {out_stream.fd: out_stream, err_stream.fd: err_stream}
        selector = selectors.DefaultSelector()
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        stdout_fd = proc.stdout.fileno()
        wall_deadline = time.monotonic() + request.timeout if request.timeout else None
        last_output = time.monotonic()
        reason: str | None = None
        steps: list[str] = []
        leader_done_at: float | None = None
        try:
            while True:
                if not selector.get_map() and (leader_done_at is not None or proc.poll() is not None):
                    break
                now = time.monotonic()
                wait = 0.25
                if wall_deadline is not None:
                    wait = min(wait, max(0.0, wall_deadline - now))
                if request.idle_timeout:
                    wait = min(wait, max(0.0, last_output + request.idle_timeout - now))
                if selector.get_map():
                    if stdout_fd in _pump(selector, streams, wait):
                        last_output = time.monotonic()
                else:  # both pipes closed, the leader not yet reaped (or living on): wait for it
                    try:
                        proc.wait(timeout=wait)
                    except subprocess.TimeoutExpired:
                        pass
                if reason is None and leader_done_at is None:
                    now = time.monotonic()
                    if cancel is not None and cancel.is_set():
                        reason = "cancelled"
                    elif wall_deadline is not None and now >= wall_deadline:
                        reason = "timed_out"
                    elif request.idle_timeout and now - last_output >= request.idle_timeout:
                        reason = "idle_out"
                    if reason is not None:
                        steps += _stop(proc, request.stop_grace)
                        leader_done_at = time.monotonic()
                if leader_done_at is None and proc.poll() is not None:
                    leader_done_at = time.monotonic()
                if leader_done_at is not None:
                    # The leader is gone: kill what it left in its group, then drain the pipes to EOF.
                    if group_members(pgid):
                        steps.append("killed leftover processes of the group")
                        reap_group(pgid)
                    if time.monotonic() - leader_done_at > 2.0:
                        break  # a process outside the group still holds the pipe: stop reading it
        finally:
            selector.close()
            if proc.poll() is None:
                steps += _stop(proc, request.stop_grace)
            reap_group(pgid)
            for stream in streams.values():
                stream.close()
            proc.stdout.close()
            proc.stderr.close()
            proc.wait()
            if writer is not None:
                writer.join(timeout=1.0)
        for step in steps:
            log.info("pid %d: %s", proc.pid, step)
        tail = bytes(err_stream.tail[-STDERR_TAIL:])
        return ProcOutcome(
            pid=proc.pid,
            returncode=proc.returncode,
            started=started,
            ended=time.time(),
            timed_out=reason == "timed_out",
            idle_out=reason == "idle_out",
            cancelled=reason == "cancelled",
            stderr_tail=tail.decode("utf-8", "replace"),
            stop_steps=tuple(steps),
            oversized_lines=streams[stdout_fd].oversized,
        )


def _stop(proc: subprocess.Popen[bytes], grace: float) -> list[str]:
    """INT, then TERM, then KILL to the whole group, each after `grace` seconds without an exit."""
    steps = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        steps.append(f"sent {signal.Signals(sig).name} to process group {proc.pid}")
        kill_group(proc.pid, sig)
        try:
            proc.wait(timeout=grace if sig != signal.SIGKILL else 10)
        except subprocess.TimeoutExpired:
            continue
    return steps


class Background:
    """A child started by `start_background`: it runs until `stop()`. A thread tees its output into the
    request's files (through the redactor) and hands complete lines of stdout to `on_line`."""

    def __init__(
        self, request: ProcRequest, on_line: Callable[[bytes], None] | None, proc: subprocess.Popen[bytes]
    ) -> None:
        self.request = request
        self.proc = proc
        self.pid = proc.pid
        self._quit = threading.Event()
        self._pump = threading.Thread(target=self._run_pump, args=(on_line,), name=f"pump-{proc.pid}", daemon=True)
        self._pump.start()

    def poll(self) -> int | None:
        """The leader's exit code (negative: killed by that signal), or None while it runs."""
        return self.proc.poll()

    def group_alive(self) -> bool:
        """Does any process of its group still run (the leader, or what it started and left)?"""
        return bool(group_members(self.pid))

    def stop(self) -> tuple[str, ...]:
        """Stop the whole group, whether or not its leader still runs: INT, then TERM, each followed by
        up to `stop_grace` seconds for the group to end, then KILL to whatever is left."""
        steps = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            if not group_members(self.pid):
                break
            steps.append(f"sent {signal.Signals(sig).name} to process group {self.pid}")
            kill_group(self.pid, sig)
            deadline = time.monotonic() + self.request.stop_grace
            while group_members(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        if group_members(self.pid):
            steps.append(f"sent SIGKILL to process group {self.pid}")
            reap_group(self.pid)
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
                pipe.fileno(): _Stream(
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
                    ready = _pump(selector, streams, 0.2)
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
    proc = subprocess.Popen(
        list(request.argv),
        cwd=request.cwd,
        env=dict(request.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )
    return Background(request, on_line, proc)
