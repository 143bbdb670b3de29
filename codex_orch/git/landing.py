"""Landing a task's work on the run branch: its change re-applied on the branch's current tip as one
commit, without a checkout, and when that conflicts, the change replayed in the task's worktree with
conflict markers for its agent to resolve.

A task of a landing run works in a worktree of its own, branched from the run branch's tip when it
started. Other tasks land meanwhile, so by the time it finishes the tip may have moved: its commit is
then merged onto the tip by `git merge-tree --write-tree` (the merge base is where its branch started,
so this is a cherry-pick) and committed with the tip as its only parent, keeping its message and
author. The run branch stays linear: one commit per task, in the order they landed, each one's
dependencies before it (a task starts only after its dependencies landed).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from codex_orch.errors import GitError
from codex_orch.git.refs import merge_tree, update_ref
from codex_orch.git.repo import Git, commit_config


@dataclass(frozen=True)
class Landed:
    """A landing's outcome: the commit now at the run branch's tip, or the files that conflict."""

    commit: str | None
    tip: str  # the run branch's tip it was landed on (or tried to)
    conflicts: tuple[str, ...] = ()


def land(
    git: Git,
    branch: str,
    task_commit: str,
    base: str,
    message: str,
    appended: tuple[str, str, str] | None = None,
    identity: tuple[str, str] | None = None,
) -> Landed:
    """Put the change `base..task_commit` on top of `branch` as one commit with `message` (`task_commit`
    may be `base` itself: a task that changed no file but has decisions). `appended` is (path, header,
    text): text added at the end of that file in the landed commit (the decisions entry: every task
    appends to the same file, so it is added here, never in the task's own commit where it would
    conflict). A task commit with nothing to add on a tip that has not moved is fast-forwarded to."""
    ref = f"refs/heads/{branch}"
    tip = git.branch_tip(branch)
    if tip == base and appended is None and task_commit != base:
        update_ref(git, ref, task_commit, tip, f"codex-orch: land {task_commit[:12]}")
        return Landed(task_commit, tip)
    if tip == base:
        tree = git.run("rev-parse", f"{task_commit}^{{tree}}")
    else:
        merged = merge_tree(git, tip, task_commit)
        if not merged.clean:
            return Landed(None, tip, merged.conflicts)
        tree = merged.tree
    if appended is not None:
        tree = _append_to(git, tree, *appended)
    new = git.run(*commit_config(identity), "commit-tree", tree, "-p", tip, stdin=message.encode("utf-8"))
    update_ref(git, ref, new, tip, f"codex-orch: land {task_commit[:12]}")
    return Landed(new, tip)


def _append_to(git: Git, tree: str, path: str, header: str, text: str) -> str:
    """`tree` with `text` appended to the file at `path` (made with `header` first when missing)."""
    code, blob, _ = git.run_full("rev-parse", "--verify", "--quiet", f"{tree}:{path}")
    old = git.run("cat-file", "blob", blob, strip=False) if code == 0 else header
    return with_file(git, tree, path, old + text)


def with_file(git: Git, tree: str, path: str, text: str) -> str:
    """`tree` with the file at `path` holding `text` (a regular file), as a new tree object."""
    new_blob = git.run("hash-object", "-w", "--stdin", stdin=text.encode("utf-8"))
    fd, index = tempfile.mkstemp(prefix="codex-orch-land-index-")
    os.close(fd)
    try:
        private = git.with_env({"GIT_INDEX_FILE": index})
        private.run("read-tree", tree)
        private.run("update-index", "--add", "--cacheinfo", f"100644,{new_blob},{path}")
        return private.run("write-tree")
    finally:
        os.unlink(index)


def replay(worktree: Git, tip: str, base: str, task_commit: str) -> tuple[str, ...]:
    """Move the task's worktree (and its branch) to `tip` and apply the task's change `base..task_commit`
    there with git's three-way apply: what conflicts is left with conflict markers (and unmerged in
    the index) for the agent to resolve. Returns the conflicted files."""
    fd, patch = tempfile.mkstemp(prefix="codex-orch-replay-", suffix=".patch")
    os.close(fd)
    try:  # git writes the patch itself: its bytes never pass through a text decoding
        worktree.run(
            "diff", "--binary", "--full-index", "--no-ext-diff", "--no-textconv", f"--output={patch}", base, task_commit
        )
        worktree.run("reset", "-q", "--hard", tip)
        if os.path.getsize(patch):
            code, out, err = worktree.run_full("apply", "--3way", "--whitespace=nowarn", patch)
            if code not in (0, 1):
                raise GitError(f"git apply --3way failed: {(err or out).strip()[:300]}")
    finally:
        os.unlink(patch)
    unmerged = worktree.run("diff", "--name-only", "-z", "--diff-filter=U", strip=False).split("\0")
    return tuple(dict.fromkeys(p for p in unmerged if p))
