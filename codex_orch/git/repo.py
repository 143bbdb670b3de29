"""The one runner of git commands (`subprocess.run` of git's own commands) and the queries and commits built on it.

The environment is passed per call (parallel workers share os.environ, so it is never changed), with
inherited GIT_* variables scrubbed so that a hook or a parent git cannot redirect us to another repo.
Every command runs with SAFE_CONFIG, which switches off everything in git's configuration that would
make it start a program (hooks, fsmonitor, external diff, editors, pagers, signing, credential helpers):
a worktree is the agent's, and codex-orch's own git must never run what the agent wrote. In a worktree
codex-orch made, git is also told the admin dir and the work tree (`Git.worktree`), so that it never
reads the worktree's `.git` file nor looks for a repository above it.
Worktrees are in worktrees.py, refs and merges in refs.py, the after-attempt checks in guard.py.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codex_orch.errors import GitError
from codex_orch.git.environment import without_git_vars
from codex_orch.git.ref_scan import RefScan

log = logging.getLogger(__name__)
FALLBACK_IDENTITY = ("codex-orch", "codex-orch@localhost")

# Configuration that makes git start a program, each switched off (`-c` outranks every config file).
# Attribute-driven filter/diff/merge drivers need a definition in a config file; the repository's are
# checked after every attempt (guard.py), the user's own (~/.gitconfig) are the user's programs.
SAFE_CONFIG = (
    "core.hooksPath=/dev/null",  # no hook runs: git looks for /dev/null/<hook>
    "core.fsmonitor=false",
    "core.editor=false",  # never wanted; a command that would open one fails instead of waiting
    "sequence.editor=false",
    "core.pager=cat",
    "core.askPass=",
    "credential.helper=",  # an empty value empties the list of helpers
    "diff.external=",
    "core.alternateRefsCommand=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "submodule.recurse=false",
)
_SAFE_ARGS = tuple(arg for item in SAFE_CONFIG for arg in ("-c", item))
INDEX_LOCK_WAIT = 5.0  # seconds a command waits for another git process to let go of a worktree's index
_INDEX_LOCK_BUSY = "index.lock': File exists"  # git's words (LC_ALL=C) when that lock is held


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of codex-orch's own git: os.environ without the GIT_* variables that could point
    git elsewhere, never prompting, in the C locale (its messages are parsed)."""
    env = without_git_vars(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True)
class Status:
    """One entry of `git status --porcelain=v1 -z`."""

    code: str
    path: str


_COMMON_DIRS: dict[tuple[Path, Path | None], Path] = {}
_REF_FILES = RefScan()  # packed-refs, parsed again only when its stat changes
_OBJECT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


@functools.cache
def refs_as_files(common: Path) -> bool:
    """Does the repository keep its refs as files (loose refs and packed-refs), not in a reftable?"""
    try:
        return "refstorage" not in (common / "config").read_text("utf-8", "replace").lower()
    except OSError:
        return False


class Git:
    """git, run in one directory: a checkout found by git's own discovery (the user's), or with
    `git_dir` a worktree codex-orch made, named explicitly."""

    def __init__(
        self, cwd: Path, env: Mapping[str, str] | None = None, git_dir: Path | None = None, config: Sequence[str] = ()
    ) -> None:
        self.cwd = Path(cwd)
        self.git_dir = Path(git_dir) if git_dir is not None else None
        self.config = tuple(config)  # further `-c key=value` settings of every command
        self._env = clean_env(env)
        self._argv: tuple[str, ...] = ("--no-pager", *_SAFE_ARGS, *(a for c in self.config for a in ("-c", c)))
        if self.git_dir is not None:
            self._argv += (f"--git-dir={self.git_dir}", f"--work-tree={self.cwd}")

    def at(self, cwd: Path) -> Git:
        """git in another checkout of the user's, found by discovery. Never for a worktree codex-orch made
        (its `.git` file is the agent's): `worktree` names its admin dir instead."""
        return Git(cwd, self.git_env())

    def worktree(self, path: Path, admin: Path, config: Sequence[str] = ()) -> Git:
        """git in a worktree codex-orch made, with its admin dir given: nothing is discovered. Its common
        dir is this repository's (not asked of git, which would read the admin dir's `commondir`)."""
        child = Git(path, self.git_env(), git_dir=admin, config=config)
        _COMMON_DIRS.setdefault((child.cwd, child.git_dir), self.common_dir())
        return child

    def with_env(self, extra: Mapping[str, str]) -> Git:
        return Git(self.cwd, {**self.git_env(), **extra}, self.git_dir, self.config)

    def git_env(self) -> dict[str, str]:
        """The GIT_* variables this runner sets (identity, config, and any given to it)."""
        return {k: v for k, v in self._env.items() if k.startswith("GIT_")}

    def run(self, *args: str, check: bool = True, stdin: bytes | None = None, strip: bool = True) -> str:
        code, out, err = self.run_full(*args, stdin=stdin, strip=strip)
        if check and code != 0:
            hint = None
            if _INDEX_LOCK_BUSY in err:
                hint = (
                    f"Another git process held that lock for over {INDEX_LOCK_WAIT:g} s. If none is running"
                    " (a crashed git left it), remove the file and resume."
                )
            raise GitError(f"git {' '.join(args[:3])} failed: {first_line(err or out)}", hint)
        return out

    def run_full(self, *args: str, stdin: bytes | None = None, strip: bool = True) -> tuple[int, str, str]:
        """Run git; a command that finds the index locked by another git process (a sibling agent's
        `git status`, an editor polling the worktree) is tried again for up to INDEX_LOCK_WAIT seconds.
        git fails such a command before it changes anything, so trying again is safe."""
        deadline = time.monotonic() + INDEX_LOCK_WAIT
        waited = False
        while True:
            code, out, err = _git_process([*self._argv, *args], self.cwd, self._env, stdin, strip)
            if code == 0 or _INDEX_LOCK_BUSY not in err:
                return code, out, err
            if time.monotonic() >= deadline:
                log.info("git %s: the index is still locked after %g s; giving up", args[0], INDEX_LOCK_WAIT)
                return code, out, err
            if not waited:
                log.info("git %s: the index is locked by another git process; waiting", args[0])
                waited = True
            time.sleep(0.05)

    def ok(self, *args: str) -> bool:
        return self.run_full(*args)[0] == 0

    # --- queries -------------------------------------------------------------------------------
    def toplevel(self) -> Path:
        code, out, _ = self.run_full("rev-parse", "--show-toplevel")
        if code != 0:
            raise GitError(
                f"{self.cwd} is not inside a git repository.", "Run codex-orch from a checkout (git init first)."
            )
        return Path(out)

    def common_dir(self) -> Path:
        """The repository's common git dir (asked once per checkout and admin dir: it never moves)."""
        key = (self.cwd, self.git_dir)
        found = _COMMON_DIRS.get(key)
        if found is None:
            path = Path(self.run("rev-parse", "--git-common-dir"))
            found = _COMMON_DIRS[key] = path if path.is_absolute() else (self.cwd / path).resolve()
        return found

    def rev(self, ref: str) -> str:
        code, out, _ = self.run_full("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if code != 0:
            raise GitError(
                f"'{ref}' is not a commit in this repository.", "Check git.base_ref, or make a first commit."
            )
        return out

    def head(self) -> str:
        if self.git_dir is not None:  # a worktree codex-orch made: its HEAD file is in the admin dir it named
            try:
                head = (self.git_dir / "HEAD").read_text("ascii").strip()
            except (OSError, UnicodeDecodeError):
                head = ""
            if _OBJECT_ID.fullmatch(head):
                return head
            if head.startswith("ref: refs/heads/"):
                commit = self.branch_commit(head[len("ref: refs/heads/") :])
                if commit is not None:
                    return commit
        return self.run("rev-parse", "HEAD")

    def branch_commit(self, branch: str) -> str | None:
        """The commit `branch` points at (None: no such branch), read from the files git keeps it in --
        its loose ref, else packed-refs (read again only when it changed) -- as git itself would: a
        process saved, several times per task in a long run. Anything else is left to git: a ref that is
        not a plain file, a repository that keeps its refs another way (reftable)."""
        ref = f"refs/heads/{branch}"
        common = self.common_dir()
        if refs_as_files(common):
            try:
                value: str | None = (common / ref).read_text("ascii").strip()
            except FileNotFoundError:
                value = None
            except (OSError, UnicodeDecodeError):
                value = ""
            if value is None:
                return _REF_FILES.packed(common / "packed-refs").get(ref)
            if _OBJECT_ID.fullmatch(value):
                return value
        code, out, _ = self.run_full("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return out if code == 0 and out else None

    def branch_tip(self, branch: str) -> str:
        """branch_commit of a branch that must exist (a run's): a GitError when it is gone."""
        commit = self.branch_commit(branch)
        if commit is None:
            raise GitError(f"the branch {branch} is gone", "Was it deleted while the run went on?")
        return commit

    def branch_exists(self, branch: str) -> bool:
        return self.branch_commit(branch) is not None

    def valid_branch_name(self, branch: str) -> bool:
        return valid_branch_name(branch)

    def local_branches(self, prefix: str = "") -> set[str]:
        out = self.run("for-each-ref", "--format=%(refname:lstrip=2)", f"refs/heads/{prefix}")  # never heads/x
        return set(out.split())

    def status(self, paths: Sequence[str] = (), untracked: bool = True, ignored: bool = False) -> list[Status]:
        """`git status --porcelain=v1 -z`; with `ignored`, ignored files too (code `!!`)."""
        shown = "--untracked-files=all" if untracked else "--untracked-files=no"
        extra = ("--ignored=matching",) if ignored else ()
        # read only: git's opportunistic rewrite of the index would be one more file made per call
        out = self.run(
            "--no-optional-locks", "status", "--porcelain=v1", "-z", shown, *extra, "--", *paths, strip=False
        )
        entries: list[Status] = []
        parts = out.split("\0")
        i = 0
        while i < len(parts):
            item = parts[i]
            i += 1
            if len(item) < 4:
                continue
            code, path = item[:2], item[3:]
            if code[0] in "RC":
                i += 1  # the rename's source follows
            entries.append(Status(code, path))
        return entries

    def has_identity(self) -> bool:
        return bool(self.run_full("config", "user.name")[1]) and bool(self.run_full("config", "user.email")[1])

    def commits_with_trailer(self, rev_range: str, key: str, value: str) -> list[str]:
        out = self.run("log", "--format=%H", f"--grep=^{key}: {value}$", rev_range)
        return out.split()

    # --- changes -------------------------------------------------------------------------------
    def commit_changes(
        self,
        message: str,
        paths: Sequence[str] | None,
        identity: tuple[str, str] | None,
        extra: Sequence[str] = (),
        check_staged: Callable[[str], None] | None = None,
    ) -> tuple[str | None, list[str]]:
        """Stage everything (paths None) or exactly `paths` (changed files, from status) plus `extra`, and commit.

        `check_staged`, when given, sees the staged diff before the commit; if it raises, nothing is
        committed and nothing is left staged.
        Returns the new commit (None when nothing was staged) and the files it changed."""
        if paths is None:
            self.run("add", "-A")
            if extra:  # codex-orch's own files (the decisions): committed even where .gitignore ignores them
                self.run("add", "-f", "-A", "--", *extra)
        elif paths or extra:
            self._stage(paths, extra)
        else:
            return None, []
        if paths is None:
            staged = self._staged()
            if not staged:
                return None, []
        else:  # the caller listed the changed files from `git status`
            staged = sorted({*paths, *extra})
        if check_staged is not None:
            self._check_staged(check_staged)
        self.run(*commit_config(identity), "commit", "--no-verify", "-q", "-F", "-", stdin=message.encode("utf-8"))
        return self.head(), staged

    def _stage(self, listed: Sequence[str], extra: Sequence[str]) -> None:
        """Stage exactly these paths (from `git status`) and `extra` (codex-orch's own files, added even
        where .gitignore ignores them), and nothing else. A listed path gone from the worktree is staged as
        deleted by `rm --cached`, which lets it be gone from the index too (a deletion the agent staged
        itself with `git rm`): `add` of a path that matches nothing fails."""
        gone = {p for p in listed if not os.path.lexists(self.cwd / p)}
        self._on_paths(("add", "-A"), [p for p in listed if p not in gone])
        self._on_paths(("add", "-f", "-A"), extra)
        self._on_paths(("rm", "-q", "--cached", "--ignore-unmatch"), sorted(gone))
        # What else the index holds (a sibling's agent in a shared worktree ran `git add`, `git mv`) is not
        # this commit's: back to HEAD in the index, left as it is in the worktree for its own task's commit.
        mine = {*listed, *extra}
        self._on_paths(("reset", "-q", "HEAD"), [p for p in self._staged() if p not in mine])

    def _on_paths(self, args: tuple[str, ...], paths: Sequence[str]) -> None:
        """`git <args>` on exactly these paths, given on stdin (not run for none)."""
        if paths:
            nul = b"\0".join(p.encode("utf-8", "surrogateescape") for p in paths)
            self.run(*args, "--pathspec-from-file=-", "--pathspec-file-nul", stdin=nul)

    def _staged(self) -> list[str]:
        """The paths the index holds changed from HEAD, both paths of a rename."""
        out = self.run("diff", "--cached", "--no-renames", "--name-only", "-z", strip=False)
        return [p for p in out.split("\0") if p]

    def _check_staged(self, check: Callable[[str], None]) -> None:
        """Hand the lines the commit would add (no context, renames found, binary files as text) to
        `check`; unstage everything when it raises."""
        diff = self.run(
            *("-c", "core.quotePath=false", "diff", "--cached", "--no-color", "--no-ext-diff", "--no-textconv"),
            *("-U0", "--text", "-M"),
            strip=False,
        )
        try:
            check(diff)
        except BaseException:
            self.run("reset", "-q")
            raise

    def changed_files(self, commit: str) -> list[str]:
        out = self.run("diff-tree", "--no-commit-id", "--name-only", "-r", "-z", "--root", commit, strip=False)
        return [p for p in out.split("\0") if p]


def commit_config(identity: tuple[str, str] | None) -> list[str]:
    """`-c` options for the commits codex-orch makes: the fallback identity when the repository has
    none, and no `git maintenance run --auto` after each one (a child process per commit, inside a
    shared worktree's serialized section); the run does that upkeep once, at its end."""
    args = ["-c", "maintenance.auto=false"]
    if identity is not None:
        args += ["-c", f"user.name={identity[0]}", "-c", f"user.email={identity[1]}"]
    return args


def auto_maintenance(git: Git) -> None:
    """What git runs after a commit, once for the many a run made: packs objects when git's own
    thresholds say so (in the background, by git's default gc.autoDetach). Like git, nothing when
    the repository's config says maintenance.auto=false."""
    if git.run_full("config", "--type=bool", "maintenance.auto")[1] == "false":
        return
    git.run_full("maintenance", "run", "--auto", "--quiet")


_BAD_REF_CHARS = set(" ~^:?*[\\\x7f")


def valid_branch_name(name: str) -> bool:
    """git's check-ref-format rules for a branch name, without starting git once per name."""
    if not name or name == "@" or name.startswith(("-", "/")) or name.endswith(("/", ".", ".lock")):
        return False
    if ".." in name or "@{" in name or "//" in name:
        return False
    if any(ch in _BAD_REF_CHARS or ord(ch) < 32 for ch in name):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))


def first_line(text: str) -> str:
    for raw in text.splitlines():
        line = raw.strip()
        if line:
            return line[:400]
    return "(no message)"


def local_changes(git: Git, untracked: bool = True) -> list[Status]:
    """`git status` of a checkout, read without taking git's optional index lock (so it writes nothing)."""
    return git.with_env({"GIT_OPTIONAL_LOCKS": "0"}).status(untracked=untracked)


@functools.lru_cache(maxsize=8)
def _git_program(path: str | None) -> str | None:
    """git's full path on this PATH, found once: exec'ing plain "git" tries every PATH entry before it
    (six failed execs per command on the project's machine). A relative PATH entry is taken from
    codex-orch's own directory, never from the worktree a command runs in (where the agent writes)."""
    import shutil

    found = shutil.which("git", path=path)
    return os.path.abspath(found) if found else None


def _git_process(
    args: list[str], cwd: Path, env: Mapping[str, str], stdin: bytes | None, strip: bool
) -> tuple[int, str, str]:
    """One git process (`args` after git's own path): its exit code, and its output decoded as git's bytes
    allow (undecodable bytes kept as surrogates, so a path of any encoding survives the round trip)."""
    program = _git_program(env.get("PATH"))
    try:
        if program is None:
            raise FileNotFoundError("git")
        done = subprocess.run(
            [program, *args],
            cwd=cwd,
            env=env,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
        )
    except FileNotFoundError:
        if not os.path.isdir(cwd):  # the folder git was to run in is gone, not git
            raise GitError(f"cannot run git in {cwd}: the folder does not exist", None) from None
        raise GitError("git is not installed or not on PATH.", "Install git and try again.") from None
    out = done.stdout.decode("utf-8", "surrogateescape")
    if strip and out.endswith("\n"):
        out = out[:-1]
    return done.returncode, out, done.stderr.decode("utf-8", "surrogateescape")
