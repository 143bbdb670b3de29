"""Refs and merges without touching a checkout: ancestry, `merge-tree --write-tree`, compare-and-swap ref
updates, which worktree has a branch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from codex_orch.errors import GitError
from codex_orch.git.repo import Git, first_line
from codex_orch.git.worktrees import worktree_list

# --- merging and cleaning -------------------------------------------------------------------------
ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class MergeTree:
    """What merging two commits would give, found without touching any ref, index or file."""

    tree: str
    conflicts: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.conflicts


def is_ancestor(git: Git, ancestor: str, descendant: str) -> bool:
    code, _, err = git.run_full("merge-base", "--is-ancestor", ancestor, descendant)
    if code not in (0, 1):
        raise GitError(f"git merge-base failed: {first_line(err)}")
    return code == 0


def merge_tree(git: Git, ours: str, theirs: str, scratch: bool = False) -> MergeTree:
    """`git merge-tree --write-tree` of two commits: the merged tree and the conflicted files.

    With `scratch` the objects it writes go to a temporary folder that is then deleted, so the
    check leaves the repository byte for byte as it was (for dry runs)."""
    import shutil
    import tempfile

    args = ("merge-tree", "--write-tree", "--name-only", "-z", "--no-messages", ours, theirs)
    if not scratch:
        code, out, err = git.run_full(*args, strip=False)
    else:
        objects = git.common_dir() / "objects"
        alternates = [str(objects)]
        info = objects / "info" / "alternates"
        if info.is_file():
            alternates += [line for line in info.read_text("utf-8").splitlines() if line and not line.startswith("#")]
        folder = tempfile.mkdtemp(prefix="codex-orch-objects-")
        try:
            env = {"GIT_OBJECT_DIRECTORY": folder, "GIT_ALTERNATE_OBJECT_DIRECTORIES": os.pathsep.join(alternates)}
            code, out, err = git.with_env(env).run_full(*args, strip=False)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if code not in (0, 1):
        raise GitError(f"git merge-tree {ours} {theirs} failed: {first_line(err or out)}")
    fields = out.split("\0")
    conflicts = tuple(dict.fromkeys(f for f in fields[1:] if f)) if code == 1 else ()
    return MergeTree(fields[0].strip(), conflicts)


def patch_is_in(git: Git, base: str, branch: str) -> bool:
    """Is everything `branch` changed already in `base`? True for an ancestor, and for a branch merged
    by squash or rebase: merging it into base would give base's own tree."""
    if is_ancestor(git, branch, base):
        return True
    merged = merge_tree(git, base, branch, scratch=True)
    return merged.clean and merged.tree == git.run("rev-parse", f"{base}^{{tree}}")


def update_ref(git: Git, ref: str, new: str, old: str, reason: str) -> None:
    """Move `ref` to `new` only if it still points at `old` (ZERO_SHA: only if it does not exist)."""
    git.run("update-ref", "-m", reason, ref, new, old)


def delete_ref(git: Git, ref: str, old: str) -> None:
    """Delete `ref` only if it still points at `old`."""
    git.run("update-ref", "-d", ref, old)


def ref_sha(git: Git, ref: str) -> str | None:
    code, out, _ = git.run_full("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return out if code == 0 else None


def refs_under(git: Git, prefix: str) -> dict[str, str]:
    """Refs below `prefix` (e.g. refs/orch/<run>/) -> the object they point at."""
    out = git.run("for-each-ref", "--format=%(refname)%00%(objectname)", prefix)
    return dict(line.split("\0", 1) for line in out.splitlines() if "\0" in line)


def branch_worktree(git: Git, branch: str) -> Path | None:
    """The worktree that has `branch` checked out, if any."""
    for entry in worktree_list(git):
        if entry.get("branch") == f"refs/heads/{branch}" and "bare" not in entry:
            return Path(entry["worktree"])
    return None
