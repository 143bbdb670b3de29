"""codex-orch driving the REAL Gemini CLI (tools/gemini, pinned) against the loopback scripted model.

Gemini CLI speaks the Gemini API (`:streamGenerateContent?alt=sse`), honours GOOGLE_GEMINI_BASE_URL
with the API-key auth type, and writes `--output-format stream-json` events: these runs of the binary
are where the backend's protocol comes from. Without the binary these tests FAIL, never skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Repo, answer, read_state, run_cli, write_plan
from real_agents import attempt_dir, events, review, trailer, use_real_agents

from codex_orch.testing.scripted_model import ScriptedModelServer

pytestmark = pytest.mark.realagents

WRITE = {"role": "implementer", "prompt": "Create notes.txt", "acceptance": "notes.txt", "agent": "gemini"}
EDIT = {
    "role": "implementer",
    "prompt": "Edit notes.txt",
    "acceptance": "notes.txt says two",
    "blocked_by": ["T0001"],
    "agent": "gemini",
}


def test_two_task_plan_made_by_geminis_own_tools(repo: Repo, tmp_path: Path) -> None:
    script = {
        "rules": [
            {
                "match": "Create notes.txt",
                "steps": [
                    {"write": "notes.txt", "content": "one\n"},
                    {"shell": "mkdir -p logs && echo made by shell > logs/shell.txt"},
                    {"answer": answer("wrote notes", ["notes.txt", "logs/shell.txt"])},
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
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "gm2", "--no-progress")
        requests = server.model_requests("gemini")
    assert result.code == 0, result.err + result.out
    state = read_state(repo, "gm2")
    branch = state["branch"]
    assert repo.git("show", f"{branch}:notes.txt") == "two"
    assert repo.git("show", f"{branch}:logs/shell.txt") == "made by shell"
    commits = repo.git("rev-list", "--reverse", f"main..{branch}").split()
    assert len(commits) == 2
    tools = [
        e["tool_name"] for task in ("T0001", "T0002") for e in events(repo, "gm2", task, 1) if e["type"] == "tool_use"
    ]
    assert tools == ["write_file", "run_shell_command", "replace"]  # gemini's own tools
    for task_id, sha in zip(["T0001", "T0002"], commits, strict=True):
        task = state["tasks"][task_id]
        assert trailer(repo, "Agent-Thread", sha) == f"gemini:{task['thread_id']}"
        attempt = task["attempts"][0]
        assert (attempt["agent"], attempt["model"], attempt["cost_usd"]) == ("gemini", "gemini-2.5-pro", None)
    usage = state["tasks"]["T0001"]["attempts"][0]["usage"]
    assert (usage["input_tokens"], usage["cached_input_tokens"], usage["output_tokens"]) == (300, 30, 60)
    first = requests[0]
    assert first["path"].startswith("/v1beta/models/gemini-2.5-pro:streamGenerateContent")
    sent = json.dumps(first["body"]["contents"])
    assert "Create notes.txt" in sent and "codex-orch task result" in sent  # the prompt, then the schema


def test_a_schema_invalid_answer_is_continued_on_the_same_session(repo: Repo, tmp_path: Path) -> None:
    script = {
        "rules": [
            {
                "match": "Create notes.txt",
                "steps": [
                    {"write": "notes.txt", "content": "one\n"},
                    {"answer": {"status": "done", "summary": ["not", "a", "string"]}},
                    {"answer": answer("fixed", ["notes.txt"])},
                ],
            }
        ]
    }
    with ScriptedModelServer(script) as server:
        use_real_agents(repo, server, tmp_path)
        plan = write_plan(tmp_path / "plan.json", [WRITE])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "gmretry", "--no-progress")
        requests = server.model_requests("gemini")
    assert result.code == 0, result.err + result.out
    task = read_state(repo, "gmretry")["tasks"]["T0001"]
    assert [a["failure"] for a in task["attempts"]] == ["schema_invalid", None]
    session = task["thread_id"]
    assert [a["thread_id"] for a in task["attempts"]] == [session, session]
    assert task["attempts"][1]["resumed_thread"] == session
    assert len(requests) == 3 and len({r["thread_id"] for r in requests}) == 1  # one conversation, resumed
    last = json.dumps(requests[-1]["body"]["contents"])
    assert "Create notes.txt" in last  # the history came along
    assert "summary: ['not', 'a', 'string'] is not of type 'string'" in last  # codex-orch's own validation
    assert events(repo, "gmretry", "T0001", 2)[0]["session_id"] == session


def test_http_500_is_a_transport_failure(repo: Repo, tmp_path: Path) -> None:
    with ScriptedModelServer({"default": [{"http": 500}]}) as server:
        use_real_agents(repo, server, tmp_path)
        plan = write_plan(tmp_path / "plan.json", [WRITE, EDIT])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "gm500", "--no-progress")
        requests = server.model_requests("gemini")
    assert result.code == 1
    assert len(requests) == 1  # general.maxAttempts: 1, no retry storm
    state = read_state(repo, "gm500")
    error = state["tasks"]["T0001"]["error"]
    assert error["kind"] == "transport" and '"code":500' in error["message"]
    assert state["tasks"]["T0002"]["status"] == "blocked"
    assert events(repo, "gm500", "T0001", 1)[-1]["status"] == "error"


def test_a_read_only_reviewer_on_gemini_cannot_write(repo: Repo, tmp_path: Path) -> None:
    script = {
        "default": [
            {"write": "review-notes.txt", "content": "should not exist\n"},
            {"shell": "echo should not exist > shell-notes.txt"},
            {"answer": review()},
        ]
    }
    reviewer = {"role": "reviewer", "prompt": "Review README.md", "acceptance": "read it", "agent": "gemini"}
    with ScriptedModelServer(script) as server:
        use_real_agents(repo, server, tmp_path)
        plan = write_plan(tmp_path / "plan.json", [reviewer])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "gmro", "--no-progress")
        offered = {
            d["name"]
            for t in server.model_requests("gemini")[0]["body"]["tools"]
            for d in t.get("functionDeclarations", [])
        }
    assert result.code == 0, result.err + result.out
    state = read_state(repo, "gmro")
    worktree = Path(state["worktree"])
    assert not (worktree / "review-notes.txt").exists() and not (worktree / "shell-notes.txt").exists()
    assert state["tasks"]["T0001"]["commit"] is None
    results = [e for e in events(repo, "gmro", "T0001", 1) if e["type"] == "tool_result"]
    assert [r["error"]["type"] for r in results] == ["tool_not_registered", "tool_not_registered"]
    assert not offered & {"write_file", "replace", "run_shell_command"}
    assert (attempt_dir(repo, "gmro", "T0001", 1) / "final.json").read_text() == json.dumps(review())
