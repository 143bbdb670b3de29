"""A real MCP client: the real Claude Code CLI (tools/claude), with `codex-orch mcp` registered the way a
user does it (`claude mcp add`), and the loopback scripted model told to call `enqueue_job`, queues a job
that codex-orch then runs to a commit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import real_agents as real
from conftest import FakeCodex, Repo, answer, git, wait_for
from service_helpers import service_info

from codex_orch.service.jobs import JobService
from codex_orch.testing.agent_settings import claude_config
from codex_orch.testing.scripted_model import ScriptedModelServer

pytestmark = pytest.mark.realagents

TOOL = "mcp__codex-orch__enqueue_job"  # how Claude Code names our server's tool to the model


def _claude(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [real.binary("claude"), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def _tool_results(stdout: str) -> list[dict[str, Any]]:
    """The tool results in claude's stream-json output (the `user` events that carry them)."""
    events = [json.loads(line) for line in stdout.splitlines() if line.strip().startswith("{")]
    return [
        block
        for event in events
        if event.get("type") == "user"
        for block in event["message"]["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def test_the_real_claude_enqueues_a_job_through_our_mcp_server(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    # The job's own run uses the fake codex of the repo's config; the client is the real Claude Code.
    fake_codex.script({"default": [[{"write": "from-claude.txt", "content": "hi\n"}, {"answer": answer("ok")}]]})
    arguments = {"prompt": "Write from-claude.txt", "branch": "feat/from-claude"}
    script = {
        "rules": [
            {
                "match": "Queue the job",
                "steps": [
                    {"call": "enqueue_job", "namespace": "mcp__codex-orch", "arguments": arguments},
                    {"answer": "queued"},
                ],
            }
        ]
    }
    with ScriptedModelServer(script) as server:
        env = {
            **os.environ,
            **claude_config(server.root_url)["env"],
            "CLAUDE_CONFIG_DIR": str(tmp_path / "claude-home"),  # the user's own config, here a fresh one
            # Seen with 2.1.328: -p sends its first request while stdio servers still connect ("pending"
            # in its init event), and it offers MCP tools only by name, behind ToolSearch. These two make
            # the first request carry our tools with their schemas, as a scripted model needs them.
            "MCP_CONNECTION_NONBLOCKING": "false",
            "ENABLE_TOOL_SEARCH": "false",
        }
        # as a user registers it, in the repository (scope local: this project only)
        added = _claude(["mcp", "add", "codex-orch", "--", sys.executable, "-m", "codex_orch", "mcp"], repo.path, env)
        assert added.returncode == 0, added.stderr
        try:
            client = _claude(
                ["-p", "Queue the job", "--allowedTools", TOOL, "--output-format", "stream-json", "--verbose"],
                repo.path,
                env,
            )
            requests = server.model_requests("anthropic")
            assert client.returncode == 0, client.stderr[-2000:] + client.stdout[-2000:]
            offered = {t["name"]: t for t in requests[0]["body"]["tools"]}
            assert TOOL in offered  # the name the model sees, as Claude Code presents it, with our schema
            assert {"prompt", "branch", "plan"} <= set(offered[TOOL]["input_schema"]["properties"])
            results = _tool_results(client.stdout)
            assert len(results) == 1 and not results[0].get("is_error"), results
            shown = json.dumps(results[0]["content"])
            assert "feat/from-claude" in shown and "pending" in shown  # the job as enqueue_job returned it

            service = JobService(repo.path)
            jobs = service.list_jobs()
            assert [j["branch"] for j in jobs] == ["feat/from-claude"]
            assert service.show(jobs[0]["id"])["request"]["prompt"] == "Write from-claude.txt"
            wait_for(lambda: service.show(jobs[0]["id"])["status"] in ("done", "failed"), "the job ran", timeout=120)
            done = service.show(jobs[0]["id"])
            service.close()
            assert done["status"] == "done", done
            assert git(repo.path, "show", "feat/from-claude:from-claude.txt") == "hi"
            assert done["commit"] == git(repo.path, "rev-parse", "feat/from-claude")
        finally:
            info = service_info(repo.path)  # the serve that `codex-orch mcp` started
            if info and info.get("pid"):
                os.kill(int(info["pid"]), signal.SIGTERM)
                wait_for(lambda: service_info(repo.path) is None, "the started serve stopped", timeout=60)
