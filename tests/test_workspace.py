"""Worktrees shared by parallel tasks: git's lock files are never taken from a live git command.

Real git, real lock files: a lock file is what a running `git add` or `git status` holds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Repo

from codex_orch.errors import GitError
from codex_orch.git.repo import Git
from codex_orch.git.workspace import CommitOutcome, Workspaces

BRANCH = "orch/run-x/workspace-shared"


def open_shared(repo: Repo) -> tuple[Workspaces, Path]:
    git = Git(repo.path)
    workspaces = Workspaces(git, Workspaces.identity_for(git))
    worktree = repo.path.parent / "wt"
    workspaces.ensure(worktree, BRANCH, git.head())
    return workspaces, worktree


def index_lock(worktree: Path) -> Path:
    return Path(Git(worktree).run("rev-parse", "--git-path", "index.lock")).resolve()


def test_a_crashed_runs_stale_locks_are_cleared_when_a_new_process_reopens_the_worktree(repo: Repo) -> None:
    workspaces, worktree = open_shared(repo)
    lock = index_lock(worktree)
    branch_lock = repo.path / ".git" / "refs" / "heads" / f"{BRANCH}.lock"
    lock.write_text("")  # left by a kill -9 during a commit
    branch_lock.write_text("")

    restarted = Workspaces(workspaces.git, workspaces.identity)  # what `resume` makes in a new process
    restarted.ensure(worktree, BRANCH, workspaces.git.head(), ready=True)

    assert not lock.exists() and not branch_lock.exists()
    (worktree / "a.txt").write_text("a\n")
    assert restarted.commit(worktree, "T1: a\n", ["a.txt"], None).commit is not None


def test_reopening_a_worktree_in_use_never_removes_a_live_lock(repo: Repo) -> None:
    """In a shared worktree every task opens the worktree when it starts; one may start while another
    commits. Removing that commit's index.lock made its `git add` fail (or the run crash)."""
    workspaces, worktree = open_shared(repo)
    lock = index_lock(worktree)
    lock.write_text("")  # a sibling task's `git add` holds it right now

    workspaces.ensure(worktree, BRANCH, workspaces.git.head(), ready=True)

    assert lock.exists()


class GitLog(logging.Handler):
    """What codex-orch's git runner logs, as it happens: `seen(words)` is set once a line holds them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.waiting = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if "locked by another git process; waiting" in record.getMessage():
            self.waiting.set()


@pytest.fixture
def git_log() -> Iterator[GitLog]:
    logger = logging.getLogger("codex_orch.git.repo")
    handler, level = GitLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_commit_waits_for_another_git_process_to_release_the_index(repo: Repo, git_log: GitLog) -> None:
    """A sibling agent's `git status`, or an editor polling the worktree, holds index.lock for a moment.
    The lock is let go only once the commit has met it and is waiting."""
    workspaces, worktree = open_shared(repo)
    (worktree / "a.txt").write_text("a\n")
    lock = index_lock(worktree)
    lock.write_text("")
    outcome: dict[str, CommitOutcome] = {}
    committer = threading.Thread(
        target=lambda: outcome.setdefault("a", workspaces.commit(worktree, "T1: a\n", ["a.txt"], None))
    )
    committer.start()
    try:
        assert git_log.waiting.wait(timeout=30), git_log.lines
        assert committer.is_alive() and Git(worktree).head() == Git(repo.path).head()  # held: nothing committed
    finally:
        lock.unlink()
        committer.join(timeout=60)
    assert outcome["a"].files == ("a.txt",)
    assert Git(worktree).run("log", "-1", "--format=%s") == "T1: a"
    assert Git(worktree).status() == []


def test_an_index_lock_held_for_good_fails_the_commit_with_what_to_do(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, git_log: GitLog
) -> None:
    monkeypatch.setattr("codex_orch.git.repo.INDEX_LOCK_WAIT", 0.3)
    workspaces, worktree = open_shared(repo)
    (worktree / "a.txt").write_text("a\n")
    index_lock(worktree).write_text("")
    head = Git(worktree).head()

    with pytest.raises(GitError) as caught:
        workspaces.commit(worktree, "T1: a\n", ["a.txt"], None)

    assert [line.split(": ", 1)[1] for line in git_log.lines[-2:]] == [  # it did wait before giving up
        "the index is locked by another git process; waiting",
        "the index is still locked after 0.3 s; giving up",
    ]
    assert "index.lock': File exists" in caught.value.message
    assert caught.value.hint and "remove the file and resume" in caught.value.hint
    assert Git(worktree).head() == head


def test_worktrees_made_in_parallel_hold_their_start_commit_checked_out(repo: Repo) -> None:
    for i in range(40):
        repo.write(f"src/m{i}.py", f"v = {i}\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "files")
    git = Git(repo.path)
    workspaces = Workspaces(git, Workspaces.identity_for(git))
    start = git.head()
    made: dict[int, Path] = {}
    errors: list[BaseException] = []

    def make(i: int) -> None:
        try:
            made[i] = workspaces.ensure(repo.path.parent / "wt" / f"T{i}", f"orch/t{i}", start).worktree
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors, errors
    assert sorted(made) == list(range(8))
    for i, worktree in made.items():
        assert (worktree / "src" / "m39.py").read_text() == "v = 39\n"
        assert Git(worktree).status() == []  # index and files both match the start commit
        assert Git(worktree).run("rev-parse", "--abbrev-ref", "HEAD") == f"orch/t{i}"


def test_a_branch_left_without_its_worktree_by_a_crash_is_checked_out_again(repo: Repo) -> None:
    """add_worktree makes the branch before it registers the worktree; a kill -9 between the two leaves
    the branch alone. The next ensure (from resume) checks that branch out, without moving it."""
    git = Git(repo.path)
    start = git.head()
    repo.git("branch", "orch/t1", start)  # what the crash left
    worktree = repo.path.parent / "wt" / "T1"

    Workspaces(git, None).ensure(worktree, "orch/t1", start)

    assert (worktree / "README.md").read_text() == "# test repo\n"
    assert Git(worktree).run("rev-parse", "--abbrev-ref", "HEAD") == "orch/t1"
    assert Git(worktree).head() == start and Git(worktree).status() == []


def test_a_task_that_starts_while_another_waits_to_commit_keeps_its_files(repo: Repo) -> None:
    """The race of issue 19, made to happen every time: task A waits for the worktree's commit lock
    (a sibling's commit holds it); meanwhile task C starts and writes its file. What is whose must be
    decided inside the lock, after the status is read: C's file is not A's violation."""
    workspaces, worktree = open_shared(repo)
    running = {"A": ["a/**"], "B": ["b/**"]}
    (worktree / "a").mkdir()
    (worktree / "a" / "x.txt").write_text("A\n")
    lock = workspaces._lock_for(worktree)
    lock.acquire()  # B's commit is in progress
    outcome: dict[str, CommitOutcome] = {}

    def commit_a() -> None:
        others = lambda: [glob for task, globs in running.items() if task != "A" for glob in globs]  # noqa: E731
        outcome["a"] = workspaces.commit(
            worktree, "A: a\n", ["a/**"], None, others=others, preserve_ref="refs/orch/x/violations/A"
        )

    thread = threading.Thread(target=commit_a)
    thread.start()
    running["C"] = ["c/**"]  # C starts while A waits for the lock...
    (worktree / "c").mkdir()
    (worktree / "c" / "y.txt").write_text("C\n")  # ...and writes its file
    lock.release()
    thread.join(timeout=60)
    result = outcome["a"]
    assert result.violations == ()
    assert result.files == ("a/x.txt",)
    assert (worktree / "c" / "y.txt").read_text() == "C\n"  # not set aside, not reverted
    assert Git(repo.path).run("for-each-ref", "refs/orch/x/violations/") == ""


def test_a_branch_read_from_gits_files_is_what_git_itself_says(repo: Repo) -> None:
    """Git.branch_commit and Git.head read refs from git's files, not from a git process: loose refs,
    packed-refs, absent and nested branches, and a worktree's HEAD must all read as git reads them."""
    git = Git(repo.path)
    first = git.head()
    repo.git("branch", "loose")
    repo.git("branch", "nested/deep/branch")
    repo.git("branch", "packed")
    repo.git("pack-refs", "--all")  # 'packed' (and the others) now live in packed-refs only
    repo.write("b.txt", "b\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "second")
    second = git.head()
    repo.git("branch", "-f", "loose", second)  # a loose ref again, newer than its packed line
    repo.git("branch", "-D", "nested/deep/branch")

    assert git.branch_commit("loose") == second == repo.git("rev-parse", "loose")
    assert git.branch_commit("packed") == first == repo.git("rev-parse", "packed")
    assert git.branch_commit("nested/deep/branch") is None and not git.branch_exists("nested/deep/branch")
    assert git.branch_commit("nested") is None and git.branch_commit("missing") is None
    workspaces = Workspaces(git, Workspaces.identity_for(git))
    worktree = repo.path.parent / "wt"
    ws = workspaces.ensure(worktree, "orch/t1", first)
    wgit = workspaces.git_at(worktree)
    assert wgit.head() == first
    (worktree / "c.txt").write_text("c\n")
    made = workspaces.commit(worktree, "T1: c\n", None, None)
    assert made.commit == wgit.head() == Git(worktree).run("rev-parse", "HEAD") == git.branch_commit(ws.branch)
    Git(worktree).run("checkout", "-q", "--detach", first)
    assert wgit.head() == first


def test_a_git_planted_in_the_directory_a_command_runs_in_is_never_run(repo: Repo, tmp_path: Path) -> None:
    """An agent can write a `git` into its worktree; with a relative entry such as `.` first on PATH,
    a plain exec of "git" in that directory would run it. codex-orch runs the git that PATH names from
    its own directory."""
    import shutil

    work = tmp_path / "agent-worktree"
    work.mkdir()
    marker = tmp_path / "planted-git-ran"
    planted = work / "git"
    planted.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    planted.chmod(0o755)
    real = Path(shutil.which("git") or "/usr/bin/git").parent
    git = Git(work, {"PATH": f".:{real}"})  # a Git for a path outside any repository: discovery fails

    code, _, err = git.run_full("--version")
    assert code == 0 and not err
    assert not marker.exists(), "the git planted in the command's directory ran"


def test_parallel_pushes_of_a_forward_moving_ref_all_succeed_and_leave_the_latest(repo: Repo, tmp_path: Path) -> None:
    """A Temporal submitter lands tasks side by side and pushes the run's tip after each landing. Two
    pushes of one ref at once make one fail ("cannot lock ref"), which failed the landing; SerialPush
    pushes in turn, each time the tip as it is then."""
    from codex_orch.git.remote import SerialPush

    remote = tmp_path / "shared.git"
    repo.git("clone", "-q", "--bare", str(repo.path), str(remote))
    git = Git(repo.path)
    tips = []
    for i in range(16):
        (repo.path / f"f{i}.txt").write_text(f"{i}\n")
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", f"c{i}")
        tips.append(repo.git("rev-parse", "HEAD"))
    pusher = SerialPush(git, str(remote), "refs/orch/r/tip")
    start = threading.Barrier(8)
    errors: list[BaseException] = []
    latest = iter(tips)

    def land() -> None:
        start.wait()
        for _ in range(2):
            try:
                pusher.push(lambda: next(latest))  # each landing moves the tip forward, then pushes it
            except GitError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=land) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Repo(remote).git("rev-parse", "refs/orch/r/tip") == tips[-1]
