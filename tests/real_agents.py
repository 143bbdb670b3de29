"""Helpers of the tests that drive the REAL agent CLIs (tools/, pinned) through codex-orch against the
loopback scripted model server. A missing CLI FAILS the test, never skips it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import Repo

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
