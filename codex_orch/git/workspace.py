"""Worktrees and branches of a run, and the commits codex-orch makes in them."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_orch.errors import GitError, InputError
from codex_orch.git.repo import FALLBACK_IDENTITY, Git, commit_config
from codex_orch.git.worktrees import add_worktree, attach_worktree, discard_worktree

DECISIONS_FILE = "docs/ai/decisions.md"


@dataclass(frozen=True)
class CommitOutcome:
    commit: str | None
    head: str
    files: tuple[str, ...] = ()
    violations: tuple[str, ...] = ()
    preserved_ref: str | None = None


@dataclass(frozen=True)
class Workspace:
    worktree: Path
    branch: str
    base_commit: str


def branch_name(template: str, source: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"{source}: git branch template {template!r}: unknown or bad placeholder {exc}") from None


def path_matches(path: str, globs: Sequence[str]) -> bool:
    """Does a repository path fall under any of the globs? `dir/` and `dir/**` cover a whole folder."""
    for glob in globs:
        g = glob.rstrip("/")
        if fnmatch.fnmatchcase(path, g) or path.startswith(g + "/") or fnmatch.fnmatchcase(path, g + "/*"):
            return True
        if g.endswith("/**") and path.startswith(g[:-3] + "/"):
            return True
    return False


def commit_message(run_id: str, task: Mapping[str, Any], attempt: int, thread_id: str | None, summary: str) -> str:
    first = " ".join(summary.split())[:72] or "no summary"
    body = summary.strip()
    lines = [f"{task['id']} ({task['role']}): {first}", ""]
    if body and body != first:
        lines += [body, ""]
    lines += [
        f"Orch-Run: {run_id}",
        f"Orch-Task: {task['id']}",
        f"Orch-Role: {task['role']}",
        f"Orch-Attempt: {attempt}",
        f"Codex-Thread: {thread_id or 'none'}",
    ]
    return "\n".join(lines) + "\n"


def decisions_entry(run_id: str, task_id: str, role: str, decisions: Sequence[Mapping[str, Any]], date: str) -> str:
    lines = [f"## {date} · run {run_id} · {task_id} ({role})", ""]
    for item in decisions:
        decision = " ".join(str(item.get("decision", "")).split())
        rationale = " ".join(str(item.get("rationale", "")).split())
        lines.append(f"- **{decision}**" + (f" — {rationale}" if rationale else ""))
    return "\n".join(lines) + "\n\n"


class Workspaces:
    """Creates the run's worktrees and commits tasks' work in them. Commits in one worktree are
    serialized, so parallel tasks sharing a worktree never interleave their staging."""

    def __init__(self, git: Git, identity: tuple[str, str] | None) -> None:
        self.git = git
        self.identity = identity
        self._commit_locks: dict[Path, threading.Lock] = {}
        self._opened: set[Path] = set()
        self._guard = threading.Lock()

    @staticmethod
    def identity_for(git: Git) -> tuple[str, str] | None:
        return None if git.has_identity() else FALLBACK_IDENTITY

    def ensure(self, worktree: Path, branch: str, start: str, ready: bool = False) -> Workspace:
        """The worktree on `branch`, created from `start` when the branch is new.

        `ready` says the state recorded this worktree as complete: after a crash it is reused as it is
        (the agent's uncommitted work included), minus git lock files the crash left behind. A worktree
        that exists but was never recorded complete is one whose creation a crash cut short: it is
        discarded and made again (nothing ran in it)."""
        if not self.git.valid_branch_name(branch):
            raise InputError(f"branch name {branch!r} is not valid for git (check git.branch_template)")
        with self._guard:
            first_open = worktree not in self._opened
            self._opened.add(worktree)
        if (worktree / ".git").exists() and ready:
            if first_open:
                self._clear_stale_locks(worktree, branch)
            return Workspace(worktree, branch, start)
        if worktree.exists():
            discard_worktree(self.git, worktree)
        worktree.parent.mkdir(parents=True, exist_ok=True)
        if self.git.branch_exists(branch):
            attach_worktree(self.git, worktree, branch)
        else:
            add_worktree(self.git, worktree, branch, start)
        return Workspace(worktree, branch, start)

    def _clear_stale_locks(self, worktree: Path, branch: str) -> None:
        """Remove git lock files left by a crashed codex-orch, the first time this process opens the
        worktree: before any of its tasks works there (the process holds the run's lock, so no other
        codex-orch does either). Never later: a parallel task's commit may hold those locks then."""
        dot_git = worktree / ".git"
        gitdir = Path(dot_git.read_text("utf-8").split(":", 1)[1].strip()) if dot_git.is_file() else dot_git
        common = self.git.common_dir()
        for lock in (gitdir / "index.lock", gitdir / "HEAD.lock", common / "refs" / "heads" / f"{branch}.lock"):
            lock.unlink(missing_ok=True)

    def merge_into(self, worktree: Path, commits: Sequence[str], task_id: str) -> None:
        """Bring further dependencies' work into a fresh per-task worktree."""
        git = self.git.at(worktree)
        for commit in commits:
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

    def _lock_for(self, worktree: Path) -> threading.Lock:
        with self._guard:
            return self._commit_locks.setdefault(worktree, threading.Lock())

    def find_commit(self, worktree: Path, run_id: str, task_id: str, base: str) -> str | None:
        """The commit already made for this task (a crash may have come between commit and journal)."""
        git = self.git.at(worktree)
        for sha in git.commits_with_trailer(f"{base}..HEAD", "Orch-Task", task_id):
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
        others: Sequence[str] = (),
        preserve_ref: str = "",
        check_staged: Callable[[str], None] | None = None,
    ) -> CommitOutcome:
        """Commit the task's changes.

        With `paths` (parallel tasks in a shared worktree) only changes under them are committed;
        changes outside them and outside `others` (the paths of tasks still running there) are
        violations: saved in a commit under `preserve_ref`, then reverted, so nothing is lost and no
        later task commits them under its own name. `check_staged` sees the staged diff before the
        commit (git.commit_changes); when it raises, the decisions entry is taken back out.
        """
        git = self.git.at(worktree)
        with self._lock_for(worktree):
            violations: list[str] = []
            preserved = None
            stage: list[str] | None = None
            if paths is not None:
                entries = git.status()
                stage = [e.path for e in entries if path_matches(e.path, paths)]
                violations = [
                    e.path for e in entries if not path_matches(e.path, paths) and not path_matches(e.path, others)
                ]
                if violations:
                    preserved = self._preserve_and_revert(git, violations, preserve_ref, message)
            extra: list[str] = []
            target = worktree / DECISIONS_FILE
            size = target.stat().st_size if decisions and target.is_file() else None
            if decisions:
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    target.write_text("# Decisions\n\nRecorded by codex-orch from the agents' answers.\n\n", "utf-8")
                with open(target, "a", encoding="utf-8") as fh:
                    fh.write(decisions)
                extra.append(DECISIONS_FILE)
            try:
                sha, files = git.commit_changes(message, stage, self.identity, extra, check_staged)
            except BaseException:
                if decisions:  # the entry goes with the commit it belongs to: retried, it is written again
                    _truncate(target, size)
                raise
            return CommitOutcome(sha, sha or git.head(), tuple(files), tuple(violations), preserved)

    def _preserve_and_revert(self, git: Git, files: Sequence[str], ref: str, message: str) -> str:
        """Save `files` as they are in a commit on `ref` (via a private index), then restore them to HEAD."""
        import os
        import tempfile

        fd, index = tempfile.mkstemp(prefix="codex-orch-index-")
        os.close(fd)
        try:
            private = Git(git.cwd, {"GIT_INDEX_FILE": index})
            private.run("read-tree", "HEAD")
            private.run("add", "-A", "--", *files)
            tree = private.run("write-tree")
        finally:
            os.unlink(index)
        sha = git.run(
            *commit_config(self.identity),
            "commit-tree",
            tree,
            "-p",
            "HEAD",
            "-m",
            "changes outside the task's paths\n\n" + message,
        )
        git.run("update-ref", ref, sha)
        in_head = set(git.run("ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *files, strip=False).split("\0"))
        tracked = [f for f in files if f in in_head]
        if tracked:
            git.run("checkout", "HEAD", "--", *tracked)
        for rel in files:
            if rel not in in_head:
                git.run("rm", "-q", "--cached", "--ignore-unmatch", "--", rel)
                target = git.cwd / rel
                if target.is_file() or target.is_symlink():
                    target.unlink()
        return ref


def _truncate(path: Path, size: int | None) -> None:
    """Cut a file back to `size` bytes (None: it did not exist)."""
    if size is None:
        path.unlink(missing_ok=True)
    else:
        with open(path, "r+b") as fh:
            fh.truncate(size)
