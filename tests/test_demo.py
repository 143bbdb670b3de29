"""README's first command, as a newcomer runs it: the demo, then the next commands it prints, pasted as
printed into a shell that does not have the venv's codex-orch on its PATH (nobody activated it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, codex_bin, git

pytestmark = pytest.mark.realcodex

NEXT = "   $ "


@pytest.mark.timeout(300)
def test_the_demo_runs_and_its_next_commands_work_as_printed(tmp_path: Path) -> None:
    codex_bin()  # the demo drives the real codex
    demo = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=240,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    hints = [line[len(NEXT) :] for line in demo.stdout.splitlines() if line.startswith(NEXT)]
    assert [h.split(" && ")[1].split()[1] for h in hints] == ["status", "merge", "clean"], hints

    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and p != venv_bin)
    assert shutil.which("codex-orch", path=path) is None  # else this would prove nothing
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": path}
    repo = tmp_path / "demo" / "repo"
    branch = json.loads((repo / ".orchestrator" / "runs" / "demo" / "state.json").read_text())["branch"]
    tip = git(repo, "rev-parse", branch)
    for hint in hints:
        done = subprocess.run(["bash", "-c", hint], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{hint}\n{done.stdout}{done.stderr}"
    assert git(repo, "rev-parse", "main") == tip  # merged
    assert git(repo, "branch", "--list", branch) == ""  # and cleaned
    assert not (repo / ".orchestrator" / "worktrees" / "demo").exists()
