"""After each attempt: what the agent changed that it may not, and work that would not reach its commit.

The checks themselves are in git/guard.py (refs, HEAD, .git, git's files); this module turns what they
find into the attempt's outcome and the words the agent reads on its retry, and looks for work that a
commit would silently leave out: files ignored by a .gitignore the attempt changed, nested repositories,
FIFOs and other files git does not track, unreadable files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from codex_orch.agents.base import AgentResult
from codex_orch.engine.context import RunContext
from codex_orch.failures import FailureKind
from codex_orch.git.guard import Change
from codex_orch.git.repo import Git
from codex_orch.git.workspace import Workspace

MAX_LISTED = 20


def quarantine_ref(run_id: str, task_id: str, n: int) -> str:
    return f"refs/orch/{run_id}/quarantine/{task_id}/{n}"


def violation_message(changes: Sequence[Change]) -> str:
    shown = "; ".join(c.describe() for c in changes[:MAX_LISTED])
    more = f"; and {len(changes) - MAX_LISTED} more" if len(changes) > MAX_LISTED else ""
    return f"changed what only codex-orch may change: {shown}{more}"


def guardrail_prompt(message: str) -> str:
    """The retry prompt after a guardrail violation or hidden work: what was found, and the rules."""
    if message.startswith("work its commit would not hold: "):
        return (
            f"codex-orch found {message} (it commits every file of your worktree that git tracks or can add). "
            "Make your work plain files git commits: no .gitignore that hides them, no nested repository "
            "(`git init`), no FIFOs, readable files. Then answer with the JSON object the output schema asks for."
        )
    return (
        f"codex-orch found that your previous turn {message.removeprefix('changed what only codex-orch may change: ')}"
        ".\n\nThose changes were undone. Your worktree's files are yours, but you may not: move, create or delete "
        "branches, tags or other refs (no `git commit`, `reset`, `checkout <branch>`, `switch`, `stash`, `tag`, "
        "`update-ref`, `symbolic-ref`); touch `.git` or anything under the repository's git directory (config, "
        "hooks, info); replace files codex-orch writes (docs/ai/decisions.md) or their folders with links. "
        "codex-orch commits your work itself. (If you did not do this, another agent working beside you did: "
        "carry on.) Finish the task, then answer with the JSON object the output schema asks for."
    )


def hidden_work(git: Git, worktree: Path, since: float) -> list[str]:
    """What the attempt made that its commit would not hold, one line each (empty: nothing).

    - files ignored by git and modified during the attempt, when the attempt changed a .gitignore;
    - nested repositories (a folder with its own .git: only a gitlink would be committed);
    - files git does not commit at all (FIFOs, sockets, devices) in the folders the attempt changed,
      and files codex-orch cannot read."""
    found: list[str] = []
    entries = git.status(ignored=True)
    ignored = [e.path for e in entries if e.code == "!!"]
    changed = [e for e in entries if e.code != "!!"]
    gitignores = [e for e in entries if e.path == ".gitignore" or e.path.endswith("/.gitignore")]
    if any(e.code != "!!" or _modified_since(worktree / e.path, since) for e in gitignores):
        recent = [p for p in ignored if not p.endswith(".gitignore") and _modified_since(worktree / p, since)]
        found += [f"{p}: ignored by a .gitignore the attempt changed, so not committed" for p in recent[:MAX_LISTED]]
    folders = {worktree}
    for entry in changed:
        path = worktree / entry.path
        folders.add(path.parent)
        try:
            info = path.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and (path / ".git").exists():
            found.append(f"{entry.path.rstrip('/')}: a nested git repository (its files would not be committed)")
        elif stat.S_ISDIR(info.st_mode):
            folders.add(path)
        elif stat.S_ISREG(info.st_mode) and not os.access(path, os.R_OK):
            found.append(f"{entry.path}: unreadable (git cannot commit it)")
    found += _specials(worktree, folders)
    return found[: MAX_LISTED * 2]


def _modified_since(path: Path, since: float) -> bool:
    try:
        return path.lstat().st_mtime >= since
    except OSError:
        return False


def _specials(worktree: Path, folders: set[Path]) -> list[str]:
    """FIFOs, sockets and devices, which git status does not even list, in the folders the attempt changed."""
    found = []
    for folder in sorted(folders):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)):
                found.append(f"{Path(entry.path).relative_to(worktree)}: not a regular file (git does not commit it)")
    return found[:MAX_LISTED]


def after_attempt(
    ctx: RunContext, task_id: str, ws: Workspace, n: int, folder: Path, result: AgentResult
) -> tuple[AgentResult, list[Change], list[str]]:
    """The attempt's result as the guard and the hidden-work check see it, with what each found: what
    it changed that it may not (each put back already; its own commits folded) fails it as `guardrail`;
    work its commit would not hold fails it as `hidden_work` (guardrails.on_hidden_work: fail) or is
    flagged."""
    guard = ctx.workspaces.guard
    changes = guard.check(ws.worktree, quarantine_ref(ctx.run_id, task_id, n), folder) if guard else []
    if any(c.kind == "worktree" for c in changes):  # its folder made a link: removed, the worktree made again
        ctx.workspaces.ensure(ws.worktree, ws.branch, ws.base_commit, ready=True)
    violations = [c for c in changes if not c.folded]
    if violations and result.failure != FailureKind.INTERRUPTED:
        result = replace(result, failure=FailureKind.GUARDRAIL, failure_message=violation_message(violations))
    hidden = hidden_work(ctx.workspaces.git_at(ws.worktree), ws.worktree, result.started) if not result.failure else []
    if hidden and ctx.config.on_hidden_work == "fail":
        message = "work its commit would not hold: " + "; ".join(hidden[:5])
        result = replace(result, failure=FailureKind.HIDDEN_WORK, failure_message=message)
    elif hidden:
        ctx.notify("flag", task_id, {"message": "work its commit would not hold: " + "; ".join(hidden[:3])})
    return result, changes, hidden
