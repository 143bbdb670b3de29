"""Jobs on one branch run one after another in that branch's one worktree (coduck's worktree reuse); jobs
on different branches still run side by side. Real workers, real runs, the fake codex."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import FakeCodex, Repo, answer, git, read_state, wait_for

from codex_orch.git.repo import Git
from codex_orch.git.worktrees import take_up
from codex_orch.layout import Layout
from codex_orch.service.execute import branch_worktree_path
from codex_orch.service.jobs import JobService
from codex_orch.service.store import JobStore, db_path
from codex_orch.service.worker import WorkerPool, WorkerSettings


def _meet(flags: Path, mine: str, other: str) -> str:
    """Shell: leave my flag, wait (30 s at most) for the other job's, then write mine.txt: both jobs
    get there only when they run at the same time."""
    wait = f"for i in $(seq 600); do [ -f {flags}/{other} ] && break; sleep 0.05; done"
    return f"touch {flags}/{mine}; {wait}; [ -f {flags}/{other} ] && echo {mine} > {mine}.txt"


def _job(name: str, shell: str) -> dict[str, Any]:
    return {"match": f"JOB-{name}", "turns": [[{"shell": shell}, {"answer": answer(f"did {name}", [f"{name}.txt"])}]]}


def test_jobs_of_one_branch_share_its_worktree_one_after_another_while_other_branches_run_beside(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    # landing is the default (a branch's jobs run shared in its worktree whatever it says); refs: run as
    # docs/service.md asks of a service that runs jobs at once
    repo.configure(workspace="landing", guardrails={"refs": "run"})
    flags = tmp_path / "flags"
    flags.mkdir()
    fake_codex.script(
        {
            "rules": [
                # a1 and b1 wait for each other: they end only if they run at the same time
                _job("a1", _meet(flags, "a1", "b1") + " && echo ignored > build.log"),
                _job("b1", _meet(flags, "b1", "a1")),
                # a2 finds what a1 committed and what a1's build left (ignored) in the same folder
                _job("a2", "cat a1.txt build.log > a2.txt"),
            ]
        }
    )
    (repo.path / ".gitignore").write_text("build.log\n")
    repo.git("add", ".gitignore")
    repo.git("commit", "-q", "-m", "ignore build output")
    service = JobService(repo.path)
    a1 = service.add({"prompt": "JOB-a1", "branch": "feat/a"})
    a2 = service.add({"prompt": "JOB-a2", "branch": "feat/a"})
    b1 = service.add({"prompt": "JOB-b1", "branch": "feat/b"})
    pool = WorkerPool(repo.path, 2, WorkerSettings(lease=10, stop_grace=5)).start()
    ended = ("done", "failed")
    try:
        wait_for(lambda: all(service.show(j["id"])["status"] in ended for j in (a1, a2, b1)), "the jobs", 90)
    finally:
        pool.stop()
    done = {name: service.show(job["id"]) for name, job in (("a1", a1), ("a2", a2), ("b1", b1))}
    service.close()
    assert [d["status"] for d in done.values()] == ["done"] * 3, done

    # one after another on feat/a, side by side across branches: the queue's own record of claims and ends
    store = JobStore(db_path(repo.path / ".orchestrator"))
    seq = {(e["job"], e["change"]): e["seq"] for e in store.events_after(0) if e["change"] in ("claimed", "finished")}
    store.close()
    assert seq[a1["id"], "finished"] < seq[a2["id"], "claimed"]
    assert seq[a1["id"], "claimed"] < seq[b1["id"], "finished"] and seq[b1["id"], "claimed"] < seq[a1["id"], "finished"]

    # the same worktree, the branch's own; the other branch has its own
    shared = branch_worktree_path(Layout(repo.path), "feat/a")
    worktrees = {name: read_state(repo, d["run_id"])["worktree"] for name, d in done.items()}
    assert worktrees["a1"] == worktrees["a2"] == str(shared)
    assert worktrees["b1"] == str(branch_worktree_path(Layout(repo.path), "feat/b")) != str(shared)
    assert shared.name == "feat%2Fa"
    service = JobService(repo.path)
    listed = service.worktrees()
    service.close()
    assert [(w["job"], w["dirty"]) for w in listed if w["path"] == str(shared)] == [(a2["id"], False)]  # once

    # both commits on feat/a, in order; the second started from the first's tip and saw its ignored files
    subjects = git(repo.path, "log", "--reverse", "--format=%(trailers:key=Orch-Run,valueonly)", "main..feat/a")
    assert subjects.split() == [done["a1"]["run_id"], done["a2"]["run_id"]]
    assert git(repo.path, "show", "feat/a:a2.txt") == "a1\nignored"
    assert git(repo.path, "show", "feat/b:b1.txt") == "b1"


def test_taking_up_a_worktree_saves_what_was_left_uncommitted_and_keeps_ignored_files(repo: Repo) -> None:
    (repo.path / ".gitignore").write_text("cache/\n")
    repo.git("add", ".gitignore")
    repo.git("commit", "-q", "-m", "ignore the cache")
    folder = repo.path.parent / "wt"
    repo.git("worktree", "add", "-q", "-b", "earlier", str(folder))
    (folder / "README.md").write_text("changed, never committed\n")
    (folder / "stray.txt").write_text("left behind\n")
    (folder / "cache").mkdir()
    (folder / "cache" / "kept.bin").write_text("build output\n")
    main = repo.git("rev-parse", "main")

    assert take_up(Git(repo.path), folder, "later", main, "refs/orch/r/taken-up")

    saved = repo.git("rev-parse", "refs/orch/r/taken-up")
    assert repo.git("show", f"{saved}:stray.txt") == "left behind"
    assert repo.git("show", f"{saved}:README.md") == "changed, never committed"
    assert repo.git("-C", str(folder), "symbolic-ref", "HEAD") == "refs/heads/later"
    assert repo.git("-C", str(folder), "status", "--porcelain") == ""
    assert (folder / "cache" / "kept.bin").read_text() == "build output\n"
    assert not take_up(Git(repo.path), folder, "later", main, "refs/orch/r/again")  # already on it: as is
    assert repo.git("for-each-ref", "refs/orch/r/again") == ""


def test_what_a_cancelled_job_left_uncommitted_is_saved_when_the_next_job_of_its_branch_takes_the_worktree_up(
    repo: Repo, fake_codex: FakeCodex
) -> None:
    half_way = [{"write": "half.txt", "content": "half done\n"}, {"hang": True}]
    fake_codex.script({"rules": [_job("c1", "true") | {"turns": [half_way]}, _job("c2", "echo c2 > c2.txt")]})
    worktree = branch_worktree_path(Layout(repo.path), "feat/c")
    service = JobService(repo.path)
    c1 = service.add({"prompt": "JOB-c1", "branch": "feat/c"})
    c2 = service.add({"prompt": "JOB-c2", "branch": "feat/c"})
    pool = WorkerPool(repo.path, 1, WorkerSettings(lease=1.5, stop_grace=5)).start()
    try:
        wait_for((worktree / "half.txt").exists, "the first job half-way", 60)
        service.cancel(c1["id"])
        wait_for(lambda: service.show(c2["id"])["status"] in ("done", "failed"), "the second job", 90)
    finally:
        pool.stop()
    statuses = [service.show(j["id"])["status"] for j in (c1, c2)]
    service.close()
    assert statuses == ["cancelled", "done"]
    saved = f"refs/orch/job-{c2['id']}/taken-up"
    assert git(repo.path, "show", f"{saved}:half.txt") == "half done"  # kept, off the branch
    assert git(repo.path, "ls-tree", "--name-only", "feat/c").split() == ["README.md", "c2.txt"]
    assert not (worktree / "half.txt").exists()
