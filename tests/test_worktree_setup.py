"""worktree.setup and worktree.copy_files: each new worktree is made ready before its first agent, once;
what they leave is never committed; a failing setup spends no agent."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCodex, Repo, answer, read_state, run_cli, write_plan

VENV = [sys.executable, "-m", "venv", "--without-pip", ".venv"]


def task(tid: str, deps: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"id": tid, "role": "implementer", "prompt": f"job {tid}.", "acceptance": "", "blocked_by": list(deps)}


def run(repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str, tasks: list[dict[str, Any]], rules: list[Any]) -> Any:
    fake.script({"rules": rules})
    plan = write_plan(tmp_path / f"{run_id}.json", tasks)
    return run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress")


@pytest.mark.parametrize("mode", ["landing", "per-task"])
def test_each_of_four_worktrees_has_its_venv_and_env_before_its_agent_and_neither_is_committed(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, mode: str
) -> None:
    repo.write(".env", "APP_MODE=test\n")  # untracked in the user's checkout
    repo.configure(
        workspace=mode, limits={"max_workers": 4}, worktree={"setup": [VENV], "copy_files": [".env", "*.nope"]}
    )
    names = ["A", "B", "C", "D"]
    seen = "{ test -x .venv/bin/python && echo venv; cat .env; } > seen_%s.txt"
    rules = [
        {
            "match": f"job {n}.",
            "turns": [[{"shell": seen % n}, {"answer": answer(n, [f"seen_{n}.txt"])}]],
        }
        for n in names
    ]
    result = run(repo, fake_codex, tmp_path, "ready", [task(n) for n in names], rules)
    assert result.code == 0, result.err
    assert "uncommitted" not in result.err  # .env is copied: no warning that the run will not see it
    assert all(f"{n}: setting its worktree up" in result.err for n in names)
    state = read_state(repo, "ready")
    for n in names:
        assert repo.git("show", f"{state['tasks'][n]['branch']}:seen_{n}.txt") == "venv\nAPP_MODE=test"
        setup = state["setups"][state["tasks"][n]["worktree"]]
        assert setup["ok"] and setup["copied"] == [".env"]
        assert "/.venv/" in setup["excluded"] and "/.env" in setup["excluded"]
        assert state["tasks"][n]["files_changed"] == [f"seen_{n}.txt"]  # nothing of the setup's
    assert len(state["setups"]) == 4
    assert repo.git("log", "--all", "--format=%H", "--", ".env", ".venv") == ""  # in no commit
    assert (repo.path / ".env").read_text() == "APP_MODE=test\n"  # the user's own file, untouched
    report = json.loads(run_cli(repo.path, "report", "--run-id", "ready", "--json").out)
    assert all(t["setup"]["ok"] for t in report["tasks"])
    status = run_cli(repo.path, "status", "--run-id", "ready")
    assert "setup ok" in status.out
    cleaned = run_cli(repo.path, "clean", "--run-id", "ready", "--keep-branches")
    assert cleaned.code == 0, cleaned.err
    left = [n for n in names if (repo.path / ".orchestrator/worktrees/ready" / n).exists()]
    assert left == [], cleaned.out  # .venv is no change


def test_a_failing_setup_fails_the_task_before_any_agent_runs(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    broken = [sys.executable, "-c", "import sys; print('no compiler here'); sys.exit(3)"]
    repo.configure(workspace="landing", worktree={"setup": [VENV, broken]})
    result = run(repo, fake_codex, tmp_path, "nosetup", [task("A"), task("B", ("A",))], [])
    assert result.code == 1
    assert fake_codex.calls() == []  # no agent was spent
    state = read_state(repo, "nosetup")
    a = state["tasks"]["A"]
    assert a["status"] == "failed" and a["error"]["kind"] == "setup_failed" and a["attempts"] == []
    assert "exit 3" in a["error"]["message"]
    assert state["tasks"]["B"]["status"] == "blocked"
    log = Path(state["setups"][a["worktree"]]["log"]).read_text()
    assert "no compiler here" in log
    run_cli(repo.path, "report", "--run-id", "nosetup")
    report = (repo.path / ".orchestrator/runs/nosetup/report.md").read_text()
    assert "Error: setup_failed" in report and "- Setup: failed: exit 3" in report


def test_resume_does_not_set_a_worktree_up_again(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    counter = tmp_path / "setups.txt"
    repo.configure(workspace="landing", worktree={"setup": [["sh", "-c", f"echo once >> {counter}"]]})
    result = run(repo, fake_codex, tmp_path, "again", [task("A")], [{"match": "job A.", "turns": [[{"fail": "boom"}]]}])
    assert result.code == 1
    fake_codex.script({"rules": [{"match": "job A.", "turns": [[{"answer": answer("a")}]]}]})
    resumed = run_cli(repo.path, "resume", "--run-id", "again", "--no-progress")
    assert resumed.code == 0, resumed.err
    assert read_state(repo, "again")["tasks"]["A"]["status"] == "succeeded"
    assert counter.read_text() == "once\n"  # set up once, by the first run


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_a_shared_worktree_is_set_up_once_and_its_gate_sees_the_setup(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """In a shared run the gate runs on the task's prospective commit in a scratch folder: the venv and
    the copied .env are linked in from the worktree, and neither is committed."""
    repo.write(".env", "APP_MODE=shared\n")
    gate = {"name": "env", "run": [".venv/bin/python", "-c", "print(open('.env').read())"]}
    repo.configure(worktree={"setup": [VENV], "copy_files": [".env"]}, gates=[gate], limits={"fix_rounds": 0})
    steps = [[{"write": "a.txt", "content": "a\n"}, {"answer": answer("a", ["a.txt"])}]]
    steps_b = [[{"write": "b.txt", "content": "b\n"}, {"answer": answer("b", ["b.txt"])}]]
    rules = [{"match": "job A.", "turns": steps}, {"match": "job B.", "turns": steps_b}]
    result = run(repo, fake_codex, tmp_path, "shared", [task("A"), task("B", ("A",))], rules)
    assert result.code == 0, result.err
    state = read_state(repo, "shared")
    assert list(state["setups"]) == [state["worktree"]]  # one setup, for the one worktree
    for tid, name in (("A", "a.txt"), ("B", "b.txt")):
        rec = state["tasks"][tid]
        assert [g["ok"] for g in rec["gate_runs"]] == [True] and rec["files_changed"] == [name]
        assert "APP_MODE=shared" in Path(rec["gate_runs"][0]["log"]).read_text()
    assert repo.git("log", "--all", "--format=%H", "--", ".env", ".venv") == ""
