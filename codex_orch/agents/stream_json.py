"""What the backends that speak a `stream-json` protocol (claude, gemini) share: one JSON event per
line folded by a reader that trusts no value, the run of an attempt up to its final `result` event,
and — shared with codex too — the child run through proc/ and the outcomes that are the same
whatever the agent (it could not start, was stopped, ran out of time, fell silent)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from codex_orch.agents.base import AgentResult, AttemptRequest, Progress, Usage
from codex_orch.failures import FailureKind
from codex_orch.proc.stream import ProcOutcome, ProcRequest, run_streaming

MAX_COUNT = 10**15  # a token count past this is not a count


def text(value: Any, limit: int = 100_000) -> str:
    """A string the agent sent, or "" for anything else; bounded."""
    return value[:limit] if isinstance(value, str) else ""


def count(value: Any) -> int:
    """A token count: a non-negative integer (not a bool, not a float), else 0."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return 0


def mapping(value: Any) -> dict[str, Any]:
    """An object the agent sent, or {} for anything else."""
    return value if isinstance(value, dict) else {}


def listing(value: Any) -> list[Any]:
    """An array the agent sent, or [] for anything else (a number, a string: never iterated)."""
    return value if isinstance(value, list) else []


def money(value: Any) -> float | None:
    """A cost in USD: a finite non-negative number, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9:
        return float(value)
    return None


def decode_event(line: bytes) -> dict[str, Any] | None:
    """One line of the stream as an event: a JSON object, else None (not JSON, not UTF-8, too deep, an
    integer Python will not convert, a value that is not an object)."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):  # ValueError includes bytes that are not UTF-8
        return None
    return event if isinstance(event, dict) else None


class EventReader:
    """Parses each line into an event (an object; anything else is garbage) and hands it to `handle`."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self.on_progress = on_progress
        self.thread_id: str | None = None
        self.usage = Usage()
        self.events = 0
        self.garbage = 0
        self.items: Counter[str] = Counter()
        self.result: dict[str, Any] | None = None  # the final event, when the agent got that far

    def __call__(self, line: bytes) -> None:
        if line.strip():
            event = decode_event(line)
            self.garbage += event is None
            self.events += event is not None
            if event is not None:
                self.handle(event)

    def handle(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def progress(self, action: str, usage: Usage | None = None, so_far: Usage | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(self.thread_id, action, usage, so_far))


class Facts(Protocol):
    """What an attempt's result takes from any backend's reader."""

    @property
    def thread_id(self) -> str | None: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def events(self) -> int: ...
    @property
    def garbage(self) -> int: ...
    @property
    def items(self) -> Mapping[str, int]: ...


def run_cli(
    request: AttemptRequest,
    argv: list[str],
    reader: Callable[[bytes], None],
    cancel: threading.Event | None,
    on_start: Callable[[int], None] | None,
) -> ProcOutcome:
    """The agent's CLI in the worktree, the prompt on its stdin (then closed), its events to disk."""
    request.attempt_dir.mkdir(parents=True, exist_ok=True)
    return run_streaming(
        ProcRequest(
            argv=tuple(argv),
            cwd=request.workdir,
            env=request.env,
            stdout_path=request.events_path,
            times_path=request.times_path,
            stderr_path=request.stderr_path,
            stdin_data=request.prompt.encode("utf-8"),
            timeout=request.timeout,
            idle_timeout=request.idle_timeout,
            stop_grace=request.stop_grace,
            redactor=request.redactor,
        ),
        on_line=reader,
        cancel=cancel,
        on_start=on_start,
    )


def process_failure(outcome: ProcOutcome, request: AttemptRequest) -> tuple[FailureKind | None, str]:
    """The outcomes that do not depend on what the agent said."""
    if outcome.spawn_error:
        return FailureKind.SPAWN_FAILED, outcome.spawn_error
    if outcome.cancelled:
        return FailureKind.INTERRUPTED, "stopped by codex-orch (interrupted)"
    if outcome.timed_out:
        return FailureKind.TIMEOUT, f"no result within {request.timeout:g} s"
    if outcome.idle_out:
        return FailureKind.IDLE, f"no event for {request.idle_timeout:g} s"
    return None, ""


def crash_message(outcome: ProcOutcome, program: str, what: str = "") -> str:
    """An agent that ended abnormally: how it ended, and the last line it wrote to stderr."""
    if outcome.signal:
        message = f"{program} was killed by signal {outcome.signal}"
    else:
        message = f"{program} exited with code {outcome.returncode}{what}"
    tail = outcome.stderr_tail.strip().splitlines()
    return message + (f": {tail[-1][:300]}" if tail else "")


def result_of(
    reader: Facts,
    outcome: ProcOutcome,
    request: AttemptRequest,
    final: str | None,
    failure: FailureKind | None,
    message: str,
    cost: float | None = None,
    usage_cumulative: bool = False,
) -> AgentResult:
    return AgentResult(
        thread_id=reader.thread_id or request.resume_thread,
        final_message=final,
        usage=reader.usage,
        failure=failure,
        failure_message=message,
        exit_code=outcome.returncode,
        pid=outcome.pid,
        started=outcome.started,
        ended=outcome.ended,
        event_count=reader.events,
        garbage_lines=reader.garbage + outcome.oversized_lines,
        item_counts=dict(reader.items),
        stop_steps=outcome.stop_steps,
        usage_cumulative=usage_cumulative,
        cost_usd=cost,
    )


Outcome = tuple[str | None, FailureKind | None, str]  # the final message, the failure, its message
Cancel = threading.Event | None
OnProgress = Callable[[Progress], None] | None
OnStart = Callable[[int], None] | None


class StreamJsonBackend:
    """A backend whose CLI ends with a `result` event: run it, and read its answer or failure there."""

    name = ""

    def build_argv(self, request: AttemptRequest) -> list[str]:
        raise NotImplementedError

    def prepare(self, request: AttemptRequest) -> AttemptRequest:
        """The request as this CLI needs it (its environment, its prompt)."""
        return request

    def reader(self, on_progress: Callable[[Progress], None] | None) -> EventReader:
        raise NotImplementedError

    def outcome(self, reader: Any) -> Outcome:
        """From a reader that saw the `result` event."""
        raise NotImplementedError

    def cost(self, reader: Any) -> float | None:
        return None

    def run(
        self, request: AttemptRequest, cancel: Cancel = None, on_progress: OnProgress = None, on_start: OnStart = None
    ) -> AgentResult:
        request = self.prepare(request)
        reader = self.reader(on_progress)
        outcome = run_cli(request, self.build_argv(request), reader, cancel, on_start)
        failure, message = process_failure(outcome, request)
        final: str | None = None
        if failure is None:
            if reader.result is None:
                failure, message = FailureKind.CRASHED, crash_message(outcome, self.name, " without a result")
            else:
                final, failure, message = self.outcome(reader)
        return result_of(reader, outcome, request, final, failure, message, self.cost(reader))
