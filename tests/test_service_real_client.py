"""A real MCP client: the real codex CLI (tools/codex), with `codex-orch mcp` in its config.toml and the
loopback scripted model told to call `enqueue_job`, queues a job that codex-orch then runs to a commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FakeCodex, Repo, answer, git, wait_for
from service_helpers import service_info

from codex_orch.agents.codex_home import prepare_isolated_home
from codex_orch.service.jobs import JobService
from codex_orch.testing.scripted_model import ScriptedModelServer, codex_config

pytestmark = pytest.mark.realcodex

CODEX_BIN = Path(__file__).resolve().parents[1] / "tools" / "codex" / "node_modules" / ".bin" / "codex"


def test_the_real_codex_enqueues_a_job_through_our_mcp_server(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    if not CODEX_BIN.exists():
        pytest.fail(f"codex CLI not found at {CODEX_BIN}: run scripts/install-codex.sh first", pytrace=False)
    # The job's own run uses the fake codex of the repo's config; the client is the real codex.
    fake_codex.script({"default": [[{"write": "from-codex.txt", "content": "hi\n"}, {"answer": answer("ok")}]]})
    arguments = {"prompt": "Write from-codex.txt", "branch": "feat/from-codex"}
    script = {
        "rules": [
            {
                "match": "Queue the job",
                "steps": [
                    {"call": "enqueue_job", "namespace": "mcp__codex_orch", "arguments": arguments},
                    {"answer": "queued"},
                ],
            }
        ]
    }
    keep = ("HOME", "PATH", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM", "NO_COLOR")
    with ScriptedModelServer(script) as server:
        settings = codex_config(server.base_url)
        settings["model"] = "scripted-client"  # a name codex does not know: MCP tools are listed directly
        settings["mcp_servers"] = {
            "codex_orch": {
                "command": sys.executable,
                "args": ["-m", "codex_orch", "mcp"],
                "cwd": str(repo.path),
                "env": {k: os.environ[k] for k in keep if k in os.environ},
                "required": True,
                "default_tools_approval_mode": "approve",
                "startup_timeout_sec": 60,
                "tool_timeout_sec": 120,
            }
        }
        home = prepare_isolated_home(tmp_path / "client-home", settings)
        workdir = tmp_path / "client"
        workdir.mkdir()
        try:
            client = subprocess.run(
                [str(CODEX_BIN), "exec", "--json", "--skip-git-repo-check", "-C", str(workdir), "Queue the job"],
                env={**os.environ, "CODEX_HOME": str(home)},
                capture_output=True,
                text=True,
                timeout=180,
                stdin=subprocess.DEVNULL,
            )
            assert client.returncode == 0, client.stderr[-2000:]
            assert '"type":"mcp_tool_call"' in client.stdout, client.stdout
            service = JobService(repo.path)
            jobs = service.list_jobs()
            assert [j["branch"] for j in jobs] == ["feat/from-codex"]
            wait_for(lambda: service.show(jobs[0]["id"])["status"] in ("done", "failed"), "the job ran", timeout=120)
            done = service.show(jobs[0]["id"])
            service.close()
            assert done["status"] == "done", done
            assert git(repo.path, "show", "feat/from-codex:from-codex.txt") == "hi"
        finally:
            info = service_info(repo.path)  # the serve that `codex-orch mcp` started
            if info and info.get("pid"):
                os.kill(int(info["pid"]), signal.SIGTERM)
                wait_for(lambda: service_info(repo.path) is None, "the started serve stopped", timeout=60)
