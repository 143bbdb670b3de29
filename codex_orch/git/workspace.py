"""Worktrees and branches of a run, and the commits codex-orch makes in them."""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_orch.errors import GitError, GuardrailError, InputError, OrchError
from codex_orch.git.guard import Guard
from codex_orch.git.landing import Landed, land, replay
from codex_orch.git.repo import FALLBACK_IDENTITY, Git, commit_config
from codex_orch.git.worktrees import (
    add_worktree,
    admin_dir,
    attach_worktree,
    discard_worktree,
    recycle,
    set_aside,
    take_up,
)
from codex_orch.proc.procfs import PathUser, file_holders, path_users
from codex_orch.safe_fs import UnsafePath, append_text, truncate

DECISIONS_FILE = "docs/ai/decisions.md"
log = logging.getLogger(__name__)


DECISIONS_HEADER = "# Decisions\n\nRecorded by codex-orch from the agents' answers.\n\n"


@dataclass(frozen=True)
class CommitOutcome:
    commit: str | None
    head: str
    files: tuple[str, ...] = ()
    violations: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workspace:
    worktree: Path
    branch: str
    base_commit: str
    admin: Path  # the worktree's admin dir in the common git dir (codex-orch never reads its .git file)


def _listing(users: Sequence[PathUser]) -> str:
    shown = "; ".join(str(u) for u in users[:3])
    return shown + (f" and {len(users) - 3} more" if len(users) > 3 else "")


def _is_git(user: PathUser) -> bool:
    program = user.command.split(" ", 1)[0]
    return program.rsplit("/", 1)[-1].startswith("git")


def branch_name(template: str, source: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"{source}: git branch template {template!r}: unknown or bad placeholder {exc}") from None


def path_matches(path: str, globs: Sequence[str]) -> bool:
    """Does a repository path fall under any of the globs? `dir`, `dir/`, `dir/*` and `dir/**` cover a
    whole folder (`*` crosses `/`, as in fnmatch). A glob also matches the path it names literally: `a[b]/*`
    covers the folder `a[b]` as well as `ab` (fnmatch reads `[b]` as a class)."""
    for glob in globs:
        g = glob.rstrip("/")
        folder = g.removesuffix("/**") if g.endswith("/**") else g.removesuffix("/*")
        if path == g or path.startswith(folder + "/"):
            return True
        if fnmatch.fnmatchcase(path, g) or fnmatch.fnmatchcase(path, g + "/*"):
            return True
    return False


class Workspaces:
    """Creates the run's worktrees and commits tasks' work in them. Commits in one worktree are
    serialized, so parallel tasks sharing a worktree never interleave their staging."""

    def __init__(self, git: Git, identity: tuple[str, str] | None, guard: Guard | None = None) -> None:
        self.git = git
        self.identity = identity
        self.guard = guard
        self._commit_locks: dict[Path, threading.Lock] = {}
        self._opened: set[Path] = set()
        self._admins: dict[Path, Path] = {}
        self._branches: dict[Path, str] = {}
        self._excludes: dict[Path, Path] = {}
        self._spares: list[Path] = []  # retired worktrees, for the next new ones (retire, recycle)
        # how many spares are worth keeping: more than the agents that run at once, or than the tasks left
        # to start, would only wait to be removed (drop_spares)
        self.spares_wanted: Callable[[], int] = lambda: 4
        self._guard = threading.Lock()
        self._landing = threading.Lock()

    def git_at(self, worktree: Path) -> Git:
        """git in one of the run's worktrees, its admin dir named (never discovered from its .git file)."""
        with self._guard:
            admin = self._admins.get(worktree)
            excludes = self._excludes.get(worktree)
        if admin is None:
            admin = admin_dir(self.git, worktree)
            with self._guard:
                self._admins[worktree] = admin
        return self.git.worktree(worktree, admin, (f"core.excludesFile={excludes}",) if excludes else ())

    def exclude(self, worktree: Path, excludes: Path) -> None:
        """From now on codex-orch's git in `worktree` ignores what `excludes` lists (the files its setup
        made or copied). Worktrees share the common dir's info/exclude, so a worktree's own list is given
        to each command as its `core.excludesFile` (which holds the user's global excludes too)."""
        with self._guard:
            self._excludes[worktree] = excludes

    def set_aside(
        self, worktree: Path, ref: str, message: str, paths: Sequence[str] | None, revert: bool
    ) -> str | None:
        """The worktree's uncommitted changes (under `paths`, when given) saved in a commit on `ref` (its
        parent the worktree's HEAD); with `revert`, taken out of the worktree after. None: no change."""
        git = self.git_at(worktree)
        with self._lock_for(worktree), self._ours(ref):
            files = [e.path for e in git.status() if paths is None or path_matches(e.path, paths)]
            return set_aside(git, files, ref, message, self.identity, revert) if files else None

    def _ours(self, *refs: str) -> Any:
        """codex-orch moves these refs itself: the guard is told, and no check runs meanwhile."""
        from contextlib import nullcontext

        return self.guard.ours(*refs) if self.guard is not None else nullcontext()

    @staticmethod
    def identity_for(git: Git) -> tuple[str, str] | None:
        return None if git.has_identity() else FALLBACK_IDENTITY

    def ensure(self, worktree: Path, branch: str, start: str, ready: bool = False, fresh: bool = False) -> Workspace:
        """The worktree on `branch`, created from `start` when the branch is new.

        `ready` says the state recorded this worktree as complete: after a crash it is reused as it is
        (the agent's uncommitted work included), minus git lock files the crash left behind. A worktree
        that exists but was never recorded complete is one whose creation a crash cut short: it is
        discarded and made again (nothing ran in it). `fresh` says the same of the branch: one left
        over holds nothing recorded, and is made again from `start`."""
        if not self.git.valid_branch_name(branch):
            raise InputError(f"branch name {branch!r} is not valid for git (check git.branch_template)")
        with self._guard:
            first_open = worktree not in self._opened
            self._opened.add(worktree)
        registered = self._registered(worktree)
        linked = worktree.is_symlink()  # an agent's link in its place: never worked through, made again
        if registered is not None and ready and worktree.is_dir() and not linked:
            if first_open:
                self._clear_stale_locks(registered, worktree, branch)
            return self._opened_workspace(worktree, branch, start, registered)
        if registered is None and not linked and worktree.exists() and not worktree.is_dir():
            raise GitError(
                f"{worktree} already exists and is not a worktree codex-orch made", "Move it away, then run again."
            )
        if worktree.exists() and not linked:
            users = path_users([worktree])[worktree]
            if users:
                raise GitError(
                    f"{worktree} was left half-made by a crash, and it cannot be made again while a process "
                    f"uses it: {_listing(users)}",
                    "Stop that process, then resume the run.",
                )
        if linked or worktree.exists() or registered is not None:
            discard_worktree(self.git, worktree)
        worktree.parent.mkdir(parents=True, exist_ok=True)
        with self._ours(f"refs/heads/{branch}"):
            exists = self.git.branch_exists(branch)
            if fresh and exists:
                self.git.run("branch", "--quiet", "-D", branch)
            if exists and not fresh:
                attach_worktree(self.git, worktree, branch)
            elif not self._recycled(worktree, branch, start):
                add_worktree(self.git, worktree, branch, start)
        return self._opened_workspace(worktree, branch, start, admin_dir(self.git, worktree))

    def _recycled(self, worktree: Path, branch: str, start: str) -> bool:
        """Made out of a spare worktree (worktrees.recycle): not one a process still uses (what an agent
        left running there must not see the next task's work), nor one that fails to switch, which is
        removed like a half-made one."""
        with self._guard:
            spare = self._spares.pop() if self._spares else None
        if spare is None:
            return False
        try:
            if not path_users([spare])[spare]:
                recycle(self.git, spare, worktree, branch, start)
                return True
        except OrchError as exc:
            log.warning("made %s anew: its spare worktree %s could not be used: %s", worktree, spare, exc)
        for folder in (spare, worktree):
            if folder.exists():
                discard_worktree(self.git, folder)
        if self.git.branch_exists(branch):
            self.git.run("branch", "--quiet", "-D", branch)
        return False

    def take_up(self, worktree: Path, branch: str, start: str, keep_ref: str) -> bool:
        """A worktree another run left on its own branch (the job service's worktree of a job branch),
        switched to `branch`, what it held uncommitted saved on `keep_ref` (worktrees.take_up). Whether
        it was: False when there is none, or it is on `branch` already."""
        if self._registered(worktree) is None or not worktree.is_dir() or worktree.is_symlink():
            return False
        with self._ours(f"refs/heads/{branch}", keep_ref):
            return take_up(self.git, worktree, branch, start, keep_ref)

    def _branch_ref(self, worktree: Path, git: Git) -> str:
        with self._guard:
            branch = self._branches.get(worktree)
        return f"refs/heads/{branch}" if branch else git.run("symbolic-ref", "HEAD")

    def _registered(self, worktree: Path) -> Path | None:
        try:
            return admin_dir(self.git, worktree)
        except GitError:
            return None

    def _opened_workspace(self, worktree: Path, branch: str, start: str, admin: Path) -> Workspace:
        with self._guard:
            self._admins[worktree] = admin
            self._branches[worktree] = branch
        if self.guard is not None:
            self.guard.watch(worktree, admin, branch)
        return Workspace(worktree, branch, start, admin)

    def _clear_stale_locks(self, admin: Path, worktree: Path, branch: str) -> None:
        """Remove git lock files left by a crashed codex-orch, the first time this process opens the
        worktree: before any of its tasks works there (the process holds the run's lock, so no other
        codex-orch does either). Never later: a parallel task's commit may hold those locks then.

        Never one a live process holds open, nor while a git process works in the worktree (a git that
        is between two writes, or runs a hook, holds its lock without an open file): that lock is not
        stale, and the git command that needs it waits for it or fails saying so."""
        common = self.git.common_dir()
        locks = [admin / "index.lock", admin / "HEAD.lock", common / "refs" / "heads" / f"{branch}.lock"]
        locks = [lock for lock in locks if lock.exists()]
        if not locks:
            return
        gits = [u for u in path_users([worktree])[worktree] if _is_git(u)]
        for lock in locks:
            holders = file_holders(lock) or gits
            if holders:
                log.warning("kept %s: it is in use by %s", lock, _listing(holders))
                continue
            lock.unlink(missing_ok=True)

    def merge_into(self, worktree: Path, commits: Sequence[str], task_id: str) -> None:
        """Bring further dependencies' work into a fresh per-task worktree."""
        git = self.git_at(worktree)
        branch = self._branch_ref(worktree, git)
        for commit in commits:
            with self._ours(branch):
                code, out, err = git.run_full(
                    *commit_config(self.identity),
                    "merge",
                    "--no-edit",
                    "-q",
                    "-m",
                    f"{task_id}: merge dependency {commit[:12]}",
                    commit,
                )
            if code != 0:
                git.run_full("merge", "--abort")
                raise GitError(f"{task_id}: its dependencies conflict ({(err or out).strip().splitlines()[-1:]})")

    def retire(self, worktree: Path) -> None:
        """A worktree whose work is kept elsewhere (a landed task's: on the run branch and its own branch)
        becomes a spare: the next new worktree is made of it (recycle), and those left at the end are
        removed (drop_spares). A long run keeps a few worktrees, not one per task: each git command's
        cost grows with the worktrees it has to look through, and each holds a checkout on disk."""
        with self._lock_for(worktree), self._ours():
            if self.guard is not None:
                self.guard.unwatch(worktree)
        with self._guard:
            for table in (self._admins, self._branches, self._commit_locks, self._excludes):
                table.pop(worktree, None)
            self._opened.discard(worktree)
            kept = len(self._spares) < self.spares_wanted()
            if kept:
                self._spares.append(worktree)
        if not kept:
            with self._ours():
                discard_worktree(self.git, worktree)

    def drop_spares(self) -> None:
        """Remove the spare worktrees (at the end of a run); one that cannot be removed stays for `clean`."""
        with self._guard:
            spares, self._spares = self._spares, []
        for spare in spares:
            try:
                with self._ours():
                    discard_worktree(self.git, spare)
            except OrchError as exc:
                log.warning("the spare worktree %s stays: %s", spare, exc)

    def _lock_for(self, worktree: Path) -> threading.Lock:
        with self._guard:
            return self._commit_locks.setdefault(worktree, threading.Lock())

    def ensure_branch(self, branch: str, start: str) -> None:
        """The run branch of a landing run (no worktree has it: tasks land on it without a checkout)."""
        if not self.git.valid_branch_name(branch):
            raise InputError(f"branch name {branch!r} is not valid for git (check git.shared_branch_template)")
        with self._ours(f"refs/heads/{branch}"):
            if not self.git.branch_exists(branch):
                self.git.run("branch", "--quiet", "--no-track", branch, start)
        self.watch_branch(branch)

    def watch_branch(self, branch: str) -> None:
        """The guard watches the run branch from now on: an agent that moves it is caught and put back."""
        if self.guard is not None:
            self.guard.watch_branch(branch)

    def tip(self, branch: str) -> str:
        return self.git.branch_tip(branch)

    def land(
        self, branch: str, task_commit: str, base: str, message: str, appended: tuple[str, str, str] | None
    ) -> Landed:
        """Land a task's change on the run branch (git/landing.py), one landing at a time."""
        with self._landing, self._ours(f"refs/heads/{branch}"):
            return land(self.git, branch, task_commit, base, message, appended, self.identity)

    def replay(self, worktree: Path, tip: str, base: str, task_commit: str) -> tuple[str, ...]:
        """The task's change re-applied in its worktree on `tip`, conflicts marked (git/landing.py)."""
        git = self.git_at(worktree)
        with self._lock_for(worktree), self._ours(self._branch_ref(worktree, git)):
            return replay(git, tip, base, task_commit)

    def find_landed(self, branch: str, run_id: str, task_id: str, base: str) -> str | None:
        """The commit that landed this task's work on the run branch already (a crash may have come
        between the landing and the journal)."""
        return self._with_trailers(self.git, f"{base}..refs/heads/{branch}", run_id, task_id)

    def find_commit(self, worktree: Path, run_id: str, task_id: str, base: str) -> str | None:
        """The commit already made for this task (a crash may have come between commit and journal)."""
        return self._with_trailers(self.git_at(worktree), f"{base}..HEAD", run_id, task_id)

    @staticmethod
    def _with_trailers(git: Git, rev_range: str, run_id: str, task_id: str) -> str | None:
        for sha in git.commits_with_trailer(rev_range, "Orch-Task", task_id):
            body = git.run("log", "-1", "--format=%B", sha)
            if f"\nOrch-Run: {run_id}\n" in f"\n{body}\n":
                return sha
        return None

    def commit(
        self,
        worktree: Path,
        message: str,
        paths: Sequence[str] | None,
        decisions: str | None,
        others: Callable[[], Sequence[str]] = tuple,
        preserve_ref: str = "",
        check_staged: Callable[[str], None] | None = None,
    ) -> CommitOutcome:
        """Commit the task's changes.

        With `paths` (parallel tasks in a shared worktree) only changes under them are committed;
        changes outside them and outside `others()` (the paths of tasks still running there) are
        violations: saved in a commit under `preserve_ref`, then reverted, so nothing is lost and no
        later task commits them under its own name. Both the status and `others()` are read while this
        worktree's commit lock is held, so a task that started while this one waited for the lock has
        its files counted as its own, not as this task's violations.
        `check_staged` sees the staged diff before the commit (git.commit_changes); when it raises, the
        decisions entry is taken back out.
        """
        git = self.git_at(worktree)
        branch = self._branch_ref(worktree, git)
        with self._lock_for(worktree), self._ours(branch, preserve_ref):
            violations: list[str] = []
            stage: list[str] | None = None
            if paths is not None:
                entries = git.status()
                running = others()
                stage = [e.path for e in entries if path_matches(e.path, paths)]
                violations = [
                    e.path for e in entries if not path_matches(e.path, paths) and not path_matches(e.path, running)
                ]
                if violations:
                    set_aside(
                        git, violations, preserve_ref, "changes outside the task's paths\n\n" + message, self.identity
                    )
            extra: list[str] = []
            size = 0
            if decisions:
                try:
                    size = append_text(worktree, DECISIONS_FILE, decisions, header=DECISIONS_HEADER)
                except UnsafePath as exc:
                    raise GuardrailError(
                        f"codex-orch did not write the decisions: {exc}",
                        f"Leave {DECISIONS_FILE} and its folders plain files and folders inside the worktree.",
                    ) from None
                extra.append(DECISIONS_FILE)
            try:
                sha, files = git.commit_changes(message, stage, self.identity, extra, check_staged)
            except BaseException:
                if decisions:  # the entry goes with the commit it belongs to: retried, it is written again
                    truncate(worktree, DECISIONS_FILE, size)
                raise
            return CommitOutcome(sha, sha or git.head(), tuple(files), tuple(violations))
