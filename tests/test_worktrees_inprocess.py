"""The run's worktrees (git/workspace.py, git/worktrees.py) driven in-process, as the engine drives them: a
`Workspaces(git, Workspaces.identity_for(git))` (engine/drive.py) whose `ensure`, `retire`, `take_up`,
`merge_into`, `commit`, `land` and `drop_spares` the engine calls, and the functions of worktrees.py that
the commands call (merge, clean, validate). Real repositories, real worktrees, real processes holding them.

Each test asserts the whole outcome: what was returned, the branch and its commits, the worktree's files
and status, and what git keeps in its admin folders (`.git/worktrees/<name>`). The CLI tests check the
same through child processes, which mutation testing cannot see (docs/testing.md, "What mutmut sees")."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Repo, wait_for

from codex_orch.errors import GitError, GuardrailError, InputError
from codex_orch.git.guard import Guard
from codex_orch.git.repo import FALLBACK_IDENTITY, Git
from codex_orch.git.workspace import (
    DECISIONS_FILE,
    DECISIONS_HEADER,
    CommitOutcome,
    Workspace,
    Workspaces,
    branch_name,
    path_matches,
)
from codex_orch.git.worktrees import (
    admin_dir,
    checkout_git,
    detached_worktree,
    discard_worktree,
    dotgit_text,
    recycle,
    remove_worktree,
    set_aside,
    take_up,
    worktree_list,
)


def open_ws(repo: Repo, guard: Guard | None = None) -> tuple[Git, Workspaces, str]:
    """The run's Workspaces on the repository, as engine/drive.py makes it (with the run's guard, if any)."""
    git = Git(repo.path)
    return git, Workspaces(git, Workspaces.identity_for(git), guard), git.head()


def made_t1(repo: Repo) -> tuple[Git, Workspaces, str, Path]:
    """open_ws, and the worktree wt/T1 made on orch/T1 from the start."""
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/T1", start)
    return git, workspaces, start, worktree


def linked_elsewhere(worktree: Path, folder: Path, name: str, text: str) -> None:
    """The agent's move: the worktree removed, a link to `folder` (holding `name`) in its place."""
    folder.mkdir()
    (folder / name).write_text(text)
    shutil.rmtree(worktree)
    worktree.symlink_to(folder)


def admins(repo: Repo) -> list[str]:
    """The admin folders git keeps for the linked worktrees."""
    folder = repo.path / ".git" / "worktrees"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def files(tree: Path) -> dict[str, str]:
    """The worktree's files (not .git) and what they hold."""
    return {
        str(p.relative_to(tree)): p.read_text()
        for p in sorted(tree.rglob("*"))
        if p.is_file() and p.relative_to(tree).parts[0] != ".git"
    }


def branch_of(tree: Path) -> str:
    return Git(tree).run("rev-parse", "--abbrev-ref", "HEAD")


def assert_made_anew(repo: Repo, ws: Workspace, branch: str, start: str, admin: str | None = None) -> None:
    """`ws` is a worktree made from `start`: on `branch` at `start`, the start's files only and clean, its
    git folder named after the worktree's (or `admin`, one moved from a spare)."""
    worktree = ws.worktree
    assert ws == Workspace(worktree, branch, start, repo.path / ".git" / "worktrees" / (admin or worktree.name))
    assert files(worktree) == {"README.md": "# test repo\n"} and Git(worktree).status() == []
    assert branch_of(worktree) == branch and Git(repo.path).branch_commit(branch) == start


def commit_file(repo: Repo, rel: str, text: str, message: str) -> str:
    repo.write(rel, text)
    repo.git("add", rel)
    repo.git("commit", "-q", "-m", message)
    return repo.git("rev-parse", "HEAD")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (one working in a worktree); killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def sleeper(
    procs: list[subprocess.Popen[bytes]], cwd: Path, name: str = "sleep", holding: Path | None = None
) -> subprocess.Popen[bytes]:
    """A process working in `cwd` (holding the file `holding` open), its command line starting with `name`;
    returned once /proc shows it so."""
    hold = f'exec 3<"{holding}"; ' if holding is not None else ""
    proc = subprocess.Popen(["bash", "-c", f"{hold}exec -a {name} sleep 60"], cwd=cwd)
    procs.append(proc)
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    wait_for(lambda: cmdline.read_bytes().startswith(name.encode() + b"\0"), f"{name} to start", timeout=20)
    return proc


# --- made, found, listed --------------------------------------------------------------------------
def test_a_new_worktree_is_registered_checked_out_and_found_from_gits_side(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "r" / "T1"  # folders not made yet, as worktrees/<run>/ at a run's start

    ws = workspaces.ensure(worktree, "orch/r/T1", start)

    admin = repo.path / ".git" / "worktrees" / "T1"
    assert ws == Workspace(worktree, "orch/r/T1", start, admin)
    assert admins(repo) == ["T1"]
    assert (admin / "gitdir").read_text() == f"{worktree}/.git\n"
    assert (worktree / ".git").read_text() == dotgit_text(admin) == f"gitdir: {admin}\n"
    assert files(worktree) == {"README.md": "# test repo\n"}
    assert Git(worktree).status() == [] and branch_of(worktree) == "orch/r/T1"
    assert git.branch_commit("orch/r/T1") == start
    assert workspaces.tip("orch/r/T1") == start
    # another process (resume) finds it from the common dir, not from the agent's .git file
    (worktree / ".git").write_text("gitdir: /nowhere\n")
    other = Workspaces(git, None).git_at(worktree)
    assert (other.cwd, other.git_dir) == (worktree, admin)
    assert other.head() == start and other.status() == []
    assert checkout_git(git, worktree).git_dir == admin
    assert checkout_git(git, repo.path).git_dir is None  # the user's checkout: found by discovery
    listed = worktree_list(git)
    assert [(w["worktree"], w.get("branch")) for w in listed] == [
        (str(repo.path), "refs/heads/main"),
        (str(worktree), "refs/heads/orch/r/T1"),
    ]
    assert listed[1]["HEAD"] == start


def test_an_admin_folder_a_crash_left_without_its_gitdir_file_is_passed_over(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    workspaces.ensure(repo.path.parent / "wt" / "T1", "orch/T1", start)
    workspaces.retire(repo.path.parent / "wt" / "T1")
    worktree = repo.path.parent / "wt" / "T2"
    ws = workspaces.ensure(worktree, "orch/T2", start)  # made of the spare: its admin folder is still T1
    (repo.path / ".git" / "worktrees" / "A-half").mkdir()  # sorts first; holds no gitdir file

    assert admin_dir(git, worktree) == ws.admin == repo.path / ".git" / "worktrees" / "T1"
    (ws.admin / "gitdir").unlink()
    with pytest.raises(GitError) as caught:
        admin_dir(git, worktree)
    assert caught.value.message == f"{worktree} is not a worktree registered in {repo.path / '.git' / 'worktrees'}"
    assert caught.value.hint == "Was it removed? `git worktree list` shows them."
    assert checkout_git(git, worktree).git_dir is None


def test_an_invalid_branch_name_or_template_is_refused_before_anything_is_made(repo: Repo) -> None:
    _git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "T1"

    with pytest.raises(InputError) as caught:
        workspaces.ensure(worktree, "orch/bad..name", start)
    assert caught.value.message == "branch name 'orch/bad..name' is not valid for git (check git.branch_template)"
    with pytest.raises(InputError) as caught:
        workspaces.ensure_branch("run branch", start)
    assert caught.value.message == ("branch name 'run branch' is not valid for git (check git.shared_branch_template)")
    assert not worktree.exists() and admins(repo) == [] and repo.branches() == ["main"]
    assert branch_name("orch/{run_id}/{task_id}", "config", run_id="r", task_id="T1") == "orch/r/T1"
    with pytest.raises(InputError) as caught:
        branch_name("orch/{run}", "orch.yaml", run_id="r")
    assert caught.value.message == "orch.yaml: git branch template 'orch/{run}': unknown or bad placeholder 'run'"


def test_paths_match_folders_globs_and_a_literal_bracket_folder() -> None:
    # `[b]` is a class for fnmatch; a path named literally is covered all the same, in every form
    for glob in ("a[b]/**", "a[b]/*", "a[b]/", "a[b]"):
        assert path_matches("a[b]/x.txt", [glob]) and path_matches("ab/x.txt", [glob]), glob
    assert path_matches("a[b]", ["a[b]"]) and not path_matches("a[b]", ["a[b]/*"])
    assert not path_matches("a[b]2/x.txt", ["a[b]/*"]) and not path_matches("ab2/x.txt", ["a[b]/**"])
    assert not path_matches("ab2/x.txt", ["ab/**"]) and not path_matches("abx", ["ab/"])
    assert path_matches("src/a/b/c.py", ["src/*"]) and not path_matches("src", ["src/**"])
    assert path_matches("src/a/b.py", ["src/"]) and path_matches("src/a.py", ["*.py"])
    assert not path_matches("a.py", [])


# --- broken states left behind --------------------------------------------------------------------
def test_a_leftover_branch_is_made_again_from_start_when_fresh(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    repo.git("branch", "orch/T1", start)
    repo.git("checkout", "-q", "orch/T1")
    stale = commit_file(repo, "stale.txt", "old\n", "a cut-short creation's commit")
    repo.git("checkout", "-q", "main")
    worktree = repo.path.parent / "wt" / "T1"

    ws = workspaces.ensure(worktree, "orch/T1", start, fresh=True)

    assert ws.branch == "orch/T1" and ws.base_commit == start
    assert git.branch_commit("orch/T1") == start != stale
    assert files(worktree) == {"README.md": "# test repo\n"} and Git(worktree).status() == []
    assert branch_of(worktree) == "orch/T1" and admins(repo) == ["T1"]


def test_a_worktree_never_recorded_complete_is_discarded_and_made_again(repo: Repo) -> None:
    git, _workspaces, start, worktree = made_t1(repo)
    (worktree / "README.md").write_text("half written\n")
    (worktree / "junk.txt").write_text("junk\n")

    ws = Workspaces(git, None).ensure(worktree, "orch/T1", start)  # resume: not `ready`

    assert_made_anew(repo, ws, "orch/T1", start)
    assert admins(repo) == ["T1"]


def test_a_half_made_folder_git_never_registered_is_removed_and_made_again(repo: Repo) -> None:
    _git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "T1"
    (worktree / "sub").mkdir(parents=True)
    (worktree / "sub" / "junk.txt").write_text("junk\n")

    ws = workspaces.ensure(worktree, "orch/T1", start)

    assert_made_anew(repo, ws, "orch/T1", start)
    assert admins(repo) == ["T1"]


def test_a_registered_worktree_whose_folder_was_removed_is_checked_out_again_keeping_its_commits(
    repo: Repo,
) -> None:
    git, workspaces, start, worktree = made_t1(repo)
    (worktree / "a.txt").write_text("a\n")
    made = workspaces.commit(worktree, "T1: a\n", None, None)
    shutil.rmtree(worktree)  # the agent removed its own worktree

    ws = Workspaces(git, None).ensure(worktree, "orch/T1", start, ready=True)

    assert ws.admin == repo.path / ".git" / "worktrees" / "T1" and admins(repo) == ["T1"]
    assert git.branch_commit("orch/T1") == made.commit
    assert files(worktree) == {"README.md": "# test repo\n", "a.txt": "a\n"} and Git(worktree).status() == []
    assert branch_of(worktree) == "orch/T1"


# a bug this file found (session 8, fixed in git/workspace.py and worktrees.py): a worktree folder replaced
# by a file was never made again (discard_worktree's rmtree passed over a file)
def test_a_worktree_folder_replaced_by_a_file_is_made_again(repo: Repo) -> None:
    git, _workspaces, start, worktree = made_t1(repo)
    shutil.rmtree(worktree)
    worktree.write_text("not a folder\n")

    ws = Workspaces(git, None).ensure(worktree, "orch/T1", start, ready=True)

    assert_made_anew(repo, ws, "orch/T1", start)
    assert admins(repo) == ["T1"]


def test_a_file_codex_orch_never_made_where_a_worktree_goes_is_kept_and_named(repo: Repo) -> None:
    """A file where the worktree is to be made, and no worktree of git's there: it is not codex-orch's to
    remove. It is left as it is, nothing is made, and the error says what to do."""
    _git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "T1"
    worktree.parent.mkdir()
    worktree.write_text("the user's\n")

    with pytest.raises(GitError) as failed:
        workspaces.ensure(worktree, "orch/T1", start)

    assert (failed.value.message, failed.value.hint) == (
        f"{worktree} already exists and is not a worktree codex-orch made",
        "Move it away, then run again.",
    )
    assert worktree.read_text() == "the user's\n" and admins(repo) == [] and repo.branches() == ["main"]


def test_a_worktree_folder_replaced_by_a_link_never_has_the_links_target_removed(repo: Repo, tmp_path: Path) -> None:
    git, _workspaces, start, worktree = made_t1(repo)
    victim = tmp_path / "victim"
    linked_elsewhere(worktree, victim, "precious.txt", "keep\n")

    ws = Workspaces(git, None).ensure(worktree, "orch/T1", start)  # the link removed, the worktree made again

    assert files(victim) == {"precious.txt": "keep\n"}
    assert not worktree.is_symlink()
    assert_made_anew(repo, ws, "orch/T1", start)


# a bug this file found (session 8, fixed in git/workspace.py and worktrees.py): a worktree recorded complete
# and replaced by a link was reopened through it, and the task's commit took the link target's files
def test_a_complete_worktree_replaced_by_a_link_never_commits_the_links_target(repo: Repo, tmp_path: Path) -> None:
    git, _workspaces, start, worktree = made_t1(repo)
    victim = tmp_path / "victim"
    linked_elsewhere(worktree, victim, "secret.txt", "not the repository's\n")

    again = Workspaces(git, None)  # resume
    ws = again.ensure(worktree, "orch/T1", start, ready=True)  # the link removed, the worktree made again

    assert not worktree.is_symlink()
    assert_made_anew(repo, ws, "orch/T1", start)
    assert files(victim) == {"secret.txt": "not the repository's\n"}


def test_a_half_made_worktree_a_process_works_in_is_kept_and_the_processes_named(
    repo: Repo, procs: list[subprocess.Popen[bytes]]
) -> None:
    git, _workspaces, start, worktree = made_t1(repo)
    (worktree / "mine.txt").write_text("in use\n")
    users = [sleeper(procs, worktree) for _ in range(4)]

    with pytest.raises(GitError) as caught:
        Workspaces(git, None).ensure(worktree, "orch/T1", start)

    shown = "; ".join(f"pid {p.pid} (sleep 60) works in it" for p in sorted(users, key=lambda p: p.pid)[:3])
    assert caught.value.message == (
        f"{worktree} was left half-made by a crash, and it cannot be made again while a process uses it: "
        f"{shown} and 1 more"
    )
    assert caught.value.hint == "Stop that process, then resume the run."
    assert files(worktree) == {"README.md": "# test repo\n", "mine.txt": "in use\n"} and admins(repo) == ["T1"]


# --- stale locks ----------------------------------------------------------------------------------
def lock_files(repo: Repo, branch: str) -> list[Path]:
    admin = repo.path / ".git" / "worktrees" / "T1"
    return [admin / "index.lock", admin / "HEAD.lock", repo.path / ".git" / "refs" / "heads" / f"{branch}.lock"]


def test_stale_locks_stay_while_a_git_process_works_in_the_worktree(
    repo: Repo, procs: list[subprocess.Popen[bytes]]
) -> None:
    git, _workspaces, start, worktree = made_t1(repo)
    locks = lock_files(repo, "orch/T1")
    for lock in locks:
        lock.write_text("")
    sleeper(procs, worktree, "/usr/lib/git-core/git-upload-pack")  # a git between two writes

    Workspaces(git, None).ensure(worktree, "orch/T1", start, ready=True)

    assert [lock.exists() for lock in locks] == [True, True, True]


def test_a_stale_lock_a_process_holds_open_stays_and_the_others_go(
    repo: Repo, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    git, _workspaces, start, worktree = made_t1(repo)
    locks = lock_files(repo, "orch/T1")
    for lock in locks:
        lock.write_text("")
    sleeper(procs, tmp_path, "holder", holding=locks[1])  # works elsewhere, has HEAD.lock open

    Workspaces(git, None).ensure(worktree, "orch/T1", start, ready=True)

    assert [lock.exists() for lock in locks] == [False, True, False]


def test_stale_locks_go_when_only_other_programs_work_in_the_worktree(
    repo: Repo, procs: list[subprocess.Popen[bytes]]
) -> None:
    git, _workspaces, start, worktree = made_t1(repo)
    locks = lock_files(repo, "orch/T1")
    for lock in locks:
        lock.write_text("")
    sleeper(procs, worktree, "legit-editor")  # "git" inside the name, not its start

    again = Workspaces(git, None)
    ws = again.ensure(worktree, "orch/T1", start, ready=True)

    assert [lock.exists() for lock in locks] == [False, False, False]
    assert ws == Workspace(worktree, "orch/T1", start, repo.path / ".git" / "worktrees" / "T1")
    for lock in locks:  # only the first time this process opens it: a sibling's commit may hold them later
        lock.write_text("")
    again.ensure(worktree, "orch/T1", start, ready=True)
    assert [lock.exists() for lock in locks] == [True, True, True]


# --- spares: retire, recycle, drop ----------------------------------------------------------------
def test_a_retired_worktree_becomes_the_next_one_switched_and_cleared(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    second = commit_file(repo, "b.txt", "b\n", "second")
    repo.write(".gitignore", "*.log\n")
    old = repo.path.parent / "wt" / "T1"
    workspaces.ensure(old, "orch/T1", second)
    (old / "untracked.txt").write_text("u\n")
    (old / "build.log").write_text("ignored\n")
    (old / ".gitignore").write_text("*.log\n")

    workspaces.retire(old)
    assert old.is_dir() and admins(repo) == ["T1"]  # kept, as a spare
    new = repo.path.parent / "wt" / "T2"
    ws = workspaces.ensure(new, "orch/T2", start)

    assert_made_anew(repo, ws, "orch/T2", start, admin="T1")  # git's folder moved
    assert not old.exists() and (ws.admin / "gitdir").read_text() == f"{new}/.git\n"
    assert git.branch_commit("orch/T1") == second  # the retired task's branch keeps its work
    assert [w["worktree"] for w in worktree_list(git)] == [str(repo.path), str(new)]


def test_spares_beyond_those_wanted_are_removed_and_the_rest_dropped_at_the_end(repo: Repo) -> None:
    _git, workspaces, start = open_ws(repo)
    trees = [repo.path.parent / "wt" / f"T{i}" for i in range(3)]
    for i, tree in enumerate(trees):
        workspaces.ensure(tree, f"orch/T{i}", start)
    workspaces.spares_wanted = lambda: 1

    workspaces.retire(trees[0])
    workspaces.retire(trees[1])  # one spare is enough: removed at once

    assert [t.exists() for t in trees] == [True, False, True] and admins(repo) == ["T0", "T2"]
    workspaces.drop_spares()
    assert [t.exists() for t in trees] == [False, False, True] and admins(repo) == ["T2"]
    assert repo.branches() == ["main", "orch/T0", "orch/T1", "orch/T2"]  # branches hold the work: kept
    workspaces.drop_spares()  # none left: nothing more happens
    assert admins(repo) == ["T2"]
    made = workspaces.ensure(repo.path.parent / "wt" / "T3", "orch/T3", start)  # no spare: made anew
    assert made.admin.name == "T3" and admins(repo) == ["T2", "T3"]


def test_a_spare_a_process_still_works_in_is_removed_not_recycled(
    repo: Repo, procs: list[subprocess.Popen[bytes]]
) -> None:
    _git, workspaces, start = open_ws(repo)
    old = repo.path.parent / "wt" / "T1"
    workspaces.ensure(old, "orch/T1", start)
    (old / "left.txt").write_text("by the agent\n")
    workspaces.retire(old)
    sleeper(procs, old)  # what the agent left running there

    new = repo.path.parent / "wt" / "T2"
    ws = workspaces.ensure(new, "orch/T2", start)

    assert_made_anew(repo, ws, "orch/T2", start)
    assert admins(repo) == ["T2"] and not old.exists()


def test_a_spare_that_cannot_be_moved_is_removed_and_the_worktree_made_anew(repo: Repo) -> None:
    _git, workspaces, start = open_ws(repo)
    old = repo.path.parent / "wt" / "T1"
    workspaces.ensure(old, "orch/T1", start)
    workspaces.retire(old)
    repo.git("worktree", "lock", "--reason", "an agent's", str(old))  # `worktree move` refuses it

    new = repo.path.parent / "wt" / "T2"
    ws = workspaces.ensure(new, "orch/T2", start)

    assert_made_anew(repo, ws, "orch/T2", start)
    assert admins(repo) == ["T2"] and not old.exists()


def test_a_spare_that_fails_after_its_switch_is_removed_and_its_new_branch_made_again(repo: Repo) -> None:
    """The switch made the new branch before the spare failed (here git's `clean` dies on a bad config
    value, which checkout and reset never read): the spare is removed, the branch it made deleted, and the
    worktree made anew on that branch from the start."""
    _git, workspaces, start = open_ws(repo)
    old = repo.path.parent / "wt" / "T1"
    workspaces.ensure(old, "orch/T1", start)
    workspaces.retire(old)
    repo.git("config", "clean.requireForce", "maybe")

    new = repo.path.parent / "wt" / "T2"
    ws = workspaces.ensure(new, "orch/T2", start)

    assert_made_anew(repo, ws, "orch/T2", start)
    assert admins(repo) == ["T2"] and not old.exists()
    assert repo.branches() == ["main", "orch/T1", "orch/T2"]


# --- take up, merge, land -------------------------------------------------------------------------
def test_a_worktree_left_on_another_branch_is_taken_up_its_changes_kept_on_a_ref(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    repo.write(".gitignore", "*.log\n")
    worktree = repo.path.parent / "wt" / "job"
    workspaces.ensure(worktree, "job/1", start)
    (worktree / "README.md").write_text("edited\n")
    (worktree / "new.txt").write_text("new\n")
    (worktree / ".gitignore").write_text("*.log\n")
    (worktree / "out.log").write_text("build output\n")

    assert Workspaces(git, None).take_up(repo.path.parent / "wt" / "none", "orch/T1", start, "refs/orch/k") is False
    taken = workspaces.take_up(worktree, "orch/T1", start, "refs/orch/k")

    assert taken is True
    kept = repo.git("rev-parse", "refs/orch/k")
    assert repo.git("rev-parse", f"{kept}^") == start
    assert repo.git("show", f"{kept}:README.md") == "edited"
    assert repo.git("show", f"{kept}:new.txt") == "new"
    assert repo.git("ls-tree", "--name-only", kept).splitlines() == [".gitignore", "README.md", "new.txt"]
    assert branch_of(worktree) == "orch/T1" and git.branch_commit("orch/T1") == start
    assert files(worktree) == {"README.md": "# test repo\n", "out.log": "build output\n"}  # ignored: kept
    assert git.branch_commit("job/1") == start
    assert workspaces.take_up(worktree, "orch/T1", start, "refs/orch/k2") is False  # on it already
    assert repo.git("rev-parse", "--verify", "--quiet", "refs/orch/k2", check=False) == ""


def test_taking_up_a_clean_worktree_onto_an_existing_branch_keeps_that_branch(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    second = commit_file(repo, "b.txt", "b\n", "second")
    repo.git("branch", "orch/T1", second)
    worktree = repo.path.parent / "wt" / "job"
    ws = workspaces.ensure(worktree, "job/1", start)

    assert take_up(git, worktree, "orch/T1", start, "refs/orch/k") is True

    assert repo.git("rev-parse", "--verify", "--quiet", "refs/orch/k", check=False) == ""  # nothing to keep
    assert git.branch_commit("orch/T1") == second and branch_of(worktree) == "orch/T1"
    assert files(worktree) == {"README.md": "# test repo\n", "b.txt": "b\n"} and ws.admin.name == "job"


def test_dependencies_are_merged_into_a_task_worktree_and_a_conflict_is_aborted(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    deps = []
    for name, text in (("d1", "one\n"), ("d2", "two\n")):
        repo.git("checkout", "-q", "-b", name, start)
        deps.append(commit_file(repo, f"{name}.txt", text, name))
    repo.git("checkout", "-q", "-b", "clash", start)
    clash = commit_file(repo, "README.md", "clash\n", "clash")
    repo.git("checkout", "-q", "main")
    worktree = repo.path.parent / "wt" / "T3"
    workspaces.ensure(worktree, "orch/T3", start)

    workspaces.merge_into(worktree, deps, "T3")

    assert files(worktree) == {"README.md": "# test repo\n", "d1.txt": "one\n", "d2.txt": "two\n"}
    assert repo.git("log", "--first-parent", "--format=%s", "orch/T3").splitlines() == [
        f"T3: merge dependency {deps[1][:12]}",
        "d1",  # the first came as a fast-forward
        "initial commit",
    ]
    assert repo.git("log", "-1", "--format=%P", "orch/T3").split() == deps
    tip = git.branch_commit("orch/T3")
    (worktree / "README.md").write_text("mine\n")
    Workspaces(git, None).commit(worktree, "T3: readme\n", None, None)  # another process: branch from HEAD
    mine = git.branch_commit("orch/T3")
    assert repo.git("rev-parse", f"{mine}^") == tip

    with pytest.raises(GitError) as caught:
        workspaces.merge_into(worktree, [clash], "T3")

    assert (
        caught.value.message
        == "T3: its dependencies conflict (['Automatic merge failed; fix conflicts and then commit the result.'])"
    )
    assert git.branch_commit("orch/T3") == mine and Git(worktree).status() == []  # the merge aborted
    assert not (repo.path / ".git" / "worktrees" / "T3" / "MERGE_HEAD").exists()


def test_a_task_lands_on_the_run_branch_and_is_found_there_by_its_trailers(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    workspaces.ensure_branch("orch/run", start)
    moved = commit_file(repo, "main.txt", "m\n", "main moves on")
    workspaces.ensure_branch("orch/run", moved)  # there already: never moved
    assert git.branch_commit("orch/run") == start
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/T1", start)
    (worktree / "a.txt").write_text("a\n")
    trailers = "\n\nOrch-Run: r1\nOrch-Task: T1\n"
    task = workspaces.commit(worktree, "T1: a" + trailers, None, None)
    assert task.commit is not None
    assert workspaces.find_commit(worktree, "r1", "T1", start) == task.commit
    assert workspaces.find_commit(worktree, "r2", "T1", start) is None
    assert workspaces.find_landed("orch/run", "r1", "T1", start) is None

    landed = workspaces.land("orch/run", task.commit, start, "T1: a" + trailers, None)

    assert (landed.commit, landed.tip, landed.conflicts) == (task.commit, start, ())  # fast-forwarded
    assert workspaces.tip("orch/run") == task.commit
    assert workspaces.find_landed("orch/run", "r1", "T1", start) == task.commit
    assert workspaces.find_landed("orch/run", "r1", "T2", start) is None


def test_a_task_is_replayed_on_the_moved_run_branch_in_its_worktree(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    workspaces.ensure_branch("orch/run", start)
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/T1", start)
    (worktree / "README.md").write_text("T1\n")
    task = workspaces.commit(worktree, "T1\n", None, None)
    repo.git("checkout", "-q", "orch/run")
    tip = commit_file(repo, "README.md", "run\n", "other task")
    repo.git("checkout", "-q", "main")
    assert task.commit is not None

    conflicts = Workspaces(git, None).replay(worktree, tip, start, task.commit)

    assert conflicts == ("README.md",)
    assert git.branch_commit("orch/T1") == tip
    assert "<<<<<<<" in (worktree / "README.md").read_text()


# --- commits: paths, violations, decisions --------------------------------------------------------
def test_changes_outside_a_tasks_paths_are_set_aside_and_reverted(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "shared"
    workspaces.ensure(worktree, "orch/shared", start)
    (worktree / "a").mkdir()
    (worktree / "a" / "x.txt").write_text("mine\n")
    (worktree / "b").mkdir()
    (worktree / "b" / "y.txt").write_text("a sibling's\n")
    (worktree / "README.md").write_text("outside\n")
    (worktree / "stray.txt").write_text("outside\n")

    outcome = workspaces.commit(
        worktree, "T1: x\n", ["a/**"], None, others=lambda: ["b/**"], preserve_ref="refs/orch/v/T1"
    )

    assert outcome == CommitOutcome(outcome.commit, outcome.commit or "", ("a/x.txt",), ("README.md", "stray.txt"))
    assert outcome.commit == git.branch_commit("orch/shared")
    kept = repo.git("rev-parse", "refs/orch/v/T1")
    assert repo.git("rev-parse", f"{kept}^") == start
    assert repo.git("ls-tree", "--name-only", kept).splitlines() == ["README.md", "stray.txt"]
    assert repo.git("log", "-1", "--format=%B", kept).startswith("changes outside the task's paths\n\nT1: x")
    assert files(worktree) == {"README.md": "# test repo\n", "a/x.txt": "mine\n", "b/y.txt": "a sibling's\n"}
    assert [(s.code, s.path) for s in Git(worktree).status()] == [("??", "b/y.txt")]


def test_a_worktrees_changes_are_set_aside_under_paths_and_kept_or_reverted(repo: Repo) -> None:
    git, workspaces, start, worktree = made_t1(repo)
    assert workspaces.set_aside(worktree, "refs/orch/k0", "nothing", None, revert=True) is None
    (worktree / "README.md").write_text("changed\n")
    (worktree / "new.txt").write_text("new\n")

    kept = workspaces.set_aside(worktree, "refs/orch/k1", "kept\n", ["new.txt"], revert=False)

    assert kept == repo.git("rev-parse", "refs/orch/k1")
    assert repo.git("ls-tree", "--name-only", kept).splitlines() == ["README.md", "new.txt"]
    assert repo.git("show", f"{kept}:README.md") == "# test repo"  # only the paths: README as HEAD has it
    assert files(worktree) == {"README.md": "changed\n", "new.txt": "new\n"}

    both = workspaces.set_aside(worktree, "refs/orch/k2", "both\n", None, revert=True)

    assert both == repo.git("rev-parse", "refs/orch/k2") and repo.git("show", f"{both}:README.md") == "changed"
    assert files(worktree) == {"README.md": "# test repo\n"} and Git(worktree).status() == []
    assert git.branch_commit("orch/T1") == start
    assert set_aside(workspaces.git_at(worktree), ["README.md"], "refs/orch/k3", "m", None) is None


def test_decisions_are_committed_with_the_work_and_taken_back_when_the_commit_fails(repo: Repo) -> None:
    git, workspaces, start, worktree = made_t1(repo)
    (worktree / "a.txt").write_text("a\n")

    def refuse(diff: str) -> None:
        raise GuardrailError("refused", "no")

    with pytest.raises(GuardrailError):
        workspaces.commit(worktree, "T1: a\n", None, "- chose a\n", check_staged=refuse)
    assert not (worktree / DECISIONS_FILE).exists() and git.branch_commit("orch/T1") == start

    outcome = workspaces.commit(worktree, "T1: a\n", None, "- chose a\n")

    assert outcome.files == ("a.txt", DECISIONS_FILE) and outcome.head == outcome.commit
    assert (worktree / DECISIONS_FILE).read_text() == DECISIONS_HEADER + "- chose a\n"
    assert Git(worktree).status() == [] and git.branch_commit("orch/T1") == outcome.commit
    (worktree / "b.txt").write_text("b\n")
    with pytest.raises(GuardrailError):  # an entry appended to an existing file is cut back out
        workspaces.commit(worktree, "T1: b\n", None, "- chose b\n", check_staged=refuse)
    assert (worktree / DECISIONS_FILE).read_text() == DECISIONS_HEADER + "- chose a\n"


def test_decisions_are_never_written_through_a_link_the_agent_made(repo: Repo, tmp_path: Path) -> None:
    git, workspaces, start, worktree = made_t1(repo)
    outside = tmp_path / "outside"
    outside.mkdir()
    (worktree / "docs").mkdir()
    (worktree / "docs" / "ai").symlink_to(outside)

    with pytest.raises(GuardrailError) as caught:
        workspaces.commit(worktree, "T1\n", None, "- a\n")

    assert caught.value.message.startswith("codex-orch did not write the decisions: ")
    assert caught.value.hint == (f"Leave {DECISIONS_FILE} and its folders plain files and folders inside the worktree.")
    assert list(outside.iterdir()) == [] and git.branch_commit("orch/T1") == start


# --- the commands' worktrees ----------------------------------------------------------------------
def test_a_detached_worktree_is_made_then_moved_and_cleaned(repo: Repo) -> None:
    git = Git(repo.path)
    first = git.head()
    second = commit_file(repo, "b.txt", "b\n", "second")
    folder = repo.path.parent / "checks" / "main"

    assert detached_worktree(git, folder, first) == folder
    assert files(folder) == {"README.md": "# test repo\n"} and Git(folder).head() == first
    assert Git(folder).run("rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached
    (folder / "README.md").write_text("dirty\n")
    (folder / "left.txt").write_text("left\n")
    detached_worktree(git, folder, second)
    assert files(folder) == {"README.md": "# test repo\n", "b.txt": "b\n", "left.txt": "left\n"}
    detached_worktree(git, folder, second, clean=True)
    assert files(folder) == {"README.md": "# test repo\n", "b.txt": "b\n"} and Git(folder).head() == second
    assert admins(repo) == ["main"] and repo.branches() == ["main"]


def test_removing_a_worktree_with_changes_needs_force(repo: Repo) -> None:
    git, _workspaces, _start, worktree = made_t1(repo)
    (worktree / "dirty.txt").write_text("d\n")

    with pytest.raises(GitError) as caught:
        remove_worktree(git, worktree)
    assert caught.value.message.startswith("git worktree remove ")
    assert worktree.is_dir() and admins(repo) == ["T1"]

    remove_worktree(git, worktree, force=True)
    assert not worktree.exists() and admins(repo) == [] and repo.branches() == ["main", "orch/T1"]


# --- reopened as recorded; the guard told; a worktree's own excludes --------------------------------
def test_a_worktree_recorded_complete_is_reopened_as_it_is_uncommitted_work_included(repo: Repo) -> None:
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "T1"
    first = workspaces.ensure(worktree, "orch/T1", start)
    (worktree / "README.md").write_text("the agent's, uncommitted\n")
    (worktree / "new.txt").write_text("new\n")
    moved = commit_file(repo, "main.txt", "m\n", "main moves on")

    again = Workspaces(git, None).ensure(worktree, "orch/T1", moved, ready=True)  # resume, a new process

    assert again == Workspace(worktree, "orch/T1", moved, first.admin) and admins(repo) == ["T1"]
    assert files(worktree) == {"README.md": "the agent's, uncommitted\n", "new.txt": "new\n"}
    assert git.branch_commit("orch/T1") == start and branch_of(worktree) == "orch/T1"


def test_the_guard_watches_an_opened_worktree_until_it_is_retired(repo: Repo, tmp_path: Path) -> None:
    from codex_orch.engine.guardrails import quarantine_ref
    from codex_orch.git.guard import Guard

    git = Git(repo.path)
    start = git.head()
    guard = Guard(git, "r1", all_refs=True, run_branch_prefixes=("orch/",))  # as engine/drive.py makes it
    guard.start()
    workspaces = Workspaces(git, Workspaces.identity_for(git), guard)
    worktree = repo.path.parent / "wt" / "T1"
    ws = workspaces.ensure(worktree, "orch/r1/T1", start)
    (worktree / "a.txt").write_text("a\n")
    made = workspaces.commit(worktree, "T1: a\n", None, None)
    q = quarantine_ref("r1", "T1", 1)
    assert guard.check(worktree, q, tmp_path / "attempt") == []  # codex-orch's own commit: no change
    (worktree / ".git").write_text("gitdir: /elsewhere\n")

    changes = guard.check(worktree, q, tmp_path / "attempt")

    folder = tmp_path / "attempt" / "guardrail" / "dotgit"
    assert [(c.kind, c.name, c.before, c.after, c.kept) for c in changes] == [
        ("dotgit", str(worktree), "gitdir", "rewritten", str(folder))
    ]
    assert folder.read_text() == "gitdir: /elsewhere\n"  # the agent's version, kept
    assert (worktree / ".git").read_text() == dotgit_text(ws.admin)  # put back
    workspaces.spares_wanted = lambda: 0
    workspaces.retire(worktree)
    assert not worktree.exists() and admins(repo) == []
    assert guard.check(worktree, q, tmp_path / "attempt") == []  # its removal is no change
    assert git.branch_commit("orch/r1/T1") == made.commit


def test_files_a_worktrees_own_exclude_list_names_are_never_committed(repo: Repo, tmp_path: Path) -> None:
    _git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/T1", start)
    (worktree / "setup.out").write_text("made by setup\n")
    (worktree / "a.txt").write_text("a\n")
    excludes = tmp_path / "exclude"
    excludes.write_text("setup.out\n")

    workspaces.exclude(worktree, excludes)
    outcome = workspaces.commit(worktree, "T1: a\n", None, None)

    assert outcome.files == ("a.txt",)
    assert repo.git("ls-tree", "--name-only", "orch/T1").splitlines() == ["README.md", "a.txt"]
    assert workspaces.git_at(worktree).status() == []
    assert [(s.code, s.path) for s in Git(worktree).status()] == [("??", "setup.out")]  # git alone sees it


def test_reverting_set_aside_changes_never_deletes_an_agents_nested_repository(repo: Repo) -> None:
    git, workspaces, start, worktree = made_t1(repo)
    nested = worktree / "sub"
    nested.mkdir()
    Repo(nested).git("init", "-q", "-b", "main")
    (nested / "n.txt").write_text("n\n")
    Repo(nested).git("add", "n.txt")
    Repo(nested).git("commit", "-q", "-m", "nested")
    (worktree / "x.txt").write_text("x\n")

    kept = workspaces.set_aside(worktree, "refs/orch/k", "aside\n", None, revert=True)

    assert kept == repo.git("rev-parse", "refs/orch/k")
    assert repo.git("ls-tree", "--name-only", kept).splitlines() == ["README.md", "sub", "x.txt"]
    assert (nested / "n.txt").read_text() == "n\n" and not (worktree / "x.txt").exists()
    assert git.branch_commit("orch/T1") == start


def test_a_spare_that_cannot_be_removed_stays_for_clean(repo: Repo) -> None:
    _git, workspaces, start = open_ws(repo)
    old = repo.path.parent / "wt" / "T1"
    workspaces.ensure(old, "orch/T1", start)
    workspaces.retire(old)
    shutil.rmtree(old)  # `worktree remove` fails: nothing there
    config = repo.path / ".git" / "config"
    good = config.read_text()
    config.write_text(good + "[core]\n\tbare = neither\n")  # and so does the prune after it

    workspaces.drop_spares()

    config.write_text(good)
    assert admins(repo) == ["T1"] and repo.branches() == ["main", "orch/T1"]
    made = workspaces.ensure(repo.path.parent / "wt" / "T2", "orch/T2", start)  # dropped: not recycled
    assert made.admin.name == "T2" and admins(repo) == ["T1", "T2"]


# --- behaviours the mutation run found unpinned (docs/testing.md, "The survivors, explained") -------
def test_a_branch_whose_old_worktree_elsewhere_is_gone_is_checked_out_at_the_new_path(repo: Repo) -> None:
    """attach_worktree prunes first: git refuses a branch it still counts as checked out in a registered
    worktree whose folder is gone (a crash, a run whose worktrees moved to another folder)."""
    git, workspaces, start, old = made_t1(repo)
    (old / "a.txt").write_text("a\n")
    made = workspaces.commit(old, "T1: a\n", None, None)
    shutil.rmtree(old)
    new = repo.path.parent / "wt2" / "T1"

    ws = Workspaces(git, None).ensure(new, "orch/T1", start, ready=True)

    assert ws == Workspace(new, "orch/T1", start, repo.path / ".git" / "worktrees" / "T1") and admins(repo) == ["T1"]
    assert files(new) == {"README.md": "# test repo\n", "a.txt": "a\n"} and Git(new).status() == []
    assert branch_of(new) == "orch/T1" and git.branch_commit("orch/T1") == made.commit
    assert [w["worktree"] for w in worktree_list(git)] == [str(repo.path), str(new)]


def test_a_spares_uncommitted_edit_of_a_tracked_file_never_reaches_the_next_worktree(repo: Repo) -> None:
    """recycle's checkout is forced: an edit the last task left in a file that both commits hold the same
    would be carried into the next task's worktree (git clean leaves tracked files alone)."""
    _git, workspaces, start = open_ws(repo)
    old = repo.path.parent / "wt" / "T1"
    workspaces.ensure(old, "orch/T1", start)
    (old / "README.md").write_text("the last task's, uncommitted\n")
    workspaces.retire(old)

    ws = workspaces.ensure(repo.path.parent / "wt" / "T2", "orch/T2", start)

    assert_made_anew(repo, ws, "orch/T2", start, admin="T1")  # recycled, and holding the start's files only


def test_a_spare_is_never_recycled_onto_a_branch_that_exists(repo: Repo) -> None:
    """recycle makes a new branch: one that exists holds a task's work and is never moved. The switch
    fails, and the worktree is left moved, on the spare's branch, for the caller to undo."""
    git, workspaces, start = open_ws(repo)
    second = commit_file(repo, "b.txt", "b\n", "second")
    repo.git("branch", "orch/T2", second)
    old = repo.path.parent / "wt" / "T1"
    workspaces.ensure(old, "orch/T1", start)
    workspaces.retire(old)
    new = repo.path.parent / "wt" / "T2"

    with pytest.raises(GitError) as caught:
        recycle(git, old, new, "orch/T2", start)

    assert caught.value.message == "git checkout -q -f failed: fatal: a branch named 'orch/T2' already exists"
    assert git.branch_commit("orch/T2") == second and git.branch_commit("orch/T1") == start
    assert not old.exists() and branch_of(new) == "orch/T1" and admins(repo) == ["T1"]


def test_changes_are_set_aside_as_codex_orch_in_a_repository_without_an_identity(repo: Repo) -> None:
    """git refuses a commit without an identity: the fallback one (Workspaces.identity_for) makes the commit
    that keeps the changes, and the worktree is reverted."""
    repo.git("config", "user.name", "")  # empties the session's identity for this repository
    repo.git("config", "user.email", "")
    git, workspaces, start, worktree = made_t1(repo)
    assert workspaces.identity == FALLBACK_IDENTITY
    (worktree / "README.md").write_text("changed\n")

    kept = workspaces.set_aside(worktree, "refs/orch/k", "kept\n", None, revert=True)

    assert kept == repo.git("rev-parse", "refs/orch/k")
    assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%P|%B", kept) == (
        f"codex-orch <codex-orch@localhost>|codex-orch <codex-orch@localhost>|{start}|kept"
    )
    assert repo.git("show", f"{kept}:README.md") == "changed"
    assert files(worktree) == {"README.md": "# test repo\n"} and Git(worktree).status() == []
    assert git.branch_commit("orch/T1") == start


def test_changes_the_agent_staged_are_set_aside_and_reverted_from_head_index_included(repo: Repo) -> None:
    """The revert takes a file back to HEAD's version, not to the one the agent staged, and takes a new
    file the agent staged out of the index (a `git rm` that is not `--cached` refuses a staged file)."""
    git, workspaces, start, worktree = made_t1(repo)
    (worktree / "README.md").write_text("staged\n")
    (worktree / "new.txt").write_text("new\n")
    Repo(worktree).git("add", "README.md", "new.txt")

    kept = workspaces.set_aside(worktree, "refs/orch/k", "kept\n", None, revert=True)

    assert kept == repo.git("rev-parse", "refs/orch/k") and repo.git("rev-parse", f"{kept}^") == start
    assert repo.git("ls-tree", "--name-only", kept).splitlines() == ["README.md", "new.txt"]
    assert repo.git("show", f"{kept}:README.md") == "staged" and repo.git("show", f"{kept}:new.txt") == "new"
    assert files(worktree) == {"README.md": "# test repo\n"} and Git(worktree).status() == []
    assert git.branch_commit("orch/T1") == start


def test_files_named_like_options_are_set_aside_and_reverted(repo: Repo) -> None:
    """An agent's files named `-t.txt` (tracked, edited) and `-n.txt` (new) are paths to every git command
    of the revert (`ls-tree`, `checkout`, `rm` after `--`), never options."""
    repo.write("-t.txt", "tracked\n")
    repo.git("add", "--", "-t.txt")
    repo.git("commit", "-q", "-m", "a file named like an option")
    git, workspaces, start, worktree = made_t1(repo)
    (worktree / "-t.txt").write_text("edited\n")
    (worktree / "-n.txt").write_text("new\n")

    kept = workspaces.set_aside(worktree, "refs/orch/k", "kept\n", None, revert=True)

    assert kept == repo.git("rev-parse", "refs/orch/k") and repo.git("rev-parse", f"{kept}^") == start
    assert repo.git("ls-tree", "--name-only", kept).splitlines() == ["-n.txt", "-t.txt", "README.md"]
    assert repo.git("show", f"{kept}:-t.txt") == "edited" and repo.git("show", f"{kept}:-n.txt") == "new"
    assert files(worktree) == {"-t.txt": "tracked\n", "README.md": "# test repo\n"} and Git(worktree).status() == []
    assert git.branch_commit("orch/T1") == start


def test_a_worktree_whose_dotgit_was_rewritten_is_taken_up_through_its_admin_dir_at_start(repo: Repo) -> None:
    """take_up never finds git through the worktree's `.git` file (the last agent's to rewrite), and the new
    branch starts at `start`, not at the main checkout's HEAD."""
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "job"
    ws = workspaces.ensure(worktree, "job/1", start)
    (worktree / "left.txt").write_text("left\n")
    moved = commit_file(repo, "main.txt", "m\n", "main moves on")
    (worktree / ".git").write_text("gitdir: /nowhere\n")

    assert take_up(git, worktree, "orch/T1", start, "refs/orch/k") is True

    kept = repo.git("rev-parse", "refs/orch/k")
    assert repo.git("rev-parse", f"{kept}^") == start
    assert repo.git("ls-tree", "--name-only", kept).splitlines() == ["README.md", "left.txt"]
    assert git.branch_commit("orch/T1") == start != moved and git.branch_commit("job/1") == start
    wgit = checkout_git(git, worktree)
    assert wgit.git_dir == ws.admin and wgit.run("symbolic-ref", "HEAD") == "refs/heads/orch/T1"
    assert files(worktree) == {"README.md": "# test repo\n"} and wgit.status() == []
    assert (worktree / ".git").read_text() == "gitdir: /nowhere\n"  # the guard puts it back, not take_up


def test_a_discarded_worktree_leaves_no_registration_whatever_the_agent_made_of_it(repo: Repo, tmp_path: Path) -> None:
    """discard_worktree removes git's registration too where git cannot remove the worktree itself: its
    `.git` file rewritten (git's validation refuses it), a file or a link in the folder's place (never
    followed). A registration left would keep the branch checked out, and the path taken, for git."""
    git, workspaces, start = open_ws(repo)
    trees = [repo.path.parent / "wt" / f"T{i}" for i in (1, 2, 3)]
    for i, tree in enumerate(trees, 1):
        workspaces.ensure(tree, f"orch/T{i}", start)

    (trees[0] / ".git").write_text("gitdir: /nowhere\n")
    discard_worktree(git, trees[0])
    assert not trees[0].exists() and admins(repo) == ["T2", "T3"]

    shutil.rmtree(trees[1])
    trees[1].write_text("not a folder\n")
    discard_worktree(git, trees[1])
    assert not trees[1].exists() and admins(repo) == ["T3"]

    linked_elsewhere(trees[2], tmp_path / "victim", "precious.txt", "keep\n")
    discard_worktree(git, trees[2])
    assert not trees[2].is_symlink() and not trees[2].exists() and admins(repo) == []

    assert files(tmp_path / "victim") == {"precious.txt": "keep\n"}
    assert [w["worktree"] for w in worktree_list(git)] == [str(repo.path)]
    assert repo.branches() == ["main", "orch/T1", "orch/T2", "orch/T3"]  # the branches hold the work: kept


def test_worktrees_whose_paths_and_lock_reasons_hold_spaces_are_listed_whole(repo: Repo) -> None:
    """`git worktree list --porcelain -z` fields are split at their first space only (clean and the refs
    code match these paths against the run's)."""
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "work trees" / "T 1"
    workspaces.ensure(worktree, "orch/T1", start)
    repo.git("worktree", "lock", "--reason", "held by a test", str(worktree))

    assert worktree_list(git) == [
        {"worktree": str(repo.path), "HEAD": start, "branch": "refs/heads/main"},
        {"worktree": str(worktree), "HEAD": start, "branch": "refs/heads/orch/T1", "locked": "held by a test"},
    ]


def test_a_detached_worktree_is_moved_through_its_admin_dir_over_what_a_command_left(repo: Repo) -> None:
    """The commands' worktrees (validate, merge, the integration doctor) run the user's commands, which may
    rewrite the `.git` file or leave an untracked file: moving one to another commit never finds git
    through that file, and overwrites an untracked file the commit tracks. One made beside it, or under
    folders that do not exist yet, is made all the same."""
    git = Git(repo.path)
    first = git.head()
    second = commit_file(repo, "b.txt", "b\n", "second")
    folder = repo.path.parent / "checks" / "main"
    detached_worktree(git, folder, first)
    admin = admin_dir(git, folder)
    (folder / ".git").write_text("gitdir: /nowhere\n")
    (folder / "b.txt").write_text("a command's\n")  # untracked at `first`; `second` tracks it

    assert detached_worktree(git, folder, second) == folder

    wgit = checkout_git(git, folder)
    assert wgit.git_dir == admin and wgit.head() == second
    assert wgit.run("rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached
    assert files(folder) == {"README.md": "# test repo\n", "b.txt": "b\n"} and wgit.status() == []
    beside = repo.path.parent / "checks" / "other"  # its parent folder exists
    deeper = repo.path.parent / "runs" / "r1" / "checks" / "main"  # its parent folders do not
    assert detached_worktree(git, beside, first) == beside and detached_worktree(git, deeper, second) == deeper
    assert files(beside) == {"README.md": "# test repo\n"} and Git(beside).head() == first
    assert files(deeper) == {"README.md": "# test repo\n", "b.txt": "b\n"} and Git(deeper).head() == second
    assert admins(repo) == ["main", "main1", "other"] and repo.branches() == ["main"]


def test_a_worktree_is_found_registered_through_a_linked_folder_and_when_replaced_by_a_link(
    repo: Repo, tmp_path: Path
) -> None:
    """admin_dir matches git's `gitdir` file (the real path git wrote) against the path both as given and
    resolved: a worktree named through a linked parent folder is found, and so is one the agent replaced by
    a link (where the resolved path is the link's target)."""
    git, _workspaces, _start, worktree = made_t1(repo)
    admin = repo.path / ".git" / "worktrees" / "T1"
    alias = repo.path.parent / "alias"
    alias.symlink_to(worktree.parent)

    assert admin_dir(git, alias / "T1") == admin
    linked_elsewhere(worktree, tmp_path / "victim", "precious.txt", "keep\n")
    assert admin_dir(git, worktree) == admin
    assert files(tmp_path / "victim") == {"precious.txt": "keep\n"}


def test_a_folder_in_the_tasks_paths_replaced_by_a_file_outside_them_is_set_aside_its_files_deletion_kept(
    repo: Repo,
) -> None:
    """The revert asks HEAD for files (`ls-tree -r`): `d`, a file now, is a folder in HEAD. The file is set
    aside and taken out; the deletion of `d/f`, inside the task's paths, is the task's commit. (Until
    session 9 `git rm --cached -- d` refused the folder the index still held, and the commit failed.)"""
    repo.write("d/f", "f\n")
    repo.git("add", "d/f")
    repo.git("commit", "-q", "-m", "a folder")
    git, workspaces, start, worktree = made_t1(repo)
    shutil.rmtree(worktree / "d")
    (worktree / "d").write_text("a file now\n")

    outcome = workspaces.commit(worktree, "T1: d\n", ["d/**"], None, others=list, preserve_ref="refs/orch/v/T1")

    assert outcome == CommitOutcome(outcome.commit, outcome.commit or "", ("d/f",), ("d",))
    assert outcome.commit == git.branch_commit("orch/T1") and repo.git("rev-parse", f"{outcome.commit}^") == start
    assert repo.git("ls-tree", "-r", "--name-only", outcome.head).splitlines() == ["README.md"]
    kept = repo.git("rev-parse", "refs/orch/v/T1")
    assert repo.git("ls-tree", "-r", "--name-only", kept).splitlines() == ["README.md", "d"]
    assert repo.git("show", f"{kept}:d") == "a file now"
    assert files(worktree) == {"README.md": "# test repo\n"} and Git(worktree).status() == []


def test_a_branch_a_command_checked_out_in_a_detached_worktree_is_never_moved(repo: Repo) -> None:
    """The commands' worktrees run the user's commands; one may leave its folder on a branch. Moving the
    folder to another commit detaches it there, and leaves that branch (a task's work) where it was (until
    session 9 the `reset --hard` ran before the detach, and moved the branch)."""
    git = Git(repo.path)
    first = git.head()
    repo.git("branch", "orch/r/T1", first)
    second = commit_file(repo, "b.txt", "b\n", "second")
    folder = repo.path.parent / "checks" / "main"
    detached_worktree(git, folder, first)
    Repo(folder).git("checkout", "-q", "orch/r/T1")  # a command's

    assert detached_worktree(git, folder, second) == folder

    assert Git(folder).run("rev-parse", "--abbrev-ref", "HEAD") == "HEAD" and Git(folder).head() == second
    assert files(folder) == {"README.md": "# test repo\n", "b.txt": "b\n"}
    assert git.branch_commit("orch/r/T1") == first


@pytest.mark.parametrize("how", ["git rm", "git add of a file where the folder was"])
def test_a_deletion_the_agent_staged_itself_is_committed_with_the_tasks_paths(repo: Repo, how: str) -> None:
    """An agent that stages a deletion (`git rm`) leaves a path in neither the index nor the worktree:
    `git add` of it alone matches nothing (until session 9 the commit failed on it). The deletion is the
    task's commit, like any change under its paths."""
    commit_file(repo, "d/f", "f\n", "a folder")
    git, workspaces, start, worktree = made_t1(repo)
    agent = Repo(worktree)
    if how == "git rm":
        agent.git("rm", "-q", "d/f")
    else:
        shutil.rmtree(worktree / "d")
        (worktree / "d").write_text("a file now\n")
        agent.git("add", "d")

    outcome = workspaces.commit(worktree, "T1: d\n", ["d/**", "d"], None, others=list, preserve_ref="refs/orch/v/T1")

    changed = ("d/f",) if how == "git rm" else ("d", "d/f")
    assert outcome == CommitOutcome(outcome.commit, outcome.commit or "", changed, ())
    assert outcome.commit == git.branch_commit("orch/T1") and repo.git("rev-parse", f"{outcome.commit}^") == start
    tree = repo.git("ls-tree", "-r", "--name-only", outcome.head).splitlines()
    assert tree == (["README.md"] if how == "git rm" else ["README.md", "d"])
    assert Git(worktree).status() == []


def test_a_file_a_sibling_staged_is_never_committed_as_this_tasks(repo: Repo) -> None:
    """Two tasks share a worktree, each with its own paths. One's agent stages its file (`git add`, `git mv`)
    while the other commits: that commit holds only its own paths, whatever the index held besides (until
    session 9 `git commit` took the whole index, so the sibling's work was committed under the wrong task and
    the sibling found nothing left to commit). The sibling's files stay for its own commit."""
    commit_file(repo, "b/old", "old\n", "b's file")
    git, workspaces, start, worktree = made_t1(repo)
    (worktree / "a").mkdir()
    (worktree / "a" / "x").write_text("a\n")
    (worktree / "b" / "y").write_text("b\n")
    sibling = Repo(worktree)
    sibling.git("add", "b/y")
    sibling.git("mv", "b/old", "b/new")

    mine = workspaces.commit(worktree, "A\n", ["a/**"], None, others=lambda: ["b/**"])

    assert mine == CommitOutcome(mine.commit, mine.commit or "", ("a/x",), ())
    assert mine.commit == git.branch_commit("orch/T1") and repo.git("rev-parse", f"{mine.commit}^") == start
    assert repo.git("show", "--name-only", "--format=", mine.head) == "a/x"
    theirs = workspaces.commit(worktree, "B\n", ["b/**"], None)
    assert theirs == CommitOutcome(theirs.commit, theirs.commit or "", ("b/new", "b/old", "b/y"), ())
    assert repo.git("show", "--name-status", "--no-renames", "--format=", theirs.head).splitlines() == [
        "A\tb/new",
        "D\tb/old",
        "A\tb/y",
    ]
    assert Git(worktree).status() == []
