"""The scripts a ScriptedModelServer replays (not a model), and what it reads from a request.

Script format (a JSON-able dict)::

    {
      "rules": [
        {"match": "substring of the task prompt",
         "steps": [{"shell": "echo hi > a.txt"},
                   {"answer": {"status": "done", "files_changed": ["a.txt"], "summary": "ok"}}]}
      ],
      "default": [{"answer": "fallback answer"}]
    }

Each rule holds a flat list ``steps``; ``turns`` (a list of lists of steps) is
accepted too and is simply flattened in order. ``default`` is a flat list of
steps, or ``{"steps": [...]}`` / ``{"turns": [[...]]}``.

How requests map to steps:

* Codex sends several requests per turn: one, then one more after each tool
  call, with the tool's output appended to ``input``. Every request consumes
  exactly one step.
* A thread is identified by the ``thread-id`` request header (falling back to
  ``session-id``, then ``x-client-request-id``; requests with none of these
  share one anonymous thread).
* On the first request of a thread, the rule is chosen: the first rule whose
  ``match`` is a substring of the task prompt (the text of the first user
  message that is not codex's own context, i.e. not ``<environment_context>``
  nor ``# AGENTS.md instructions``/``<user_instructions>``). A rule without
  ``match`` (or with ``""``) matches everything. No rule matching -> ``default``.
  The choice is remembered for the thread (in this server process only).
* Steps are consumed as one flat sequence per thread, across turns: a
  ``codex exec resume`` of the same thread continues where it left off.
  When the steps run out, the last step is repeated.
* No rule and no default: the request is answered with HTTP 500.

Step kinds (one kind key per step):

* ``{"shell": "cmd"}`` - a ``function_call`` item named ``exec_command`` with
  arguments ``{"cmd": cmd}`` (optional ``"args": {...}`` merged into the
  arguments, e.g. ``{"workdir": "sub"}``); Claude Code's ``Bash`` tool,
  Gemini CLI's ``run_shell_command``.
* ``{"patch": "*** Begin Patch\\n...*** End Patch\\n"}`` - a ``custom_tool_call``
  named ``apply_patch`` with that input (codex only: the other protocols answer it with HTTP 500).
* ``{"write": "path", "content": "text"}`` - a new file: codex's ``apply_patch``
  (``*** Add File``), Claude Code's ``Write`` tool, Gemini CLI's ``write_file``.
* ``{"edit": "path", "old": "text", "new": "text"}`` - one replacement in a file:
  ``apply_patch`` (``*** Update File``, whole lines), Claude's ``Read`` then ``Edit``
  (Claude refuses to edit a file it has not read), Gemini's ``replace``.
* ``{"call": "TOOL", "namespace": "mcp__SERVER", "arguments": {...}}`` - a ``function_call`` of
  an MCP tool as codex offers it; codex lists MCP tools directly only for a model name it does not
  know (docs: shared CODEX.md). Claude Code: a ``tool_use`` named ``mcp__SERVER__TOOL``. Gemini
  CLI: HTTP 500.
* ``{"answer": value}`` - an assistant ``message`` whose ``output_text`` is the
  string, or ``json.dumps(value)`` for anything else. To Claude Code run with
  ``--json-schema`` (it offers a ``StructuredOutput`` tool), an object is a call
  of that tool, as a model would answer.
* ``{"http": 500}`` - that HTTP status with an OpenAI-style JSON error body
  ``{"error": {"message", "type", "param", "code"}}`` and no Retry-After
  header. Optional ``"message"``, ``"body"`` (dict or str, replaces the body),
  ``"headers"`` (dict).
* ``{"cut": true}`` - ``response.created``, then the connection is closed
  before ``response.completed``.
* ``{"silent": true}`` - response headers and nothing else; the connection is
  held open until the client goes away, the server closes, or ``silent``
  seconds pass (``true`` means 600).
* ``{"failed": "message"}`` - ``response.created`` then ``response.failed``
  with ``error.code`` ``"server_error"`` (optional ``"code"`` to change it).

Optional keys valid on every step:

* ``"usage"`` - overrides for ``response.completed.response.usage``; the
  defaults are ``input_tokens=100``, ``cached_tokens=10``,
  ``output_tokens=20``, ``reasoning_tokens=0`` and
  ``total_tokens=input+output``. Accepted keys: ``input_tokens``,
  ``cached_tokens``, ``output_tokens``, ``reasoning_tokens``,
  ``total_tokens`` (or the nested ``input_tokens_details`` /
  ``output_tokens_details`` dicts as the API spells them).
* ``"delay"`` - seconds to wait before answering (cut short when the server
  closes).

The same script serves every wire protocol (responses_http.py for codex,
anthropic_http.py for Claude Code, gemini_http.py for Gemini CLI): a step means
the same whatever the protocol, each module says how it maps a step and how it
tells its threads apart.

Other endpoints (codex 0.169.0 was not seen to call any): ``GET /v1/models`` answers ``{"object": "list", "data": [],
"models": []}``; anything else is a JSON 404. Every request (including those) is
recorded, in arrival order, as ``{"method", "path", "headers", "body",
"thread_id", "step_index", "step", "protocol"}`` where ``headers`` has lower-cased names,
``body`` is the parsed JSON (or the raw text, or None) and ``protocol`` is the
protocol of a request that took a step (None for any other).
"""

from __future__ import annotations

import uuid
from typing import Any

DEFAULT_USAGE = {
    "input_tokens": 100,
    "cached_tokens": 10,
    "output_tokens": 20,
    "reasoning_tokens": 0,
}


SILENT_DEFAULT_SECONDS = 600.0


STEP_KINDS = ("shell", "patch", "write", "edit", "call", "answer", "http", "cut", "silent", "failed")


# User messages codex injects itself, which are never the task prompt.
_CONTEXT_PREFIXES = (
    "<environment_context>",
    "<user_instructions>",
    "# AGENTS.md instructions",
)


class ScriptError(ValueError):
    """The script is malformed."""


def _flatten_steps(obj: Any, where: str) -> list[dict]:
    if isinstance(obj, dict):
        if "steps" in obj and "turns" in obj:
            raise ScriptError(f"{where}: give either 'steps' or 'turns', not both")
        if "steps" in obj:
            return _flatten_steps(obj["steps"], where + ".steps")
        if "turns" in obj:
            turns = obj["turns"]
            if not isinstance(turns, list) or not all(isinstance(t, list) for t in turns):
                raise ScriptError(f"{where}.turns must be a list of lists of steps")
            return _flatten_steps([s for t in turns for s in t], where + ".turns")
        raise ScriptError(f"{where}: expected 'steps' or 'turns'")
    if not isinstance(obj, list):
        raise ScriptError(f"{where}: expected a list of steps")
    steps = []
    for i, step in enumerate(obj):
        _check_step(step, f"{where}[{i}]")
        steps.append(step)
    return steps


def _check_step(step: Any, where: str) -> None:
    if not isinstance(step, dict):
        raise ScriptError(f"{where}: a step must be an object, got {step!r}")
    kinds = [k for k in STEP_KINDS if k in step]
    if len(kinds) != 1:
        raise ScriptError(f"{where}: a step needs exactly one of {STEP_KINDS}, got {sorted(step)}")
    kind = kinds[0]
    value = step[kind]
    if kind in ("shell", "patch", "failed", "write", "edit", "call") and not isinstance(value, str):
        raise ScriptError(f"{where}.{kind} must be a string")
    needs = {"write": ("content",), "edit": ("old", "new")}.get(kind, ())
    for key in needs:
        if not isinstance(step.get(key), str):
            raise ScriptError(f"{where}.{key} must be a string (a {kind} step needs {', '.join(needs)})")
    if kind == "call" and not (isinstance(step.get("namespace"), str) and isinstance(step.get("arguments"), dict)):
        raise ScriptError(f"{where}: a call step needs a namespace (string) and arguments (object)")
    if kind == "http" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ScriptError(f"{where}.http must be an integer status")
    if kind == "silent" and not (value is True or (isinstance(value, (int, float)) and not isinstance(value, bool))):
        raise ScriptError(f"{where}.silent must be true or a number of seconds")
    if "usage" in step and not isinstance(step["usage"], dict):
        raise ScriptError(f"{where}.usage must be an object")
    if "delay" in step and not isinstance(step["delay"], (int, float)):
        raise ScriptError(f"{where}.delay must be a number")


def validate_script(script: Any) -> tuple[list[tuple[str, list[dict]]], list[dict] | None]:
    """Check a script; return ``([(match, steps), ...], default_steps_or_None)``."""
    if script is None:
        script = {}
    if not isinstance(script, dict):
        raise ScriptError("the script must be an object with 'rules' and/or 'default'")
    unknown = set(script) - {"rules", "default"}
    if unknown:
        raise ScriptError(f"unknown top-level keys: {sorted(unknown)}")
    rules = []
    for i, rule in enumerate(script.get("rules") or []):
        where = f"rules[{i}]"
        if not isinstance(rule, dict):
            raise ScriptError(f"{where} must be an object")
        match = rule.get("match", "")
        if not isinstance(match, str):
            raise ScriptError(f"{where}.match must be a string")
        steps = _flatten_steps({k: v for k, v in rule.items() if k in ("steps", "turns")}, where)
        if not steps:
            raise ScriptError(f"{where} has no steps")
        rules.append((match, steps))
    default = None
    if script.get("default") is not None:
        default = _flatten_steps(script["default"], "default")
        if not default:
            raise ScriptError("default has no steps")
    return rules, default


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    return "".join(parts)


def user_texts(body: Any) -> list[str]:
    """Texts of all user messages in a Responses request body's ``input``, in order."""
    out = []
    items = body.get("input") if isinstance(body, dict) else None
    if isinstance(items, str):
        return [items]
    for item in items or []:
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        if item.get("type", "message") != "message":
            continue
        out.append(_content_text(item.get("content")))
    return out


def prompt_of(body: Any) -> str | None:
    """The task prompt: the first user message that is not codex's own context."""
    for text in user_texts(body):
        if not text.lstrip().startswith(_CONTEXT_PREFIXES):
            return text
    return None


def usage_body(overrides: dict | None) -> dict:
    u = dict(DEFAULT_USAGE)
    o = dict(overrides or {})
    if isinstance(o.get("input_tokens_details"), dict):
        o.setdefault("cached_tokens", o["input_tokens_details"].get("cached_tokens"))
    if isinstance(o.get("output_tokens_details"), dict):
        o.setdefault("reasoning_tokens", o["output_tokens_details"].get("reasoning_tokens"))
    for key in ("input_tokens", "cached_tokens", "output_tokens", "reasoning_tokens"):
        if o.get(key) is not None:
            u[key] = int(o[key])
    total = o.get("total_tokens")
    return {
        "input_tokens": u["input_tokens"],
        "input_tokens_details": {"cached_tokens": u["cached_tokens"]},
        "output_tokens": u["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": u["reasoning_tokens"]},
        "total_tokens": int(total) if total is not None else u["input_tokens"] + u["output_tokens"],
    }


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def patch_of(step: dict) -> str:
    """A write or edit step as the apply_patch input codex's own tool takes."""

    def lines(text: str, mark: str) -> str:
        return "".join(f"{mark}{line}\n" for line in text.splitlines())

    if "write" in step:
        body = f"*** Add File: {step['write']}\n" + lines(step["content"], "+")
    else:
        body = f"*** Update File: {step['edit']}\n@@\n" + lines(step["old"], "-") + lines(step["new"], "+")
    return f"*** Begin Patch\n{body}*** End Patch\n"


def conversation_key(text: str) -> str:
    """A thread id for a client that sends none: its conversation's first message, hashed (a resumed
    conversation sends its whole history again, so the key stays the same)."""
    import hashlib

    return "conv-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def step_kind(step: dict) -> str:
    for k in STEP_KINDS:
        if k in step:
            return k
    raise ScriptError(f"not a step: {step!r}")  # pragma: no cover - validated earlier
