"""The codex backend: `codex exec --json`, its event stream, and what a turn's outcome means."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from codex_orch.agents.base import AgentResult, AttemptRequest, Progress, Usage
from codex_orch.agents.stream_json import crash_message, process_failure, result_of, run_cli
from codex_orch.failures import FailureKind, classify_turn_failure
from codex_orch.proc.stream import ProcOutcome


def describe_item(item: dict[str, Any]) -> str:
    kind = item.get("type", "?")
    if kind == "command_execution":
        return f"$ {str(item.get('command', ''))[:120]}"
    if kind == "file_change":
        paths = [str(c.get("path", "")).rsplit("/", 1)[-1] for c in item.get("changes") or []]
        return f"editing {', '.join(paths)[:120]}"
    if kind == "agent_message":
        return "answering"
    if kind == "reasoning":
        return "thinking"
    return str(kind)


class _EventReader:
    """Folds the JSONL stream into the few facts the orchestrator keeps in memory."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self.on_progress = on_progress
        self.thread_id: str | None = None
        self.final_message: str | None = None
        self.usage = Usage()
        self.turn_completed = False
        self.turn_failed: str | None = None
        self.last_error: str | None = None
        self.events = 0
        self.garbage = 0
        self.items: Counter[str] = Counter()

    def __call__(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            event = json.loads(line)
        except ValueError:  # includes UnicodeDecodeError: bytes that are not UTF-8
            self.garbage += 1
            return
        if not isinstance(event, dict):
            self.garbage += 1
            return
        self.events += 1
        kind = event.get("type")
        action: str | None = None
        if kind == "thread.started":
            self.thread_id = str(event.get("thread_id") or "") or self.thread_id
            action = "started"
        elif kind in ("item.started", "item.completed", "item.updated"):
            item = event.get("item") or {}
            if not isinstance(item, dict):
                return
            if kind == "item.completed":
                self.items[str(item.get("type"))] += 1
                if item.get("type") == "agent_message":
                    self.final_message = str(item.get("text") or "")
            action = describe_item(item)
        elif kind == "turn.completed":
            self.turn_completed = True
            self.usage = Usage.from_json(event.get("usage"))
            action = "turn completed"
        elif kind == "turn.failed":
            error = event.get("error") or {}
            self.turn_failed = str(error.get("message") if isinstance(error, dict) else error) or "turn failed"
            action = "turn failed"
        elif kind == "error":
            self.last_error = str(event.get("message") or "")
        if action is not None and self.on_progress is not None:
            self.on_progress(Progress(self.thread_id, action, self.usage if kind == "turn.completed" else None))


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
        reader = _EventReader(on_progress)
        outcome = run_cli(request, self.build_argv(request), reader, cancel, on_start)
        final = reader.final_message
        if request.last_message_path.is_file():
            text = request.last_message_path.read_text("utf-8", "replace")
            if final is None:
                final = text or None
            if request.redactor and request.redactor.text(text) != text:  # codex wrote it, not us
                request.last_message_path.write_text(request.redactor.text(text), "utf-8")
        failure, message = process_failure(outcome, request)
        if failure is None:
            failure, message = _turn_outcome(reader, outcome, final)
        return result_of(reader, outcome, request, final, failure, message, usage_cumulative=True)


def _turn_outcome(reader: _EventReader, outcome: ProcOutcome, final: str | None) -> tuple[FailureKind | None, str]:
    """How a turn that codex ran to its end went."""
    if reader.turn_failed is not None:
        return classify_turn_failure(reader.turn_failed), reader.turn_failed
    if outcome.returncode != 0:
        return FailureKind.CRASHED, crash_message(outcome, "codex")
    if not reader.turn_completed and reader.final_message is None:
        return FailureKind.CRASHED, "codex exited 0 without completing its turn"
    if not (final or "").strip():
        return FailureKind.EMPTY_ANSWER, "the turn ended without a final message"
    return None, ""
