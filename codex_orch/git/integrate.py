"""One step of the integration queue: a task's work put on top of the integration tip as a new commit,
without a checkout (`merge-tree --write-tree`, `commit-tree`; no ref moves here).

Two kinds of work. A commit of a linear run branch (landing and shared runs: one commit per task) is
*re-applied*: its change from its parent, cherry-picked onto the tip, keeping its message and author.
The branch of a per-task run is *merged*: a merge commit of the tip and the task's branch. Either way
the file every task appends to (docs/ai/decisions.md) gets both sides' entries instead of a conflict
when each side only appended to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from codex_orch.git.landing import with_file
from codex_orch.git.refs import is_ancestor, merge_tree
from codex_orch.git.repo import Git, commit_config
from codex_orch.git.workspace import DECISIONS_FILE, DECISIONS_HEADER


@dataclass(frozen=True)
class Applied:
    """The integration tip after one step, or the files that conflict (then `commit` is None)."""

    commit: str | None
    how: str  # "fast-forward", "re-applied", "merge", "already in" or "conflict"
    conflicts: tuple[str, ...] = ()


def reapply(git: Git, onto: str, commit: str, identity: tuple[str, str] | None = None) -> Applied:
    """`commit`'s change from its first parent, as a commit on top of `onto` (the commit itself when
    `onto` is its parent). git 2.39's `merge-tree --write-tree` takes no merge base, so the three-way
    merge is given one: the parent's tree as the only ancestor of two stand-in commits of `onto`'s and
    `commit`'s trees (objects nothing refers to; git's gc drops them)."""
    parent = git.run("rev-parse", f"{commit}^")
    if parent == onto:
        return Applied(commit, "fast-forward")
    if is_ancestor(git, commit, onto):
        return Applied(onto, "already in")
    tree, conflicts = _picked(git, onto, parent, commit)
    if conflicts:
        return Applied(None, "conflict", conflicts)
    if tree == git.run("rev-parse", f"{onto}^{{tree}}"):
        return Applied(onto, "already in")
    fields = git.run("log", "-1", "--format=%an%x00%ae%x00%aI", commit).split("\0")
    author = git.with_env({"GIT_AUTHOR_NAME": fields[0], "GIT_AUTHOR_EMAIL": fields[1], "GIT_AUTHOR_DATE": fields[2]})
    message = git.run("log", "-1", "--format=%B", commit, strip=False)
    new = author.run(*commit_config(identity), "commit-tree", tree, "-p", onto, stdin=message.encode("utf-8"))
    return Applied(new, "re-applied")


def pick_conflicts(git: Git, onto: str, commit: str) -> tuple[str, ...]:
    """The files where `commit`'s change (from its first parent) would conflict with `onto` (the
    conflict forecast); nothing is committed."""
    return _picked(git, onto, git.run("rev-parse", f"{commit}^"), commit)[1]


def _picked(git: Git, onto: str, parent: str, commit: str) -> tuple[str, tuple[str, ...]]:
    """The tree of `parent..commit` cherry-picked onto `onto`, and the files that conflict."""
    stand_in = _tree_commit(git, f"{parent}^{{tree}}", ())
    ours = _tree_commit(git, f"{onto}^{{tree}}", (stand_in,))
    theirs = _tree_commit(git, f"{commit}^{{tree}}", (stand_in,))
    merged = merge_tree(git, ours, theirs)
    return _appends_resolved(git, merged.tree, merged.conflicts, parent, onto, commit)


def merge_in(git: Git, onto: str, tip: str, message: str, identity: tuple[str, str] | None = None) -> Applied:
    """`tip` (a task's branch) merged into `onto`: a fast-forward when `onto` is behind it, else a merge
    commit with both as parents."""
    if is_ancestor(git, tip, onto):
        return Applied(onto, "already in")
    if is_ancestor(git, onto, tip):
        return Applied(tip, "fast-forward")
    merged = merge_tree(git, onto, tip)
    base = git.run("merge-base", onto, tip)
    tree, conflicts = _appends_resolved(git, merged.tree, merged.conflicts, base, onto, tip)
    if conflicts:
        return Applied(None, "conflict", conflicts)
    new = git.run(*commit_config(identity), "commit-tree", tree, "-p", onto, "-p", tip, stdin=message.encode("utf-8"))
    return Applied(new, "merge")


def _tree_commit(git: Git, tree: str, parents: tuple[str, ...]) -> str:
    args = [arg for p in parents for arg in ("-p", p)]
    return git.run(*commit_config(("codex-orch", "codex-orch@localhost")), "commit-tree", tree, *args, stdin=b"-")


def _blob(git: Git, commit: str, path: str) -> str | None:
    code, out, _ = git.run_full("cat-file", "blob", f"{commit}:{path}", strip=False)
    return out if code == 0 else None


def _appends_resolved(
    git: Git, tree: str, conflicts: tuple[str, ...], base: str, ours: str, theirs: str
) -> tuple[str, tuple[str, ...]]:
    """The decisions file, conflicted where `theirs` only appended entries to it: ours, then the entries
    theirs appended (ours may have appended others, or lack some of base's: a task left out)."""
    if DECISIONS_FILE not in conflicts:
        return tree, conflicts
    old, mine, other = (_blob(git, c, DECISIONS_FILE) for c in (base, ours, theirs))
    if old is None:  # both made the file: its header once
        both = mine is not None and other is not None and mine.startswith(DECISIONS_HEADER)
        old = DECISIONS_HEADER if both and (other or "").startswith(DECISIONS_HEADER) else ""
    if mine is None or other is None or not other.startswith(old):
        return tree, conflicts
    resolved = with_file(git, tree, DECISIONS_FILE, mine + other[len(old) :])
    return resolved, tuple(c for c in conflicts if c != DECISIONS_FILE)
