"""A task of a landing run: its own worktree from the run branch's tip, its commit landed on the run
branch, and a conflicting landing handed back to the same agent.

The git side is git/landing.py; here are the run's records around it. A task's journal says, in
order: `task.workspace` (its worktree, branched from the tip), `task.result`, `task.committed` (its
commit on its own branch), `task.landed` (the commit on the run branch). A crash between any two is
taken up by resume from the last one: a commit already made or landed is found by its trailers and
adopted, never made twice. When the landing conflicts, `task.rebased` records the tip the change was
replayed on; the agent's answer that follows is committed and landed again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from codex_orch.engine.context import RunContext
from codex_orch.git.workspace import DECISIONS_FILE, DECISIONS_HEADER, Workspace, branch_name
from codex_orch.plan import Task

MAX_LISTED = 20
_MARKERS = re.compile(rb"^(<{7} |>{7} |={7}$)", re.M)


class LandingConflict(Exception):
    """The task's commit does not apply on the run branch's tip: these files conflict."""

    def __init__(self, files: Sequence[str], tip: str | None, commit: str, still: bool = False) -> None:
        what = "still holds conflict markers in" if still else "conflicts with the run branch in"
        super().__init__(f"its change {what} {', '.join(files[:MAX_LISTED])}")
        self.files = tuple(files)
        self.tip = tip
        self.commit = commit


def task_branch(ctx: RunContext, task: Task) -> str:
    """The name of a task's own branch (git.branch_template)."""
    return branch_name(
        ctx.config.git.branch_template,
        ctx.config.source,
        date=ctx.store.get("date"),
        run_id=ctx.run_id,
        task_id=task.id,
        role=task.role,
    )


def task_workspace(ctx: RunContext, task: Task) -> Workspace:
    """The task's own worktree on its own branch, made from the run branch's tip when it first starts
    (its dependencies have landed by then), or as it was left when it is taken up again."""
    rec = ctx.store.task(task.id)
    if rec["worktree"] is not None:
        return ctx.workspaces.ensure(Path(rec["worktree"]), rec["branch"], rec["base_commit"], ready=True)
    branch = task_branch(ctx, task)
    tip = ctx.workspaces.tip(ctx.store.get("branch"))
    worktree = ctx.layout.task_worktree(ctx.run_id, task.id)
    ws = ctx.workspaces.ensure(worktree, branch, tip, fresh=True)  # a leftover branch: a cut-short creation
    ctx.store.record("task.workspace", task=task.id, branch=branch, worktree=str(worktree), base_commit=tip)
    return ws


def land_task(ctx: RunContext, task: Task, commit: str | None, message: str, entry: str | None) -> str | None:
    """Land the task's commit (None: it changed no file) with its decisions `entry` on the run branch;
    the commit that holds it there (None: nothing to land)."""
    rec = ctx.store.task(task.id)
    run_branch = str(ctx.store.get("branch"))
    base = rec["base_commit"]
    # only a process before this one can have landed it unrecorded (a crash between the landing and the
    # journal): a run never resumed has had none
    landed = ctx.workspaces.find_landed(run_branch, ctx.run_id, task.id, base) if ctx.store.get("resumed") else None
    if landed is None:
        if commit is None and entry is None:
            return None
        appended = (DECISIONS_FILE, DECISIONS_HEADER, entry) if entry else None
        outcome = ctx.workspaces.land(run_branch, commit or base, base, message, appended)
        if outcome.commit is None:
            raise LandingConflict(outcome.conflicts, outcome.tip, commit or base)
        landed = outcome.commit
    ctx.store.record("task.landed", task=task.id, commit=landed)
    return landed


def unresolved(ctx: RunContext, task: Task, ws: Workspace) -> tuple[str, ...]:
    """The files of the task's last landing conflict that still hold conflict markers (read without
    following links; a file that is gone or is no longer text is the agent's resolution)."""
    from codex_orch.safe_fs import UnsafePath, read_bytes

    left = []
    for rel in ctx.store.task(task.id).get("conflicts") or []:
        try:
            data = read_bytes(ws.worktree, rel, limit=8 << 20)
        except (UnsafePath, OSError):
            continue
        if data and _MARKERS.search(data):
            left.append(rel)
    return tuple(left)


def replay_conflict(ctx: RunContext, task: Task, ws: Workspace, conflict: LandingConflict) -> tuple[str, ...]:
    """Replay the task's change on the run branch's tip in its worktree, conflicts marked, and record it
    (an answer that left markers is not replayed: its files are named again)."""
    if conflict.tip is None:
        return conflict.files
    rec = ctx.store.task(task.id)
    files = ctx.workspaces.replay(ws.worktree, conflict.tip, rec["base_commit"], conflict.commit)
    ctx.store.record("task.rebased", task=task.id, base_commit=conflict.tip, conflicts=list(files))
    return files


def conflict_prompt(files: Sequence[str]) -> str:
    shown = "\n".join(f"- {f}" for f in files[:MAX_LISTED])
    more = f"\n- … and {len(files) - MAX_LISTED} more" if len(files) > MAX_LISTED else ""
    return (
        "Your work could not land on the run branch: since you started, other tasks landed changes to the "
        "same files. codex-orch has moved your worktree to the run branch's current tip and re-applied your "
        f"changes on it; these files conflict and hold git's conflict markers (<<<<<<<, =======, >>>>>>>):\n"
        f"{shown}{more}\n\nResolve every conflict so that both the other tasks' changes and yours are kept "
        "(do not run git commands: codex-orch commits), check that your task is still complete, then answer "
        "again with the JSON object the output schema asks for."
    )
