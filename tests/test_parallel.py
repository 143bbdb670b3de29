"""The scheduler with real agents held at gates: tasks run side by side exactly when the rules allow it.

Each agent marks that it started and waits at its gate; the test sees which agents run at once, checks
that the others wait, and releases them one step at a time. Order comes from the journal, never from
the clock."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    FakeCodex,
    Repo,
    alive,
    answer,
    git,
    job,
    journal,
    marked,
    read_state,
    release,
    run_cli,
    start_cli,
    wait_for,
    wait_marked,
    write_plan,
)

from codex_orch.engine.scheduler import ConcurrencyRules, globs_overlap
from codex_orch.git.repo import Git
from codex_orch.git.worktrees import add_worktree, remove_worktree
from codex_orch.plan import Task


class Held:
    """A run whose every agent is held: task X's agent marks `X.started`, waits for `X.go`, then writes
    its file (if its task declares paths) and answers."""

    def __init__(self, repo: Repo, tmp_path: Path, run_id: str, proc: subprocess.Popen[bytes]) -> None:
        self.repo, self.gates, self.run_id, self.proc = repo, tmp_path / "gates", run_id, proc

    def started(self) -> set[str]:
        return {p.name.removesuffix(".started") for p in self.gates.glob("*.started") if marked(p)}

    def wait_started(self, *names: str) -> None:
        for name in names:
            wait_marked(self.gates / f"{name}.started", proc=self.proc)

    def release(self, *names: str) -> None:
        for name in names:
            release(self.gates / f"{name}.go")

    def waiting(self) -> set[str]:
        """Tasks not started yet: recorded pending, with no attempt (the scheduler holds them back)."""
        tasks = read_state(self.repo, self.run_id)["tasks"]
        return {tid for tid, t in tasks.items() if t["status"] == "pending" and not t["attempts"]}

    def order(self) -> list[tuple[str, str]]:
        """("started" | "finished", task) for each attempt, in journal order."""
        kinds = {"attempt.started": "started", "attempt.finished": "finished"}
        return [(kinds[r["type"]], r["task"]) for r in journal(self.repo, self.run_id) if r["type"] in kinds]


@contextmanager
def held_run(
    repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str, tasks: list[dict[str, Any]], workers: int = 4
) -> Iterator[Held]:
    """Start the run with every agent held; on leaving, release them all and expect the run to succeed."""
    gates = tmp_path / "gates"
    gates.mkdir()
    rules = []
    for task in tasks:
        name = task["id"]
        steps: list[dict[str, Any]] = [{"marker": str(gates / f"{name}.started")}, {"gate": str(gates / f"{name}.go")}]
        files = [p.replace("/**", "/f.txt") for p in task.get("paths", [])[:1]]
        steps += [{"write": f, "content": f"{name}\n"} for f in files]
        rules.append({"match": f"job {name}.", "turns": [[*steps, {"answer": answer(name, files)}]]})
    fake.script({"rules": rules})
    plan = write_plan(tmp_path / f"{run_id}.json", tasks)
    with open(tmp_path / f"{run_id}.err", "wb") as err:
        proc = start_cli(
            repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--max-workers", str(workers), stderr=err
        )
    run = Held(repo, tmp_path, run_id, proc)
    try:
        yield run
        run.release(*(t["id"] for t in tasks))
        assert proc.wait(timeout=120) == 0, (tmp_path / f"{run_id}.err").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_landing_run_makes_the_next_worktree_while_agents_hold_every_slot(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """engine/slots.py: `max_workers` agents at once; one more task per slot is admitted, makes its worktree
    and waits for a slot; it starts its agent only when one is given back."""
    repo.configure(workspace="landing")
    with held_run(repo, fake_codex, tmp_path, "slots", [job("A"), job("B"), job("C")], workers=2) as run:
        wait_for(lambda: len(run.started()) == 2, "two agents at work")
        first, second = sorted(run.started())
        (third,) = {"A", "B", "C"} - {first, second}
        wait_for(lambda: read_state(repo, "slots")["tasks"][third]["worktree"], "the third worktree made ahead")
        for _ in range(10):  # both slots are held: the third task stays pending, its agent not started
            assert third in run.waiting() and third not in run.started()
            threading.Event().wait(0.05)
        run.release(first)
        run.wait_started(third)  # the first agent ended and gave its slot back
        assert second not in {tid for kind, tid in run.order() if kind == "finished"}
    state = read_state(repo, "slots")
    assert [t["status"] for t in state["tasks"].values()] == ["succeeded"] * 3


def test_independent_tasks_with_disjoint_paths_overlap(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    tasks = [job("A", paths=["a/**"]), job("B", paths=["b/**"]), job("C", paths=["c/**"])]
    with held_run(repo, fake_codex, tmp_path, "p1", tasks) as run:
        run.wait_started("A", "B", "C")  # all three agents at work at once
    state = read_state(repo, "p1")
    for tid in "ABC":  # each commit holds only its own task's files
        files = state["tasks"][tid]["files_changed"]
        assert files == [f"{tid.lower()}/f.txt"], files


def test_sixteen_tasks_commit_in_one_worktree_eight_at_a_time(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """Eight agents finish together, eight commits queue in one worktree while the next eight start:
    every task succeeds and each commit holds exactly its own task's file. (The lock-file race such a
    run once met is pinned deterministically in test_workspace.py; this checks the outcome whole.)"""
    names = [f"J{i:02d}" for i in range(16)]
    with held_run(repo, fake_codex, tmp_path, "m16", [job(n, paths=[f"{n.lower()}/**"]) for n in names], 8) as run:
        run.wait_started(*names[:8])
        assert run.started() == set(names[:8]) and run.waiting() == set(names[8:])  # eight at a time
        run.release(*names[:8])  # eight commits queue at once
        run.wait_started(*names[8:])
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
    with held_run(repo, fake_codex, tmp_path, "p2", tasks) as run:
        run.wait_started("A", "C")
        assert run.waiting() == {"B"}  # B waits while A holds src/**, though a worker is free
        run.release("A")
        run.wait_started("B")  # once A is done
        assert run.started() == {"A", "B", "C"}
    order = run.order()
    assert order.index(("started", "B")) > order.index(("finished", "A"))
    assert order.index(("started", "C")) < order.index(("finished", "A"))  # C ran beside A


def test_a_task_without_paths_runs_alone_in_a_shared_worktree(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    tasks = [job("A", paths=["a/**"]), job("B"), job("C", paths=["c/**"])]
    with held_run(repo, fake_codex, tmp_path, "p3", tasks) as run:
        run.wait_started("A", "C")
        assert run.waiting() == {"B"}
        run.release("A", "C")
        run.wait_started("B")
    order = run.order()
    assert order.index(("started", "B")) > max(order.index(("finished", "A")), order.index(("finished", "C")))
    assert order[-2:] == [("started", "B"), ("finished", "B")]  # nothing beside B


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
    with held_run(repo, fake_codex, tmp_path, "p4", tasks, workers=6) as run:
        run.wait_started("A", "E", "F")  # shared reads of cache run together
        assert run.waiting() == {"B", "C", "D"}  # db is written by A; D waits for A
        run.release("A")
        run.wait_started("B", "D")
        assert run.waiting() == {"C"}  # C reads db, which B now writes
        run.release("B")
        run.wait_started("C")
    order = run.order()
    for later, earlier in (("B", "A"), ("C", "A"), ("C", "B"), ("D", "A")):
        assert order.index(("started", later)) > order.index(("finished", earlier)), (later, earlier)


def test_per_task_worktrees_let_tasks_without_paths_overlap(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.configure(workspace="per-task")
    with held_run(repo, fake_codex, tmp_path, "p5", [job("A"), job("B")]) as run:
        run.wait_started("A", "B")


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
        {"rules": [{"match": "job A.", "turns": [[{"fail": "boom"}]]}], "default": [[{"answer": answer()}]]}
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
    """A fails once S's agent is at work (a handshake between the two agents); S is held for good, so only
    --fail-fast can end it before its limits do: interrupted, stopped by SIGINT, its dependent cancelled."""
    s_started = tmp_path / "S.started"
    a_turn = [{"gate": str(s_started)}, {"fail": "boom"}]
    s_turn = [{"marker": str(s_started)}, {"gate": str(tmp_path / "never")}]
    fake_codex.script({"rules": [{"match": "job A.", "turns": [a_turn]}, {"match": "job S.", "turns": [s_turn]}]})
    repo.configure(workspace="per-task")
    plan = write_plan(tmp_path / "plan.json", [job("A"), job("S"), job("L1", blocked_by=["S"])])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "ff", "--max-workers", "2", "--fail-fast")
    assert result.code == 1
    state = read_state(repo, "ff")
    assert state["tasks"]["A"]["status"] == "failed"
    assert state["tasks"]["S"]["status"] == "interrupted"
    assert state["tasks"]["S"]["attempts"][0]["stop_steps"][0].startswith("sent SIGINT to process group")
    assert state["tasks"]["S"]["attempts"][0]["failure"] == "interrupted"
    assert state["tasks"]["L1"]["status"] == "cancelled"
    assert state["status"] == "failed"


def test_ctrl_c_stops_agents_records_interrupted_and_resume_finishes(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    children = tmp_path / "children.txt"
    repo.configure(codex=fake_codex.config(FAKE_CODEX_CHILD_PIDS=str(children)), workspace="per-task")
    slow = [[{"spawn_child": True}, {"hang": True}], [{"answer": answer("resumed")}]]
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
    wait_for(lambda: len(fake_codex.calls()) >= 2 and len(marked(children)) >= 2, "A's and B's agents and children")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    agents = [call["pid"] for call in fake_codex.calls()] + marked(children)
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
