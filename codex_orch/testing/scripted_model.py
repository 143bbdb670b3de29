"""A scripted stand-in for a model server, for tests and offline demos.

THIS IS NOT A MODEL. It does not read, understand or generate anything: it
replays a fixed script of canned answers. It speaks just enough of the OpenAI
Responses API (``POST /v1/responses`` with ``stream: true``, answered with
Server-Sent Events) for the real Codex CLI to run against it on 127.0.0.1 with
no API key and no internet. Python standard library only.

Pointing codex at it (``$CODEX_HOME/config.toml``)::

    model = "gpt-5.5"    # any slug codex 0.169.0 knows; see the note below
    model_provider = "mock"
    check_for_update_on_startup = false
    [model_providers.mock]
    name = "Mock"
    base_url = "http://127.0.0.1:PORT/v1"     # ScriptedModelServer.base_url
    wire_api = "responses"
    request_max_retries = 0
    stream_max_retries = 0
    [analytics]
    enabled = false
    [features]
    plugins = false
    unbounded_connection_retries = false

Note on ``model``: the server ignores it, but codex does not. With a name it
does not know (e.g. ``"mock-model"``) codex 0.169.0 uses fallback metadata,
emits a non-fatal ``error`` item about it, and does NOT offer the
``apply_patch`` tool: a scripted ``patch`` step is then answered with
"unsupported custom tool call: apply_patch" and no file changes (the turn
still exits 0). A known slug such as ``"gpt-5.5"`` avoids both.

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
  arguments, e.g. ``{"workdir": "sub"}``).
* ``{"patch": "*** Begin Patch\\n...*** End Patch\\n"}`` - a ``custom_tool_call``
  named ``apply_patch`` with that input.
* ``{"answer": value}`` - an assistant ``message`` whose ``output_text`` is the
  string, or ``json.dumps(value)`` for anything else.
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

Other endpoints (codex 0.169.0 was not seen to call any): ``GET /v1/models`` answers ``{"object": "list", "data": [],
"models": []}``; anything else is a JSON 404. Every request (including those) is
recorded, in arrival order, as ``{"method", "path", "headers", "body",
"thread_id", "step_index", "step"}`` where ``headers`` has lower-cased names
and ``body`` is the parsed JSON (or the raw text, or None).

In-process use::

    with ScriptedModelServer(script) as srv:
        ...  # point codex at srv.base_url
        srv.requests  # snapshot of the recorded requests

Command line::

    python -m codex_orch.testing.scripted_model --script FILE [--port 0]
        [--port-file F] [--requests-log F]

prints the port on stdout (and writes it to ``--port-file``), appends each
request as one JSON line to ``--requests-log``, and serves until SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import http.server
import json
import os
import select
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "DEFAULT_USAGE",
    "ScriptError",
    "ScriptedModelServer",
    "codex_config",
    "main",
    "prompt_of",
    "user_texts",
    "validate_script",
]

DEFAULT_USAGE = {
    "input_tokens": 100,
    "cached_tokens": 10,
    "output_tokens": 20,
    "reasoning_tokens": 0,
}

SILENT_DEFAULT_SECONDS = 600.0

STEP_KINDS = ("shell", "patch", "answer", "http", "cut", "silent", "failed")

# User messages codex injects itself, which are never the task prompt.
_CONTEXT_PREFIXES = (
    "<environment_context>",
    "<user_instructions>",
    "# AGENTS.md instructions",
)


class ScriptError(ValueError):
    """The script is malformed."""


# --------------------------------------------------------------------------
# Script handling


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
    if kind in ("shell", "patch", "failed") and not isinstance(value, str):
        raise ScriptError(f"{where}.{kind} must be a string")
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


def _usage(overrides: dict | None) -> dict:
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


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _step_kind(step: dict) -> str:
    for k in STEP_KINDS:
        if k in step:
            return k
    raise ScriptError(f"not a step: {step!r}")  # pragma: no cover - validated earlier


# --------------------------------------------------------------------------
# HTTP server


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Do not let a slow/stuck client keep the listening socket's backlog short.
    request_queue_size = 64

    owner: ScriptedModelServer


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _ThreadingServer
    protocol_version = "HTTP/1.0"  # one response per connection; EOF ends a stream
    server_version = "ScriptedModel/1"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.verbose:
            sys.stderr.write("scripted_model: " + (format % args) + "\n")

    # -- plumbing

    def _read_body(self) -> tuple[Any, bytes]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        data = raw
        enc = (self.headers.get("Content-Encoding") or "").lower().strip()
        try:
            if enc == "gzip":
                data = gzip.decompress(raw)
            elif enc == "deflate":
                data = zlib.decompress(raw)
        except (OSError, zlib.error):
            data = raw
        if not data:
            return None, raw
        try:
            return json.loads(data.decode("utf-8")), raw
        except (UnicodeDecodeError, ValueError):
            return data.decode("utf-8", "replace"), raw

    def _send_json(self, status: int, obj: Any, extra_headers: dict | None = None) -> None:
        payload = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for k, v in (extra_headers or {}).items():
            self.send_header(str(k), str(v))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def _event(self, obj: dict) -> None:
        data = f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()
        self.wfile.write(data)
        self.wfile.flush()

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _wait(self, seconds: float, watch_client: bool = False) -> None:
        owner = self.server.owner
        deadline = time.monotonic() + seconds
        while not owner._closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if watch_client and self._client_gone():
                return
            owner._closing.wait(min(left, 0.1))

    # -- verbs

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        owner._enter()
        try:
            body, _raw = self._read_body() if method != "GET" else (None, b"")
            path = self.path.split("?", 1)[0].rstrip("/")
            headers = {k.lower(): v for k, v in self.headers.items()}
            if method == "POST" and path.endswith("/responses"):
                self._responses(path, headers, body)
            elif method == "GET" and path.endswith("/models"):
                owner._record(method, self.path, headers, body)
                self._send_json(200, {"object": "list", "data": [], "models": []})
            else:
                owner._record(method, self.path, headers, body)
                self._send_json(
                    404,
                    {
                        "error": {
                            "message": f"scripted_model: no such endpoint {method} {self.path}",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        finally:
            owner._leave()

    def _responses(self, path: str, headers: dict, body: Any) -> None:
        owner = self.server.owner
        thread_id, step_index, step = owner._next_step(headers, body)
        owner._record("POST", self.path, headers, body, thread_id=thread_id, step_index=step_index, step=step)
        model = body.get("model", "scripted") if isinstance(body, dict) else "scripted"
        if step is None:
            self._send_json(
                500,
                {
                    "error": {
                        "message": "scripted_model: no rule matches this prompt and there is no default",
                        "type": "server_error",
                        "param": None,
                        "code": "server_error",
                    }
                },
            )
            return
        if step.get("delay"):
            self._wait(float(step["delay"]))
        kind = _step_kind(step)
        if kind == "http":
            self._http_error(step)
            return

        resp_id = _new_id("resp")
        created = int(time.time())

        def response(status: str, output: list, **extra: Any) -> dict:
            r = {
                "id": resp_id,
                "object": "response",
                "created_at": created,
                "status": status,
                "model": model,
                "output": output,
            }
            r.update(extra)
            return r

        self._start_sse()
        if kind == "silent":
            secs = SILENT_DEFAULT_SECONDS if step["silent"] is True else float(step["silent"])
            self._wait(secs, watch_client=True)
            self.close_connection = True
            return
        self._event({"type": "response.created", "response": response("in_progress", [])})
        if kind == "cut":
            self.close_connection = True
            return
        if kind == "failed":
            err = {"code": step.get("code", "server_error"), "message": step["failed"]}
            self._event({"type": "response.failed", "response": response("failed", [], error=err)})
            return

        item = self._item(kind, step)
        self._event({"type": "response.output_item.added", "output_index": 0, "item": item})
        if kind == "answer":
            self._event(
                {
                    "type": "response.output_text.delta",
                    "item_id": item["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "delta": item["content"][0]["text"],
                }
            )
        self._event({"type": "response.output_item.done", "output_index": 0, "item": item})
        self._event(
            {"type": "response.completed", "response": response("completed", [item], usage=_usage(step.get("usage")))}
        )

    def _item(self, kind: str, step: dict) -> dict:
        if kind == "shell":
            args = {"cmd": step["shell"]}
            args.update(step.get("args") or {})
            return {
                "type": "function_call",
                "id": _new_id("fc"),
                "call_id": _new_id("call"),
                "name": "exec_command",
                "arguments": json.dumps(args),
                "status": "completed",
            }
        if kind == "patch":
            return {
                "type": "custom_tool_call",
                "id": _new_id("ctc"),
                "call_id": _new_id("call"),
                "name": "apply_patch",
                "input": step["patch"],
                "status": "completed",
            }
        value = step["answer"]
        text = value if isinstance(value, str) else json.dumps(value)
        return {
            "type": "message",
            "role": "assistant",
            "id": _new_id("msg"),
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }

    def _http_error(self, step: dict) -> None:
        status = int(step["http"])
        if "body" in step:
            body = step["body"]
        else:
            if status == 429:
                etype, code = "rate_limit_exceeded", "rate_limit_exceeded"
                default_msg = "scripted_model: rate limit reached (429)"
            elif status in (401, 403):
                etype, code = "invalid_request_error", "invalid_api_key"
                default_msg = f"scripted_model: unauthorized ({status})"
            elif 400 <= status < 500:
                etype, code = "invalid_request_error", None
                default_msg = f"scripted_model: bad request ({status})"
            else:
                etype, code = "server_error", "server_error"
                default_msg = f"scripted_model: server error ({status})"
            body = {"error": {"message": step.get("message", default_msg), "type": etype, "param": None, "code": code}}
        self._send_json(status, body, step.get("headers"))


class ScriptedModelServer:
    """A scripted stand-in for a model behind the OpenAI Responses API (not a model).

    See the module docstring for the script format. Thread-safe; starts
    listening on construction and serves from a background thread after
    :meth:`start` (or ``with``).
    """

    def __init__(
        self,
        script: Any = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        requests_log: str | os.PathLike[str] | None = None,
        verbose: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._rules: list[tuple[str, list[dict]]] = []
        self._default: list[dict] | None = None
        self.set_script(script)
        self._requests: list[dict] = []
        self._threads: dict[str, dict] = {}
        self._closing = threading.Event()
        self._active = 0
        self._idle = threading.Condition(self._lock)
        self._requests_log = os.fspath(requests_log) if requests_log is not None else None
        self.verbose = verbose
        self._httpd = _ThreadingServer((host, port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- public API

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[dict]:
        """A snapshot (list copy) of the recorded requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    def responses_requests(self, thread_id: str | None = None) -> list[dict]:
        """Recorded ``POST .../responses`` requests, optionally for one thread."""
        return [
            r
            for r in self.requests
            if r["path"].split("?")[0].rstrip("/").endswith("/responses")
            and r["method"] == "POST"
            and (thread_id is None or r["thread_id"] == thread_id)
        ]

    def set_script(self, script: Any) -> None:
        """Replace the script. Threads already seen keep their rule index and position."""
        rules, default = validate_script(copy.deepcopy(script))
        with self._lock:
            self._rules, self._default = rules, default

    def start(self) -> ScriptedModelServer:
        if self._closed:
            raise RuntimeError("server is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"scripted-model-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, end held-open streams, and wait (bounded) for handlers to finish."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._active > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._idle.wait(left)
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`close` is called from elsewhere."""
        self.start()
        self._closing.wait()

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals used by the handler

    def _enter(self) -> None:
        with self._lock:
            self._active += 1

    def _leave(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def _next_step(self, headers: dict, body: Any) -> tuple[str, int | None, dict | None]:
        thread_id = headers.get("thread-id") or headers.get("session-id") or headers.get("x-client-request-id") or ""
        with self._lock:
            state = self._threads.get(thread_id)
            if state is None:
                prompt = prompt_of(body) or ""
                rule = None
                for i, (match, _steps) in enumerate(self._rules):
                    if match in prompt:
                        rule = i
                        break
                state = {"rule": rule, "pos": 0}
                self._threads[thread_id] = state
            steps = self._rules[state["rule"]][1] if state["rule"] is not None else self._default
            if not steps:
                return thread_id, None, None
            index = min(state["pos"], len(steps) - 1)
            state["pos"] += 1
            return thread_id, index, steps[index]

    def _record(
        self,
        method: str,
        path: str,
        headers: dict,
        body: Any,
        *,
        thread_id: str | None = None,
        step_index: int | None = None,
        step: dict | None = None,
    ) -> None:
        rec = {
            "method": method,
            "path": path,
            "headers": headers,
            "body": body,
            "thread_id": thread_id,
            "step_index": step_index,
            "step": step,
            "time": time.time(),
        }
        with self._lock:
            self._requests.append(rec)
            if self._requests_log:
                with open(self._requests_log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec) + "\n")


# --------------------------------------------------------------------------
# Command line


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m codex_orch.testing.scripted_model",
        description="Serve a SCRIPTED stand-in for a model (not a model) over the OpenAI Responses API "
        "on loopback, so the real Codex CLI can run offline.",
    )
    ap.add_argument("--script", required=True, help="JSON script file (see the module docstring)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    ap.add_argument("--port-file", help="write the port number to this file once listening")
    ap.add_argument("--requests-log", help="append every request as a JSON line to this file")
    ap.add_argument("--verbose", action="store_true", help="log requests on stderr")
    args = ap.parse_args(list(argv) if argv is not None else None)

    try:
        with open(args.script, encoding="utf-8") as fh:
            script = json.load(fh)
        server = ScriptedModelServer(
            script, host=args.host, port=args.port, requests_log=args.requests_log, verbose=args.verbose
        )
    except (OSError, ValueError) as exc:
        print(f"scripted_model: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    try:
        if args.port_file:
            _write_atomic(args.port_file, f"{server.port}\n")
        print(server.port, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        server.close()
    return 0


def codex_config(base_url: str, stream_idle_timeout_ms: int = 30000) -> dict[str, Any]:
    """The codex settings (codex.config in orchestrator.yaml, or config.toml) that point the real
    codex CLI at this server and keep it fully offline: no retry storms, no update checks, no plugins."""
    return {
        "model": "gpt-5.5",  # a name codex knows, so that it offers apply_patch; the server ignores it
        "model_provider": "scripted",
        "check_for_update_on_startup": False,
        "model_providers": {
            "scripted": {
                "name": "Scripted model (codex_orch.testing.scripted_model)",
                "base_url": base_url,
                "wire_api": "responses",
                "request_max_retries": 0,
                "stream_max_retries": 0,
                "stream_idle_timeout_ms": stream_idle_timeout_ms,
            }
        },
        "analytics": {"enabled": False},
        "features": {"plugins": False, "unbounded_connection_retries": False},
    }


if __name__ == "__main__":
    sys.exit(main())
