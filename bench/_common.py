"""Helpers shared by the benchmarks: a scratch git repo and the fake codex wired into its config.

Importing this module byte-compiles codex_orch, so that benchmarks measure it as `pip install` leaves
it (pip compiles what it installs). In an editable checkout under PYTHONDONTWRITEBYTECODE=1, as on
the project's machine, every run would otherwise compile ~30 modules from source (~35 ms).
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
FAKE_CODEX = ROOT / "tests" / "fake_codex" / "codex"
INSTANT_CODEX = ROOT / "bench" / "agents" / "instant_codex.sh"

compileall.compile_dir(ROOT / "codex_orch", quiet=1)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def scratch_repo(files: int = 0) -> Path:
    base = Path(tempfile.mkdtemp(prefix="codex-orch-bench-"))
    repo = base / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Bench")
    git(repo, "config", "user.email", "bench@example.com")
    (repo / "README.md").write_text("bench\n")
    for i in range(files):
        sub = repo / "src" / f"pkg{i % 50}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"mod{i}.py").write_text(f"VALUE = {i}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def configure_instant(repo: Path, sleep: float = 0, **overrides: Any) -> None:
    """Point codex-orch at the near-zero-cost bench agent (bench/agents/instant_codex.sh)."""
    config: dict[str, Any] = {"codex": {"command": str(INSTANT_CODEX), "env": {"BENCH_AGENT_SLEEP": f"{sleep:g}"}}}
    config.update(overrides)
    target = repo / ".orchestrator" / "orchestrator.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config))


def configure(repo: Path, script: dict[str, Any], **overrides: Any) -> Path:
    """Point codex-orch at the fake codex with this script; returns the script's path."""
    folder = repo.parent / "fake"
    folder.mkdir(exist_ok=True)
    script_path = folder / "script.json"
    script_path.write_text(json.dumps(script))
    config: dict[str, Any] = {
        "codex": {
            "command": [sys.executable, str(FAKE_CODEX)],
            "env": {"FAKE_CODEX_SCRIPT": str(script_path), "CODEX_HOME": str(folder / "home")},
        },
    }
    config.update(overrides)
    target = repo / ".orchestrator" / "orchestrator.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config))
    return script_path


def codex_orch_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "codex_orch", *args]


def answer(summary: str = "done") -> dict[str, Any]:
    return {"status": "done", "summary": summary, "files_changed": [], "decisions": [], "risks": [], "next_tasks": []}


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
