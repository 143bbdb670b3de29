"""The Gemini API of the scripted model server, as Gemini CLI speaks it (not a model).

Gemini CLI (`gemini -p`, pointed here with GOOGLE_GEMINI_BASE_URL) sends
`POST /v1beta/models/MODEL:streamGenerateContent?alt=sse` and reads Server-Sent Events of
`GenerateContentResponse` chunks. Each such request takes the next step of its conversation's script
(model_script.py), mapped to what a model would answer:

* ``shell`` -> a ``functionCall`` of ``run_shell_command``; ``write`` -> ``write_file``;
  ``edit`` -> ``replace``; ``answer`` -> a text part (Gemini CLI has no schema of its own);
* ``http`` -> that status with Google's error body ``{"error": {code, message, status}}``;
  ``failed`` -> an error object in the stream; ``cut``, ``silent`` as for every protocol;
* ``patch`` (codex's own tool) -> HTTP 500 naming the problem.

Gemini CLI names no session in its requests: a conversation is keyed by its prompt (the first user
message without Gemini CLI's session context) and its workspace, which `gemini --resume` sends again
with the whole history; two conversations with the same prompt in the same folder are one thread.
Other calls (`:generateContent`, which Gemini CLI uses for side questions such as choosing a model
when none is given, `:countTokens`) are answered with a short reply and take no step.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from codex_orch.testing.model_script import conversation_key, usage_body

if TYPE_CHECKING:
    from codex_orch.testing.responses_http import ResponsesHandler

_CONTEXT = "<session_context>"
_WORKSPACE = re.compile(r"Workspace Directories:\*\*\n((?:\s+- .*\n)+)")
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
_STATUS.update({429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"})


def _first_texts(body: Any) -> list[str]:
    contents = body.get("contents") if isinstance(body, dict) else None
    first = contents[0] if isinstance(contents, list) and contents and isinstance(contents[0], dict) else {}
    return [p["text"] for p in first.get("parts") or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]


def prompt_of(body: Any) -> str:
    """The task prompt: the first user message's text without the session context Gemini CLI puts first."""
    return "\n".join(t for t in _first_texts(body) if not t.lstrip().startswith(_CONTEXT))


def thread_of(body: Any) -> str:
    """The conversation: its prompt and its workspace. Not the whole first message: `--resume` writes the
    session context (which lists the workspace's files) afresh."""
    context = "".join(t for t in _first_texts(body) if t.lstrip().startswith(_CONTEXT))
    workspace = _WORKSPACE.search(context)
    return conversation_key((workspace.group(1) if workspace else "") + "\n" + prompt_of(body))


def _part(kind: str, step: dict[str, Any]) -> dict[str, Any]:
    if kind == "shell":
        return {"functionCall": {"name": "run_shell_command", "args": {"command": step["shell"]}}}
    if kind == "write":
        return {
            "functionCall": {"name": "write_file", "args": {"file_path": step["write"], "content": step["content"]}}
        }
    if kind == "edit":
        args = {"file_path": step["edit"], "old_string": step["old"], "new_string": step["new"]}
        return {"functionCall": {"name": "replace", "args": {**args, "instruction": "scripted edit"}}}
    value = step["answer"]
    return {"text": value if isinstance(value, str) else json.dumps(value)}


def usage_of(step: dict[str, Any]) -> dict[str, int]:
    u = usage_body(step.get("usage"))
    return {
        "promptTokenCount": u["input_tokens"],
        "cachedContentTokenCount": u["input_tokens_details"]["cached_tokens"],
        "candidatesTokenCount": u["output_tokens"],
        "thoughtsTokenCount": u["output_tokens_details"]["reasoning_tokens"],
        "totalTokenCount": u["total_tokens"],
    }


def _error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}


def _chunk(handler: ResponsesHandler, obj: dict[str, Any]) -> None:
    handler.wfile.write(f"data: {json.dumps(obj)}\r\n\r\n".encode())
    handler.wfile.flush()


def serve(handler: ResponsesHandler, path: str, headers: dict[str, str], body: Any) -> None:
    owner = handler.server.owner
    model, _, action = path.rsplit("/", 1)[-1].partition(":")
    if action != "streamGenerateContent":
        owner._record("POST", handler.path, headers, body)
        if action == "countTokens":
            handler._send_json(200, {"totalTokens": 100})
        else:
            handler._send_json(200, _response({"text": "{}"}, {}))
        return
    taken = handler._take_step("gemini", thread_of(body), prompt_of(body), headers, body, _error)
    if taken is None:
        return
    kind, step = taken
    handler._start_sse()
    if kind == "silent":
        handler._hold(step)
        return
    if kind == "cut":
        _chunk(handler, _response({"text": ""}, None, model, finish=None))
        handler.close_connection = True
        return
    if kind == "failed":
        _chunk(handler, _error(500, step["failed"]))
        handler.close_connection = True
        return
    _chunk(handler, _response(_part(kind, step), usage_of(step), model))


def _response(
    part: dict[str, Any], usage: dict[str, int] | None, model: str = "scripted", finish: str | None = "STOP"
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    response: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if usage:
        response["usageMetadata"] = usage
    return response
