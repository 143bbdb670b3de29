"""Crash and resume through the CLI: kill -9 of codex-orch mid-task, then `resume` finishes the plan."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    FakeCodex,
    Repo,
    alive,
    answer,
    marked,
    read_state,
    run_cli,
    start_cli,
    wait_marked,
    wait_recorded,
    write_plan,
)

PLAN = [
    {"role": "implementer", "prompt": "create a.txt", "acceptance": "a.txt exists", "blocked_by": []},
    {"role": "implementer", "prompt": "create b.txt", "acceptance": "b.txt exists", "blocked_by": ["T0001"]},
    {"role": "implementer", "prompt": "create c.txt", "acceptance": "c.txt exists", "blocked_by": ["T0002"]},
]


def script(marker: Path, children: Path | None = None) -> dict[str, Any]:
    """T0002 writes half of its work, leaves a marker and hangs in its first turn; it answers in its second."""

    def quick(name: str) -> dict[str, Any]:
        return {
            "match": f"create {name}.txt",
            "turns": [[{"write": f"{name}.txt", "content": f"{name}\n"}, {"answer": answer(name, [f"{name}.txt"])}]],
        }

    first_turn: list[dict[str, Any]] = [{"write": "b.txt", "content": "half of b\n"}]
    if children is not None:
        first_turn.append({"spawn_child": True})
    first_turn += [{"marker": str(marker)}, {"hang": True}]
    slow = {
        "match": "create b.txt",
        "turns": [first_turn, [{"append": "b.txt", "content": "rest of b\n"}, {"answer": answer("b", ["b.txt"])}]],
    }
    return {"rules": [quick("a"), slow, quick("c")]}


def start_run(repo: Repo, plan: Path, run_id: str) -> subprocess.Popen[bytes]:
    return start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress")


def kill_mid_task(repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str) -> tuple[int, list[int]]:
    """Run the plan, kill -9 codex-orch while T0002's agent works; the agent's pid and its children's."""
    marker = tmp_path / "marker"
    children = tmp_path / "children.txt"
    repo.configure(codex=fake.config(FAKE_CODEX_CHILD_PIDS=str(children)))
    fake.script(script(marker, children))
    plan = write_plan(tmp_path / "plan.json", PLAN)
    proc = start_run(repo, plan, run_id)
    try:
        wait_marked(marker, proc=proc)  # the agent of T0002 is at work
        wait_recorded(repo, run_id, "attempt.thread", "T0002", proc=proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    agent = marked(marker)[0]
    orphans = [agent, *marked(children)]
    assert all(alive(pid) for pid in orphans)  # kill -9 gives codex-orch no chance to stop its agent
    return agent, orphans


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-task"])
def test_kill_9_mid_task_then_resume_continues_the_thread(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, shared: bool
) -> None:
    repo.configure(workspace="shared" if shared else "per-task")
    _, orphans = kill_mid_task(repo, fake_codex, tmp_path, "k9")
    state = read_state(repo, "k9")
    assert [state["tasks"][t]["status"] for t in ("T0001", "T0002", "T0003")] == ["succeeded", "running", "pending"]
    thread = state["tasks"]["T0002"]["thread_id"]
    worktree = Path(state["tasks"]["T0002"]["worktree"])
    assert (worktree / "b.txt").read_text() == "half of b\n"

    result = run_cli(repo.path, "resume", "--run-id", "k9")
    assert result.code == 0, result.err + result.out
    assert not [pid for pid in orphans if alive(pid)]  # the orphaned agent's whole group is gone

    state = read_state(repo, "k9")
    assert state["status"] == "succeeded"
    tasks = state["tasks"]
    assert [tasks[t]["status"] for t in ("T0001", "T0002", "T0003")] == ["succeeded"] * 3
    # T0002 went on on its recorded thread, told about the partial work it left in the worktree
    calls = fake_codex.calls()
    b_calls = [c for c in calls if c["thread_id"] == thread]
    assert [c["resume"] for c in b_calls] == [False, True]
    assert "interrupted" in b_calls[1]["prompt"] and "b.txt" in b_calls[1]["prompt"]
    assert [a["resumed_thread"] for a in tasks["T0002"]["attempts"]] == [None, thread]
    # T0001 never reran; every task has exactly one commit
    assert sum("create a.txt" in c["prompt"] for c in calls) == 1
    final = tasks["T0003"]["branch"]
    log = repo.git("log", "--format=%(trailers:key=Orch-Task,valueonly)", f"main..{final}").split()
    assert sorted(log) == ["T0001", "T0002", "T0003"]
    assert repo.git("show", f"{final}:b.txt") == "half of b\nrest of b"
    assert repo.git("show", f"{tasks['T0002']['commit']}:b.txt") == "half of b\nrest of b"
    # nothing left uncommitted in the worktrees
    for tid in ("T0001", "T0002", "T0003"):
        assert repo.git("-C", tasks[tid]["worktree"], "status", "--porcelain") == ""


def test_resume_of_an_unknown_or_live_run_is_refused(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    missing = run_cli(repo.path, "resume", "--run-id", "nope")
    assert missing.code == 2 and missing.err.startswith("codex-orch: error: --run-id: no run 'nope'")
    marker = tmp_path / "marker"
    fake_codex.script({"default": [[{"marker": str(marker)}, {"hang": True}]]})
    proc = start_run(repo, write_plan(tmp_path / "plan.json", PLAN[:1]), "live")
    try:
        wait_marked(marker, proc=proc)
        busy = run_cli(repo.path, "resume", "--run-id", "live")
        assert busy.code == 2 and "being driven by another codex-orch process" in busy.err
    finally:
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


def test_a_recorded_pid_now_used_by_another_process_is_not_killed() -> None:
    from codex_orch.proc.groups import is_our_orphan, reap_group

    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        now = time.time()
        assert is_our_orphan(proc.pid, now)
        # the same pid, recorded for an attempt an hour ago: a reused id, someone else's process
        assert not is_our_orphan(proc.pid, now - 3600)
    finally:
        reap_group(proc.pid)
        proc.wait()
    assert not is_our_orphan(proc.pid, now)

    # a group whose leader died: while a member lives its id is not reused, so it is still ours
    leader = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 60 & echo $!"], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    leader.stdout.close()
    leader.wait()
    try:
        assert alive(child) and is_our_orphan(leader.pid, time.time() - 3600)
    finally:
        reap_group(leader.pid)
    assert not alive(child)


def test_resume_reruns_failed_and_blocked_tasks_in_dependency_order(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    def quick(task_id: str) -> dict[str, Any]:
        name = task_id.lower()
        return {
            "match": f"job {task_id}.",
            "turns": [[{"write": f"{name}.txt", "content": name}, {"answer": answer(task_id, [f"{name}.txt"])}]],
        }

    tasks = [
        {"id": t, "role": "implementer", "prompt": f"job {t}.", "acceptance": "", "blocked_by": deps}
        for t, deps in (("A", []), ("B", ["A"]), ("C", []))
    ]
    fake_codex.script({"rules": [{"match": "job A.", "turns": [[{"fail": "boom"}]]}, quick("B"), quick("C")]})
    plan = write_plan(tmp_path / "plan.json", tasks)
    assert run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "dag").code == 1
    state = read_state(repo, "dag")
    assert {t: state["tasks"][t]["status"] for t in "ABC"} == {"A": "failed", "B": "blocked", "C": "succeeded"}

    fake_codex.script({"rules": [quick("A"), quick("B"), quick("C")]})  # whatever broke A is fixed
    result = run_cli(repo.path, "resume", "--run-id", "dag")
    assert result.code == 0, result.err
    state = read_state(repo, "dag")
    assert {state["tasks"][t]["status"] for t in "ABC"} == {"succeeded"}
    prompts = [c["prompt"] for c in fake_codex.calls()]
    assert sum("job C." in p for p in prompts) == 1  # succeeded: never again
    order = [next(t for t in "ABC" if f"job {t}." in p) for p in prompts]
    assert order == ["A", "C", "A", "B"]
    log = repo.git("log", "--format=%(trailers:key=Orch-Task,valueonly)", f"main..{state['branch']}").split()
    assert log == ["B", "A", "C"]  # newest first: C from the first run, then A, then B on top of it


def test_interrupted_before_its_thread_is_known_the_agent_is_told_of_leftovers(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A crash can come after the agent changed files but before codex reported its thread."""
    from codex_orch.layout import Layout
    from codex_orch.state import RunStore

    fake_codex.script({"default": [[{"answer": answer("finished", ["half.txt"])}]]})
    plan = write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": "do it", "acceptance": ""}])
    # Set the scene as a crash leaves it: the run exists, the task is running with an attempt and no thread.
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "early")
    assert result.code == 0
    run_dir = Layout(repo.path).run_dir("early")
    with RunStore.open(run_dir) as store:
        store.record(
            "task.added",
            task={"id": "X", "role": "implementer", "prompt": "second job", "acceptance": "", "blocked_by": []},
        )
        store.record("task.status", task="X", status="running")
        store.record("attempt.started", task="X", n=1, resume_thread=None)
        store.record("run.status", status="running")
    worktree = Path(read_state(repo, "early")["worktree"])
    (worktree / "half.txt").write_text("half done\n")
    resumed = run_cli(repo.path, "resume", "--run-id", "early")
    assert resumed.code == 0, resumed.err
    last = fake_codex.calls()[-1]
    assert not last["resume"] and "second job" in last["prompt"]
    assert "An earlier attempt at this task was interrupted" in last["prompt"] and "half.txt" in last["prompt"]
    state = read_state(repo, "early")
    assert state["tasks"]["X"]["status"] == "succeeded"
    assert repo.git("show", f"{state['branch']}:half.txt") == "half done"  # kept and committed, as X's work
