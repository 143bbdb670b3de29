"""`codex-orch merge` on real repositories: fast-forwards, automerges, and nothing moved on refusal."""

from __future__ import annotations

from pathlib import Path

from conftest import FakeCodex, Repo, job, read_state, run_cli, run_plan, writer
from lifecycle_helpers import repo_snapshot


def test_fast_forward_of_a_shared_run_updates_the_checkout(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    tasks = [job("A"), job("B", blocked_by=("A",))]
    state = run_plan(repo, fake_codex, tmp_path, "ff", tasks, [writer("A", "a.txt"), writer("B", "b.txt")])
    result = run_cli(repo.path, "merge", "--run-id", "ff")
    assert result.code == 0, result.err
    assert repo.git("rev-parse", "main") == repo.git("rev-parse", state["branch"])
    assert (repo.path / "a.txt").read_text() == "A\n" and (repo.path / "b.txt").read_text() == "B\n"
    assert repo.git("status", "--porcelain", "--untracked-files=no") == ""  # the index followed too
    assert "fast-forward" in result.out and "main: " in result.out
    merged = read_state(repo, "ff")["merge"]
    assert merged["into"] == "main" and merged["new"] == repo.git("rev-parse", "main")
    again = run_cli(repo.path, "merge", "--run-id", "ff")
    assert again.code == 0 and "nothing to do" in again.out


def test_per_task_branches_need_automerge_then_merge_through_an_integration_branch(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(workspace="per-task")
    tasks = [job("A"), job("B"), job("C", blocked_by=("A",))]
    rules = [writer("A", "a.txt"), writer("B", "b.txt"), writer("C", "c.txt")]
    state = run_plan(repo, fake_codex, tmp_path, "am", tasks, rules)
    before = repo_snapshot(repo)

    refused = run_cli(repo.path, "merge", "--run-id", "am")
    assert refused.code == 1
    assert "cannot be fast-forwarded" in refused.err and "--allow-automerge" in refused.err
    assert repo_snapshot(repo) == before

    result = run_cli(repo.path, "merge", "--run-id", "am", "--allow-automerge")
    assert result.code == 0, result.err
    integration = "orch/" + state["date"] + "/run-am/integration"
    assert repo.git("rev-parse", "main") == repo.git("rev-parse", integration)
    assert sorted(repo.git("ls-tree", "--name-only", "main").split()) == ["README.md", "a.txt", "b.txt", "c.txt"]
    parents = repo.git("rev-list", "--parents", "-1", "main").split()[1:]
    assert parents == [state["tasks"]["B"]["commit"], state["tasks"]["C"]["commit"]]  # B fast-forwarded, then C
    assert "Orch-Run: am" in repo.git("log", "-1", "--format=%B", "main")
    assert (repo.path / "c.txt").exists()  # main is checked out here: the files followed
    assert "A (" not in result.out  # A is inside C: merged as part of it, not on its own


def test_a_conflict_changes_nothing_at_all(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.configure(workspace="per-task")
    tasks = [job("A"), job("B")]
    rules = [writer("A", "same.txt", "from A\n"), writer("B", "same.txt", "from B\n")]
    run_plan(repo, fake_codex, tmp_path, "cf", tasks, rules)
    repo.write("notes.txt", "untracked work of the user\n")
    repo.write("staged.txt", "staged\n")
    repo.git("add", "staged.txt")
    repo.git("commit", "-q", "-m", "the user's own commit")  # main moved on since the run started
    repo.write("new-staged.txt", "x\n")
    before = repo_snapshot(repo)

    result = run_cli(repo.path, "merge", "--run-id", "cf", "--allow-automerge")
    assert result.code == 1
    assert result.err.startswith("codex-orch: error: merging ") and "conflict in 1 file(s): same.txt" in result.err
    assert repo_snapshot(repo) == before
    assert "merge" not in read_state(repo, "cf")


def test_a_dirty_checkout_of_the_base_branch_is_refused(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    run_plan(repo, fake_codex, tmp_path, "d", [job("A")], [writer("A", "a.txt")])
    repo.write("README.md", "# changed but not committed\n")
    before = repo_snapshot(repo)
    result = run_cli(repo.path, "merge", "--run-id", "d")
    assert result.code == 2
    assert result.err.startswith("codex-orch: error: main is checked out at ")
    assert "uncommitted changes (README.md)" in result.err and "Commit or stash" in result.err
    assert repo_snapshot(repo) == before


def test_an_untracked_file_in_the_way_undoes_the_integration_branch(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(workspace="per-task")
    run_plan(repo, fake_codex, tmp_path, "u", [job("A")], [writer("A", "a.txt")])
    repo.write("a.txt", "the user's own, untracked\n")
    before = repo_snapshot(repo)
    result = run_cli(repo.path, "merge", "--run-id", "u")
    assert result.code == 2 and "refused" in result.err and "nothing was changed" in result.err
    assert repo_snapshot(repo) == before  # the integration branch made first was removed again


def test_a_base_branch_checked_out_nowhere_moves_by_compare_and_swap(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    state = run_plan(repo, fake_codex, tmp_path, "n", [job("A")], [writer("A", "a.txt")])
    repo.git("checkout", "-q", "-b", "elsewhere")
    result = run_cli(repo.path, "merge", "--run-id", "n")
    assert result.code == 0, result.err
    assert repo.git("rev-parse", "main") == repo.git("rev-parse", state["branch"])
    assert repo.git("symbolic-ref", "--short", "HEAD") == "elsewhere" and not (repo.path / "a.txt").exists()
    assert "codex-orch merge run n" in repo.git("reflog", "-1", "main")


def test_a_run_from_a_detached_head_needs_into(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.git("checkout", "-q", "--detach")
    state = run_plan(repo, fake_codex, tmp_path, "det", [job("A")], [writer("A", "a.txt")])
    assert state["base_branch"] is None
    result = run_cli(repo.path, "merge", "--run-id", "det")
    assert result.code == 2 and "Pass --into BRANCH" in result.err
    missing = run_cli(repo.path, "merge", "--run-id", "det", "--into", "nope")
    assert missing.code == 2 and "no branch 'nope'" in missing.err
    ok = run_cli(repo.path, "merge", "--run-id", "det", "--into", "main")
    assert ok.code == 0, ok.err
    assert repo.git("rev-parse", "main") == repo.git("rev-parse", state["branch"])
    unknown = run_cli(repo.path, "merge", "--run-id", "nope")
    assert unknown.code == 2 and unknown.err.count("\n") == 1 and "no run 'nope'" in unknown.err


def test_resume_after_merge_leaves_the_merged_branch_where_merge_put_it(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(workspace="per-task")
    run_plan(repo, fake_codex, tmp_path, "mr", [job("A"), job("B")], [writer("A", "a.txt"), writer("B", "b.txt")])
    assert run_cli(repo.path, "merge", "--run-id", "mr", "--allow-automerge").code == 0
    merged = repo.git("rev-parse", "main")
    resumed = run_cli(repo.path, "resume", "--run-id", "mr", "--no-progress")
    assert resumed.code == 0, resumed.err
    assert "put back" not in resumed.err  # the run's guard knows merge moved main and made the integration branch
    assert repo.git("rev-parse", "main") == merged
    assert repo.git("status", "--porcelain", "--untracked-files=no") == ""
