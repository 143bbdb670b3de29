"""The codex backend: `codex exec --json`, its event stream, and what a turn's outcome means."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from codex_orch.agents.base import AgentResult, AttemptRequest, Progress, Usage
from codex_orch.failures import FailureKind, classify_turn_failure
from codex_orch.proc.stream import ProcRequest, run_streaming


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
        request.attempt_dir.mkdir(parents=True, exist_ok=True)
        reader = _EventReader(on_progress)
        outcome = run_streaming(
            ProcRequest(
                argv=tuple(self.build_argv(request)),
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
        final = reader.final_message
        if request.last_message_path.is_file():
            text = request.last_message_path.read_text("utf-8", "replace")
            if final is None:
                final = text or None
            if request.redactor and request.redactor.text(text) != text:  # codex wrote it, not us
                request.last_message_path.write_text(request.redactor.text(text), "utf-8")
        failure: FailureKind | None = None
        message = ""
        if outcome.spawn_error:
            failure, message = FailureKind.SPAWN_FAILED, outcome.spawn_error
        elif outcome.cancelled:
            failure, message = FailureKind.INTERRUPTED, "stopped by codex-orch (interrupted)"
        elif outcome.timed_out:
            failure, message = FailureKind.TIMEOUT, f"no result within {request.timeout:g} s"
        elif outcome.idle_out:
            failure, message = FailureKind.IDLE, f"no event for {request.idle_timeout:g} s"
        elif reader.turn_failed is not None:
            failure, message = classify_turn_failure(reader.turn_failed), reader.turn_failed
        elif outcome.returncode != 0:
            failure = FailureKind.CRASHED
            if outcome.signal:
                message = f"codex was killed by signal {outcome.signal}"
            else:
                message = f"codex exited with code {outcome.returncode}"
            tail = outcome.stderr_tail.strip().splitlines()
            if tail:
                message += f": {tail[-1][:300]}"
        elif not reader.turn_completed and reader.final_message is None:
            failure, message = FailureKind.CRASHED, "codex exited 0 without completing its turn"
        elif not (final or "").strip():
            failure, message = FailureKind.EMPTY_ANSWER, "the turn ended without a final message"
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
