"""Two codex-orch processes: on one run the second refuses; on two runs in one repo both succeed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import FakeCodex, Repo, answer, read_state, release, run_cli, start_cli, wait_marked, write_plan


def start(repo: Repo, *args: str) -> subprocess.Popen[str]:
    return start_cli(repo.path, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_process_on_the_same_run_refuses(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """The first process's agent is held at a gate while the others try: the window is the test's, not 3 s."""
    marker, gate = tmp_path / "started", tmp_path / "gate"
    fake_codex.script({"default": [[{"marker": str(marker)}, {"gate": str(gate)}, {"answer": answer("held")}]]})
    plan = write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": "held", "acceptance": ""}])
    first = start(repo, "run", "--plan-file", str(plan), "--run-id", "one", "--no-progress")
    try:
        wait_marked(marker, proc=first)
        second = run_cli(repo.path, "resume", "--run-id", "one")
        assert second.code == 2
        assert "run one is being driven by another codex-orch process (pid" in second.err
        assert len(second.err.strip().splitlines()) == 1
        again = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "one")
        assert again.code == 2 and "run 'one' already exists" in again.err
        assert first.poll() is None  # all of that while the first one ran
    finally:
        release(gate)
        _out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert read_state(repo, "one")["status"] == "succeeded"
    assert len(fake_codex.calls()) == 1  # the refused processes started no agent


def test_two_runs_at_once_in_one_repo(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """Both runs' four agents are seen at work at once (eight marks) before any of them may answer."""
    marker, gate = tmp_path / "started", tmp_path / "gate"
    turn = [{"write": "f.txt", "content": "x"}, {"marker": str(marker)}, {"gate": str(gate)}, {"answer": answer()}]
    fake_codex.script({"default": [turn]})
    repo.configure(workspace="per-task")
    tasks = [{"role": "implementer", "prompt": f"task {i}", "acceptance": ""} for i in range(4)]
    plan = write_plan(tmp_path / "plan.json", tasks)
    procs = [
        start(repo, "run", "--plan-file", str(plan), "--run-id", run_id, "--max-workers", "4", "--no-progress")
        for run_id in ("a", "b")
    ]
    try:
        wait_marked(marker, 8)
    finally:
        release(gate)
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for run_id in ("a", "b"):
        state = read_state(repo, run_id)
        assert {t["status"] for t in state["tasks"].values()} == {"succeeded"}
    assert len(repo.worktrees()) == 1 + 8
