"""A new worktree made ready before its first agent: `worktree.copy_files` copied in from the user's
checkout, `worktree.setup` commands run in it, and what both left kept out of every commit.

Each worktree is set up once: the outcome is recorded in the journal (`worktree.setup`, keyed by the
worktree), so a resumed run does not set it up again, and parallel tasks in a shared worktree wait for
the one setup. What the setup left (its untracked files, e.g. `.venv/`, and the copied files) goes to
the worktree's own exclude list (runs/<id>/setup/<name>/exclude), which codex-orch's git in that
worktree reads as its `core.excludesFile`: neither the guard nor the commit takes it for the agent's work.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from pathlib import Path
from typing import Any

from codex_orch.engine.context import RunContext
from codex_orch.git.repo import Git
from codex_orch.git.workspace import Workspace
from codex_orch.proc.stream import ProcRequest, run_streaming
from codex_orch.safe_fs import UnsafePath, write_bytes

LOG_NAME = "setup.log"
EXCLUDE_NAME = "exclude"
MAX_COPIED = 1 << 30  # bytes of one copied file

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class SetupFailed(Exception):
    """A setup step failed: the task fails as `setup_failed` before any agent runs."""


def _lock(worktree: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(worktree), threading.Lock())


def command_env() -> dict[str, str]:
    """The user's environment minus inherited GIT_* variables that could point git elsewhere."""
    keep = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_CONFIG_GLOBAL")
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in keep}


def prepare_worktree(ctx: RunContext, task_id: str, ws: Workspace) -> dict[str, Any] | None:
    """Set the task's worktree up unless that was done already; its record (None: nothing configured).
    Raises SetupFailed, naming the command and its log, when a step fails."""
    config = ctx.config.worktree
    if not config.active:
        return None
    key = str(ws.worktree)
    with _lock(ws.worktree):
        done = (ctx.store.get("setups") or {}).get(key)
        if done is not None and done.get("ok"):
            ctx.workspaces.exclude(ws.worktree, Path(done["exclude_file"]))
            return dict(done)
        name = task_id if ctx.mode != "shared" else "shared"
        folder = ctx.run_dir / "setup" / name
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / LOG_NAME
        started = time.monotonic()
        ctx.notify("setup", task_id, {"worktree": key})
        git = ctx.workspaces.git_at(ws.worktree)
        copied = _copy_files(ctx, git, ws.worktree, config.copy_files)
        failed: dict[str, Any] | None = None
        for argv in config.commands:
            with open(log, "ab") as fh:
                fh.write(f"$ {' '.join(argv)}\n".encode())
            outcome = run_streaming(
                ProcRequest(
                    argv=argv,
                    cwd=ws.worktree,
                    env=command_env(),
                    stdout_path=log,
                    stderr_path=log,
                    timeout=config.timeout,
                    stop_grace=ctx.config.limits.stop_grace,
                    redactor=ctx.redactor,
                ),
                on_line=lambda line: None,
                cancel=ctx.cancel,
            )
            if outcome.returncode != 0 or outcome.spawn_error:
                why = outcome.spawn_error or (
                    f"timed out after {config.timeout:g} s" if outcome.timed_out else f"exit {outcome.returncode}"
                )
                failed = {"command": " ".join(argv), "exit_code": outcome.returncode, "why": why}
                break
        excluded = sorted({*(f"/{p}" for p in copied), *_left_by_setup(git)})
        exclude_file = folder / EXCLUDE_NAME
        exclude_file.write_text(_global_excludes(ctx.git) + "".join(f"{e}\n" for e in excluded), "utf-8")
        ctx.workspaces.exclude(ws.worktree, exclude_file)
        record = {
            "worktree": key,
            "task": task_id,
            "ok": failed is None,
            "seconds": round(time.monotonic() - started, 3),
            "log": str(log),
            "copied": copied,
            "excluded": excluded,
            "exclude_file": str(exclude_file),
            "failed": failed,
        }
        ctx.store.record("worktree.setup", **record)
    if failed is not None:
        raise SetupFailed(f"worktree setup failed: `{failed['command']}`: {failed['why']} (output: {log})")
    return record


def _copy_files(ctx: RunContext, git: Git, worktree: Path, patterns: tuple[str, ...]) -> list[str]:
    """Copy the user's untracked files matching `patterns` (relative to the repository root) into the
    worktree, never through a link (in the checkout or the worktree). Tracked files are left alone."""
    root = ctx.layout.root
    found: set[str] = set()
    for pattern in patterns:
        for rel in glob.glob(pattern, root_dir=root, recursive=True, include_hidden=True):
            path = root / rel
            if path.is_file() and not path.is_symlink() and not rel.startswith(".orchestrator/"):
                found.add(os.path.normpath(rel))
    literal = git.with_env({"GIT_LITERAL_PATHSPECS": "1"})  # a file name is a name, never a pattern
    tracked = set(literal.run("ls-files", "-z", "--", *found, strip=False).split("\0")) if found else set()
    copied = []
    for rel in sorted(found - tracked):
        data = (root / rel).read_bytes()[:MAX_COPIED]
        try:
            write_bytes(worktree, rel, data, (root / rel).stat().st_mode & 0o777)
        except UnsafePath as exc:
            raise SetupFailed(f"worktree setup: could not copy {rel}: {exc}") from None
        copied.append(rel)
    return copied


def _left_by_setup(git: Git) -> list[str]:
    """What the setup left in the fresh worktree: untracked entries, folders collapsed (`/.venv/`)."""
    out = git.run("status", "--porcelain=v1", "-z", "--untracked-files=normal", strip=False)
    return [f"/{item[3:]}" for item in out.split("\0") if item.startswith("?? ")]


def _global_excludes(git: Git) -> str:
    """The user's own global excludes (a worktree's `core.excludesFile` replaces them)."""
    configured = git.run_full("config", "--path", "core.excludesFile")[1].strip()
    if configured:
        path = Path(configured)
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        path = Path(base) / "git" / "ignore"
    try:
        text = path.read_text("utf-8", "replace")
    except OSError:
        return ""
    return text if text.endswith("\n") or not text else text + "\n"
