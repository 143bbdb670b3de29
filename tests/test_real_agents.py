"""The acceptance both REAL agent CLIs (Claude Code and Gemini CLI, tools/, pinned) must pass through
codex-orch against the loopback scripted model: a two-task plan committed (made by the agent's own
write, edit and shell tools), an HTTP 500 classified, a read-only reviewer that cannot write. What is
particular to each CLI is in test_real_claude.py and test_real_gemini.py. A missing CLI FAILS."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import real_agents as real
from conftest import Repo, run_cli

pytestmark = [pytest.mark.realagents, pytest.mark.parametrize("agent", ["claude", "gemini"])]

PROTOCOL = {"claude": "anthropic", "gemini": "gemini"}
OWN_TOOLS = {
    "claude": ["Write", "Bash", "StructuredOutput", "Read", "Edit", "StructuredOutput"],
    "gemini": ["write_file", "run_shell_command", "replace"],
}


def test_two_task_plan_made_by_the_agents_own_tools(repo: Repo, tmp_path: Path, agent: str) -> None:
    result, server = real.run_scripted(repo, tmp_path, real.WRITE_AND_EDIT, real.write_and_edit(agent), "two")
    requests = server.model_requests(PROTOCOL[agent])
    assert result.code == 0, result.err + result.out
    state, _ = real.committed_notes(repo, "two")
    assert real.tool_calls(repo, "two", "T0001") + real.tool_calls(repo, "two", "T0002") == OWN_TOOLS[agent]
    model = {"claude": None, "gemini": "gemini-2.5-pro"}[agent]
    for task in state["tasks"].values():
        attempt = task["attempts"][0]
        assert (attempt["agent"], attempt["agent_source"], attempt["model"]) == (agent, "task", model)
        # claude reports its own cost; gemini's is its tokens at the price table's (gemini-2.5-pro)
        assert attempt["cost_source"] == ("agent" if agent == "claude" else "prices")
    assert len(requests) == 5 and len({r["thread_id"] for r in requests}) == 2  # a session per task
    first = json.dumps(requests[0]["body"])
    assert "Create notes.txt" in first  # the prompt went in on stdin
    # the role's schema: claude's --json-schema offers a StructuredOutput tool; gemini's prompt carries it
    assert ('"name": "StructuredOutput"' in first) == (agent == "claude")
    assert ("codex-orch task result" in json.dumps(requests[0]["body"].get("contents"))) == (agent == "gemini")
    if agent == "claude":  # claude names its session in a header, the same on every request of the session
        sessions = {r["thread_id"]: {r["headers"]["x-claude-code-session-id"]} for r in requests}
        assert all(headers == {thread} for thread, headers in sessions.items())
    status = run_cli(repo.path, "status", "--run-id", "two").out
    assert f"{agent} ({model})" in status if model else agent in status
    report = json.loads(run_cli(repo.path, "report", "--run-id", "two", "--json").out)
    assert [t["attempts"][0]["agent"] for t in report["tasks"]] == [agent, agent]
    # the agent's own home (its sessions, its settings) stays out of a bundle of the run, like codex's
    bundle = tmp_path / "two.tar.gz"
    assert run_cli(repo.path, "report", "--run-id", "two", "--bundle", str(bundle)).code == 0
    with tarfile.open(bundle) as tar:
        index = json.load(tar.extractfile("codex-orch-run-two/index.json"))  # type: ignore[arg-type]
        assert not any(name.startswith(f"codex-orch-run-two/run/{agent}-home") for name in tar.getnames())
    assert {f["path"] for f in index["left_out"]} == {"codex-home", "claude-home", "gemini-home"}


def test_http_500_is_a_transport_failure(repo: Repo, tmp_path: Path, agent: str) -> None:
    script = {"default": [{"http": 500}]}
    result, server = real.run_scripted(repo, tmp_path, script, real.write_and_edit(agent), "h500")
    assert result.code == 1
    assert (
        len(server.model_requests()) == 1
    )  # no retry storm (claude: CLAUDE_CODE_MAX_RETRIES=0, gemini: maxAttempts 1)
    message = real.failed_then_blocked(repo, "h500", "transport")
    assert {"claude": "API Error: 500", "gemini": '"code":500'}[agent] in message
    final = real.events(repo, "h500", "T0001", 1)[-1]
    assert final["type"] == "result"  # claude: subtype "success" with is_error; gemini: status "error"
    assert (final.get("is_error"), final.get("api_error_status"), final.get("status")) == {
        "claude": (True, 500, None),
        "gemini": (None, None, "error"),
    }[agent]


def test_a_read_only_reviewer_cannot_write(repo: Repo, tmp_path: Path, agent: str) -> None:
    result, server = real.run_scripted(repo, tmp_path, real.TRIES_TO_WRITE, [real.reviewer(agent)], "ro")
    assert result.code == 0, result.err + result.out
    real.nothing_written(repo, "ro")
    errors = real.tool_errors(repo, "ro", "T0001")
    assert len(errors) == 2
    assert all({"claude": "No such tool available", "gemini": "not found"}[agent] in e for e in errors)
    body = server.model_requests()[0]["body"]
    if agent == "claude":
        offered = {tool["name"] for tool in body["tools"]}
        init = real.events(repo, "ro", "T0001", 1)[0]
        assert (init["permissionMode"], sorted(init["tools"])) == (
            "dontAsk",
            ["Glob", "Grep", "Read", "StructuredOutput"],
        )
    else:
        offered = {d["name"] for t in body["tools"] for d in t.get("functionDeclarations", [])}
    assert not offered & {"Write", "Edit", "Bash", "write_file", "replace", "run_shell_command"}
