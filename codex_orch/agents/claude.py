"""The Claude Code backend: `claude -p --output-format stream-json --verbose`, its events, its outcome.

As observed with the real CLI (2.1.328, tests/test_real_claude.py): the prompt is read from stdin;
`--json-schema` gives the model a `StructuredOutput` tool whose input claude validates itself,
answering a bad one with the errors up to 5 times before it ends with the subtype
`error_max_structured_output_retries`; the answer is `structured_output` in the final `result`
event. `--resume ID` continues a session under the same id. An API error still ends with subtype
"success", but with `is_error: true` and `api_error_status`. `usage` in `result` counts this
invocation only; `total_cost_usd` is cumulative over a resumed session. Exit code 1 with any error.

Sandbox per role (claude has no sandbox of its own here):
- read-only: `--permission-mode dontAsk --tools Read,Grep,Glob`: only those tools exist (a call of
  Write, Edit or Bash is answered "No such tool available"), and nothing may ask for permission;
- workspace-write, danger-full-access: `--permission-mode bypassPermissions` with every tool. As
  root, claude refuses that mode unless IS_SANDBOX=1 (exactly "1"), which codex-orch then sets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from codex_orch.agents.base import AttemptRequest, Progress, Usage
from codex_orch.agents.stream_json import EventReader, Outcome, StreamJsonBackend, count, listing, mapping, money, text
from codex_orch.failures import FailureKind, classify_api_status, classify_turn_failure

READ_ONLY_TOOLS = "Read,Grep,Glob"
# How Claude Code's tools count in an attempt's items, in codex's words where there is one.
_ITEMS = {
    "Bash": "command_execution",
    "Write": "file_change",
    "Edit": "file_change",
    "MultiEdit": "file_change",
    "NotebookEdit": "file_change",
    "StructuredOutput": "agent_message",
}


def permission_args(sandbox: str) -> list[str]:
    if sandbox == "read-only":
        return ["--permission-mode", "dontAsk", "--tools", READ_ONLY_TOOLS]
    return ["--permission-mode", "bypassPermissions"]


def describe_tool(name: str, arguments: dict[str, Any]) -> str:
    if name == "Bash":
        return f"$ {text(arguments.get('command'))[:120]}"
    if name in ("Write", "Edit", "MultiEdit", "NotebookEdit"):
        return f"editing {text(arguments.get('file_path')).rsplit('/', 1)[-1][:120]}"
    if name == "StructuredOutput":
        return "answering"
    return name[:60] or "tool"


def usage_of(data: dict[str, Any]) -> Usage:
    """Anthropic's usage in codex-orch's terms: input counts the cached (read and written) tokens too."""
    cache_read = count(data.get("cache_read_input_tokens"))
    cache_write = count(data.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=count(data.get("input_tokens")) + cache_read + cache_write,
        cached_input_tokens=cache_read,
        cache_write_input_tokens=cache_write,
        output_tokens=count(data.get("output_tokens")),
        reasoning_output_tokens=count(mapping(data.get("output_tokens_details")).get("thinking_tokens")),
    )


class _ClaudeReader(EventReader):
    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        super().__init__(on_progress)
        self.responses: dict[str, Usage] = {}  # each model response's usage, by its id, as they stream

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            self.thread_id = text(event.get("session_id"), 200) or self.thread_id
            self.progress("started")
        elif kind == "assistant":
            message = mapping(event.get("message"))
            if "usage" in message:  # each block of one response repeats that response's usage
                self.responses[text(message.get("id"), 200)] = usage_of(mapping(message.get("usage")))
                self.progress("working", so_far=sum(self.responses.values(), Usage()))
            for item in listing(message.get("content")):
                block = mapping(item)
                if block.get("type") == "tool_use":
                    name = text(block.get("name"), 200)
                    self.items[_ITEMS.get(name, f"tool:{name[:40]}")] += 1
                    self.progress(describe_tool(name, mapping(block.get("input"))))
                elif block.get("type") == "text":
                    self.items["agent_message"] += 1
                    self.progress("answering")
                elif block.get("type") == "thinking":
                    self.progress("thinking")
        elif kind == "result":
            self.result = event
            self.thread_id = text(event.get("session_id"), 200) or self.thread_id
            self.usage = usage_of(mapping(event.get("usage")))
            denials = event.get("permission_denials")
            if isinstance(denials, list) and denials:
                self.items["permission_denied"] += len(denials)
            self.progress("turn completed", self.usage)


def outcome_of(result: dict[str, Any]) -> Outcome:
    """The final message, the failure and its message, from claude's `result` event."""
    subtype = text(result.get("subtype"), 200)
    errors = "; ".join(text(e, 2000) for e in listing(result.get("errors")) if isinstance(e, str))
    said = text(result.get("result"))
    if subtype == "success" and result.get("is_error") is not True:
        structured = result.get("structured_output")
        final = json.dumps(structured) if structured is not None else said
        if not final.strip():
            return None, FailureKind.EMPTY_ANSWER, "the turn ended without a final message"
        return final, None, ""
    if subtype == "error_max_structured_output_retries":
        return None, FailureKind.SCHEMA_INVALID, errors or "claude gave up on a schema-valid answer"
    if subtype == "error_max_turns":
        return None, FailureKind.MAX_TURNS, errors or "the turn limit was reached"
    message = said or errors or f"claude ended with {subtype or 'an error'}"
    status = result.get("api_error_status")
    if isinstance(status, int) and not isinstance(status, bool):
        return None, classify_api_status(status, message), message
    return None, classify_turn_failure(message), message


class ClaudeBackend(StreamJsonBackend):
    name = "claude"

    def build_argv(self, request: AttemptRequest) -> list[str]:
        argv = [*request.command, "-p", "--output-format", "stream-json", "--verbose"]
        argv += permission_args(request.sandbox)
        schema = request.output_schema.read_text("utf-8")
        argv += ["--json-schema", json.dumps(json.loads(schema), separators=(",", ":"))]
        if request.model:
            argv += ["--model", request.model]
        if request.max_turns:
            argv += ["--max-turns", str(request.max_turns)]
        if request.resume_thread:
            argv += ["--resume", request.resume_thread]
        argv += request.extra_args
        return argv  # the prompt comes on stdin

    def prepare(self, request: AttemptRequest) -> AttemptRequest:
        if request.sandbox == "read-only" or os.geteuid() != 0:
            return request
        # as root, claude refuses bypassPermissions without IS_SANDBOX=1 (and "yes" is not it)
        return replace(request, env={**request.env, "IS_SANDBOX": "1"})

    def reader(self, on_progress: Callable[[Progress], None] | None) -> EventReader:
        return _ClaudeReader(on_progress)

    def outcome(self, reader: _ClaudeReader) -> Outcome:
        assert reader.result is not None
        return outcome_of(reader.result)

    def cost(self, reader: _ClaudeReader) -> float | None:
        return money(reader.result.get("total_cost_usd")) if reader.result else None
