"""Which worktree a task works in, by the run's workspace mode (docs/usage.md, Worktrees): the shared
worktree, or the task's own, made when it first starts and taken up as it was after a stop."""

from __future__ import annotations

from pathlib import Path

from codex_orch.engine.context import RunContext
from codex_orch.engine.landing import task_branch, task_workspace
from codex_orch.git.workspace import Workspace
from codex_orch.plan import Task


def task_worktree(ctx: RunContext, task: Task) -> Workspace:
    """The shared worktree, or this task's own: from the run branch's tip (landing), or branched from
    its dependencies' work (per-task)."""
    rec = ctx.store.task(task.id)
    mode = ctx.mode
    if mode == "landing":
        return task_workspace(ctx, task)
    if mode == "shared":
        worktree = Path(ctx.store.get("worktree"))
        ws = ctx.workspaces.ensure(worktree, ctx.store.get("branch"), ctx.store.get("base_commit"), ready=True)
        if rec["worktree"] is None:
            ctx.store.record(
                "task.workspace",
                task=task.id,
                branch=ws.branch,
                worktree=str(worktree),
                base_commit=ctx.workspaces.git_at(worktree).head(),
            )
        return ws
    if rec["worktree"] is not None:
        return ctx.workspaces.ensure(Path(rec["worktree"]), rec["branch"], rec["base_commit"], ready=True)
    heads = [ctx.store.task(dep)["head"] for dep in task.blocked_by]
    start = heads[0] if heads else ctx.store.get("base_commit")
    branch = task_branch(ctx, task)
    worktree = ctx.layout.task_worktree(ctx.run_id, task.id)
    ws = ctx.workspaces.ensure(worktree, branch, start)
    others = [h for h in dict.fromkeys(heads[1:]) if h and h != start]
    if others:
        ctx.workspaces.merge_into(worktree, others, task.id)
    ctx.store.record("task.workspace", task=task.id, branch=branch, worktree=str(worktree), base_commit=start)
    return ws


def landing_branch_ready(ctx: RunContext, ready: bool) -> None:
    """A landing run's branch, made when the run starts. When it is taken up again, the worktrees of
    tasks that succeeded before the stop are removed: a stop may come between a task's landing and
    its worktree's removal (TaskRunner._retire)."""
    if not ready:
        ctx.workspaces.ensure_branch(ctx.store.get("branch"), ctx.store.get("base_commit"))
        return
    ctx.workspaces.watch_branch(ctx.store.get("branch"))
    for task in ctx.store.task_fields("status", "worktree").values():
        if task["status"] == "succeeded" and task["worktree"] and Path(task["worktree"]).exists():
            ctx.workspaces.retire(Path(task["worktree"]))
