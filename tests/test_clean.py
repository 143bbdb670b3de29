"""`codex-orch clean` and `prune` on real repositories: merged work goes, anything else stays."""

from __future__ import annotations

import signal
from pathlib import Path

from conftest import (
    FakeCodex,
    Repo,
    answer,
    job,
    read_state,
    run_cli,
    run_plan,
    start_cli,
    wait_marked,
    write_plan,
    writer,
)
from lifecycle_helpers import tree_hash


def per_task_run(repo: Repo, fake: FakeCodex, tmp_path: Path) -> dict:
    repo.configure(workspace="per-task")
    tasks = [job("A"), job("B"), job("C"), job("D")]
    rules = [writer(t, f"{t.lower()}.txt") for t in "ABCD"]
    return run_plan(repo, fake, tmp_path, "cl", tasks, rules)


def test_clean_keeps_unmerged_and_dirty_work_and_removes_the_rest(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    state = per_task_run(repo, fake_codex, tmp_path)
    branch = {t: state["tasks"][t]["branch"] for t in "ABCD"}
    worktree = {t: Path(state["tasks"][t]["worktree"]) for t in "ABCD"}
    repo.git("merge", "-q", "--squash", branch["A"])  # A: squash-merged
    repo.git("commit", "-q", "-m", "A, squashed")
    repo.git("merge", "-q", "--no-ff", "-m", "merge D", branch["D"])  # D: merged
    (worktree["C"] / "wip.txt").write_text("work in progress\n")  # C: uncommitted work; B: unmerged

    first = run_cli(repo.path, "clean", "--run-id", "cl", "--keep-branches")
    assert first.code == 0, first.err
    assert f"kept worktree {worktree['C']}: uncommitted changes: wip.txt" in first.out
    assert not worktree["A"].exists() and not worktree["B"].exists() and worktree["C"].exists()
    assert all(repo.git("rev-parse", "--verify", "-q", branch[t], check=False) for t in "ABCD")

    second = run_cli(repo.path, "clean", "--run-id", "cl")
    assert second.code == 0, second.err
    assert set(repo.branches()) == {"main", branch["B"], branch["C"]}
    assert f"removed branch {branch['A']}" in second.out and "its work is in main" in second.out
    assert f"kept branch {branch['B']}: 1 commit(s) not in main" in second.out
    assert f"kept branch {branch['C']}: checked out in {worktree['C']}" in second.out
    assert (worktree["C"] / "wip.txt").read_text() == "work in progress\n"
    assert "clean --force" in second.err
    cleaned = read_state(repo, "cl")["cleaned"]
    assert any(k.startswith(f"branch {branch['B']}") for k in cleaned["kept"])

    forced = run_cli(repo.path, "clean", "--run-id", "cl", "--force")
    assert forced.code == 0, forced.err
    assert repo.branches() == ["main"]
    assert repo.worktrees() == [str(repo.path)]
    assert not (repo.path / ".orchestrator/worktrees/cl").exists()
    assert f"(was {state['tasks']['B']['commit'][:12]})" in forced.out  # the user can still get it back


def test_clean_after_merge_removes_everything_and_rejects_unknown_runs(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    state = run_plan(repo, fake_codex, tmp_path, "m", [job("A")], [writer("A", "a.txt")])
    assert run_cli(repo.path, "merge", "--run-id", "m").code == 0
    result = run_cli(repo.path, "clean", "--run-id", "m")
    assert result.code == 0, result.err
    assert repo.branches() == ["main"] and repo.worktrees() == [str(repo.path)]
    assert f"removed branch {state['branch']}" in result.out and result.err == ""
    unknown = run_cli(repo.path, "clean", "--run-id", "nope")
    assert (
        unknown.code == 2
        and unknown.err
        == f"codex-orch: error: --run-id: no run 'nope' in {repo.path}/.orchestrator/runs. `codex-orch runs` lists them.\n"
    )


def test_clean_removes_the_integration_branch_of_an_earlier_merge(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """The integration branch is named after the run: a later merge with nothing to do (recorded with no
    integration branch) does not make clean forget the one the first merge made."""
    repo.configure(workspace="per-task", integration={"doctor": ["true"], "canary": False})
    state = run_plan(
        repo, fake_codex, tmp_path, "ib", [job("A"), job("B")], [writer("A", "a.txt"), writer("B", "b.txt")]
    )
    assert run_cli(repo.path, "merge", "--run-id", "ib", "--allow-automerge").code == 0
    integration = f"orch/{state['date']}/run-ib/integration"
    assert integration in repo.branches()
    again = run_cli(repo.path, "merge", "--run-id", "ib", "--allow-automerge")
    assert again.code == 0, again.err
    assert read_state(repo, "ib")["merge"]["integration_branch"] is None  # all clean read before

    result = run_cli(repo.path, "clean", "--run-id", "ib")

    assert result.code == 0, result.err
    assert f"removed branch {integration}" in result.out
    assert repo.branches() == ["main"]


def interrupted_run(repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str) -> tuple[Path, Path]:
    """A run stopped by Ctrl-C while its second task's agent works (half its file written).

    The agent's second turn leaves a marker: proof that it was started again."""
    first, second = tmp_path / f"{run_id}-first", tmp_path / f"{run_id}-second"
    slow = [
        [{"write": "b.txt", "content": "half\n"}, {"marker": str(first)}, {"hang": True}],
        [{"marker": str(second)}, {"answer": answer("b done", ["b.txt"])}],
    ]
    fake.script({"rules": [writer("A", "a.txt"), {"match": "job B.", "turns": slow}]})
    plan = write_plan(tmp_path / f"{run_id}.json", [job("A"), job("B", blocked_by=("A",))])
    proc = start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress")
    wait_marked(first, proc=proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert read_state(repo, run_id)["tasks"]["B"]["status"] == "interrupted"
    return first, second


def test_prune_dry_run_starts_nothing_and_changes_nothing(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    _, second = interrupted_run(repo, fake_codex, tmp_path, "old")
    state = read_state(repo, "old")
    orch = repo.path / ".orchestrator"
    before = (tree_hash(orch), repo.git("for-each-ref"), repo.git("worktree", "list"), repo.git("count-objects", "-v"))
    calls = len(fake_codex.calls())

    result = run_cli(repo.path, "prune", "--older-than", "0")
    assert result.code == 0, result.err
    after = (tree_hash(orch), repo.git("for-each-ref"), repo.git("worktree", "list"), repo.git("count-objects", "-v"))
    assert after == before
    assert not second.exists() and len(fake_codex.calls()) == calls  # no agent started
    assert "run old (interrupted" in result.out
    assert "would resume: B (interrupted)" in result.out
    assert f"would keep worktree {state['worktree']}: uncommitted changes: b.txt" in result.out
    assert f"would keep branch {state['branch']}: checked out in {state['worktree']}" in result.out
    assert "dry run: nothing was changed and no agent started" in result.out

    young = run_cli(repo.path, "prune", "--older-than", "1")
    assert young.code == 0 and young.out == "nothing to prune\n"
    assert tree_hash(orch) == before[0]


def test_prune_apply_resumes_then_cleans_and_no_resume_keeps_the_work(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    _, second = interrupted_run(repo, fake_codex, tmp_path, "p1")
    state = read_state(repo, "p1")
    result = run_cli(repo.path, "prune", "--run-id", "p1", "--apply")
    assert result.code == 0, result.err
    assert second.exists()  # the agent went on with its thread
    state = read_state(repo, "p1")
    assert state["tasks"]["B"]["status"] == "succeeded" and state["status"] == "succeeded"
    assert repo.git("show", f"{state['branch']}:b.txt") == "half"
    assert "resumed: B (interrupted) -> run succeeded" in result.out
    assert f"removed worktree {state['worktree']}: no uncommitted changes" in result.out
    assert f"kept branch {state['branch']}: 2 commit(s) not in main" in result.out
    assert not Path(state["worktree"]).exists() and state["branch"] in repo.branches()

    second.unlink()
    interrupted_run(repo, fake_codex, tmp_path, "p2")
    p2 = read_state(repo, "p2")
    kept = run_cli(repo.path, "prune", "--run-id", "p2", "--apply", "--no-resume")
    assert kept.code == 0, kept.err
    assert not second.exists()
    assert "not resumed (--no-resume): B (interrupted)" in kept.out
    assert f"kept worktree {p2['worktree']}: uncommitted changes: b.txt" in kept.out
    assert (Path(p2["worktree"]) / "b.txt").read_text() == "half\n"
    assert read_state(repo, "p2")["tasks"]["B"]["status"] == "interrupted"
