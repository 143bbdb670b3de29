"""The run's `Workspaces` (git/workspace.py) driven in-process, for what the mutation run of the module
found unpinned (docs/testing.md, "The survivors, explained"): the refs codex-orch moves itself are told to
the guard, so that a check never takes them for an agent's; a worktree's commit lock is waited for by the
other operations on that worktree; the fallback identity makes every commit codex-orch makes in a
repository without one; `take_up` passes over what is not a worktree it may work in; a task's commit is
this run's only if its own message says so. Real repositories, real worktrees, real processes.

tests/test_worktrees_inprocess.py holds the rest of the module's tests; the few helpers needed here are
copied from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Repo, wait_for
from test_worktrees_inprocess import admins, files, open_ws

from codex_orch.errors import GitError
from codex_orch.git.guard import Guard
from codex_orch.git.landing import Landed
from codex_orch.git.repo import FALLBACK_IDENTITY, Git
from codex_orch.git.workspace import Workspace, Workspaces, path_matches

CODEX_ORCH = "codex-orch <codex-orch@localhost>"


def commit_on(repo: Repo, branch: str, start: str, rel: str, text: str) -> str:
    """A commit writing `rel` on a new `branch` from `start`, made in the user's checkout (left on main)."""
    repo.git("checkout", "-q", "-b", branch, start)
    repo.write(rel, text)
    repo.git("add", rel)
    repo.git("commit", "-q", "-m", f"{branch}: {rel}")
    repo.git("checkout", "-q", "main")
    return repo.git("rev-parse", branch)


def without_identity(repo: Repo) -> None:
    """The repository's identity emptied (the session's global one is overridden): git refuses to commit."""
    repo.git("config", "user.name", "")
    repo.git("config", "user.email", "")


def no_ref(repo: Repo, ref: str) -> bool:
    return repo.git("rev-parse", "--verify", "--quiet", ref, check=False) == ""


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts (one working in a worktree); killed at the end, their pipes closed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def sleeper(procs: list[subprocess.Popen[bytes]], cwd: Path) -> subprocess.Popen[bytes]:
    """A `sleep 60` working in `cwd`, returned once /proc shows it so."""
    proc = subprocess.Popen(["sleep", "60"], cwd=cwd)
    procs.append(proc)
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    wait_for(lambda: cmdline.read_bytes() == b"sleep\x0060\x00", "sleep to start", timeout=20)
    return proc


# --- paths ----------------------------------------------------------------------------------------
def test_a_glob_ending_in_a_letter_names_that_path_not_its_folder() -> None:
    """Only `/` is trimmed off a glob's end: `lib/X` is the path `lib/X` (and what is under it), never the
    whole of `lib`."""
    assert path_matches("lib/X", ["lib/X"]) and path_matches("lib/X/y.c", ["lib/X"])
    assert not path_matches("lib/other.c", ["lib/X"]) and not path_matches("lib", ["lib/X"])
    assert path_matches("lib/other.c", ["lib/"]) and path_matches("lib/other.c", ["lib//"])


# --- a half-made worktree in use; stale locks and the git working there ----------------------------
def test_a_half_made_worktree_three_processes_work_in_is_kept_naming_the_three(
    repo: Repo, procs: list[subprocess.Popen[bytes]]
) -> None:
    """The message lists up to three processes, and says how many more only when there are more."""
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/T1", start)
    users = sorted((sleeper(procs, worktree) for _ in range(3)), key=lambda p: p.pid)

    with pytest.raises(GitError) as caught:
        Workspaces(git, None).ensure(worktree, "orch/T1", start)  # resume: not `ready`

    shown = "; ".join(f"pid {p.pid} (sleep 60) works in it" for p in users)
    assert caught.value.message == (
        f"{worktree} was left half-made by a crash, and it cannot be made again while a process uses it: {shown}"
    )
    assert caught.value.hint == "Stop that process, then resume the run."
    assert files(worktree) == {"README.md": "# test repo\n"} and admins(repo) == ["T1"]


def test_stale_locks_stay_while_a_real_git_given_paths_works_in_the_worktree(
    repo: Repo, procs: list[subprocess.Popen[bytes]]
) -> None:
    """A git is known by its command line's first word, however many paths its arguments hold
    (`git -C <worktree> cat-file --batch`, waiting for its input): the locks it may be between two writes
    of are not stale, and stay."""
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/T1", start)
    admin = repo.path / ".git" / "worktrees" / "T1"
    locks = [admin / "index.lock", admin / "HEAD.lock", repo.path / ".git" / "refs" / "heads" / "orch" / "T1.lock"]
    for lock in locks:
        lock.write_text("")
    proc = subprocess.Popen(
        ["git", "-C", str(worktree), "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(proc)
    wait_for(lambda: os.readlink(f"/proc/{proc.pid}/cwd") == str(worktree.resolve()), "git to work in the worktree")

    ws = Workspaces(git, None).ensure(worktree, "orch/T1", start, ready=True)  # resume, a new process

    assert ws == Workspace(worktree, "orch/T1", start, admin)
    assert [lock.exists() for lock in locks] == [True, True, True]
    assert proc.poll() is None


# --- take up --------------------------------------------------------------------------------------
def test_take_up_passes_over_what_is_not_a_worktree_it_may_work_in(repo: Repo, tmp_path: Path) -> None:
    """A registered worktree whose folder is gone, or that the agent made a link (to a folder of the user's:
    taking it up would reset and clean that folder), and a folder git never registered (a creation cut
    short, the user's own checkout): none is taken up, nothing in them is touched, no ref is made."""
    git, workspaces, start = open_ws(repo)
    gone, linked = repo.path.parent / "wt" / "gone", repo.path.parent / "wt" / "linked"
    for i, tree in enumerate((gone, linked)):
        workspaces.ensure(tree, f"job/{i}", start)
    shutil.rmtree(gone)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep\n")
    shutil.rmtree(linked)
    linked.symlink_to(victim)
    plain = repo.path.parent / "wt" / "plain"
    plain.mkdir()
    (plain / "half.txt").write_text("half\n")
    (repo.path / "mine.txt").write_text("the user's\n")

    for tree in (gone, linked, plain, repo.path):
        assert workspaces.take_up(tree, "orch/T1", start, "refs/orch/r1/taken-up") is False, tree

    assert files(victim) == {"precious.txt": "keep\n"} and linked.is_symlink()
    assert files(plain) == {"half.txt": "half\n"} and not gone.exists()
    assert files(repo.path) == {"README.md": "# test repo\n", "mine.txt": "the user's\n"}
    assert repo.git("symbolic-ref", "HEAD") == "refs/heads/main" and git.head() == start
    assert repo.branches() == ["job/0", "job/1", "main"] and no_ref(repo, "refs/orch/r1/taken-up")
    assert admins(repo) == ["gone", "linked"]


# --- the guard is told ----------------------------------------------------------------------------
def test_a_worktree_taken_up_moves_refs_the_guard_is_told_of(repo: Repo, tmp_path: Path) -> None:
    """The new run's branch and the ref keeping what the last run left uncommitted are codex-orch's own:
    a check right after finds nothing changed, and both stay (drive.py then opens the worktree as ready)."""
    git = Git(repo.path)
    start = git.head()
    worktree = repo.path.parent / "wt" / "job"
    Workspaces(git, None).ensure(worktree, "job/1", start)  # the job service's last run left it
    (worktree / "left.txt").write_text("left\n")
    guard = Guard(git, "r1")
    guard.start()
    _git, workspaces, _start = open_ws(repo, guard)

    assert workspaces.take_up(worktree, "run/r1", start, "refs/orch/r1/taken-up") is True

    assert guard.check(None, "refs/orch/r1/quarantine/1", tmp_path / "a1") == []
    kept = repo.git("rev-parse", "refs/orch/r1/taken-up")
    assert repo.git("ls-tree", "--name-only", kept).splitlines() == ["README.md", "left.txt"]
    assert git.branch_commit("run/r1") == start
    ws = workspaces.ensure(worktree, "run/r1", start, ready=True)
    assert ws.admin == repo.path / ".git" / "worktrees" / "job"
    assert guard.check(worktree, "refs/orch/r1/quarantine/2", tmp_path / "a2") == []
    assert repo.git("rev-parse", "refs/orch/r1/taken-up") == kept and git.branch_commit("run/r1") == start
    assert [r for r in repo.git("for-each-ref", "--format=%(refname)").splitlines() if "quarantine" in r] == []


def test_the_branches_a_landing_run_moves_are_never_taken_for_an_agents(repo: Repo, tmp_path: Path) -> None:
    """The run branch made (ensure_branch), dependencies merged into a task's branch (merge_into), the
    task landed on the run branch (land): each is codex-orch's move, told to the guard, so a check after
    it finds nothing and puts nothing back."""
    git = Git(repo.path)
    start = git.head()
    deps = [commit_on(repo, name, start, f"{name}.txt", f"{name}\n") for name in ("d1", "d2")]
    guard = Guard(git, "r1")
    guard.start()
    _git, workspaces, _start = open_ws(repo, guard)

    def unchanged(worktree: Path | None, n: int) -> None:
        assert guard.check(worktree, f"refs/orch/r1/quarantine/{n}", tmp_path / f"a{n}") == []

    workspaces.ensure_branch("run/r1", start)
    unchanged(None, 1)
    worktree = repo.path.parent / "wt" / "T3"
    workspaces.ensure(worktree, "task/T3", start)
    workspaces.merge_into(worktree, deps, "T3")
    unchanged(worktree, 2)
    assert repo.git("log", "-1", "--format=%P", "task/T3").split() == deps
    (worktree / "a.txt").write_text("a\n")
    task = workspaces.commit(worktree, "T3: a\n", None, None)
    assert task.commit is not None

    landed = workspaces.land("run/r1", task.commit, start, "T3: a\n", None)

    unchanged(None, 3)
    assert landed == Landed(task.commit, start)  # fast-forwarded
    assert git.branch_commit("run/r1") == task.commit and git.branch_commit("task/T3") == task.commit
    assert [r for r in repo.git("for-each-ref", "--format=%(refname)").splitlines() if "quarantine" in r] == []


def test_a_landing_runs_own_branch_moved_by_an_agent_is_put_back(repo: Repo, tmp_path: Path) -> None:
    """The run branch of a landing run is codex-orch's alone: an agent that puts a commit of its own on it
    has it taken off at the attempt's check, kept under the quarantine ref. (Until session 9 the guard took
    it for another run's branch, under the run-branch prefix `orch/`, and never looked at it: the next task
    landed on the agent's commit.)"""
    git = Git(repo.path)
    start = git.head()
    guard = Guard(git, "r1", all_refs=True, run_branch_prefixes=("orch/",))  # as engine/drive.py makes it
    guard.start()
    _git, workspaces, _start = open_ws(repo, guard)
    run = "orch/20261126/run-r1/workspace-shared"  # the default git.shared_branch_template
    workspaces.ensure_branch(run, start)
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/20261126/run-r1/T1-implementer", start)
    agent = Repo(worktree)
    (worktree / "evil.txt").write_text("the agent's\n")
    agent.git("add", "evil.txt")
    evil = agent.git("commit-tree", agent.git("write-tree"), "-p", start, "-m", "the agent's")
    agent.git("update-ref", f"refs/heads/{run}", evil)
    agent.git("reset", "-q")

    changes = guard.check(worktree, "refs/orch/r1/quarantine/T1/1", tmp_path / "attempt")

    assert [(c.kind, c.name, c.before, c.after) for c in changes] == [("ref", f"refs/heads/{run}", start, evil)]
    assert git.branch_commit(run) == start
    assert repo.git("rev-parse", f"refs/orch/r1/quarantine/T1/1/heads/{run}") == evil


# --- branches, landing, identity ------------------------------------------------------------------
def test_the_run_branch_is_made_at_the_runs_base_not_at_the_checkouts_head(repo: Repo) -> None:
    """The user's checkout may have moved on since the run started: the run branch starts at the base."""
    git, workspaces, start = open_ws(repo)
    repo.write("later.txt", "later\n")
    repo.git("add", "later.txt")
    repo.git("commit", "-q", "-m", "the user moves on")

    workspaces.ensure_branch("orch/run", start)

    assert git.branch_commit("orch/run") == start != git.head()
    assert repo.git("config", "--get-regexp", "^branch\\.", check=False) == ""  # no upstream set up


def test_a_task_on_an_unmoved_run_branch_lands_as_its_own_commit(repo: Repo) -> None:
    """Nothing landed since the task started: the run branch is fast-forwarded to the task's commit, its
    author and dates kept, never a copy of it made now."""
    git, workspaces, start = open_ws(repo)
    workspaces.ensure_branch("orch/run", start)
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/T1", start)
    (worktree / "a.txt").write_text("a\n")
    Repo(worktree).git("add", "a.txt")
    Repo(worktree).git("commit", "-q", "--date=2001-02-03T04:05:06+00:00", "-m", "T1: a")
    task = git.branch_commit("orch/T1")
    assert task is not None

    landed = workspaces.land("orch/run", task, start, "T1: a\n", None)

    assert landed == Landed(task, start)
    assert git.branch_commit("orch/run") == task
    assert repo.git("log", "-1", "--format=%ad", "--date=iso-strict", "orch/run") == "2001-02-03T04:05:06+00:00"


def test_a_repository_without_an_identity_gets_merges_and_landings_as_codex_orch(repo: Repo) -> None:
    """git refuses a commit without an identity: a dependency merged into a task's branch, and a task
    landed on a run branch that moved meanwhile, are committed as codex-orch (Workspaces.identity_for)."""
    git = Git(repo.path)
    start = git.head()
    deps = [commit_on(repo, name, start, f"{name}.txt", f"{name}\n") for name in ("d1", "d2")]
    tip = commit_on(repo, "orch/run", start, "other.txt", "another task's\n")
    without_identity(repo)
    _git, workspaces, _start = open_ws(repo)
    assert workspaces.identity == FALLBACK_IDENTITY
    worktree = repo.path.parent / "wt" / "T3"
    workspaces.ensure(worktree, "orch/T3", start)

    workspaces.merge_into(worktree, deps, "T3")

    merged = git.branch_commit("orch/T3")
    assert merged is not None
    assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%P|%B", merged) == (
        f"{CODEX_ORCH}|{CODEX_ORCH}|{deps[0]} {deps[1]}|T3: merge dependency {deps[1][:12]}"
    )
    assert files(worktree) == {"README.md": "# test repo\n", "d1.txt": "d1\n", "d2.txt": "d2\n"}

    landed = workspaces.land("orch/run", merged, start, "T3: deps\n", None)

    assert landed.tip == tip and landed.conflicts == () and landed.commit == git.branch_commit("orch/run")
    assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%P|%B", "orch/run") == (
        f"{CODEX_ORCH}|{CODEX_ORCH}|{tip}|T3: deps"
    )
    assert repo.git("ls-tree", "--name-only", "orch/run").splitlines() == ["README.md", "d1.txt", "d2.txt", "other.txt"]


def test_a_repository_without_an_identity_gets_a_tasks_stray_changes_set_aside_as_codex_orch(repo: Repo) -> None:
    """In a shared worktree, a task's changes outside its paths are kept in a commit of their own before
    its commit: in a repository without an identity both are made as codex-orch (a commit git refused
    would fail the task for its stray files)."""
    without_identity(repo)
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "shared"
    workspaces.ensure(worktree, "orch/shared", start)
    (worktree / "a").mkdir()
    (worktree / "a" / "x.txt").write_text("mine\n")
    (worktree / "stray.txt").write_text("outside\n")

    outcome = workspaces.commit(worktree, "T1: x\n", ["a/**"], None, others=list, preserve_ref="refs/orch/v/T1")

    assert (outcome.files, outcome.violations) == (("a/x.txt",), ("stray.txt",))
    assert outcome.commit is not None and outcome.commit == git.branch_commit("orch/shared")
    kept = repo.git("rev-parse", "refs/orch/v/T1")
    assert repo.git("show", f"{kept}:stray.txt") == "outside"
    for made in (outcome.commit, kept):
        assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%P", made) == f"{CODEX_ORCH}|{CODEX_ORCH}|{start}"


def test_a_repository_with_an_identity_gets_codex_orchs_commits_in_the_users_name(repo: Repo) -> None:
    """The fallback identity is only for a repository without one: where git knows the user (here the
    session's global config), the task's commit and its landing on a moved run branch are the user's."""
    git = Git(repo.path)
    tip = commit_on(repo, "orch/run", git.head(), "other.txt", "another task's\n")
    git, workspaces, start = open_ws(repo)
    assert Workspaces.identity_for(git) is None and workspaces.identity is None
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/T1", start)
    (worktree / "a.txt").write_text("a\n")

    task = workspaces.commit(worktree, "T1: a\n", None, None).commit
    assert task is not None
    landed = workspaces.land("orch/run", task, start, "T1: a\n", None)

    user = "Test User <test@example.com>"
    assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%P", task) == f"{user}|{user}|{start}"
    assert landed.commit == git.branch_commit("orch/run") and landed.tip == tip
    assert repo.git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%P", "orch/run") == f"{user}|{user}|{tip}"


# --- set aside; found by its trailers -------------------------------------------------------------
def test_changes_only_outside_the_paths_are_not_set_aside(repo: Repo) -> None:
    """A task's failed work is set aside under its paths: when nothing under them changed, nothing is saved,
    and what the worktree's other tasks changed stays where it is."""
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "shared"
    workspaces.ensure(worktree, "orch/shared", start)
    (worktree / "README.md").write_text("a sibling's\n")
    (worktree / "b").mkdir()
    (worktree / "b" / "y.txt").write_text("a sibling's\n")

    assert workspaces.set_aside(worktree, "refs/orch/r1/failed/T1", "T1\n", ["a/**"], revert=True) is None

    assert no_ref(repo, "refs/orch/r1/failed/T1")
    assert files(worktree) == {"README.md": "a sibling's\n", "b/y.txt": "a sibling's\n"}
    assert [(s.code, s.path) for s in Git(worktree).status()] == [(" M", "README.md"), ("??", "b/y.txt")]
    assert git.branch_commit("orch/shared") == start


def test_a_tasks_commit_is_this_runs_only_when_its_own_message_names_the_run(repo: Repo) -> None:
    """Run r2 committed T0, another run took the worktree up and committed its own T1: r2's T1 is not
    done. Only the message of the commit that names the task counts, never its ancestors'."""
    git, workspaces, start = open_ws(repo)
    worktree = repo.path.parent / "wt" / "job"
    workspaces.ensure(worktree, "job/1", start)
    made = {}
    for run, task in (("r2", "T0"), ("r1", "T1")):
        (worktree / f"{task}.txt").write_text(f"{task}\n")
        outcome = workspaces.commit(worktree, f"{task}: x\n\nOrch-Run: {run}\nOrch-Task: {task}\n", None, None)
        made[task] = outcome.commit

    assert workspaces.find_commit(worktree, "r2", "T1", start) is None
    assert workspaces.find_commit(worktree, "r1", "T1", start) == made["T1"]
    assert workspaces.find_commit(worktree, "r2", "T0", start) == made["T0"]
    assert workspaces.find_landed("job/1", "r2", "T1", start) is None
    assert workspaces.find_landed("job/1", "r1", "T1", start) == made["T1"] == git.branch_commit("job/1")


# --- one worktree, one operation at a time --------------------------------------------------------
class CountedLock:
    """A worktree's commit lock that counts the threads waiting for it (put in Workspaces' table of them,
    where `_lock_for` finds it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mutex = threading.Lock()
        self.waiting = 0

    def __enter__(self) -> CountedLock:
        with self._mutex:
            self.waiting += 1
        self._lock.acquire()
        with self._mutex:
            self.waiting -= 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def after_the_commit_in_progress(workspaces: Workspaces, worktree: Path, operation: Callable[[], object]) -> object:
    """Run `operation` while a commit in `worktree` holds its lock: it waits for the lock (and has done
    nothing yet), then runs once the commit is done. What it returned."""
    lock = CountedLock()
    workspaces._commit_locks[worktree] = lock  # type: ignore[assignment]
    result: list[object] = []
    with lock:  # a sibling task's commit is in progress
        thread = threading.Thread(target=lambda: result.append(operation()))
        thread.start()
        wait_for(lambda: lock.waiting or not thread.is_alive(), "the operation to wait for the lock or end")
        assert thread.is_alive() and lock.waiting == 1, "ran while a commit held the worktree's lock"
    thread.join(timeout=120)
    assert not thread.is_alive() and len(result) == 1
    return result[0]


def test_set_aside_replay_and_retire_wait_for_a_commit_in_progress_in_the_worktree(repo: Repo) -> None:
    """Commits in one worktree are serialized: setting a task's changes aside, replaying a task on the
    run branch's tip, and retiring the worktree each wait for the commit that holds its lock."""
    git, workspaces, start = open_ws(repo)
    tip = commit_on(repo, "orch/run", start, "other.txt", "another task's\n")
    worktree = repo.path.parent / "wt" / "T1"
    workspaces.ensure(worktree, "orch/T1", start)
    (worktree / "a.txt").write_text("a\n")
    task = workspaces.commit(worktree, "T1: a\n", None, None).commit
    assert task is not None
    (worktree / "b.txt").write_text("b\n")

    kept = after_the_commit_in_progress(
        workspaces, worktree, lambda: workspaces.set_aside(worktree, "refs/orch/r1/k", "b\n", None, revert=True)
    )

    assert kept == repo.git("rev-parse", "refs/orch/r1/k")
    assert repo.git("ls-tree", "--name-only", "refs/orch/r1/k").splitlines() == ["README.md", "a.txt", "b.txt"]
    assert files(worktree) == {"README.md": "# test repo\n", "a.txt": "a\n"}

    conflicts = after_the_commit_in_progress(
        workspaces, worktree, lambda: workspaces.replay(worktree, tip, start, task)
    )

    assert conflicts == () and git.branch_commit("orch/T1") == tip
    assert files(worktree) == {"README.md": "# test repo\n", "a.txt": "a\n", "other.txt": "another task's\n"}
    workspaces.spares_wanted = lambda: 0

    after_the_commit_in_progress(workspaces, worktree, lambda: workspaces.retire(worktree))

    assert not worktree.exists() and admins(repo) == [] and git.branch_commit("orch/T1") == tip
