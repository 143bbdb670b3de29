"""The scheduler with real sleeping agents: tasks overlap exactly when the rules allow it."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCodex, Repo, alive, answer, git, read_state, run_cli, start_cli, write_plan

from codex_orch.engine.scheduler import ConcurrencyRules, globs_overlap
from codex_orch.git.repo import Git
from codex_orch.git.worktrees import add_worktree, remove_worktree
from codex_orch.plan import Task


def sleeper(name: str, seconds: float = 1.0, write: str | None = None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"sleep": seconds}]
    if write:
        steps.append({"write": write, "content": f"{name}\n"})
    steps.append({"answer": answer(name, [write] if write else [])})
    return {"match": f"job {name}.", "turns": [steps]}


def job(name: str, **extra: Any) -> dict[str, Any]:
    return {"id": name, "role": "implementer", "prompt": f"job {name}.", "acceptance": "", "blocked_by": [], **extra}


def intervals(state: dict[str, Any]) -> dict[str, tuple[float, float]]:
    out = {}
    for tid, task in state["tasks"].items():
        attempt = task["attempts"][0]
        out[tid] = (
            datetime.fromisoformat(attempt["started_at"]).timestamp(),
            datetime.fromisoformat(attempt["ended_at"]).timestamp(),
        )
    return out


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def run_plan(
    repo: Repo, fake: FakeCodex, tmp_path: Path, tasks: list[dict[str, Any]], run_id: str, *args: str
) -> dict[str, Any]:
    fake.script(
        {
            "rules": [
                sleeper(t["id"], 1.5, t.get("paths", [None])[0] and t["paths"][0].replace("/**", "/f.txt"))
                for t in tasks
            ]
        }
    )
    plan = write_plan(tmp_path / f"{run_id}.json", tasks)
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--max-workers", "4", *args)
    assert result.code == 0, result.err
    return read_state(repo, run_id)


def test_independent_tasks_with_disjoint_paths_overlap(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    tasks = [job("A", paths=["a/**"]), job("B", paths=["b/**"]), job("C", paths=["c/**"])]
    state = run_plan(repo, fake_codex, tmp_path, tasks, "p1")
    spans = intervals(state)
    assert overlap(spans["A"], spans["B"]) and overlap(spans["B"], spans["C"]) and overlap(spans["A"], spans["C"])
    # each commit holds only its own task's files
    for tid in "ABC":
        files = state["tasks"][tid]["files_changed"]
        assert files == [f"{tid.lower()}/f.txt"], files


def test_sixteen_tasks_commit_in_one_worktree_eight_at_a_time(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """Eight agents finish together, eight commits queue in one worktree while the next eight start:
    every task succeeds and each commit holds exactly its own task's file. (The lock-file race such a
    run once met is pinned deterministically in test_workspace.py; this checks the outcome whole.)"""
    names = [f"J{i:02d}" for i in range(16)]
    fake_codex.script({"rules": [sleeper(n, 0.5, f"{n.lower()}/f.txt") for n in names]})
    plan = write_plan(tmp_path / "many.json", [job(n, paths=[f"{n.lower()}/**"]) for n in names])

    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "m16", "--max-workers", "8")

    assert result.code == 0, result.err
    state = read_state(repo, "m16")
    assert {t["status"] for t in state["tasks"].values()} == {"succeeded"}
    assert len(repo.git("rev-list", f"main..{state['branch']}").split()) == 16
    for n in names:
        sha = state["tasks"][n]["commit"]
        changed = repo.git("show", "--name-only", "--format=", sha).split()
        assert changed == [f"{n.lower()}/f.txt"], (n, changed)
    assert git(Path(state["worktree"]), "status", "--porcelain") == ""  # nothing left behind uncommitted


def test_overlapping_paths_do_not_run_together(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    tasks = [job("A", paths=["src/**"]), job("B", paths=["src/b/**"]), job("C", paths=["docs/**"])]
    spans = intervals(run_plan(repo, fake_codex, tmp_path, tasks, "p2"))
    assert not overlap(spans["A"], spans["B"])
    assert overlap(spans["A"], spans["C"]) or overlap(spans["B"], spans["C"])


def test_a_task_without_paths_runs_alone_in_a_shared_worktree(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    tasks = [job("A", paths=["a/**"]), job("B"), job("C", paths=["c/**"])]
    spans = intervals(run_plan(repo, fake_codex, tmp_path, tasks, "p3"))
    assert not overlap(spans["B"], spans["A"]) and not overlap(spans["B"], spans["C"])


def test_dependencies_and_write_locks_serialize(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.configure(workspace="per-task")
    tasks = [
        job("A", locks={"writes": ["db"]}),
        job("B", locks={"writes": ["db"]}),
        job("C", locks={"reads": ["db"]}),
        job("D", blocked_by=["A"]),
        job("E", locks={"reads": ["cache"]}),
        job("F", locks={"reads": ["cache"]}),
    ]
    spans = intervals(run_plan(repo, fake_codex, tmp_path, tasks, "p4"))
    assert not overlap(spans["A"], spans["B"]) and not overlap(spans["A"], spans["C"])
    assert not overlap(spans["B"], spans["C"])
    assert spans["D"][0] >= spans["A"][1]
    assert overlap(spans["E"], spans["F"])  # shared reads


def test_per_task_worktrees_let_tasks_without_paths_overlap(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.configure(workspace="per-task")
    spans = intervals(run_plan(repo, fake_codex, tmp_path, [job("A"), job("B")], "p5"))
    assert overlap(spans["A"], spans["B"])


def test_changes_outside_declared_paths_are_set_aside(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script(
        {
            "default": [
                [
                    {"write": "mine/ok.txt", "content": "ok"},
                    {"write": "stray.txt", "content": "x"},
                    {"answer": answer("wrote two files")},
                ]
            ]
        }
    )
    plan = write_plan(tmp_path / "plan.json", [job("A", paths=["mine/**"]), job("B", blocked_by=["A"])])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "v1")
    assert result.code == 0, result.err
    assert "changed files outside its paths" in result.err
    state = read_state(repo, "v1")
    assert state["tasks"]["A"]["violations"] == ["stray.txt"]
    assert state["tasks"]["A"]["files_changed"] == ["mine/ok.txt"]
    assert repo.git("show", "refs/orch/v1/violations/A:stray.txt") == "x"  # preserved, not lost
    # B (no paths, alone) wrote its own stray.txt: it is B's, not A's leftover
    assert repo.git("log", "--format=%s", "-1", state["branch"], "--", "stray.txt").startswith("B (")


def test_on_violation_fail(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.configure(concurrency={"on_violation": "fail"})
    fake_codex.script({"default": [[{"write": "stray.txt", "content": "x"}, {"answer": answer("oops")}]]})
    plan = write_plan(tmp_path / "plan.json", [job("A", paths=["mine/**"])])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "v2")
    assert result.code == 1
    assert read_state(repo, "v2")["tasks"]["A"]["error"]["kind"] == "paths_violation"


def test_failure_blocks_dependents_but_independent_work_goes_on(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script(
        {
            "rules": [{"match": "job A.", "turns": [[{"fail": "boom"}]]}, sleeper("C", 0.2)],
            "default": [[{"answer": answer("ok")}]],
        }
    )
    repo.configure(workspace="per-task")
    plan = write_plan(
        tmp_path / "plan.json", [job("A"), job("B", blocked_by=["A"]), job("X", blocked_by=["B"]), job("C")]
    )
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "f1", "--max-workers", "2")
    assert result.code == 1
    state = read_state(repo, "f1")
    statuses = {t: state["tasks"][t]["status"] for t in "ABXC"}
    assert statuses == {"A": "failed", "B": "blocked", "X": "blocked", "C": "succeeded"}
    assert state["status"] == "partial"


def test_fail_fast_stops_everything(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script(
        {
            "rules": [{"match": "job A.", "turns": [[{"fail": "boom"}]]}, sleeper("S", 30)],
            "default": [[{"answer": answer("ok")}]],
        }
    )
    repo.configure(workspace="per-task")
    plan = write_plan(tmp_path / "plan.json", [job("A"), job("S"), job("L1", blocked_by=["S"])])
    start = time.monotonic()
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "ff", "--max-workers", "2", "--fail-fast")
    assert time.monotonic() - start < 20
    assert result.code == 1
    state = read_state(repo, "ff")
    assert state["tasks"]["A"]["status"] == "failed"
    assert state["tasks"]["S"]["status"] == "interrupted"
    assert state["tasks"]["L1"]["status"] == "cancelled"
    assert state["status"] == "failed"


def test_ctrl_c_stops_agents_records_interrupted_and_resume_finishes(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    children = tmp_path / "children.txt"
    repo.configure(codex=fake_codex.config(FAKE_CODEX_CHILD_PIDS=str(children)), workspace="per-task")
    slow = [[{"spawn_child": True}, {"sleep": 60}], [{"answer": answer("resumed")}]]
    fake_codex.script({"rules": [{"match": "job C.", "turns": [[{"answer": answer("C")}]]}], "default": slow})
    plan = write_plan(tmp_path / "plan.json", [job("A"), job("B"), job("C", blocked_by=["A"])])
    proc = start_cli(
        repo.path,
        "run",
        "--plan-file",
        str(plan),
        "--run-id",
        "cc",
        "--max-workers",
        "2",
        "--no-progress",
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while len(fake_codex.calls()) < 2 or not children.exists() or len(children.read_text().split()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    agents = [call["pid"] for call in fake_codex.calls()] + [int(p) for p in children.read_text().split()]
    assert not [pid for pid in agents if alive(pid)]
    state = read_state(repo, "cc")
    assert state["status"] == "interrupted"
    assert {state["tasks"][t]["status"] for t in "AB"} == {"interrupted"}
    assert state["tasks"]["C"]["status"] == "pending"

    result = run_cli(repo.path, "resume", "--run-id", "cc", "--max-workers", "2")
    assert result.code == 0, result.err
    state = read_state(repo, "cc")
    assert {t["status"] for t in state["tasks"].values()} == {"succeeded"}
    resumed = [c for c in fake_codex.calls() if c["resume"]]
    assert {c["thread_id"] for c in resumed} == {state["tasks"]["A"]["thread_id"], state["tasks"]["B"]["thread_id"]}


def test_eight_worktrees_created_in_parallel_twenty_times(repo: Repo) -> None:
    git = Git(repo.path)
    errors: list[BaseException] = []
    for round_ in range(20):
        paths = [repo.path.parent / "wt" / f"r{round_}-{i}" for i in range(8)]

        def add(path: Path, i: int, round_: int = round_) -> None:
            try:
                add_worktree(git, path, f"wt/r{round_}-{i}", "HEAD")
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=add, args=(p, i)) for i, p in enumerate(paths)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert all((p / ".git").exists() for p in paths)
        removers = [threading.Thread(target=remove_worktree, args=(git, p)) for p in paths]
        for t in removers:
            t.start()
        for t in removers:
            t.join()
    assert len(repo.worktrees()) == 1


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("src/**", "src/b/**", True),
        ("src/a/**", "src/b/**", False),
        ("a.txt", "a.txt", True),
        ("a.txt", "b.txt", False),
        ("docs", "docs/x.md", True),
        ("*.md", "src/x.py", True),
    ],
)
def test_glob_overlap_is_conservative(a: str, b: str, expected: bool) -> None:
    assert globs_overlap(a, b) is expected


def test_concurrency_allow_and_ignore() -> None:
    a = Task(id="A", role="implementer", prompt="", acceptance="", paths=("CHANGELOG.md", "src/a/**"))
    b = Task(id="B", role="implementer", prompt="", acceptance="", paths=("CHANGELOG.md", "src/b/**"))
    assert ConcurrencyRules("shared").conflict(a, [b]) is not None
    assert ConcurrencyRules("shared", allow=("CHANGELOG.md",)).conflict(a, [b]) is None
    assert ConcurrencyRules("shared", ignore=("CHANGELOG.md",)).conflict(a, [b]) is None
    assert ConcurrencyRules("per-task").conflict(a, [b]) is None
