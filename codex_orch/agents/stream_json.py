"""What the backends that speak a `stream-json` protocol (claude, gemini) share: one JSON event per
line folded by a reader that trusts no value, the child run through proc/, and the outcomes that are
the same whatever the agent (it could not start, was stopped, ran out of time, fell silent)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

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
    return value if isinstance(value, dict) else {}


def money(value: Any) -> float | None:
    """A cost in USD: a finite non-negative number, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9:
        return float(value)
    return None


class EventReader:
    """Parses each line into an event (an object; anything else is garbage) and hands it to `handle`."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self.on_progress = on_progress
        self.thread_id: str | None = None
        self.usage = Usage()
        self.events = 0
        self.garbage = 0
        self.items: Counter[str] = Counter()

    def __call__(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):  # ValueError includes bytes that are not UTF-8
            self.garbage += 1
            return
        if not isinstance(event, dict):
            self.garbage += 1
            return
        self.events += 1
        self.handle(event)

    def handle(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def progress(self, action: str, usage: Usage | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(Progress(self.thread_id, action, usage))


def run_cli(
    request: AttemptRequest,
    argv: list[str],
    reader: EventReader,
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


def crash_message(outcome: ProcOutcome, program: str) -> str:
    """An agent that ended without its final event: how it ended, and the last line it wrote to stderr."""
    if outcome.signal:
        message = f"{program} was killed by signal {outcome.signal}"
    else:
        message = f"{program} exited with code {outcome.returncode} without a result"
    tail = outcome.stderr_tail.strip().splitlines()
    return message + (f": {tail[-1][:300]}" if tail else "")


def result_of(
    reader: EventReader,
    outcome: ProcOutcome,
    request: AttemptRequest,
    final: str | None,
    failure: FailureKind | None,
    message: str,
    cost: float | None = None,
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
        usage_cumulative=False,  # both report the tokens of this invocation only
        cost_usd=cost,
    )
