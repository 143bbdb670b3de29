"""codex-orch driving the REAL Claude Code CLI (tools/claude, pinned) against the loopback scripted model.

What we know of claude's protocol (stream-json events, --json-schema and its StructuredOutput tool,
--resume, the result event's usage, cost and errors) comes from these runs of the binary itself.
Without the binary these tests FAIL, never skip.
"""

from __future__ import annotations

import json
import os
import signal
import tarfile
from pathlib import Path

import pytest
from conftest import Repo, answer, read_state, run_cli, start_cli, wait_for, write_plan
from real_agents import attempt_dir, events, review, trailer, use_real_agents

from codex_orch.testing.scripted_model import ScriptedModelServer

pytestmark = pytest.mark.realagents

WRITE = {"role": "implementer", "prompt": "Create notes.txt", "acceptance": "notes.txt", "agent": "claude"}
EDIT = {
    "role": "implementer",
    "prompt": "Edit notes.txt",
    "acceptance": "notes.txt says two",
    "blocked_by": ["T0001"],
    "agent": "claude",
}


def test_two_task_plan_made_by_claudes_own_tools(repo: Repo, tmp_path: Path) -> None:
    script = {
        "rules": [
            {
                "match": "Create notes.txt",
                "steps": [
                    {"write": "notes.txt", "content": "one\n"},
                    {"shell": "mkdir -p logs && echo made by bash > logs/bash.txt"},
                    {"answer": answer("wrote notes", ["notes.txt", "logs/bash.txt"]), "usage": {"cached_tokens": 30}},
                ],
            },
            {
                "match": "Edit notes.txt",
                "steps": [
                    {"edit": "notes.txt", "old": "one", "new": "two"},
                    {"answer": answer("edited", ["notes.txt"])},
                ],
            },
        ]
    }
    with ScriptedModelServer(script) as server:
        use_real_agents(repo, server, tmp_path)
        plan = write_plan(tmp_path / "plan.json", [WRITE, EDIT])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "cl2", "--no-progress")
        requests = server.model_requests("anthropic")
    assert result.code == 0, result.err + result.out
    state = read_state(repo, "cl2")
    branch = state["branch"]
    assert repo.git("show", f"{branch}:notes.txt") == "two"
    assert repo.git("show", f"{branch}:logs/bash.txt") == "made by bash"
    commits = repo.git("rev-list", "--reverse", f"main..{branch}").split()
    assert len(commits) == 2
    tools = [
        block["name"]
        for task in ("T0001", "T0002")
        for event in events(repo, "cl2", task, 1)
        if event["type"] == "assistant"
        for block in event["message"]["content"]
        if block["type"] == "tool_use"
    ]
    assert tools == ["Write", "Bash", "StructuredOutput", "Read", "Edit", "StructuredOutput"]  # claude's own tools
    for task_id, sha in zip(["T0001", "T0002"], commits, strict=True):
        task = state["tasks"][task_id]
        session = task["thread_id"]
        assert trailer(repo, "Agent-Thread", sha) == f"claude:{session}"
        assert trailer(repo, "Codex-Thread", sha) == ""
        assert {r["headers"]["x-claude-code-session-id"] for r in requests if r["thread_id"] == session} == {session}
        attempt = task["attempts"][0]
        assert (attempt["agent"], attempt["agent_source"], attempt["model"]) == ("claude", "task", None)
        assert attempt["cost_usd"] > 0  # claude's own total_cost_usd
    usage = state["tasks"]["T0001"]["attempts"][0]["usage"]
    # three requests: 100 input each (10, 10, then 30 of them cached), 20 output each
    assert (usage["input_tokens"], usage["cached_input_tokens"], usage["output_tokens"]) == (300, 50, 60)
    first = requests[0]["body"]
    assert "Create notes.txt" in json.dumps(first["messages"])  # the prompt went in on stdin
    assert "StructuredOutput" in {tool["name"] for tool in first["tools"]}  # the role's schema, --json-schema
    status = run_cli(repo.path, "status", "--run-id", "cl2")
    assert "claude" in status.out
    report = json.loads(run_cli(repo.path, "report", "--run-id", "cl2", "--json").out)
    assert [t["attempts"][0]["agent"] for t in report["tasks"]] == ["claude", "claude"]
    # claude's own home (its sessions, its settings) stays out of a bundle of the run, like codex's
    bundle = tmp_path / "cl2.tar.gz"
    assert run_cli(repo.path, "report", "--run-id", "cl2", "--bundle", str(bundle)).code == 0
    with tarfile.open(bundle) as tar:
        index = json.load(tar.extractfile("codex-orch-run-cl2/index.json"))  # type: ignore[arg-type]
        assert not any(name.startswith("codex-orch-run-cl2/run/claude-home") for name in tar.getnames())
    assert {f["path"] for f in index["left_out"]} == {"codex-home", "claude-home", "gemini-home"}


def test_an_answer_claude_gave_up_on_is_continued_on_the_same_session(repo: Repo, tmp_path: Path) -> None:
    bad = {"answer": {"status": "done", "summary": ["not", "a", "string"]}}
    script = {
        "rules": [
            {
                "match": "Create notes.txt",
                "steps": [
                    {"write": "notes.txt", "content": "one\n"},
                    *[bad] * 5,
                    {"answer": answer("fixed", ["notes.txt"])},
                ],
            }
        ]
    }
    with ScriptedModelServer(script) as server:
        use_real_agents(repo, server, tmp_path)
        plan = write_plan(tmp_path / "plan.json", [WRITE])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "clretry", "--no-progress")
        requests = server.model_requests("anthropic")
    assert result.code == 0, result.err + result.out
    task = read_state(repo, "clretry")["tasks"]["T0001"]
    assert [a["failure"] for a in task["attempts"]] == ["schema_invalid", None]
    session = task["thread_id"]
    assert [a["thread_id"] for a in task["attempts"]] == [session, session]
    assert task["attempts"][1]["resumed_thread"] == session
    # the usage of each attempt is its own (claude leaves the request it gave up on out of its result's
    # usage, not out of its cost); claude's cost is over the session: each attempt gets its share
    assert [a["usage"]["input_tokens"] for a in task["attempts"]] == [500, 100]
    assert [a["thread_usage"]["input_tokens"] for a in task["attempts"]] == [500, 600]
    first, second = (a["cost_usd"] for a in task["attempts"])
    assert second == pytest.approx(first / 6) and task["attempts"][1]["thread_cost_usd"] == pytest.approx(first * 7 / 6)
    assert len(requests) == 7 and {r["thread_id"] for r in requests} == {session}
    last = json.dumps(requests[-1]["body"]["messages"])
    assert "Create notes.txt" in last  # the session's history came along
    assert "could not be accepted" in last and "Failed to provide valid structured output" in last
    result_event = events(repo, "clretry", "T0001", 1)[-1]
    assert result_event["subtype"] == "error_max_structured_output_retries"
    assert trailer(repo, "Orch-Attempt", read_state(repo, "clretry")["branch"]) == "2"


def test_http_500_is_a_transport_failure(repo: Repo, tmp_path: Path) -> None:
    with ScriptedModelServer({"default": [{"http": 500}]}) as server:
        use_real_agents(repo, server, tmp_path)
        plan = write_plan(tmp_path / "plan.json", [WRITE, EDIT])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "cl500", "--no-progress")
        requests = server.model_requests("anthropic")
    assert result.code == 1
    assert len(requests) == 1  # no retry storm
    state = read_state(repo, "cl500")
    error = state["tasks"]["T0001"]["error"]
    assert error["kind"] == "transport" and "API Error: 500" in error["message"]
    assert state["tasks"]["T0002"]["status"] == "blocked"
    final = events(repo, "cl500", "T0001", 1)[-1]
    assert (final["subtype"], final["is_error"], final["api_error_status"]) == ("success", True, 500)


def test_a_read_only_reviewer_on_claude_cannot_write(repo: Repo, tmp_path: Path) -> None:
    script = {
        "default": [
            {"write": "review-notes.txt", "content": "should not exist\n"},
            {"shell": "echo should not exist > shell-notes.txt"},
            {"answer": review()},
        ]
    }
    reviewer = {"role": "reviewer", "prompt": "Review README.md", "acceptance": "read it", "agent": "claude"}
    with ScriptedModelServer(script) as server:
        use_real_agents(repo, server, tmp_path)
        plan = write_plan(tmp_path / "plan.json", [reviewer])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "clro", "--no-progress")
    assert result.code == 0, result.err + result.out
    state = read_state(repo, "clro")
    worktree = Path(state["worktree"])
    assert not (worktree / "review-notes.txt").exists() and not (worktree / "shell-notes.txt").exists()
    assert state["tasks"]["T0001"]["commit"] is None  # nothing to commit
    tool_errors = [
        block["content"]
        for event in events(repo, "clro", "T0001", 1)
        if event["type"] == "user"
        for block in event["message"]["content"]
        if block.get("is_error")
    ]
    assert len(tool_errors) == 2 and all("No such tool available" in e for e in tool_errors)
    init = events(repo, "clro", "T0001", 1)[0]
    assert (init["permissionMode"], sorted(init["tools"])) == ("dontAsk", ["Glob", "Grep", "Read", "StructuredOutput"])
    assert (attempt_dir(repo, "clro", "T0001", 1) / "final.json").read_text() == json.dumps(review())


def test_killed_codex_orch_resumes_on_claudes_session(repo: Repo, tmp_path: Path) -> None:
    """An interrupted task goes on on the agent that owns its thread, even when the run's choice changed."""
    script = {
        "rules": [
            {
                "match": "Create notes.txt",
                "steps": [
                    {"write": "notes.txt", "content": "partial\n"},
                    {"answer": answer("never delivered"), "delay": 60},
                    {"answer": answer("after resume", ["notes.txt"])},
                ],
            }
        ]
    }
    task = {k: v for k, v in WRITE.items() if k != "agent"}
    with ScriptedModelServer(script) as server:
        use_real_agents(repo, server, tmp_path)
        plan = write_plan(tmp_path / "plan.json", [task])
        with open(tmp_path / "run.err", "w") as err_file:
            proc = start_cli(
                repo.path,
                "run",
                "--plan-file",
                str(plan),
                "--run-id",
                "clkill",
                "--agent",
                "claude",
                "--no-progress",
                stderr=err_file,
            )
            wait_for(lambda: len(server.model_requests()) >= 2 or proc.poll() is not None, "claude's second request")
            assert proc.poll() is None, (tmp_path / "run.err").read_text()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        session = read_state(repo, "clkill")["tasks"]["T0001"]["thread_id"]
        assert session
        repo.configure(agents={"default": "gemini"})  # what a fresh start would choose now
        result = run_cli(repo.path, "resume", "--run-id", "clkill", "--no-progress")
        requests = server.model_requests()
    assert result.code == 0, result.err + result.out
    task_state = read_state(repo, "clkill")["tasks"]["T0001"]
    assert [(a["agent"], a["agent_source"]) for a in task_state["attempts"]] == [
        ("claude", "--agent"),
        ("claude", "thread"),
    ]
    assert task_state["attempts"][1]["resumed_thread"] == session
    assert requests[-1]["protocol"] == "anthropic" and requests[-1]["thread_id"] == session
    assert "You were interrupted" in json.dumps(requests[-1]["body"]["messages"])
    assert repo.git("show", f"{read_state(repo, 'clkill')['branch']}:notes.txt") == "partial"
