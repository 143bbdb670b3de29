"""The Anthropic Messages API of the scripted model server, as Claude Code speaks it (not a model).

Claude Code (`claude -p`, pointed here with ANTHROPIC_BASE_URL) sends `POST /v1/messages?beta=true`
with `stream: true` and reads Server-Sent Events. Each such request takes the next step of its
session's script (model_script.py), mapped to what a model would answer:

* ``shell`` -> a ``tool_use`` of ``Bash`` (``{"command": ...}``);
* ``write`` -> ``Write`` (``file_path`` made absolute with the working directory Claude Code
  names in its request); ``edit`` -> ``Read`` then ``Edit`` in one message (Claude Code refuses to
  edit a file it has not read);
* ``answer`` -> a call of the ``StructuredOutput`` tool when the request offers it (``claude
  --json-schema``) and the answer is a JSON object; otherwise a text block;
* ``http`` -> that status with Anthropic's error body ``{"type": "error", "error": {type, message}}``;
  ``failed`` -> an ``error`` event in the stream; ``cut``, ``silent`` as for every protocol;
* ``call`` -> a ``tool_use`` of an MCP tool as Claude Code names it: ``mcp__<server>__<tool>``, the
  step's ``namespace`` and ``call`` joined by ``__`` (``{"call": "enqueue_job", "namespace":
  "mcp__codex-orch", ...}``);
* ``patch`` (codex's own tool) -> HTTP 500 naming the problem.

The session is the ``x-claude-code-session-id`` header (kept by ``claude --resume``); a request
without it is keyed by its first user message. A request without ``stream: true`` (Claude Code sends
one after a stream that failed) takes its step too, answered as one JSON message (``failed``: HTTP 500).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from codex_orch.testing.model_script import conversation_key, new_id, usage_body

if TYPE_CHECKING:
    from codex_orch.testing.responses_http import ResponsesHandler

SESSION_HEADER = "x-claude-code-session-id"
STRUCTURED_OUTPUT_TOOL = "StructuredOutput"
_REMINDER = "<system-reminder>"
_WORKDIR = re.compile(r"Primary working directory: ([^\n\\]+)")


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]


def prompt_of(body: Any) -> str:
    """The task prompt: the first user message's text, without the reminders Claude Code adds to it."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in messages or []:
        if isinstance(message, dict) and message.get("role") == "user":
            return "\n".join(t for t in _texts(message.get("content")) if not t.lstrip().startswith(_REMINDER))
    return ""


def _offers(body: Any, tool: str) -> bool:
    tools = body.get("tools") if isinstance(body, dict) else None
    return any(isinstance(t, dict) and t.get("name") == tool for t in tools or [])


def _absolute(path: str, body: Any) -> str:
    if path.startswith("/"):
        return path
    found = _WORKDIR.search(json.dumps(body))
    return f"{found.group(1).rstrip('/')}/{path}" if found else path


def _tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": new_id("toolu"), "name": name, "input": arguments}


def _blocks(kind: str, step: dict[str, Any], body: Any) -> list[dict[str, Any]]:
    if kind == "shell":
        return [_tool("Bash", {"command": step["shell"], "description": "scripted step"})]
    if kind == "write":
        return [_tool("Write", {"file_path": _absolute(step["write"], body), "content": step["content"]})]
    if kind == "edit":
        path = _absolute(step["edit"], body)
        return [
            _tool("Read", {"file_path": path}),
            _tool("Edit", {"file_path": path, "old_string": step["old"], "new_string": step["new"]}),
        ]
    if kind == "call":
        return [_tool(f"{step['namespace']}__{step['call']}", step["arguments"])]
    value = step["answer"]
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            value = parsed
    if isinstance(value, dict) and _offers(body, STRUCTURED_OUTPUT_TOOL):
        return [_tool(STRUCTURED_OUTPUT_TOOL, value)]
    return [{"type": "text", "text": value if isinstance(value, str) else json.dumps(value)}]


def usage_of(step: dict[str, Any]) -> dict[str, int]:
    """The step's usage as Anthropic counts it: input_tokens exclude the cached (read) ones."""
    u = usage_body(step.get("usage"))
    cached = u["input_tokens_details"]["cached_tokens"]
    return {
        "input_tokens": max(0, u["input_tokens"] - cached),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
        "output_tokens": u["output_tokens"],
    }


_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error", 529: "overloaded_error"}


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": new_id("req")}


def serve(handler: ResponsesHandler, headers: dict[str, str], body: Any) -> None:
    prompt = prompt_of(body)
    taken = handler._take_step(
        "anthropic", headers.get(SESSION_HEADER) or conversation_key(prompt), prompt, headers, body, _error_body
    )
    if taken is None:
        return
    kind, step = taken
    if not (isinstance(body, dict) and body.get("stream") is True):
        _serve_whole(handler, kind, step, body)
        return
    handler._start_sse()
    if kind == "silent":
        handler._hold(step)
        return
    usage = usage_of(step)
    start = _message([], None, {**usage, "output_tokens": 1})
    handler._event({"type": "message_start", "message": {**start, "model": body.get("model", "scripted")}})
    if kind == "cut":
        handler.close_connection = True
        return
    if kind == "failed":
        handler._event({"type": "error", "error": {"type": step.get("code", "api_error"), "message": step["failed"]}})
        return
    blocks = _blocks(kind, step, body)
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            handler._event(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            handler._event({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        handler._event({"type": "content_block_delta", "index": index, "delta": delta})
        handler._event({"type": "content_block_stop", "index": index})
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    handler._event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    handler._event({"type": "message_stop"})


def _serve_whole(handler: ResponsesHandler, kind: str, step: dict[str, Any], body: Any) -> None:
    """A step as one JSON message, for a request that asked for no stream."""
    if kind == "silent":
        handler._hold(step)
    elif kind == "cut":
        handler.close_connection = True
    elif kind == "failed":
        handler._send_json(500, _error_body(500, step["failed"]))
    else:
        blocks = _blocks(kind, step, body)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        handler._send_json(200, _message(blocks, stop, usage_of(step)))


def _message(content: list[dict[str, Any]], stop: str | None, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": "scripted",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
