"""The one place that starts child processes.

A child runs in its own session and process group, stdin either closed or fed from a thread. Its
stdout is streamed: every byte goes to a file as it arrives and complete lines are handed to a
callback, so memory stays bounded however long the stream is. A wall-clock limit, an idle limit (no
progress for N seconds: a line the callback did not call progress does not count) and a cancel event
stop the whole group, escalating INT -> TERM -> KILL. When the child's leader exits, whatever it
started is killed too, in its group or not (proc/reaper.py): nothing survives.
(proc/background.py runs a long-lived child, a service, the same way until its `stop()`.)
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

from codex_orch.proc.groups import kill_group, reap_group
from codex_orch.proc.reaper import Unit, contain
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
    times_path: Path | None = None  # when stdout's lines arrived: one Unix time per line (logs, timeline)

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


# on_line(line) -> False when the line was not progress (a keep-alive, a retry notice): it does not reset
# the idle clock. Anything else (True, None) is progress.
OnLine = Callable[[bytes], bool | None]


class StreamTee:
    """Tees one pipe into a file; splits stdout into bounded lines."""

    def __init__(
        self,
        fd: int,
        sink: BinaryIO,
        on_line: OnLine | None,
        redactor: Redactor | None,
        stamps: BinaryIO | None = None,
    ) -> None:
        self.fd = fd
        self.sink = sink
        self.stamps = stamps  # one arrival time per newline, so line k of the sink has line k here
        self.redact: StreamRedactor | None = redactor.stream() if redactor else None
        self.on_line = on_line
        self.partial = bytearray()
        self.overflow = False
        self.oversized = 0
        self.progress = False  # a line since the last look was progress
        self.tail = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.sink.write(self.redact.feed(chunk) if self.redact else chunk)
        if self.stamps is not None and b"\n" in chunk:  # an agent's events: on disk at once, for readers
            self.sink.flush()
            self.stamps.write(f"{time.time():.3f}\n".encode() * chunk.count(b"\n"))
            self.stamps.flush()
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
        elif self.partial and self.on_line is not None and self.on_line(bytes(self.partial)) is not False:
            self.progress = True
        self.partial = bytearray()

    def close(self) -> None:
        if self.partial or self.overflow:
            self._emit()
        if self.redact:
            self.sink.write(self.redact.flush())
        self.sink.flush()
        if self.stamps is not None:
            self.stamps.close()


def pump(selector: selectors.BaseSelector, streams: dict[int, StreamTee], wait: float) -> set[int]:
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
    on_line: OnLine,
    cancel: threading.Event | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ProcOutcome:
    """Run the child to the end (or until stopped); see the module docstring."""
    started = time.time()
    request.stdout_path.parent.mkdir(parents=True, exist_ok=True)
    with open(request.stdout_path, "ab") as out_file, open(request.stderr_path, "ab") as err_file:
        stamps = open(request.times_path, "ab") if request.times_path else None  # noqa: SIM115 (the tee closes it)
        unit = contain(Path(request.argv[0]).name)
        try:
            proc = subprocess.Popen(
                list(request.argv),
                cwd=request.cwd,
                env=unit.env(request.env),
                stdin=subprocess.PIPE if request.stdin_data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            unit.end()
            if stamps is not None:
                stamps.close()
            message = f"cannot start {request.argv[0]!r}: {exc.strerror or exc}"
            err_file.write(message.encode() + b"\n")
            return ProcOutcome(pid=None, returncode=None, started=started, ended=time.time(), spawn_error=message)
        unit.attach(proc.pid)
        watch = _Watch(request, proc, unit, on_line, (out_file, err_file), stamps)
        try:
            if on_start is not None:  # inside the try: if it fails, the child is still stopped
                on_start(proc.pid)
            watch.follow(cancel)
        finally:
            watch.finish()
    for step in watch.steps:
        log.info("pid %d: %s", proc.pid, step)
    return watch.outcome(started)


class _Watch:
    """One child from its start to its end: its pipes read, its limits watched, its group stopped."""

    def __init__(
        self,
        request: ProcRequest,
        proc: subprocess.Popen[bytes],
        unit: Unit,
        on_line: OnLine,
        files: tuple[BinaryIO, BinaryIO],
        stamps: BinaryIO | None = None,
    ) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        self.request, self.proc, self.unit = request, proc, unit
        self.writer: threading.Thread | None = None
        if request.stdin_data is not None and proc.stdin is not None:
            self.writer = threading.Thread(target=_feed_stdin, args=(proc.stdin, request.stdin_data), daemon=True)
            self.writer.start()
        self.out = StreamTee(proc.stdout.fileno(), files[0], on_line, request.redactor, stamps)
        self.err = StreamTee(proc.stderr.fileno(), files[1], None, request.redactor)
        self.streams = {self.out.fd: self.out, self.err.fd: self.err}
        self.selector = selectors.DefaultSelector()
        for fd in self.streams:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ)
        self.wall_deadline = time.monotonic() + request.timeout if request.timeout else None
        self.last_output = time.monotonic()
        self.reason: str | None = None
        self.steps: list[str] = []
        self.leader_done_at: float | None = None
        self.swept = False

    def follow(self, cancel: threading.Event | None) -> None:
        """Read until the pipes close and the leader is gone, stopping the child at a limit or on cancel."""
        while self.selector.get_map() or (self.leader_done_at is None and self.proc.poll() is None):
            self._read(self._wait())
            if self.reason is None and self.leader_done_at is None:
                self.reason = self._limit_reached(cancel)
                if self.reason is not None:
                    self.steps += _stop(self.proc, self.request.stop_grace)
                    self.leader_done_at = time.monotonic()
            if self.leader_done_at is None and self.proc.poll() is not None:
                self.leader_done_at = time.monotonic()
            if self.leader_done_at is not None:
                # The leader is gone: kill whatever it left, in its group or not, then drain the pipes.
                self._sweep()
                if time.monotonic() - self.leader_done_at > 2.0:
                    return  # a process outside the group still holds the pipe: stop reading it

    def _wait(self) -> float:
        """How long the next read may wait: until the nearer limit, at most a quarter second."""
        now, wait = time.monotonic(), 0.25
        if self.wall_deadline is not None:
            wait = min(wait, max(0.0, self.wall_deadline - now))
        if self.request.idle_timeout:
            wait = min(wait, max(0.0, self.last_output + self.request.idle_timeout - now))
        return wait

    def _read(self, wait: float) -> None:
        if self.selector.get_map():
            pump(self.selector, self.streams, wait)
            if self.out.progress:
                self.out.progress = False
                self.last_output = time.monotonic()
            return
        try:  # both pipes closed, the leader not yet reaped (or living on): wait for it
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass

    def _limit_reached(self, cancel: threading.Event | None) -> str | None:
        now = time.monotonic()
        if cancel is not None and cancel.is_set():
            return "cancelled"
        if self.wall_deadline is not None and now >= self.wall_deadline:
            return "timed_out"
        if self.request.idle_timeout and now - self.last_output >= self.request.idle_timeout:
            return "idle_out"
        return None

    def _sweep(self) -> None:
        if not self.swept:
            self.steps += self.unit.end()
            self.swept = True

    def finish(self) -> None:
        """Whatever happened: the child and what it left stopped, the pipes drained and closed."""
        self.selector.close()
        if self.proc.poll() is None:
            self.steps += _stop(self.proc, self.request.stop_grace)
        self._sweep()
        reap_group(self.proc.pid)  # where /proc cannot be read: the group at least
        for stream in self.streams.values():
            stream.close()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.proc.wait()
        if self.writer is not None:
            self.writer.join(timeout=1.0)

    def outcome(self, started: float) -> ProcOutcome:
        tail = bytes(self.err.tail[-STDERR_TAIL:])
        return ProcOutcome(
            pid=self.proc.pid,
            returncode=self.proc.returncode,
            started=started,
            ended=time.time(),
            timed_out=self.reason == "timed_out",
            idle_out=self.reason == "idle_out",
            cancelled=self.reason == "cancelled",
            stderr_tail=tail.decode("utf-8", "replace"),
            stop_steps=tuple(self.steps),
            oversized_lines=self.out.oversized,
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
