"""One run, three real agent CLIs (codex, Claude Code, Gemini CLI) on one loopback scripted model server
speaking all three wire protocols: tasks on different agents waiting for each other, and a task whose
provider rate-limits codex taken over by claude (agents.fallback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Repo, answer, read_state, run_cli, write_plan
from real_agents import trailer, use_real_agents

from codex_orch.testing.scripted_model import ScriptedModelServer

pytestmark = [pytest.mark.realagents, pytest.mark.realcodex]


def test_a_plan_mixing_codex_claude_and_gemini(repo: Repo, tmp_path: Path) -> None:
    script = {
        "rules": [
            {
                "match": "Start the log",  # codex writes it with its own apply_patch tool
                "steps": [{"write": "log.txt", "content": "codex\n"}, {"answer": answer("c", ["log.txt"])}],
            },
            {
                "match": "Add claude's line",
                "steps": [
                    {"edit": "log.txt", "old": "codex", "new": "codex\nclaude"},
                    {"answer": answer("cl", ["log.txt"])},
                ],
            },
            {
                "match": "Add gemini's line",
                "steps": [{"shell": "echo gemini >> log.txt"}, {"answer": answer("g", ["log.txt"])}],
            },
        ]
    }
    tasks = [
        {"id": "start", "role": "implementer", "prompt": "Start the log", "acceptance": "log.txt"},
        {
            "id": "claude",
            "role": "implementer",
            "prompt": "Add claude's line",
            "acceptance": "two lines",
            "blocked_by": ["start"],
            "agent": "claude",
        },
        {
            "id": "gemini",
            "role": "implementer",
            "prompt": "Add gemini's line",
            "acceptance": "three lines",
            "blocked_by": ["start", "claude"],
            "agent": "gemini",
        },
    ]
    with ScriptedModelServer(script) as server:
        use_real_agents(repo, server, tmp_path, default="gemini")
        plan = write_plan(tmp_path / "plan.json", tasks)
        # --agent: the run's agent for tasks the plan leaves open (it comes before agents.default)
        result = run_cli(
            repo.path, "run", "--plan-file", str(plan), "--run-id", "mix", "--agent", "codex", "--no-progress"
        )
        protocols = [r["protocol"] for r in server.model_requests()]
    assert result.code == 0, result.err + result.out
    assert protocols == ["responses"] * 2 + ["anthropic"] * 2 + ["gemini"] * 2  # in dependency order
    state = read_state(repo, "mix")
    branch = state["branch"]
    assert repo.git("show", f"{branch}:log.txt") == "codex\nclaude\ngemini"  # each saw the work before it
    commits = repo.git("rev-list", "--reverse", f"main..{branch}").split()
    assert len(commits) == 3
    tasks_state = state["tasks"]
    assert [
        (tasks_state[t]["attempts"][0]["agent"], tasks_state[t]["attempts"][0]["agent_source"])
        for t in ("start", "claude", "gemini")
    ] == [
        ("codex", "--agent"),
        ("claude", "task"),
        ("gemini", "task"),
    ]
    assert trailer(repo, "Codex-Thread", commits[0]) == tasks_state["start"]["thread_id"]
    assert trailer(repo, "Agent-Thread", commits[1]) == f"claude:{tasks_state['claude']['thread_id']}"
    assert trailer(repo, "Agent-Thread", commits[2]) == f"gemini:{tasks_state['gemini']['thread_id']}"
    status = run_cli(repo.path, "status", "--run-id", "mix").out
    assert all(agent in status for agent in ("codex", "claude", "gemini (gemini-2.5-pro)"))


def test_codex_rate_limited_falls_back_to_claude(repo: Repo, tmp_path: Path) -> None:
    script = {
        "rules": [
            # the attempt on claude: its prompt holds codex-orch's note about the agent before it
            {
                "match": "started by another agent (codex)",
                "steps": [{"shell": "echo finished by claude >> work.txt"}, {"answer": answer("done", ["work.txt"])}],
            },
            {"match": "Do the work", "steps": [{"shell": "echo started by codex > work.txt"}, {"http": 429}]},
        ]
    }
    task = {"role": "implementer", "prompt": "Do the work", "acceptance": "work.txt has two lines"}
    with ScriptedModelServer(script) as server:
        use_real_agents(repo, server, tmp_path, fallback=["claude", "codex"])
        plan = write_plan(tmp_path / "plan.json", [task])
        result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "fb", "--no-progress")
        requests = server.model_requests()
    assert result.code == 0, result.err + result.out
    assert [r["protocol"] for r in requests] == ["responses", "responses", "anthropic", "anthropic"]
    state = read_state(repo, "fb")
    task_state = state["tasks"]["T0001"]
    attempts = task_state["attempts"]
    assert [(a["agent"], a["failure"], a["fallback_from"]) for a in attempts] == [
        ("codex", "rate_limited", None),
        ("claude", None, "codex"),
    ]
    assert attempts[1]["agent_source"] == "fallback" and attempts[1]["resumed_thread"] is None
    # the work codex did before the 429 stayed in the worktree, and claude was told about it
    assert repo.git("show", f"{state['branch']}:work.txt") == "started by codex\nfinished by claude"
    note = json.dumps(requests[2]["body"]["messages"])
    assert "rate_limited" in note and "work.txt" in note
    sha = state["tasks"]["T0001"]["commit"]
    assert trailer(repo, "Agent-Thread", sha) == f"claude:{task_state['thread_id']}"
    assert trailer(repo, "Orch-Attempt", sha) == "2"
    report = run_cli(repo.path, "report", "--run-id", "fb").out
    assert "| T0001 | implementer | codex→claude | succeeded |" in report
    assert "| 2 | claude (after codex) |" in report
