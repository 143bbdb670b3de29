"""The Gemini CLI backend: `gemini --output-format stream-json`, its events, its outcome.

As observed with the real CLI (0.61.0, tests/test_real_gemini.py): with stdin not a terminal it runs
headless and takes the prompt from stdin; events are `init` (the session id), `message` (the
assistant's text in `delta` pieces), `tool_use`, `tool_result`, `error` and a final `result` with
`status` "success" or "error" (then `error.message`, e.g. "[API Error: …]") and `stats` (the tokens of
this invocation). The exit code is not reliable after an API error (seen: 145, 173, 244); the
`result` event is. `--resume ID` continues a session. `--skip-trust`: the worktree is codex-orch's own.

Gemini CLI has no flag for an output schema: the schema is put at the end of the prompt of every
attempt that starts a session, and codex-orch validates the answer and retries as for codex.

Sandbox per role: read-only runs with `--approval-mode default`, in which a headless Gemini CLI offers
only tools that need no approval (reading, listing, searching: no write_file, replace or
run_shell_command); workspace-write and danger-full-access run with `--approval-mode yolo`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from codex_orch.agents.base import AttemptRequest, Progress, Usage
from codex_orch.agents.stream_json import EventReader, Outcome, StreamJsonBackend, count, mapping, text
from codex_orch.failures import FailureKind, classify_turn_failure

_ITEMS = {"run_shell_command": "command_execution", "write_file": "file_change", "replace": "file_change"}
# A stream that ended without its last chunk: the connection's fault, not the model's answer.
_CUT = re.compile(r"stream ended without a finish reason|premature close|socket hang up|ECONNRESET", re.I)


def approval_mode(sandbox: str) -> str:
    return "default" if sandbox == "read-only" else "yolo"


def usage_of(stats: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=count(stats.get("input_tokens")),
        cached_input_tokens=count(stats.get("cached")),
        output_tokens=count(stats.get("output_tokens")),
    )


def schema_note(schema: str) -> str:
    return (
        "\n\n## Output schema\nYour final message must be one JSON object valid for this JSON Schema, with no "
        f"text around it:\n```json\n{schema.strip()}\n```\n"
    )


class _GeminiReader(EventReader):
    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        super().__init__(on_progress)
        self.answer: list[str] = []  # the assistant's text since its last tool call
        self.last_error = ""

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "init":
            self.thread_id = text(event.get("session_id"), 200) or self.thread_id
            self.progress("started")
        elif kind == "message" and event.get("role") == "assistant":
            piece = text(event.get("content"))
            self.answer = [*self.answer, piece] if event.get("delta") is True else [piece]
            self.progress("answering")
        elif kind == "tool_use":
            self.answer = []
            name = text(event.get("tool_name"), 200)
            self.items[_ITEMS.get(name, f"tool:{name[:40]}")] += 1
            arguments = mapping(event.get("parameters"))
            if name == "run_shell_command":
                self.progress(f"$ {text(arguments.get('command'))[:120]}")
            elif name in ("write_file", "replace"):
                self.progress(f"editing {text(arguments.get('file_path')).rsplit('/', 1)[-1][:120]}")
            else:
                self.progress(name[:60] or "tool")
        elif kind == "error":
            self.last_error = text(event.get("message"), 2000)
        elif kind == "result":
            self.result = event
            self.usage = usage_of(mapping(event.get("stats")))
            self.progress("turn completed", self.usage)

    @property
    def final(self) -> str:
        return "".join(self.answer)


def failure_of(result: dict[str, Any], last_error: str) -> tuple[FailureKind, str]:
    message = text(mapping(result.get("error")).get("message"), 2000) or last_error or "gemini reported an error"
    if _CUT.search(message):
        return FailureKind.TRANSPORT, message
    return classify_turn_failure(message), message


class GeminiBackend(StreamJsonBackend):
    name = "gemini"

    def build_argv(self, request: AttemptRequest) -> list[str]:
        argv = [*request.command, "--output-format", "stream-json", "--skip-trust"]
        argv += ["--approval-mode", approval_mode(request.sandbox)]
        if request.model:
            argv += ["--model", request.model]
        if request.resume_thread:
            argv += ["--resume", request.resume_thread]
        argv += request.extra_args
        return argv  # the prompt comes on stdin

    def prepare(self, request: AttemptRequest) -> AttemptRequest:
        if request.resume_thread:  # the session was given the schema when it started
            return request
        schema = json.dumps(json.loads(request.output_schema.read_text("utf-8")), indent=1)
        return replace(request, prompt=request.prompt + schema_note(schema))

    def reader(self, on_progress: Callable[[Progress], None] | None) -> EventReader:
        return _GeminiReader(on_progress)

    def outcome(self, reader: _GeminiReader) -> Outcome:
        assert reader.result is not None
        if reader.result.get("status") != "success":
            failure, message = failure_of(reader.result, reader.last_error)
            return None, failure, message
        if not reader.final.strip():
            return None, FailureKind.EMPTY_ANSWER, "the turn ended without a final message"
        return reader.final, None, ""
