"""Helpers of the tests that drive the REAL agent CLIs (tools/, pinned) through codex-orch against the
loopback scripted model server. A missing CLI FAILS the test, never skips it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, Repo, answer, read_state, run_cli, write_plan

from codex_orch.testing.agent_settings import claude_config, gemini_config
from codex_orch.testing.scripted_model import ScriptedModelServer, codex_config

ROOT = Path(__file__).resolve().parents[1]
BINARIES = {
    "codex": ROOT / "tools" / "codex" / "node_modules" / ".bin" / "codex",
    "claude": ROOT / "tools" / "claude" / "node_modules" / ".bin" / "claude",
    "gemini": ROOT / "tools" / "gemini" / "node_modules" / ".bin" / "gemini",
}


def binary(agent: str) -> str:
    path = BINARIES[agent]
    if not (path.exists() and os.access(path, os.X_OK)):
        pytest.fail(f"{agent} CLI not found at {path}: run scripts/setup.sh first", pytrace=False)
    return str(path)


def use_real_agents(repo: Repo, server: ScriptedModelServer, tmp: Path, **agents: Any) -> None:
    """orchestrator.yaml: all three real CLIs pointed at `server`, each with an isolated home; `agents`
    adds keys of the `agents` section (default, fallback)."""
    claude = claude_config(server.root_url, binary("claude"))
    gemini = gemini_config(server.root_url, binary("gemini"))
    gemini["env"]["TMPDIR"] = str(tmp)  # where Gemini CLI writes its error reports
    repo.configure(
        codex={"command": binary("codex"), "home": "isolated", "config": codex_config(server.base_url)},
        agents={"claude": claude, "gemini": gemini, **agents},
        limits={"timeout": 120, "idle_timeout": 60, "stop_grace": 2},
    )


def attempt_dir(repo: Repo, run_id: str, task: str, n: int) -> Path:
    return repo.path / ".orchestrator" / "runs" / run_id / "tasks" / task / f"attempt-{n}"


def events(repo: Repo, run_id: str, task: str, n: int) -> list[dict[str, Any]]:
    lines = (attempt_dir(repo, run_id, task, n) / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def trailer(repo: Repo, key: str, rev: str) -> str:
    return repo.git("log", "-1", f"--format=%(trailers:key={key},valueonly)", rev)


def review(status: str = "approved", summary: str = "reviewed") -> dict[str, Any]:
    """A schema-valid reviewer answer."""
    return {"status": status, "summary": summary, "findings": [], "risks": [], "decisions": [], "next_tasks": []}


def write_and_edit(agent: str) -> list[dict[str, Any]]:
    """Two tasks on `agent`: one creates notes.txt (and a file by shell), the next edits it."""
    return [
        {"role": "implementer", "prompt": "Create notes.txt", "acceptance": "notes.txt", "agent": agent},
        {
            "role": "implementer",
            "prompt": "Edit notes.txt",
            "acceptance": "notes.txt says two",
            "blocked_by": ["T0001"],
            "agent": agent,
        },
    ]


# What the model does for write_and_edit: the agent's own write, shell and edit tools make the files.
WRITE_AND_EDIT = {
    "rules": [
        {
            "match": "Create notes.txt",
            "steps": [
                {"write": "notes.txt", "content": "one\n"},
                {"shell": "mkdir -p logs && echo made by shell > logs/shell.txt"},
                {"answer": answer("wrote notes", ["notes.txt", "logs/shell.txt"]), "usage": {"cached_tokens": 30}},
            ],
        },
        {
            "match": "Edit notes.txt",
            "steps": [{"edit": "notes.txt", "old": "one", "new": "two"}, {"answer": answer("edited", ["notes.txt"])}],
        },
    ]
}

# A reviewer that tries to write, by a file tool and by shell, then answers.
TRIES_TO_WRITE = {
    "default": [
        {"write": "review-notes.txt", "content": "should not exist\n"},
        {"shell": "echo should not exist > shell-notes.txt"},
        {"answer": review()},
    ]
}


def reviewer(agent: str) -> dict[str, Any]:
    return {"role": "reviewer", "prompt": "Review README.md", "acceptance": "read it", "agent": agent}


def run_plan(repo: Repo, tmp: Path, tasks: list[dict[str, Any]], run_id: str, *args: str) -> CliResult:
    plan = write_plan(tmp / "plan.json", tasks)
    return run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress", *args)


def committed_notes(repo: Repo, run_id: str) -> tuple[dict[str, Any], list[str]]:
    """The run's state and its two commits, after write_and_edit succeeded."""
    state = read_state(repo, run_id)
    for path, text in {"notes.txt": "two", "logs/shell.txt": "made by shell"}.items():
        assert repo.git("show", f"{state['branch']}:{path}") == text
    commits = repo.git("rev-list", "--reverse", f"main..{state['branch']}").split()
    assert len(commits) == 2
    for task_id, sha in zip(["T0001", "T0002"], commits, strict=True):
        task = state["tasks"][task_id]
        agent = task["attempts"][0]["agent"]
        assert trailer(repo, "Agent-Thread", sha) == f"{agent}:{task['thread_id']}"
        assert trailer(repo, "Codex-Thread", sha) == ""
    usage = state["tasks"]["T0001"]["attempts"][0]["usage"]
    # three requests: 100 input each (10, 10, then 30 of them cached), 20 output each
    assert (usage["input_tokens"], usage["cached_input_tokens"], usage["output_tokens"]) == (300, 50, 60)
    return state, commits


def nothing_written(repo: Repo, run_id: str) -> None:
    """After TRIES_TO_WRITE: the reviewer succeeded, and neither file exists nor was committed."""
    state = read_state(repo, run_id)
    worktree = Path(state["worktree"] or state["tasks"]["T0001"]["worktree"])  # shared, or the task's own
    assert state["tasks"]["T0001"]["status"] == "succeeded"
    assert not (worktree / "review-notes.txt").exists() and not (worktree / "shell-notes.txt").exists()
    assert state["tasks"]["T0001"]["commit"] is None  # nothing to commit
    assert (attempt_dir(repo, run_id, "T0001", 1) / "final.json").read_text() == json.dumps(review())


def failed_then_blocked(repo: Repo, run_id: str, kind: str) -> str:
    """The first task failed as `kind` (its message returned), the one waiting for it is blocked."""
    state = read_state(repo, run_id)
    assert state["tasks"]["T0002"]["status"] == "blocked"
    error = state["tasks"]["T0001"]["error"]
    assert error["kind"] == kind
    return str(error["message"])


def run_scripted(
    repo: Repo, tmp: Path, script: dict[str, Any], tasks: list[dict[str, Any]], run_id: str, *args: str
) -> tuple[CliResult, ScriptedModelServer]:
    """`codex-orch run` of these tasks with the real CLIs on a server playing `script` (closed after, its
    requests still readable)."""
    with ScriptedModelServer(script) as server:
        use_real_agents(repo, server, tmp)
        return run_plan(repo, tmp, tasks, run_id, *args), server


def tool_calls(repo: Repo, run_id: str, task: str) -> list[str]:
    """The tools the agent called in the task's first attempt, by its own names, from either CLI's events."""
    names = []
    for event in events(repo, run_id, task, 1):
        if event["type"] == "tool_use":  # gemini
            names.append(event["tool_name"])
        elif event["type"] == "assistant":  # claude
            names += [b["name"] for b in event["message"]["content"] if b["type"] == "tool_use"]
    return names


def tool_errors(repo: Repo, run_id: str, task: str) -> list[str]:
    """The errors the agent's tools answered in the task's first attempt, from either CLI's events."""
    found = []
    for event in events(repo, run_id, task, 1):
        if event["type"] == "tool_result" and event.get("status") == "error":  # gemini
            found.append(event["output"])
        elif event["type"] == "user":  # claude
            found += [b["content"] for b in event["message"]["content"] if b.get("is_error")]
    return found


def retried_on_its_session(repo: Repo, run_id: str) -> tuple[dict[str, Any], str]:
    """The only task: schema_invalid, then valid on a second attempt that resumed the first one's session."""
    task = read_state(repo, run_id)["tasks"]["T0001"]
    assert [a["failure"] for a in task["attempts"]] == ["schema_invalid", None]
    session = str(task["thread_id"])
    assert [a["thread_id"] for a in task["attempts"]] == [session, session]
    assert task["attempts"][1]["resumed_thread"] == session
    return task, session
