"""The prompts of a task's attempts: the first (the role's template over the task and what its
dependencies did), and what an attempt that does not start afresh is told: after an interruption,
after a transient failure, and on another agent after its provider failed (agents.fallback)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codex_orch.agents.base import AgentResult
from codex_orch.engine.context import RunContext
from codex_orch.git.repo import local_changes
from codex_orch.plan import Task


def dependency_context(ctx: RunContext, task: Task) -> list[dict[str, Any]]:
    deps = []
    for dep_id in task.blocked_by:
        dep = ctx.store.task(dep_id)
        result = dep.get("result")
        result = result if isinstance(result, Mapping) else {}
        deps.append(
            {
                "id": dep_id,
                "role": dep["role"],
                "status": dep["status"],
                "summary": result.get("summary", ""),
                "files_changed": dep.get("files_changed") or result.get("files_changed") or [],
                "decisions": result.get("decisions") or [],
                "result": result,
            }
        )
    return deps


def render_task_prompt(ctx: RunContext, task: Task, worktree: Path) -> str:
    role = ctx.role(task.role)
    context = {
        "run_id": ctx.run_id,
        "role": task.role,
        "goal": ctx.plan.goal,
        "assumptions": list(ctx.plan.assumptions),
        "spec": ctx.spec or "",
        "task": task.context(),
        "acceptance": task.acceptance,
        "dependencies": dependency_context(ctx, task),
        "worktree": str(worktree),
    }
    return ctx.renderer.render(role.prompt_template, context)


def leftover_changes(ctx: RunContext, worktree: Path) -> str:
    # without git's optional index lock: a parallel task may be committing in a shared worktree
    changes = local_changes(ctx.workspaces.git_at(worktree))
    listing = "\n".join(f"  {c.code} {c.path}" for c in changes[:200])
    if len(changes) > 200:
        listing += f"\n  … and {len(changes) - 200} more"
    return listing


def restart_prompt(ctx: RunContext, task: Task, worktree: Path) -> str:
    """The task's prompt for an attempt that starts over after an interruption came before the agent's
    thread was known: the agent is told about changes an earlier attempt may have left."""
    prompt = render_task_prompt(ctx, task, worktree)
    listing = leftover_changes(ctx, worktree)
    if not listing:
        return prompt
    return (
        f"{prompt}\n\n## Note from codex-orch\nAn earlier attempt at this task was interrupted. The worktree holds "
        f"uncommitted changes it may have made (`git status`):\n{listing}\nKeep what is right, finish the task.\n"
    )


def interrupted_prompt(ctx: RunContext, worktree: Path) -> str:
    listing = leftover_changes(ctx, worktree) or "  (none)"
    return (
        "You were interrupted before you finished this task (codex-orch was stopped). Continue from where "
        "you left off: the worktree still holds your uncommitted changes, listed by `git status`:\n"
        f"{listing}\n\nCheck them, complete the task and its acceptance criteria, then answer with the JSON "
        "object the output schema asks for, as before."
    )


def transient_prompt(result: AgentResult) -> str:
    return (
        f"Your previous turn did not finish ({result.failure}: {result.failure_message}). Continue the task "
        "from where you left off, then answer with the JSON object the output schema asks for."
    )


def fallback_prompt(ctx: RunContext, task: Task, worktree: Path, failed: str, result: AgentResult) -> str:
    """The task's prompt for another agent, after `failed` could not reach its model."""
    prompt = render_task_prompt(ctx, task, worktree)
    listing = leftover_changes(ctx, worktree) or "  (none)"
    return (
        f"{prompt}\n\n## Note from codex-orch\nThis task was started by another agent ({failed}), which stopped "
        f"when its model provider failed ({result.failure}: {result.failure_message[:300]}). You take it over. "
        f"The worktree holds the work so far, uncommitted (`git status`):\n{listing}\n"
        "Check it, keep what is right, and finish the task.\n"
    )


CONTINUES = "continues"  # a task key (the job service's `continue`): the id of the task whose thread it goes on


def continued_thread(ctx: RunContext, task: Task) -> tuple[str, list[dict[str, Any]]] | None:
    """A follow-up task (`continues: ID`, added by the job service's `continue`) goes on on that task's agent
    thread: the thread and its attempts (their agent, model and usage so far), or None when it has none."""
    source = task.extra.get(CONTINUES)
    if not isinstance(source, str) or source not in ctx.store.get("tasks"):
        return None
    earlier = ctx.store.task(source)
    return (earlier["thread_id"], list(earlier["attempts"])) if earlier.get("thread_id") else None


def follow_up_prompt(task: Task) -> str:
    """The follow-up, as its sender wrote it, with the one reminder the thread needs."""
    return f"{task.prompt}\n\nWhen you are done, answer with the JSON object the output schema asks for, as before."
