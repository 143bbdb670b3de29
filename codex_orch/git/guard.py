"""What an agent may not change in the repository, checked after every attempt and put back.

The agent works in its worktree; everything git keeps outside the worktree's files is codex-orch's:
refs, each worktree's HEAD and `.git` file, and the files of the git dirs that make git run programs or
see a different tree (config, hooks/, info/, alternates). A `Guard` knows what each of those should be
— what it was when the run started, plus every change codex-orch made itself (`ours`) — and after
each attempt (`check`) finds every difference, keeps the agent's version (under
`refs/orch/<run>/quarantine/<task>/<attempt>/…` for a ref, in the attempt folder for a file) and puts
the expected one back. Commits an agent made on its own branch are not a violation: they are folded
back into the worktree (`reset --mixed`), so that codex-orch's own commit holds them with its trailers.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from codex_orch.git import ref_scan
from codex_orch.git.ref_scan import RefScan
from codex_orch.git.repo import Git, refs_as_files
from codex_orch.git.shared_lock import SharedLock
from codex_orch.git.worktrees import dotgit_text
from codex_orch.safe_fs import UnsafePath, clear, read_bytes, symlink, write_bytes

COMMON_FILES = ("config", "hooks", "info", "objects/info/alternates")
ADMIN_FILES = ("config.worktree", "info", "commondir", "gitdir")


@dataclass(frozen=True)
class Change:
    """One thing an attempt changed that it may not change."""

    kind: str  # "ref", "head", "dotgit", "worktree", "file"
    name: str  # a ref name, a worktree, or a path inside the git dir
    before: str | None
    after: str | None
    kept: str | None = None  # where the agent's version is kept
    folded: bool = False  # the agent's own commits on its own branch, folded into the worktree (allowed)
    left: bool = False  # a file too large for the guard to keep a copy of: reported, not put back

    def describe(self) -> str:
        if self.folded:
            return f"committed on its own branch {self.name} (the commits were folded into codex-orch's commit)"
        if self.kind == "ref":
            what = (
                f"created {self.name} at {_short(self.after)}"
                if self.before is None
                else f"deleted {self.name} (was {_short(self.before)})"
                if self.after is None
                else f"moved {self.name} from {_short(self.before)} to {_short(self.after)}"
            )
        elif self.kind == "head":
            what = f"pointed the worktree's HEAD at {self.after} (it must stay on {self.before})"
        elif self.kind == "dotgit":
            what = f"changed the worktree's .git ({self.after}); codex-orch never reads it"
        elif self.kind == "worktree":
            return (
                f"replaced the worktree {self.name} by {self.after}: the link was removed and the worktree made "
                "again from its branch (what it held uncommitted is gone)"
            )
        else:
            what = f"{'added' if self.before is None else 'removed' if self.after is None else 'changed'} {self.name}"
        if self.left:
            return (
                f"{what}; not put back: codex-orch keeps no copy of a file over {ref_scan.MAX_WATCHED_FILE} bytes, "
                f"so look at it by hand (its version is kept at {self.kept})"
            )
        return what + (f"; put back, its version kept at {self.kept}" if self.kept else "; put back")


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "nothing"


@dataclass
class _Tree:
    admin: Path
    branch: str


class Guard:
    """The refs and git files of one run's repository, as they should be. Thread-safe: codex-orch's own
    ref changes (`ours`, side by side: each is on refs of its own) and the checks after attempts (each
    alone) never interleave."""

    def __init__(
        self,
        git: Git,
        run_id: str,
        all_refs: bool = True,
        run_branch_prefixes: tuple[str, ...] = (),
        own: tuple[str, ...] | None = None,
    ) -> None:
        """`run_branch_prefixes`: where every run's branches are (`orch/` for the default templates): other
        runs' branches there, and their refs/orch/<run>/, belong to those runs — each run watches its own.
        `own`: the ref prefixes of this run (default: refs/orch/<run>/); narrower for one task of a run
        whose other tasks share the repository with their own guards (a Temporal worker's clone)."""
        self.git = git
        self.run_id = run_id
        self.all_refs = all_refs
        self.prefixes = run_branch_prefixes
        self.foreign = tuple(f"refs/heads/{p}" for p in run_branch_prefixes if p)
        self.own = own if own is not None else (f"refs/orch/{run_id}/",)
        self.common = git.common_dir()
        self.lock = SharedLock()
        self._mutex = threading.Lock()  # what should be, updated by `ours` and `watch` side by side
        self._refs: dict[str, str] = {}
        self._files: dict[str, bytes | None] = {}
        self._trees: dict[Path, _Tree] = {}
        self._branches: set[str] = set()  # the run's own branches that no worktree has (a landing run's)
        self._scan = RefScan()
        self._reftable = not refs_as_files(self.common)

    def narrowed(self, own: tuple[str, ...], foreign: tuple[str, ...]) -> Guard:
        """A guard of one task of this run, before it starts: its `own` refs, and `foreign` branch
        prefixes besides the other runs' (where the run's other tasks keep theirs)."""
        return Guard(self.git, self.run_id, self.all_refs, (*self.prefixes, *foreign), own=own)

    # --- what should be -------------------------------------------------------------------------
    def start(self) -> None:
        with self.lock.exclusive():
            self._refs = self._read_refs()
            self._files = self._read_files(self.common, COMMON_FILES, "")

    def to_json(self) -> dict[str, object]:
        """What should be, to be written beside the run's state (a resume checks against it)."""
        import base64

        with self.lock.exclusive():
            files = {k: None if v is None else base64.b64encode(v).decode() for k, v in self._files.items()}
            return {"refs": dict(self._refs), "files": files}

    def resume(self, saved: dict[str, object], ours: Callable[[str], bool]) -> None:
        """Take up a run after a stop: what should be is what was saved when the run started, except the
        refs `ours` says codex-orch itself moved while it ran (the run's branches and refs/orch/<run>/),
        which are taken as they are now. A check then finds what changed while no check could run."""
        import base64

        with self.lock.exclusive():
            now = self._read_refs()
            refs = {k: v for k, v in dict(saved.get("refs") or {}).items() if not ours(k)}  # type: ignore[call-overload]
            refs.update({k: v for k, v in now.items() if ours(k)})
            self._refs = refs
            files = dict(saved.get("files") or {})  # type: ignore[call-overload]
            self._files = {k: None if v is None else base64.b64decode(v) for k, v in files.items()}

    def watch(self, worktree: Path, admin: Path, branch: str) -> None:
        """A worktree of the run, its admin dir and the branch its HEAD must stay on."""
        with self.lock.shared():
            files = self._read_files(admin, ADMIN_FILES, self._admin_key(admin))
            refs = self._read_refs(f"refs/heads/{branch}")
            with self._mutex:
                self._trees[worktree] = _Tree(admin, branch)
                self._files.update(files)
                self._refs.update(refs)

    def watch_branch(self, branch: str) -> None:
        """A branch of this run's that no worktree has checked out (a landing run's branch, where tasks land
        without a checkout): codex-orch's alone, watched like the branches of its worktrees even under a
        run-branch prefix, where other runs' branches are left to those runs."""
        ref = f"refs/heads/{branch}"
        with self.lock.shared():
            refs = self._read_refs(ref)
            with self._mutex:
                self._branches.add(ref)
                self._refs.update(refs)

    def unwatch(self, worktree: Path) -> None:
        """A worktree codex-orch removes: its HEAD, `.git` file and admin dir are compared no more."""
        with self.lock.shared(), self._mutex:
            tree = self._trees.pop(worktree, None)
            if tree is not None:
                key = self._admin_key(tree.admin)
                self._files = {k: v for k, v in self._files.items() if not k.startswith(key)}

    @contextmanager
    def ours(self, *refs: str) -> Iterator[None]:
        """codex-orch changes `refs` itself in this block: what they hold afterwards is what they should."""
        with self.lock.shared():
            yield
            for ref in filter(None, refs):
                value = self._read_refs(ref).get(ref)
                with self._mutex:
                    if value is None:
                        self._refs.pop(ref, None)
                    else:
                        self._refs[ref] = value

    # --- the check ------------------------------------------------------------------------------
    def check(self, worktree: Path | None, quarantine: str, folder: Path) -> list[Change]:
        """Every difference from what should be, each put back; `worktree`'s own branch may have moved
        forward (folded, not a violation). `quarantine` is the ref prefix for the agent's versions of
        refs, `folder` the place for its versions of files."""
        with self.lock.exclusive():
            changes: list[Change] = []
            heads: dict[Path, str] = {}
            tree = self._trees.get(worktree) if worktree is not None else None
            if worktree is not None and tree is not None:  # other worktrees: at their own attempts' ends
                changes += self._check_dotgit(worktree, tree, folder)
                head = self._check_head(worktree, tree)
                if head is not None:
                    heads[worktree] = head[1]
                    changes.append(head[0])
                changes += self._check_files(tree.admin, ADMIN_FILES, self._admin_key(tree.admin), folder)
            changes += self._check_files(self.common, COMMON_FILES, "", folder)
            changes += self._check_refs(worktree, quarantine, heads)
            return changes

    def _check_dotgit(self, path: Path, tree: _Tree, folder: Path) -> list[Change]:
        expected = dotgit_text(tree.admin).encode()
        dotgit = path / ".git"
        try:
            info = dotgit.lstat()
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISREG(info.st_mode) and dotgit.read_bytes() == expected:
            return []
        if path.is_symlink():  # its folder made a link: committing there would take the target's files
            return [Change("worktree", str(path), "its folder", f"a link to {os.readlink(path)}")]
        if not path.is_dir():
            return []  # the worktree itself is gone (removed by clean, or by hand): nothing to put back
        found = "deleted" if info is None else "a folder" if stat.S_ISDIR(info.st_mode) else "rewritten"
        if info is not None and stat.S_ISLNK(info.st_mode):
            found = f"a link to {os.readlink(dotgit)}"
        kept = None
        if info is not None:
            target = folder / "guardrail" / "dotgit"
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISDIR(info.st_mode):
                shutil.move(str(dotgit), str(target))
                kept = str(target)
            else:
                if stat.S_ISREG(info.st_mode):
                    target.write_bytes(dotgit.read_bytes()[: ref_scan.MAX_WATCHED_FILE])
                    kept = str(target)
                dotgit.unlink()  # a link: its target is the change's `after`
        write_bytes(path, ".git", expected)
        return [Change("dotgit", str(path), "gitdir", found, kept)]

    def _check_head(self, path: Path, tree: _Tree) -> tuple[Change, str] | None:
        """A worktree HEAD that left its branch: the change, and the commit the worktree's files are at."""
        expected = f"ref: refs/heads/{tree.branch}"
        try:
            now = (read_bytes(tree.admin, "HEAD") or b"").decode("utf-8", "replace").strip()
        except (OSError, UnsafePath):  # a folder, a link, a FIFO in its place
            now = ""
        if now == expected:
            return None
        at = (self._read_refs(now[5:]).get(now[5:]) or "") if now.startswith("ref: ") else now
        # written as git writes it, not through `git symbolic-ref`: with HEAD gone, a folder or junk, git
        # no longer takes the admin folder for a repository
        clear(tree.admin, "HEAD")
        write_bytes(tree.admin, "HEAD", f"{expected}\n".encode())
        return Change("head", str(path), tree.branch, now.removeprefix("ref: ") or "nothing"), at

    def _check_refs(self, worktree: Path | None, quarantine: str, heads: dict[Path, str]) -> list[Change]:
        changes: list[Change] = []
        now = self._read_refs()
        own = {f"refs/heads/{t.branch}": p for p, t in self._trees.items()}
        mine = f"refs/heads/{self._trees[worktree].branch}" if worktree in self._trees else None
        for ref in sorted(set(now) | set(self._refs)):
            before, after = self._refs.get(ref), now.get(ref)
            if before == after or not self._watched(ref):
                continue
            if ref == mine and before and after and self.git.ok("merge-base", "--is-ancestor", before, after):
                assert worktree is not None
                if worktree not in heads:  # its HEAD stayed on the branch: fold the agent's commits
                    self.git.worktree(worktree, self._trees[worktree].admin).run("reset", "-q", "--mixed", before)
                    changes.append(Change("ref", ref, before, after, folded=True))
                    continue
            kept = None
            if after is not None:
                kept = f"{quarantine}/{ref.removeprefix('refs/')}"
                self.git.run("update-ref", kept, after)
                self._refs[kept] = after
            if before is None:
                self.git.run("update-ref", "-d", ref, after or "")
            else:
                self.git.run("update-ref", ref, before, *([after] if after else []))
            if ref in own and after is not None:
                heads.setdefault(own[ref], after)  # its worktree's files are at the agent's commit
            changes.append(Change("ref", ref, before, after, kept))
        for path, at in heads.items():
            self._realign(path, at)
        return changes

    def _realign(self, path: Path, at: str) -> None:
        """The worktree's HEAD and branch are back; bring its files from `at` (where the agent left
        them) to the branch's commit, keeping any file the agent changed since (git's two-tree merge,
        as `git checkout` does it). When that cannot be done, the files stay and the index follows the
        branch, so that the difference shows as uncommitted changes rather than being lost."""
        tree = self._trees[path]
        git = self.git.worktree(path, tree.admin)
        target = self._refs.get(f"refs/heads/{tree.branch}")
        if not target or not at or at == target or not path.is_dir():
            return
        if git.run_full("read-tree", "-m", "-u", at, target)[0] != 0:
            git.run_full("reset", "-q", "--mixed", target)

    def _check_files(self, root: Path, names: tuple[str, ...], key: str, folder: Path) -> list[Change]:
        changes = []
        now = self._read_files(root, names, key)
        for rel in sorted(set(now) | {k for k in self._files if k.startswith(key) and _under(k, key, names)}):
            before, after = self._files.get(rel), now.get(rel)
            if before == after:
                continue
            inner = rel[len(key) :]
            kept = None
            if after is not None:
                target = folder / "guardrail" / "git" / rel.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_kept_version(root, inner, after))
                kept = str(target)
            left = before is not None and before.startswith(b"large:")  # no copy to put back: never removed
            try:
                if before is None:
                    clear(root, inner)
                elif not left:
                    _restore(root, inner, before)
            except (OSError, UnsafePath):
                pass  # reported all the same; the next check finds it again
            changes.append(
                Change(
                    "file",
                    f"{root}/{inner}",
                    None if before is None else "",
                    kept=kept,
                    after=None if after is None else "",
                    left=left,
                )
            )
        return changes

    # --- reading --------------------------------------------------------------------------------
    def _watched(self, ref: str) -> bool:
        if ref.startswith("refs/remotes/"):
            return False  # fetches (an IDE's, the user's) move them; they only cache the remote's state
        branches = {f"refs/heads/{t.branch}" for t in self._trees.values()} | self._branches
        if ref.startswith(self.own) or ref in branches:
            return True
        if ref.startswith(("refs/orch/", *self.foreign)):
            return False  # another run's: that run watches it
        return self.all_refs

    def _read_refs(self, only: str = "") -> dict[str, str]:
        """Every ref and the commit it names (symbolic refs left out), read from the files git keeps them
        in — a stat per loose ref, its bytes only when the stat changed — or from git itself when the
        repository keeps its refs another way (reftable)."""
        if self._reftable:
            out = self.git.run("for-each-ref", "--format=%(refname)%00%(objectname)", *([only] if only else []))
            return dict(line.split("\0", 1) for line in out.splitlines() if "\0" in line)
        refs = dict(self._scan.packed(self.common / "packed-refs"))
        if not only:
            refs.update(self._scan.loose(self.common, "refs"))
            return refs
        refs = {k: v for k, v in refs.items() if k == only or k.startswith(only.rstrip("/") + "/")}
        return {**refs, **self._scan.loose(self.common, only)}  # one ref, or a folder of them: no full scan

    def _admin_key(self, admin: Path) -> str:
        return f"worktrees/{admin.name}/"

    def _read_files(self, root: Path, names: tuple[str, ...], key: str) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}
        for name in names:
            path = root / name
            if path.is_dir() and not path.is_symlink():
                for sub in sorted(path.rglob("*")):
                    if not sub.is_dir() or sub.is_symlink():
                        found[key + str(sub.relative_to(root))] = self._scan.content(sub)
            elif path.exists() or path.is_symlink():
                found[key + name] = self._scan.content(path)
        return found


def _under(rel: str, key: str, names: tuple[str, ...]) -> bool:
    inner = rel[len(key) :]
    return any(inner == n or inner.startswith(n + "/") for n in names)


def _kept_version(root: Path, inner: str, now: bytes) -> bytes:
    """The agent's version of a watched file, as `RefScan.content` read it (a large one read again)."""
    if now.startswith(b"large:"):
        try:
            return read_bytes(root, inner, limit=int(now.split(b":")[1])) or b""
        except (OSError, UnsafePath):
            return now
    return now[1:] if now[:1] in (b"x", b"-") else now


def _restore(root: Path, inner: str, before: bytes) -> None:
    """Put a watched file back as `RefScan.content` recorded it, in place of whatever is there now (a
    folder too), never reaching through a link (docs/security.md)."""
    clear(root, inner)
    if before.startswith(b"link:"):
        symlink(root, inner, before[5:].decode())
    elif before[:1] in (b"x", b"-"):
        write_bytes(root, inner, before[1:], 0o755 if before[:1] == b"x" else 0o644)
