"""codex-orch driving the REAL codex CLI (tools/codex, pinned) against the loopback scripted model.

This is how we know we speak the real protocol: events, -o, --output-schema, exec resume, exit codes,
thread ids and usage all come from codex itself. Without the binary these tests FAIL, never skip.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import Repo, answer, codex_bin, read_state, run_cli, start_cli, wait_for, wait_recorded, write_plan

from codex_orch.failures import FailureKind, info
from codex_orch.testing.scripted_model import ScriptedModelServer, codex_config, prompt_of

pytestmark = pytest.mark.realcodex


def use_real_codex(repo: Repo, server: ScriptedModelServer, idle_ms: int = 30000, **limits: Any) -> None:
    repo.configure(
        codex={"command": str(codex_bin()), "home": "isolated", "config": codex_config(server.base_url, idle_ms)},
        limits={"timeout": 120, "idle_timeout": 60, "stop_grace": 2, **limits},
    )


def thread_of(events: Path) -> str:
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "thread.started":
            return str(event["thread_id"])
    raise AssertionError(f"no thread.started in {events}")


def attempt_dir(repo: Repo, run_id: str, task: str, n: int) -> Path:
    return repo.path / ".orchestrator" / "runs" / run_id / "tasks" / task / f"attempt-{n}"


TASK_A = {"role": "implementer", "prompt": "Create alpha.txt", "acceptance": "alpha.txt exists", "blocked_by": []}
TASK_B = {"role": "implementer", "prompt": "Create beta.txt", "acceptance": "beta.txt exists", "blocked_by": ["T0001"]}


def test_two_task_plan_with_the_real_codex(repo: Repo, tmp_path: Path) -> None:
    script = {
        "rules": [
            {
                "match": "Create alpha.txt",
                "steps": [{"shell": "echo alpha > alpha.txt"}, {"answer": answer("alpha", ["alpha.txt"])}],
            },
            {
                "match": "Create beta.txt",
                "steps": [
                    {"patch": "*** Begin Patch\n*** Add File: beta.txt\n+beta\n*** End Patch\n"},
                    {"answer": answer("beta", ["beta.txt"], [{"decision": "beta by patch", "rationale": "test"}])},
                ],
            },
        ]
    }
    with ScriptedModelServer(script) as server:
        use_real_codex(repo, server)
        plan = write_plan(tmp_path / "plan.json", [TASK_A, TASK_B])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "real2")
        requests = server.responses_requests()
    assert result.code == 0, result.err + result.out
    state = read_state(repo, "real2")
    branch = state["branch"]
    assert repo.git("show", f"{branch}:alpha.txt") == "alpha"
    assert repo.git("show", f"{branch}:beta.txt") == "beta"
    commits = repo.git("rev-list", "--reverse", f"main..{branch}").split()
    assert len(commits) == 2
    for task_id, sha in zip(["T0001", "T0002"], commits, strict=True):
        thread = thread_of(attempt_dir(repo, "real2", task_id, 1) / "events.jsonl")
        trailer = repo.git("log", "-1", "--format=%(trailers:key=Codex-Thread,valueonly)", sha)
        assert trailer == thread == state["tasks"][task_id]["thread_id"]
        usage = state["tasks"][task_id]["attempts"][0]["usage"]
        # two requests per task, 100 input / 10 cached / 20 output tokens each (the server's defaults)
        assert usage["input_tokens"] == 200 and usage["cached_input_tokens"] == 20 and usage["output_tokens"] == 40
    # what reached the model: the rendered prompt, and the role's schema as a strict text.format
    first = requests[0]["body"]
    assert prompt_of(first) == (attempt_dir(repo, "real2", "T0001", 1) / "prompt.md").read_text()
    fmt = first["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["strict"] is True
    assert fmt["schema"]["title"] == "codex-orch task result"
    assert "beta by patch" in repo.git("show", f"{branch}:docs/ai/decisions.md")


def test_schema_invalid_answer_is_retried_through_real_resume(repo: Repo, tmp_path: Path) -> None:
    script = {
        "rules": [
            {
                "match": "Create alpha.txt",
                "steps": [
                    {"shell": "echo alpha > alpha.txt"},
                    {"answer": {"status": "done", "summary": ["not", "a", "string"]}},
                    {"answer": answer("alpha, fixed", ["alpha.txt"])},
                ],
            }
        ]
    }
    with ScriptedModelServer(script) as server:
        use_real_codex(repo, server)
        plan = write_plan(tmp_path / "plan.json", [TASK_A])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "retry")
        requests = server.responses_requests()
    assert result.code == 0, result.err
    assert len(requests) == 3
    threads = {r["thread_id"] for r in requests}
    assert len(threads) == 1
    state = read_state(repo, "retry")
    task = state["tasks"]["T0001"]
    assert [a["failure"] for a in task["attempts"]] == ["schema_invalid", None]
    assert task["thread_id"] == threads.pop()
    last_input = json.dumps(requests[2]["body"]["input"])
    assert "Create alpha.txt" in last_input  # the earlier history came along
    assert "summary: ['not', 'a', 'string'] is not of type 'string'" in last_input  # the quoted errors
    assert requests[2]["body"]["text"]["format"]["strict"] is True  # the schema is sent again on resume
    trailer = repo.git("log", "-1", "--format=%(trailers:key=Orch-Attempt,valueonly)", state["branch"])
    assert trailer == "2"


def test_http_500_fails_the_task_without_a_retry_storm(repo: Repo, tmp_path: Path) -> None:
    with ScriptedModelServer({"default": [{"http": 500}]}) as server:
        use_real_codex(repo, server)
        plan = write_plan(tmp_path / "plan.json", [TASK_A, TASK_B])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "h500")
        requests = server.responses_requests()
    assert result.code == 1
    assert len(requests) == 1
    state = read_state(repo, "h500")
    assert state["status"] == "failed"
    assert state["tasks"]["T0001"]["error"]["kind"] == "transport"
    assert state["tasks"]["T0002"]["status"] == "blocked"


def test_http_429_is_rate_limited(repo: Repo, tmp_path: Path) -> None:
    with ScriptedModelServer({"default": [{"http": 429}]}) as server:
        use_real_codex(repo, server, max_quota_wait=0)  # no quota pauses (tests/test_real_quota.py has them)
        plan = write_plan(tmp_path / "plan.json", [TASK_A])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "h429")
    assert result.code == 1
    assert read_state(repo, "h429")["tasks"]["T0001"]["error"]["kind"] == "rate_limited"


def test_a_silent_stream_ends_at_codex_own_idle_limit_classified_idle(repo: Repo, tmp_path: Path) -> None:
    with ScriptedModelServer({"default": [{"silent": 60}]}) as server:
        use_real_codex(repo, server, idle_ms=2000)
        plan = write_plan(tmp_path / "plan.json", [TASK_A])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "silent")
    assert result.code == 1
    task = read_state(repo, "silent")["tasks"]["T0001"]
    assert task["error"] == {
        "kind": "idle",
        "message": "stream disconnected before completion: idle timeout waiting for SSE",  # codex's 2 s limit
        "hint": info(FailureKind.IDLE).hint,
    }
    assert task["attempts"][0]["stop_steps"] == []  # codex ended by itself, far inside the 60 s silence


def test_an_offline_codex_fails_as_transport_with_its_own_message(repo: Repo, tmp_path: Path) -> None:
    """A model server nobody listens on, with codex's unbounded connection retries on: codex says
    "Reconnecting... waiting for network" every few seconds, for ever. Those notices are not progress:
    at the idle limit the attempt fails as transport with codex's message (before: every notice reset
    the idle clock and the task said only "idle", or hung for the full timeout)."""
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = codex_config(f"http://127.0.0.1:{port}/v1")
    config["features"]["unbounded_connection_retries"] = True
    repo.configure(
        codex={"command": str(codex_bin()), "home": "isolated", "config": config},
        limits={"timeout": 120, "idle_timeout": 3, "stop_grace": 2},
    )
    plan = write_plan(tmp_path / "plan.json", [TASK_A])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "offline")
    assert result.code == 1, result.err + result.out
    error = read_state(repo, "offline")["tasks"]["T0001"]["error"]
    assert error["kind"] == "transport"
    assert error["message"].startswith("no progress for 3 s, only notices: Reconnecting... waiting for network")


def test_killed_codex_orch_is_resumed_on_the_recorded_thread(repo: Repo, tmp_path: Path) -> None:
    script = {
        "rules": [
            {
                "match": "Create alpha.txt",
                "steps": [
                    {"shell": "echo partial > alpha.txt"},
                    {"answer": answer("never delivered"), "delay": 60},
                    {"answer": answer("alpha, after resume", ["alpha.txt"])},
                ],
            }
        ]
    }
    with ScriptedModelServer(script) as server:
        use_real_codex(repo, server)
        plan = write_plan(tmp_path / "plan.json", [TASK_A])
        with open(tmp_path / "run.err", "w") as err_file:
            proc = start_cli(
                repo.path, "run", "--plan-file", str(plan), "--run-id", "kill9", "--no-progress", stderr=err_file
            )
            # codex ran the shell step and now waits for the model
            wait_for(lambda: len(server.responses_requests()) >= 2 or proc.poll() is not None, "the second request")
            assert proc.poll() is None, (tmp_path / "run.err").read_text()
            wait_recorded(repo, "kill9", "attempt.thread", proc=proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        before = read_state(repo, "kill9")
        assert before["tasks"]["T0001"]["status"] == "running"
        thread = before["tasks"]["T0001"]["thread_id"]
        assert thread

        result = run_cli(repo.path, "resume", "--run-id", "kill9")
        requests = server.responses_requests()
    assert result.code == 0, result.err
    assert requests[-1]["thread_id"] == thread
    assert "You were interrupted" in json.dumps(requests[-1]["body"]["input"])
    state = read_state(repo, "kill9")
    task = state["tasks"]["T0001"]
    assert task["status"] == "succeeded"
    assert task["attempts"][1]["resumed_thread"] == thread
    commits = repo.git("rev-list", f"main..{state['branch']}").split()
    assert len(commits) == 1
    assert repo.git("show", f"{state['branch']}:alpha.txt") == "partial"
