"""The codex backend: `codex exec --json`, its event stream, and what a turn's outcome means.

The event stream is untrusted input. Each line is parsed under the limits of `untrusted.parse_json`
and the fields codex-orch reads are checked for their type; an event that fails either check breaks
the protocol and fails the attempt (kind `protocol`), and nothing it said is kept. Lines that are not
JSON at all are counted as garbage and skipped, as before. Only progress resets the idle clock:
codex's `error` events and `error` items (its "Reconnecting..." notices) do not, and more than
`max_reconnects` of them in a row stop the agent.
"""

from __future__ import annotations

import re
import stat
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from codex_orch.agents.base import AgentResult, AttemptRequest, Progress, StopEither, Usage
from codex_orch.agents.stream_json import listing
from codex_orch.failures import FailureKind, classify_reconnects, classify_turn_failure
from codex_orch.proc.stream import MAX_LINE, ProcOutcome, ProcRequest, run_streaming
from codex_orch.untrusted import JsonLimits, UntrustedValue, clean_text, json_type, parse_json, short

# serde_json, which writes codex's events, nests at most 128 deep and never writes NaN or lone surrogates.
EVENT_LIMITS = JsonLimits(max_bytes=MAX_LINE, max_depth=128)
# A thread id goes into argv (`codex exec resume ID`) and into a commit trailer: codex's are UUIDs.
THREAD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MESSAGE_CHARS = 2000  # of an agent's error message, kept in the state
ITEM_TYPES = 32  # distinct item types counted per attempt; more are counted as "(other)"
ITEM_EVENTS = ("item.started", "item.updated", "item.completed")
MAX_LAST_MESSAGE = 4 * 1024 * 1024  # bytes of codex's -o file read (answers are judged up to 1 MiB)


def describe_item(item: Mapping[str, Any]) -> str:
    kind = item.get("type", "?")
    if kind == "command_execution":
        return f"$ {str(item.get('command', ''))[:120]}"
    if kind == "file_change":
        paths = [str(c.get("path", "")).rsplit("/", 1)[-1] for c in listing(item.get("changes")) if isinstance(c, dict)]
        return f"editing {', '.join(paths)[:120]}"
    if kind == "agent_message":
        return "answering"
    if kind == "reasoning":
        return "thinking"
    return str(kind)[:120]


_WANTED: dict[type, str] = {str: "a string", dict: "an object", list: "a list"}


def _field(obj: Mapping[str, Any], key: str, kind: type, where: str, required: bool = False) -> Any:
    """obj[key], which must be of `kind` (left out or null: None, unless required)."""
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UntrustedValue(f"{where}{key} must be {_WANTED[kind]}, not {json_type(value)}")
    return value


def _check_item(item: Mapping[str, Any], completed: bool) -> str:
    """The item's type, after checking the fields codex-orch reads from it."""
    kind: str = _field(item, "type", str, "item.", required=True)
    if kind == "agent_message":
        _field(item, "text", str, "item.", required=completed)
    elif kind == "error":
        _field(item, "message", str, "item.")
    elif kind == "command_execution":
        _field(item, "command", str, "item.")
    elif kind == "file_change":
        for i, change in enumerate(_field(item, "changes", list, "item.") or ()):
            if not isinstance(change, dict):
                raise UntrustedValue(f"item.changes[{i}] must be an object, not {json_type(change)}")
            _field(change, "path", str, f"item.changes[{i}].")
    return kind


class _EventReader:
    """Folds the JSONL stream into the few facts the orchestrator keeps in memory."""

    def __init__(
        self,
        on_progress: Callable[[Progress], None] | None,
        max_reconnects: int | None = None,
        give_up: threading.Event | None = None,
    ) -> None:
        self.on_progress = on_progress
        self.max_reconnects = max_reconnects
        self.give_up = give_up
        self.thread_id: str | None = None
        self.final_message: str | None = None
        self.usage = Usage()
        self.turn_completed = False
        self.turn_failed: str | None = None
        self.last_error: str | None = None
        self.violation: str | None = None  # the first event that broke the protocol
        self.notices = 0  # error events and items since the last progress
        self.gave_up: str | None = None  # why the agent was stopped: past max_reconnects notices in a row
        self.gave_up_on = ""  # the notice that went past max_reconnects
        self.lines = 0
        self.events = 0
        self.garbage = 0
        self.items: Counter[str] = Counter()

    def __call__(self, line: bytes) -> bool:
        """Fold one line; whether it was progress (what resets the idle clock)."""
        if not line.strip():
            return False
        self.lines += 1
        try:
            event = parse_json(line, EVENT_LIMITS)
        except UntrustedValue as exc:
            return self._broken(f"event line {self.lines}: {exc}")
        except ValueError:  # not JSON, or bytes that are not UTF-8
            self.garbage += 1
            return False
        if not isinstance(event, dict):
            self.garbage += 1
            return False
        kind = event.get("type")
        try:
            if not isinstance(kind, str):
                raise UntrustedValue(f"type must be a string, not {json_type(kind)}")
            return self._fold(kind, event)
        except UntrustedValue as exc:
            return self._broken(f"event line {self.lines} ({short(kind)}): {exc}")

    def _broken(self, message: str) -> bool:
        if self.violation is None:
            self.violation = message
        return False

    def _fold(self, kind: str, event: dict[str, Any]) -> bool:
        self.events += 1
        if kind == "error":
            return self._notice(_field(event, "message", str, "") or "error")
        if kind in ITEM_EVENTS:
            item: dict[str, Any] = _field(event, "item", dict, "", required=True)
            item_type = _check_item(item, kind == "item.completed")
            if item_type == "error":  # a notice, counted once: when the item completes
                if kind == "item.completed":
                    self._notice(str(item.get("message") or "error"))
                return False
            action: str | None = self._item(kind, item, item_type)
        else:
            action = self._turn(kind, event)
        self.notices = 0
        if action is not None and self.on_progress is not None:
            self.on_progress(Progress(self.thread_id, action, self.usage if kind == "turn.completed" else None))
        return True

    def _item(self, kind: str, item: dict[str, Any], item_type: str) -> str:
        """An item started, updated or completed (completed items counted by type); what it shows."""
        if kind == "item.completed":
            counted = item_type if len(item_type) <= 64 else "(other)"
            if counted not in self.items and len(self.items) >= ITEM_TYPES:
                counted = "(other)"
            self.items[counted] += 1
            if item_type == "agent_message":
                self.final_message = item["text"]
        return describe_item(item)

    def _turn(self, kind: str, event: dict[str, Any]) -> str | None:
        """The thread started, the turn completed or failed (None for an event type codex-orch ignores)."""
        if kind == "thread.started":
            thread_id: str = _field(event, "thread_id", str, "", required=True)
            if not THREAD_ID.fullmatch(thread_id):
                raise UntrustedValue(f"thread_id {short(thread_id)} is not a thread id")
            self.thread_id = thread_id
            return "started"
        if kind == "turn.completed":
            self.usage = Usage.from_agent(event.get("usage"))
            self.turn_completed = True
            return "turn completed"
        if kind == "turn.failed":
            error = event.get("error")
            if isinstance(error, dict):
                error = _field(error, "message", str, "error.")
            elif error is not None and not isinstance(error, str):
                raise UntrustedValue(f"error must be an object, not {json_type(error)}")
            self.turn_failed = clean_text(error or "turn failed", MESSAGE_CHARS)
            return "turn failed"
        return None

    def _notice(self, message: str) -> bool:
        """An error event or item: codex retrying, or a warning. Not progress; past max_reconnects of them
        in a row the agent is given up on."""
        self.last_error = clean_text(message, MESSAGE_CHARS)
        self.notices += 1
        if self.max_reconnects is not None and self.notices > self.max_reconnects and self.gave_up is None:
            self.gave_up = f"{self.notices} reconnect notices in a row, no progress: {self.last_error}"
            self.gave_up_on = self.last_error
            if self.give_up is not None:
                self.give_up.set()
        return False


class CodexBackend:
    name = "codex"

    def build_argv(self, request: AttemptRequest) -> list[str]:
        argv = [*request.command, "exec", "--json", "-C", str(request.workdir), "-s", request.sandbox]
        argv += ["--output-schema", str(request.output_schema), "-o", str(request.last_message_path)]
        if request.model:
            argv += ["-m", request.model]
        if request.profile:
            argv += ["-p", request.profile]
        argv += request.extra_args
        if request.resume_thread:
            argv += ["resume", request.resume_thread]
        argv.append("-")  # the prompt comes on stdin
        return argv

    def run(
        self,
        request: AttemptRequest,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> AgentResult:
        request.attempt_dir.mkdir(parents=True, exist_ok=True)
        stop = StopEither(cancel)
        reader = _EventReader(on_progress, request.max_reconnects, stop)
        outcome = run_streaming(
            ProcRequest(
                argv=tuple(self.build_argv(request)),
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
            cancel=stop,
            on_start=on_start,
        )
        last_message = _last_message(request)
        final = reader.final_message if reader.final_message is not None else last_message
        failure, message = _stopped(request, outcome, reader, cancel) or _ended(outcome, reader, final) or (None, "")
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
        )


Failure = tuple[FailureKind, str]


def _stopped(
    request: AttemptRequest, outcome: ProcOutcome, reader: _EventReader, cancel: threading.Event | None
) -> Failure | None:
    """The attempt never started, or codex-orch stopped it: cancelled, given up on, out of time."""
    if outcome.spawn_error:
        return FailureKind.SPAWN_FAILED, outcome.spawn_error
    if outcome.cancelled and (reader.gave_up is None or (cancel is not None and cancel.is_set())):
        return FailureKind.INTERRUPTED, "stopped by codex-orch (interrupted)"
    if reader.gave_up is not None:
        if reader.turn_failed is not None:  # codex's own verdict got through
            return classify_turn_failure(reader.turn_failed), reader.turn_failed
        return classify_reconnects(reader.gave_up_on), reader.gave_up
    if outcome.timed_out:
        return FailureKind.TIMEOUT, f"no result within {request.timeout:g} s"
    if outcome.idle_out and reader.notices:
        message = f"no progress for {request.idle_timeout:g} s, only notices: {reader.last_error}"
        return classify_reconnects(reader.last_error or ""), message
    if outcome.idle_out:
        return FailureKind.IDLE, f"no progress for {request.idle_timeout:g} s"
    return None


def _ended(outcome: ProcOutcome, reader: _EventReader, final: str | None) -> Failure | None:
    """codex ended by itself: what its events, its exit and its answer say went wrong."""
    if reader.violation is not None:
        return FailureKind.PROTOCOL, reader.violation
    if reader.turn_failed is not None:
        return classify_turn_failure(reader.turn_failed), reader.turn_failed
    if outcome.returncode != 0:
        if outcome.signal:
            message = f"codex was killed by signal {outcome.signal}"
        else:
            message = f"codex exited with code {outcome.returncode}"
        tail = outcome.stderr_tail.strip().splitlines()
        return FailureKind.CRASHED, message + (f": {clean_text(tail[-1], 300)}" if tail else "")
    if not reader.turn_completed and reader.final_message is None:
        return FailureKind.CRASHED, "codex exited 0 without completing its turn"
    if not (final or "").strip():
        return FailureKind.EMPTY_ANSWER, "the turn ended without a final message"
    return None


def _last_message(request: AttemptRequest) -> str | None:
    """codex's -o file (the answer when the events carried none), redacted in place: codex wrote it, not
    us. One larger than the largest answer codex-orch takes is left unread."""
    path = request.last_message_path
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_LAST_MESSAGE:  # a FIFO would block the read
            return None
        text = path.read_text("utf-8", "replace")
    except OSError:
        return None
    if request.redactor and request.redactor.text(text) != text:
        path.write_text(request.redactor.text(text), "utf-8")
    return text or None
