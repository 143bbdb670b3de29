"""Tests of codex_orch.testing.scripted_model, mostly by driving the REAL Codex CLI against it.

The codex binary must have been installed with ``scripts/install-codex.sh``
(into tools/codex/node_modules); without it these tests fail rather than skip.
No API key and no network are used: codex talks only to the scripted server
on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, codex_bin, init_repo, wait_for

from codex_orch.engine.agent_env import temp_dir_apart
from codex_orch.testing.scripted_model import (
    ScriptedModelServer,
    ScriptError,
    prompt_of,
    user_texts,
    validate_script,
)

CODEX_TIMEOUT = 60
# A model slug codex knows: with an unknown name (e.g. "mock-model") codex 0.169.0 falls back to
# generic metadata, does NOT offer the apply_patch tool, and answers a scripted apply_patch call with
# "unsupported custom tool call: apply_patch" (the turn still exits 0, the file is not created).
MODEL = "gpt-5.5"

SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["done", "failed"]},
        "files_changed": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string"},
    },
    "required": ["status", "files_changed", "summary"],
    "additionalProperties": False,
}


# --------------------------------------------------------------------------
# helpers


class Env:
    """A temp git repo, a temp CODEX_HOME pointing at a scripted server, and a schema file."""

    def __init__(self, tmp_path: Path, server: ScriptedModelServer, codex: Path, provider_extra: str = "") -> None:
        self.tmp = tmp_path
        self.server = server
        self.codex = codex
        self.repo = init_repo(tmp_path / "repo")
        self.home = tmp_path / "codex-home"
        self.home.mkdir()
        (self.home / "config.toml").write_text(
            f"""model = "{MODEL}"
model_provider = "mock"
check_for_update_on_startup = false

[model_providers.mock]
name = "Mock"
base_url = "{server.base_url}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
{provider_extra}

[analytics]
enabled = false

[features]
plugins = false
unbounded_connection_retries = false
"""
        )
        self.schema = tmp_path / "schema.json"
        self.schema.write_text(json.dumps(SCHEMA))
        self.last = tmp_path / "last.txt"

    def exec_args(self, *extra: str) -> list[str]:
        # Options before `resume`: -C and -s are only accepted there.
        return [
            str(self.codex),
            "exec",
            "--json",
            "-C",
            str(self.repo),
            "-s",
            "workspace-write",
            "--output-schema",
            str(self.schema),
            "-o",
            str(self.last),
            *extra,
        ]

    def run(self, args: list[str], prompt: str, timeout: float = CODEX_TIMEOUT) -> Result:
        env = dict(os.environ)
        env["CODEX_HOME"] = str(self.home)
        temp_dir_apart(env, self.home)  # as codex-orch does: codex with the system's bwrap needs it
        for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_API_KEY"):
            env.pop(var, None)
        # Own process group, so a timeout can kill the node launcher AND the native codex it spawns.
        with subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=self.tmp,
            start_new_session=True,
        ) as proc:
            try:
                out, err = proc.communicate(prompt, timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                pytest.fail(f"codex did not finish within {timeout}s\nstdout:\n{out}\nstderr:\n{err}")
        return Result(proc.returncode, out, err)


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.events = [json.loads(line) for line in stdout.splitlines() if line.strip()]

    def of_type(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("type") == kind]

    @property
    def thread_id(self) -> str:
        started = self.of_type("thread.started")
        assert len(started) == 1, self.describe()
        return started[0]["thread_id"]

    def describe(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


MakeEnv = Callable[..., "Env"]


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[MakeEnv]:
    servers: list[ScriptedModelServer] = []

    def factory(script: dict[str, Any], provider_extra: str = "") -> Env:
        codex = codex_bin()  # called from the test body, so a missing binary is a test FAILURE
        server = ScriptedModelServer(script).start()
        servers.append(server)
        return Env(tmp_path, server, codex, provider_extra)

    yield factory
    for server in servers:
        server.close()


ANSWER = {"status": "done", "files_changed": ["hello.txt"], "summary": "created hello.txt"}


# --------------------------------------------------------------------------
# real codex against the server


@pytest.mark.realcodex
def test_shell_step_then_answer(make_env: MakeEnv) -> None:
    prompt = "Create the file hello.txt, then report as JSON."
    env = make_env(
        {
            "rules": [
                {"match": "something else", "steps": [{"answer": "wrong rule"}]},
                {
                    "match": "hello.txt",
                    "steps": [{"shell": "printf 'hello from codex\\n' > hello.txt"}, {"answer": ANSWER}],
                },
            ]
        }
    )
    res = env.run(env.exec_args("-"), prompt)

    assert res.returncode == 0, res.describe()
    assert (env.repo / "hello.txt").read_text() == "hello from codex\n"
    assert env.last.read_text() == json.dumps(ANSWER)
    thread_id = res.thread_id
    assert res.of_type("turn.completed"), res.describe()
    commands = [e["item"] for e in res.of_type("item.completed") if e["item"]["type"] == "command_execution"]
    assert len(commands) == 1 and commands[0]["exit_code"] == 0
    messages = [e["item"]["text"] for e in res.of_type("item.completed") if e["item"]["type"] == "agent_message"]
    assert messages == [json.dumps(ANSWER)]
    # two model calls, each with default usage (100 in / 10 cached / 20 out)
    usage = res.of_type("turn.completed")[-1]["usage"]
    assert (usage["input_tokens"], usage["cached_input_tokens"], usage["output_tokens"]) == (200, 20, 40)

    reqs = env.server.responses_requests()
    assert len(reqs) == 2
    assert [r["step_index"] for r in reqs] == [0, 1]
    for r in reqs:
        assert r["path"] == "/v1/responses"
        assert r["headers"]["thread-id"] == thread_id == r["thread_id"]
        fmt = r["body"]["text"]["format"]
        assert fmt["type"] == "json_schema" and fmt["strict"] is True and fmt["schema"] == SCHEMA
        assert r["body"]["stream"] is True
    first = reqs[0]["body"]
    assert prompt in user_texts(first)
    assert prompt_of(first) == prompt
    outputs = [i for i in reqs[1]["body"]["input"] if i.get("type") == "function_call_output"]
    assert len(outputs) == 1
    # codex asked nothing but /responses
    assert all(r["path"] == "/v1/responses" for r in env.server.requests)


@pytest.mark.realcodex
def test_patch_step_creates_file(make_env: MakeEnv) -> None:
    patch = "*** Begin Patch\n*** Add File: src/patched.py\n+print('created by apply_patch')\n*** End Patch\n"
    env = make_env(
        {
            "default": [
                {"patch": patch},
                {
                    "answer": {"status": "done", "files_changed": ["src/patched.py"], "summary": "patched"},
                    "usage": {"input_tokens": 1000, "cached_tokens": 900, "output_tokens": 7, "reasoning_tokens": 3},
                },
            ]
        }
    )
    res = env.run(env.exec_args("-"), "Add src/patched.py")

    assert res.returncode == 0, res.describe()
    assert (env.repo / "src" / "patched.py").read_text() == "print('created by apply_patch')\n"
    changes = [e["item"] for e in res.of_type("item.completed") if e["item"]["type"] == "file_change"]
    assert changes and changes[0]["changes"][0]["kind"] == "add"
    assert json.loads(env.last.read_text())["files_changed"] == ["src/patched.py"]
    usage = res.of_type("turn.completed")[-1]["usage"]
    assert usage["input_tokens"] == 100 + 1000
    assert usage["cached_input_tokens"] == 10 + 900
    assert usage["output_tokens"] == 20 + 7
    assert usage["reasoning_output_tokens"] == 3
    reqs = env.server.responses_requests()
    assert [i["type"] for i in reqs[1]["body"]["input"] if i.get("type", "").startswith("custom_tool_call")] == [
        "custom_tool_call",
        "custom_tool_call_output",
    ]


def _assert_failed(res: Result, env: Env, fragment: str) -> str:
    assert res.returncode == 1, res.describe()
    failed = res.of_type("turn.failed")
    assert len(failed) == 1, res.describe()
    assert not res.of_type("turn.completed")
    message = failed[0]["error"]["message"]
    assert fragment in message, message
    assert env.last.exists() and env.last.read_text() == ""
    return message


@pytest.mark.realcodex
def test_http_500_fails_turn_after_one_request(make_env: MakeEnv) -> None:
    env = make_env({"default": [{"http": 500}]})
    res = env.run(env.exec_args("-"), "anything")
    # codex 0.169.0 says this for any 5xx, without the status
    message = _assert_failed(res, env, "high demand")
    assert message == "We\u2019re currently experiencing high demand, which may cause temporary errors."
    assert len(env.server.requests) == 1


@pytest.mark.realcodex
def test_http_429_mentions_status(make_env: MakeEnv) -> None:
    env = make_env({"default": [{"http": 429}]})
    res = env.run(env.exec_args("-"), "anything")
    _assert_failed(res, env, "429")
    assert len(env.server.requests) == 1


@pytest.mark.realcodex
def test_cut_stream_fails_turn(make_env: MakeEnv) -> None:
    env = make_env({"default": [{"cut": True}]})
    res = env.run(env.exec_args("-"), "anything")
    _assert_failed(res, env, "stream closed before response.completed")


@pytest.mark.realcodex
def test_response_failed_event_fails_turn(make_env: MakeEnv) -> None:
    env = make_env({"default": [{"failed": "scripted failure xyz"}]})
    res = env.run(env.exec_args("-"), "anything")
    _assert_failed(res, env, "scripted failure xyz")


@pytest.mark.realcodex
def test_silent_stream_hits_idle_timeout(make_env: MakeEnv) -> None:
    env = make_env({"default": [{"silent": True}]}, provider_extra="stream_idle_timeout_ms = 2000")
    res = env.run(env.exec_args("-"), "anything")
    _assert_failed(res, env, "idle timeout")  # codex's own 2 s limit, long before the 600 s of silence


@pytest.mark.realcodex
def test_resume_continues_same_thread(make_env: MakeEnv) -> None:
    first_prompt = "TASK-A: create hello.txt"
    second_prompt = "Follow-up: fix the summary"
    answer2 = {"status": "done", "files_changed": [], "summary": "second turn"}
    env = make_env(
        {
            "rules": [
                {
                    "match": "TASK-A",
                    "turns": [
                        [{"shell": "echo hi > hello.txt"}, {"answer": ANSWER}],
                        [{"answer": answer2}],
                    ],
                }
            ]
        }
    )
    res1 = env.run(env.exec_args("-"), first_prompt)
    assert res1.returncode == 0, res1.describe()
    thread_id = res1.thread_id
    n_before = len(env.server.requests)

    res2 = env.run(env.exec_args("resume", thread_id, "-"), second_prompt)
    assert res2.returncode == 0, res2.describe()
    assert res2.thread_id == thread_id
    assert env.last.read_text() == json.dumps(answer2)
    # usage after resume is cumulative over the thread: 3 model calls in all
    assert res2.of_type("turn.completed")[-1]["usage"]["input_tokens"] == 300

    new = env.server.responses_requests()[n_before:]
    assert len(new) == 1
    req = new[0]
    assert req["headers"]["thread-id"] == thread_id
    assert req["step_index"] == 2  # continued the thread's flat step sequence
    assert req["body"]["text"]["format"]["schema"] == SCHEMA
    texts = user_texts(req["body"])
    assert first_prompt in texts and second_prompt in texts
    assert texts.index(first_prompt) < texts.index(second_prompt)
    kinds = [i.get("type") for i in req["body"]["input"]]
    assert "function_call" in kinds and "function_call_output" in kinds
    assistant_texts = [
        c.get("text") for i in req["body"]["input"] if i.get("role") == "assistant" for c in i.get("content", [])
    ]
    assert json.dumps(ANSWER) in assistant_texts


# --------------------------------------------------------------------------
# the server on its own (no codex)


def _post(server: ScriptedModelServer, body: dict, thread: str | None = "t1") -> tuple[int, str]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if thread:
            headers["thread-id"] = thread
        conn.request("POST", "/v1/responses", body=json.dumps(body), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _events(sse: str) -> list[dict]:
    return [json.loads(line[len("data: ") :]) for line in sse.splitlines() if line.startswith("data: ")]


def _body(prompt: str) -> dict:
    return {
        "model": "m",
        "stream": True,
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>x"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]},
        ],
    }


def test_server_rules_threads_and_repeat_last_step() -> None:
    script = {
        "rules": [
            {"match": "alpha", "steps": [{"shell": "ls"}, {"answer": {"a": 1}}]},
            {"match": "", "steps": [{"answer": "catch-all"}]},
        ]
    }
    with ScriptedModelServer(script) as srv:
        status, sse = _post(srv, _body("do alpha"), "t1")
        assert status == 200
        ev = _events(sse)
        assert [e["type"] for e in ev] == [
            "response.created",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed",
        ]
        item = ev[-2]["item"]
        assert item["type"] == "function_call" and item["name"] == "exec_command"
        assert json.loads(item["arguments"]) == {"cmd": "ls"}
        usage = ev[-1]["response"]["usage"]
        assert usage == {
            "input_tokens": 100,
            "input_tokens_details": {"cached_tokens": 10},
            "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 120,
        }
        # another thread with another prompt gets the catch-all rule
        assert _events(_post(srv, _body("beta"), "t2")[1])[-2]["item"]["content"][0]["text"] == "catch-all"
        # the rule is remembered for t1, whatever later prompts say; steps go on, then the last repeats
        for _ in range(2):
            ev = _events(_post(srv, _body("beta"), "t1")[1])
            assert ev[-2]["item"]["content"][0]["text"] == '{"a": 1}'
        assert [r["step_index"] for r in srv.requests] == [0, 0, 1, 1]
        assert [r["thread_id"] for r in srv.requests] == ["t1", "t2", "t1", "t1"]


def test_server_http_error_no_match_and_models() -> None:
    with ScriptedModelServer({"rules": [{"match": "x", "steps": [{"http": 429}]}]}) as srv:
        status, text = _post(srv, _body("x"))
        assert status == 429
        assert json.loads(text)["error"]["type"] == "rate_limit_exceeded"
        status, text = _post(srv, _body("no match"), "other")
        assert status == 500 and "no rule matches" in text
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        try:
            conn.request("GET", "/v1/models?client_version=1")
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["data"] == []
        finally:
            conn.close()
        assert [r["method"] for r in srv.requests] == ["POST", "POST", "GET"]


def test_server_close_does_not_wait_for_silent_stream() -> None:
    srv = ScriptedModelServer(
        {"rules": [{"match": "quiet", "steps": [{"silent": True}]}], "default": [{"answer": "ok"}]}
    ).start()
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.request("POST", "/v1/responses", body=json.dumps(_body("quiet")), headers={"thread-id": "s"})
        resp = conn.getresponse()
        assert resp.status == 200
        # other requests are still served while the silent one hangs
        assert _post(srv, _body("y"), "s2")[0] == 200
        srv.close()  # the silent step would hold it 600 s (the test's timeout would fail it first)
        assert resp.read() == b""
    finally:
        conn.close()


def test_validate_script_rejects_bad_steps() -> None:
    with pytest.raises(ScriptError):
        validate_script({"default": [{"shell": "a", "answer": "b"}]})
    with pytest.raises(ScriptError):
        validate_script({"rules": [{"match": "x", "steps": []}]})
    with pytest.raises(ScriptError):
        validate_script({"rulez": []})
    rules, default = validate_script({"rules": [{"match": "m", "turns": [[{"shell": "a"}], [{"answer": 1}]]}]})
    assert rules == [("m", [{"shell": "a"}, {"answer": 1}])] and default is None


def test_cli_port_file_requests_log_and_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": [{"answer": "hi"}]}))
    port_file = tmp_path / "port"
    log = tmp_path / "requests.jsonl"
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codex_orch.testing.scripted_model",
            "--script",
            str(script),
            "--port-file",
            str(port_file),
            "--requests-log",
            str(log),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            wait_for(lambda: port_file.exists() or proc.poll() is not None, "the port file")
            assert proc.poll() is None, proc.communicate()[1]
            port = int(port_file.read_text())
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("POST", "/v1/responses", body=json.dumps(_body("x")), headers={"thread-id": "c"})
                resp = conn.getresponse()
                assert resp.status == 200
                assert _events(resp.read().decode())[-1]["type"] == "response.completed"
            finally:
                conn.close()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert out.strip() == str(port)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 1 and records[0]["headers"]["thread-id"] == "c" and records[0]["step_index"] == 0


def test_a_codex_home_inside_the_temp_dir_gets_a_temp_dir_of_its_own(tmp_path: Path) -> None:
    """codex with the system's bubblewrap runs no command when its CODEX_HOME is inside its TMPDIR
    (seen with codex 0.169.0: "bwrap: execvp codex-linux-sandbox"); one outside is left alone."""
    inside = {"TMPDIR": str(tmp_path)}
    temp_dir_apart(inside, tmp_path / "run" / "codex-home")
    assert inside["TMPDIR"] == str(tmp_path / "run" / "codex-home-tmp")
    assert (tmp_path / "run" / "codex-home-tmp").is_dir()
    assert not (tmp_path / "run" / "codex-home").resolve().is_relative_to(Path(inside["TMPDIR"]))
    outside = {"TMPDIR": str(tmp_path / "elsewhere")}
    temp_dir_apart(outside, tmp_path / "home")
    assert outside == {"TMPDIR": str(tmp_path / "elsewhere")}
