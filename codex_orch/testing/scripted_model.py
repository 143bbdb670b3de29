"""A scripted stand-in for a model server, for tests and offline demos.

THIS IS NOT A MODEL. It does not read, understand or generate anything: it
replays a fixed script of canned answers. It speaks just enough of the OpenAI
Responses API (``POST /v1/responses`` with ``stream: true``, answered with
Server-Sent Events) for the real Codex CLI to run against it on 127.0.0.1 with
no API key and no internet; and, from the same scripts, of the Anthropic
Messages API for Claude Code (anthropic_http.py) and of the Gemini API for
Gemini CLI (gemini_http.py), all on one port. Python standard library only.
testing/agent_settings.py points those two CLIs at it.

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

The script format is described in model_script.py.

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
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from codex_orch.testing.model_script import DEFAULT_USAGE, ScriptError, prompt_of, user_texts, validate_script
from codex_orch.testing.responses_http import ResponsesHandler, ThreadingServer

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


# --------------------------------------------------------------------------
# Script handling


# --------------------------------------------------------------------------
# HTTP server


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
        self._httpd = ThreadingServer((host, port), ResponsesHandler)
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
        """For codex (its provider's base_url ends in /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """For Claude Code (ANTHROPIC_BASE_URL) and Gemini CLI (GOOGLE_GEMINI_BASE_URL): they add the path."""
        return f"http://{self.host}:{self.port}"

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

    def model_requests(self, protocol: str | None = None, thread_id: str | None = None) -> list[dict]:
        """Recorded requests that took a step of the script (any protocol, or the one named)."""
        return [
            r
            for r in self.requests
            if r.get("protocol")
            and (protocol is None or r["protocol"] == protocol)
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
        """The step for a Responses API request (codex names its thread in a header)."""
        thread_id = headers.get("thread-id") or headers.get("session-id") or headers.get("x-client-request-id") or ""
        return self._step_for(thread_id, prompt_of(body) or "")

    def _step_for(self, thread_id: str, prompt: str) -> tuple[str, int | None, dict | None]:
        """The next step of a thread, whatever the wire protocol: on its first request the rule is
        chosen by the prompt, then the thread walks its steps (the last one repeating)."""
        with self._lock:
            state = self._threads.get(thread_id)
            if state is None:
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
        protocol: str | None = None,
    ) -> None:
        rec = {
            "method": method,
            "path": path,
            "headers": headers,
            "body": body,
            "thread_id": thread_id,
            "step_index": step_index,
            "step": step,
            "protocol": protocol,  # responses, anthropic, gemini: a request that took a step; None: any other
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
