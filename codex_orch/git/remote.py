"""The shared repository of a run on several machines (executor: temporal): fetching the run branch's
tip and a task's refs from it, pushing a task's commit or its work in progress to it, and the snapshot
of a worktree that work in progress is (its files as they are, in a commit nobody's branch points at)."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Sequence

from codex_orch.errors import GitError
from codex_orch.git.repo import Git, commit_config


def remote_url(git: Git, remote: str) -> str:
    """A remote's URL when `remote` names one of the repository's remotes, else `remote` itself (a URL
    or a path; a relative path is made absolute, since workers run elsewhere)."""
    code, url, _ = git.run_full("remote", "get-url", remote)
    if code == 0 and url:
        return url
    if "://" in remote or ":" in remote.split("/", 1)[0]:
        return remote
    return os.path.abspath(os.path.join(git.cwd, remote))


def fetch_ref(git: Git, url: str, ref: str) -> str | None:
    """Fetch `ref` from `url` into the same ref here; its commit, or None when the remote has no such ref."""
    code, _, err = git.run_full("fetch", "-q", "--no-tags", "--no-write-fetch-head", url, f"+{ref}:{ref}")
    if code != 0:
        if "couldn't find remote ref" in err:
            return None
        raise GitError(f"git fetch {url} {ref} failed: {err.strip()[:300]}")
    return git.run("rev-parse", "--verify", ref)


def fetch_refs(git: Git, url: str, *patterns: str) -> None:
    """Fetch these refs (globs allowed: none matching is no error) from `url` into the same refs here, in
    one git process; the refs here that the remote no longer has are deleted (--prune)."""
    specs = [f"+{p}:{p}" for p in patterns]
    code, _, err = git.run_full("fetch", "-q", "--no-tags", "--prune", "--no-write-fetch-head", url, *specs)
    if code != 0:
        raise GitError(f"git fetch {url} failed: {err.strip()[:300]}")


def remote_refs(git: Git, url: str, prefix: str) -> dict[str, str]:
    """The remote's refs below `prefix` (e.g. refs/orch/<run>/) -> their objects."""
    code, out, err = git.run_full("ls-remote", "--refs", url, f"{prefix}*")
    if code != 0:
        raise GitError(f"git ls-remote {url} failed: {err.strip()[:300]}")
    return {ref: sha for sha, _, ref in (line.partition("\t") for line in out.splitlines()) if ref.startswith(prefix)}


def delete_remote_ref_at(git: Git, url: str, ref: str, sha: str) -> None:
    """Delete `ref` on the remote, only if it still points at `sha` (a lease: a worker that pushed to it
    since it was judged keeps what it pushed)."""
    code, _, err = git.run_full("push", "-q", "--no-verify", f"--force-with-lease={ref}:{sha}", url, f":{ref}")
    if code != 0:
        raise GitError(f"git push {url} --delete {ref} failed: {err.strip()[:300]}")


def ref_commit(git: Git, ref: str) -> str | None:
    code, out, _ = git.run_full("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return out if code == 0 and out else None


def push_ref(git: Git, url: str, commit: str, ref: str, force: bool = True) -> None:
    """Point `ref` of the remote at `commit`: forced (the ref is the run's own, one writer at a time), or
    only forward (a ref that moves only forward, pushed by parallel hands: refused means a later
    commit is there already, which is no error)."""
    spec = f"+{commit}:{ref}" if force else f"{commit}:{ref}"
    code, _, err = git.run_full("push", "-q", "--no-verify", url, spec)
    if code != 0 and not force and ("non-fast-forward" in err or "fetch first" in err):
        return
    if code != 0:
        raise GitError(f"git push {url} {ref} failed: {err.strip()[:300]}")


class SerialPush:
    """Pushes of one ref that only moves forward, made by parallel threads of one process (a Temporal
    submitter's landings): one at a time, each of the value `current()` gives then, and none when that
    value is already pushed. Two pushes of the same ref at once make one fail ("cannot lock ref ... is
    at X but expected Y"); in the Temporal bench that failed 20 of 64 landings, each retried a second
    or more later."""

    def __init__(self, git: Git, url: str, ref: str) -> None:
        self.git, self.url, self.ref = git, url, ref
        self._lock = threading.Lock()
        self._pushed: str | None = None

    def push(self, current: Callable[[], str]) -> str:
        with self._lock:
            value = current()
            if value != self._pushed:
                push_ref(self.git, self.url, value, self.ref, force=False)
                self._pushed = value
            return value


def delete_remote_ref(git: Git, url: str, ref: str) -> None:
    """Delete `ref` on the remote if it is there (best effort: a ref left is only clutter)."""
    git.run_full("push", "-q", "--no-verify", url, f":{ref}")


def snapshot(
    worktree: Git, base: str, message: str, identity: tuple[str, str] | None = None, files: Sequence[str] = (".",)
) -> str | None:
    """A commit (parent `base`) of the worktree's `files` as they are now (all of them by default),
    tracked and untracked but not ignored, made through a private index so that neither the agent's index
    nor its HEAD moves. None when nothing differs from `base`."""
    fd, index = tempfile.mkstemp(prefix="codex-orch-snapshot-index-")
    os.close(fd)
    os.unlink(index)  # git makes it; an empty file is no index
    try:
        private = worktree.with_env({"GIT_INDEX_FILE": index})
        private.run("read-tree", base)
        private.run("add", "-A", "--", *files)
        tree = private.run("write-tree")
    finally:
        if os.path.exists(index):
            os.unlink(index)
    if tree == worktree.run("rev-parse", f"{base}^{{tree}}"):
        return None
    return worktree.run(*commit_config(identity), "commit-tree", tree, "-p", base, stdin=message.encode("utf-8"))
