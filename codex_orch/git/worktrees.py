"""Registering, filling, recycling and removing git worktrees, and setting a worktree's changes aside.
Registration is serialized by a lock in the common git dir (git's own `config.lock` races otherwise);
the checkout runs outside it."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from codex_orch.errors import GitError, OrchError
from codex_orch.git.repo import Git
from codex_orch.safe_fs import UnsafePath, remove

_process_lock = threading.Lock()


@contextmanager
def repo_lock(git: Git) -> Iterator[None]:
    """Serialize worktree add/remove within this process and across codex-orch processes."""
    with _process_lock:
        path = git.common_dir() / "codex-orch-worktree.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def dotgit_text(admin: Path) -> str:
    """What git writes into a linked worktree's `.git` file."""
    return f"gitdir: {admin}\n"


def admin_dir(git: Git, path: Path) -> Path:
    """The admin dir (`<common dir>/worktrees/<name>`) of the worktree at `path`, found from the common
    dir's side (each admin dir's `gitdir` file names its worktree), never from the worktree's own `.git`
    file, which the agent may have rewritten."""
    folder = git.common_dir() / "worktrees"
    wanted = str(path / ".git")
    wanted_resolved = str(path.resolve() / ".git")
    # git names the admin dir after the worktree's folder (a number added when taken): look there first,
    # so that finding one is not a read of every worktree's file in a run of hundreds
    likely = [folder / path.name] if (folder / path.name).is_dir() else []
    for admin in likely + (sorted(folder.iterdir()) if folder.is_dir() else []):
        try:
            named = (admin / "gitdir").read_text("utf-8").strip()
        except OSError:
            continue
        if named in (wanted, wanted_resolved):
            return admin
    raise GitError(
        f"{path} is not a worktree registered in {folder}", "Was it removed? `git worktree list` shows them."
    )


def checkout_git(git: Git, path: Path) -> Git:
    """git in a checkout that may be one of codex-orch's worktrees (admin dir named) or the user's own."""
    try:
        return git.worktree(path, admin_dir(git, path))
    except GitError:
        return git.at(path)


def add_worktree(git: Git, path: Path, branch: str, start: str) -> None:
    """A new worktree on a new branch. Only the registration holds the repository's lock (a parallel
    `git worktree add` fails when it reads a half-registered sibling); making the branch before and
    the checkout after -- the slow part in a large repository -- run outside it, so several worktrees
    are made at once. A crash between the steps leaves a branch without a worktree: attach_worktree."""
    git.run("branch", "--quiet", "--no-track", branch, start)
    with repo_lock(git):
        git.run("worktree", "add", "-q", "--no-checkout", str(path), branch)
    _fill(git.worktree(path, admin_dir(git, path)))


def attach_worktree(git: Git, path: Path, branch: str) -> None:
    """Check an existing branch out into a new worktree (after a crash removed the folder)."""
    with repo_lock(git):
        git.run("worktree", "prune")
        git.run("worktree", "add", "-q", "--no-checkout", str(path), branch)
    _fill(git.worktree(path, admin_dir(git, path)))


def recycle(git: Git, spare: Path, path: Path, branch: str, start: str) -> None:
    """A new worktree at `path` on a new `branch` made from `start`, out of a `spare` one (a landed task's,
    its work kept on the run branch): moved to `path`, switched to the branch, then cleared of everything
    git does not track, ignored files included, so that it holds what a new worktree would. Only files
    that differ between the two commits are written, where a new worktree writes every file and removing
    the old one deletes them all: that is what grows with the repository (docs/benchmarks.md).
    A failure leaves the steps done so far for the caller to undo: the branch, a half-switched worktree."""
    with repo_lock(git):
        git.run("worktree", "move", str(spare), str(path))
    worktree = git.worktree(path, admin_dir(git, path))
    worktree.run("checkout", "-q", "-f", "--no-track", "--no-recurse-submodules", "-b", branch, start)
    worktree.run("clean", "-q", "-ffdx")


def set_aside(
    git: Git, files: Sequence[str], ref: str, message: str, identity: tuple[str, str] | None, revert: bool = True
) -> str | None:
    """`files` of the worktree as they are, saved in a commit on `ref` (its parent HEAD: remote.snapshot);
    with `revert`, then put back as HEAD has them. The commit; None when they do not differ from HEAD."""
    from codex_orch.git.remote import snapshot

    sha = snapshot(git, "HEAD", message, identity, files)
    if sha is None:
        return None
    git.run("update-ref", ref, sha)
    if not revert:
        return sha
    in_head = set(git.run("ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *files, strip=False).split("\0"))
    tracked = [f for f in files if f in in_head]
    if tracked:
        git.run("checkout", "HEAD", "--", *tracked)
    for rel in files:
        if rel not in in_head:
            git.run("rm", "-q", "-r", "--cached", "--ignore-unmatch", "--", rel)  # -r: a folder in the index
            try:
                remove(git.cwd, rel)  # never through a link the agent made of a folder above it
            except UnsafePath:
                pass
    return sha


def take_up(git: Git, path: Path, branch: str, start: str, keep_ref: str) -> bool:
    """A registered worktree that another run left on its own branch (the job service's worktree of a job
    branch, docs/service.md), switched to `branch` (made at `start` when new). What was left uncommitted
    is saved first, as a commit on `keep_ref`, then cleared; ignored files stay (a build's output is what
    reusing a worktree keeps). False when the worktree is on `branch` already: left as it is."""
    from codex_orch.git.remote import snapshot

    wgit = git.worktree(path, admin_dir(git, path))
    code, head_ref, _ = wgit.run_full("symbolic-ref", "--quiet", "HEAD")
    if code == 0 and head_ref.strip() == f"refs/heads/{branch}":
        return False
    saved = snapshot(wgit, wgit.run("rev-parse", "HEAD"), f"codex-orch: left uncommitted in {path}")
    if saved is not None:
        git.run("update-ref", keep_ref, saved)
    wgit.run("reset", "-q", "--hard", "--no-recurse-submodules")
    wgit.run("clean", "-q", "-ffd")
    if not git.branch_exists(branch):
        git.run("branch", "--quiet", "--no-track", branch, start)
    wgit.run("checkout", "-q", branch)
    return True


def _fill(worktree: Git) -> None:
    """Check out a worktree registered with --no-checkout: what `git worktree add` itself runs then,
    without the post-checkout hook (codex-orch's own commits skip hooks too)."""
    worktree.run("reset", "-q", "--hard", "--no-recurse-submodules")


def discard_worktree(git: Git, path: Path) -> None:
    """Remove a worktree that holds nothing of value (a creation cut short by a crash)."""
    import shutil

    with repo_lock(git):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()  # a link or a file in its place: never followed, never handed to git
            git.run("worktree", "prune")
        elif git.run_full("worktree", "remove", "--force", "--force", str(path))[0] != 0:
            shutil.rmtree(path, ignore_errors=True)
            git.run("worktree", "prune")  # its registration, when git could not remove it itself


def remove_worktree(git: Git, path: Path, force: bool = False) -> None:
    with repo_lock(git):
        args = ["worktree", "remove"] + (["--force"] if force else []) + [str(path)]
        git.run(*args)


def worktree_list(git: Git) -> list[dict[str, str]]:
    out = git.run("worktree", "list", "--porcelain", "-z", strip=False)
    items: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for field in out.split("\0"):
        if not field:
            if current:
                items.append(current)
                current = {}
            continue
        key, _, value = field.partition(" ")
        current[key] = value
    if current:
        items.append(current)
    return items


def detached_worktree(git: Git, folder: Path, commit: str, clean: bool = False) -> Path:
    """A worktree at `folder` with `commit` checked out, detached (made, or moved there when it exists);
    with `clean`, untracked files a command left in it earlier are removed (ignored ones are kept)."""
    try:
        wgit = git.worktree(folder, admin_dir(git, folder))
        wgit.run("checkout", "-q", "-f", "--detach", commit)  # first: a branch a command left here never moves
        wgit.run("reset", "-q", "--hard", commit)
        if clean:
            wgit.run("clean", "-q", "-ffd")
    except OrchError:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with repo_lock(git):
            git.run("worktree", "add", "-q", "--detach", str(folder), commit)
    return folder
