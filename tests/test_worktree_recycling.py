"""A landed task's worktree is made into the next task's (Workspaces.retire, worktrees.recycle): the new
worktree must hold exactly what a new one would, and a spare that anything still uses is never reused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import Repo

from codex_orch.git.repo import Git
from codex_orch.git.workspace import Workspaces


def made_from(repo: Repo, worktree: Path) -> str:
    """The name of the admin dir that serves `worktree` (git names it after the folder it was made for)."""
    for admin in (repo.path / ".git" / "worktrees").iterdir():
        if (admin / "gitdir").read_text().strip() == str(worktree / ".git"):
            return admin.name
    raise AssertionError(f"{worktree} is not registered")


def worktree_paths(repo: Repo) -> list[str]:
    return [
        line[9:] for line in repo.git("worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")
    ]


def setup_repo(repo: Repo) -> tuple[Workspaces, str]:
    repo.write(".gitignore", "build/\n")
    repo.write("src/a.py", "a = 1\n")
    repo.write("src/keep.py", "keep = 1\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "files")
    git = Git(repo.path)
    return Workspaces(git, Workspaces.identity_for(git)), git.head()


def test_a_worktree_made_from_a_spare_holds_only_its_new_start(repo: Repo) -> None:
    workspaces, start = setup_repo(repo)
    first = repo.path.parent / "wt" / "T1"
    workspaces.ensure(first, "orch/t1", start)
    # what a task and its agent leave behind: a commit, and files git does not keep
    (first / "src" / "a.py").write_text("a = 2\n")
    (first / "src" / "new.py").write_text("new = 1\n")
    t1_commit = workspaces.commit(first, "T1: work\n", None, None).commit
    (first / "build").mkdir()
    (first / "build" / "planted.sh").write_text("echo planted\n")  # ignored: never committed
    (first / "scratch.txt").write_text("left over\n")  # untracked, after the commit
    (first / "outside").symlink_to("/etc")
    (first / "src" / "keep.py").unlink()  # a tracked file deleted after the commit
    workspaces.retire(first)

    # the run branch moved on meanwhile (another task landed)
    repo.write("src/b.py", "b = 1\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "landed")
    tip = Git(repo.path).head()
    second = repo.path.parent / "wt" / "T2"
    workspaces.ensure(second, "orch/t2", tip)

    assert made_from(repo, second) == "T1"  # it was recycled, not made anew
    assert not first.exists()
    wgit = Git(second)
    assert wgit.head() == tip and wgit.run("rev-parse", "--abbrev-ref", "HEAD") == "orch/t2"
    assert wgit.status(ignored=True) == []  # nothing untracked, nothing ignored, nothing changed
    files = sorted(str(p.relative_to(second)) for p in second.rglob("*") if ".git" not in p.parts)
    assert files == [".gitignore", "README.md", "src", "src/a.py", "src/b.py", "src/keep.py"]
    assert (second / "src" / "a.py").read_text() == "a = 1\n"
    assert repo.git("rev-parse", "orch/t1") == t1_commit  # the landed task's own branch is kept
    assert worktree_paths(repo) == [str(repo.path), str(second)]


def test_a_spare_that_a_process_still_works_in_is_removed_not_reused(repo: Repo) -> None:
    """What an agent left running in its worktree must not find itself in the next task's."""
    workspaces, start = setup_repo(repo)
    first = repo.path.parent / "wt" / "T1"
    workspaces.ensure(first, "orch/t1", start)
    workspaces.retire(first)
    survivor = subprocess.Popen(["sleep", "120"], cwd=first)
    try:
        second = repo.path.parent / "wt" / "T2"
        workspaces.ensure(second, "orch/t2", start)

        assert made_from(repo, second) == "T2"  # a new worktree
        assert not os.readlink(f"/proc/{survivor.pid}/cwd").startswith(str(second))
        assert worktree_paths(repo) == [str(repo.path), str(second)]
        assert Git(second).status(ignored=True) == [] and Git(second).head() == start
    finally:
        survivor.kill()
        survivor.wait()


def test_a_spare_whose_git_file_the_agent_rewrote_gives_way_to_a_new_worktree(repo: Repo) -> None:
    workspaces, start = setup_repo(repo)
    first = repo.path.parent / "wt" / "T1"
    workspaces.ensure(first, "orch/t1", start)
    decoy = repo.path.parent / "decoy"
    decoy.mkdir()
    (first / ".git").write_text(f"gitdir: {decoy}\n")
    workspaces.retire(first)

    second = repo.path.parent / "wt" / "T2"
    workspaces.ensure(second, "orch/t2", start)

    wgit = Git(second)
    assert wgit.head() == start and wgit.run("rev-parse", "--abbrev-ref", "HEAD") == "orch/t2"
    assert wgit.status(ignored=True) == []
    assert worktree_paths(repo) == [str(repo.path), str(second)]
    assert list(decoy.iterdir()) == []


def test_spares_left_at_the_end_are_removed(repo: Repo) -> None:
    workspaces, start = setup_repo(repo)
    made = [repo.path.parent / "wt" / f"T{i}" for i in range(3)]
    for i, worktree in enumerate(made):
        workspaces.ensure(worktree, f"orch/t{i}", start)
    for worktree in made:
        workspaces.retire(worktree)

    workspaces.drop_spares()

    assert worktree_paths(repo) == [str(repo.path)]
    assert not any(worktree.exists() for worktree in made)
    assert repo.git("branch", "--list", "orch/*").split() == ["orch/t0", "orch/t1", "orch/t2"]


def test_no_more_spares_are_kept_than_agents_run_at_once(repo: Repo) -> None:
    """More spares than new worktrees can be asked for at once would only wait to be removed at the end."""
    workspaces, start = setup_repo(repo)
    workspaces.spares_wanted = lambda: 2
    made = [repo.path.parent / "wt" / f"T{i}" for i in range(4)]
    for i, worktree in enumerate(made):
        workspaces.ensure(worktree, f"orch/t{i}", start)
    for worktree in made:
        workspaces.retire(worktree)

    assert [worktree.exists() for worktree in made] == [True, True, False, False]
    assert worktree_paths(repo) == [str(repo.path), *map(str, made[:2])]
