"""The HTTP side of the scripted model server: the OpenAI Responses API as Server-Sent Events, each
request answered by the next step of its thread's script (see model_script.py)."""

from __future__ import annotations

import gzip
import http.server
import json
import select
import socket
import socketserver
import sys
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from codex_orch.testing.model_script import SILENT_DEFAULT_SECONDS, new_id, patch_of, step_kind, usage_body

if TYPE_CHECKING:
    from codex_orch.testing.scripted_model import ScriptedModelServer


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Do not let a slow/stuck client keep the listening socket's backlog short.
    request_queue_size = 64

    owner: ScriptedModelServer


class ResponsesHandler(http.server.BaseHTTPRequestHandler):
    server: ThreadingServer
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

    def _take_step(
        self, protocol: str, thread: str, prompt: str, headers: dict, body: Any, error: Callable[[int, str], Any]
    ) -> tuple[str, dict] | None:
        """The next step of a thread for the other protocols (anthropic, gemini), recorded; what every
        protocol answers the same way (no step, HTTP errors, codex's own patch) is answered here, in the
        protocol's `error(status, message)` shape, and None returned."""
        owner = self.server.owner
        thread_id, index, step = owner._step_for(thread, prompt)
        owner._record(
            "POST", self.path, headers, body, thread_id=thread_id, step_index=index, step=step, protocol=protocol
        )
        if step is None:
            self._send_json(500, error(500, "scripted_model: no rule matches this prompt and there is no default"))
            return None
        if step.get("delay"):
            self._wait(float(step["delay"]))
        kind = step_kind(step)
        if kind == "http":
            status = int(step["http"])
            message = step.get("message", f"scripted_model: HTTP {status}")
            self._send_json(status, step["body"] if "body" in step else error(status, message), step.get("headers"))
            return None
        if kind == "patch" or (kind == "call" and protocol != "anthropic"):
            self._send_json(500, error(500, f"scripted_model: a {kind} step is codex's own tool; use write/edit"))
            return None
        return kind, step

    def _hold(self, step: dict) -> None:
        """A silent step: nothing more until the client goes, the server closes, or the time is up."""
        self._wait(SILENT_DEFAULT_SECONDS if step["silent"] is True else float(step["silent"]), watch_client=True)
        self.close_connection = True

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
            elif method == "POST" and path.endswith("/messages"):
                from codex_orch.testing import anthropic_http

                anthropic_http.serve(self, headers, body)
            elif method == "POST" and path.endswith("/messages/count_tokens"):
                owner._record(method, self.path, headers, body)
                self._send_json(200, {"input_tokens": 100})
            elif method == "POST" and ":" in path.rsplit("/", 1)[-1]:  # Gemini: models/NAME:ACTION
                from codex_orch.testing import gemini_http

                gemini_http.serve(self, path, headers, body)
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
        owner._record(
            "POST",
            self.path,
            headers,
            body,
            thread_id=thread_id,
            step_index=step_index,
            step=step,
            protocol="responses",
        )
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
        kind = step_kind(step)
        if kind == "http":
            self._http_error(step)
            return

        resp_id = new_id("resp")
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
            self._hold(step)
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
            {
                "type": "response.completed",
                "response": response("completed", [item], usage=usage_body(step.get("usage"))),
            }
        )

    def _item(self, kind: str, step: dict) -> dict:
        if kind == "shell":
            args = {"cmd": step["shell"]}
            args.update(step.get("args") or {})
            return {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": new_id("call"),
                "name": "exec_command",
                "arguments": json.dumps(args),
                "status": "completed",
            }
        if kind == "call":
            return {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": new_id("call"),
                "namespace": step["namespace"],
                "name": step["call"],
                "arguments": json.dumps(step["arguments"]),
                "status": "completed",
            }
        if kind in ("patch", "write", "edit"):
            return {
                "type": "custom_tool_call",
                "id": new_id("ctc"),
                "call_id": new_id("call"),
                "name": "apply_patch",
                "input": step["patch"] if kind == "patch" else patch_of(step),
                "status": "completed",
            }
        value = step["answer"]
        text = value if isinstance(value, str) else json.dumps(value)
        return {
            "type": "message",
            "role": "assistant",
            "id": new_id("msg"),
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
