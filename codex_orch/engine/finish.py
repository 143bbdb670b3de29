"""The end of a task: its commit after a valid answer (in a landing run, its landing too), what is flagged
about it, and its recorded status, succeeded or failed."""

from __future__ import annotations

from typing import Any

from codex_orch.engine.accounting import answer_files, describe, file_claims
from codex_orch.engine.context import RunContext
from codex_orch.engine.landing import (
    LandingConflict,
    land_task,
    unresolved,
)
from codex_orch.engine.secret_scan import SecretsFound
from codex_orch.errors import GuardrailError, OrchError
from codex_orch.failures import FailureKind, info
from codex_orch.git.workspace import DECISIONS_FILE, Workspace, commit_message, decisions_entry
from codex_orch.plan import Task
from codex_orch.state import now_iso
from codex_orch.untrusted import clean_text

MESSAGE_CHARS = 2000  # of a failure message, as recorded
FAILED_RESULT_STATUSES = ("blocked", "failed")


def finish_task(
    ctx: RunContext,
    task: Task,
    ws: Workspace,
    value: Any,
    n: int,
    thread: str | None,
    agent: str,
    recovering: bool = False,
) -> str:
    """After a valid answer: the task's commit (and in a landing run, its landing), what is flagged about
    it, and its final status. Raises SecretsFound and LandingConflict for the attempt loop to answer."""
    status = str(value.get("status", "done")) if isinstance(value, dict) else "done"
    summary = str(value.get("summary", "")) if isinstance(value, dict) else ""
    decisions = value.get("decisions") if isinstance(value, dict) else None
    if not isinstance(decisions, list) or not all(isinstance(d, dict) for d in decisions):
        decisions = None  # a role whose schema says otherwise: nothing to append to decisions.md
    rec = ctx.store.task(task.id)
    landing = ctx.mode == "landing"
    violations: tuple[str, ...] = ()
    files: list[str] = []
    entry = (
        ctx.redactor.text(decisions_entry(ctx.run_id, task.id, task.role, decisions, now_iso()[:10]))
        if decisions
        else None
    )
    message = ctx.redactor.text(
        commit_message(ctx.run_id, {"id": task.id, "role": task.role}, n, thread, summary, agent=agent)
    )
    scanner = ctx.secret_scanner
    try:
        git = ctx.workspaces.git_at(ws.worktree)
        # After a crash between commit and journal, the commit exists already: adopt it.
        sha = (
            ctx.workspaces.find_commit(ws.worktree, ctx.run_id, task.id, rec["base_commit"] or ws.base_commit)
            if recovering
            else None
        )
        left = unresolved(ctx, task, ws) if landing else ()
        if left:  # the agent answered without resolving the conflict: nothing is committed
            raise LandingConflict(left, None, "", still=True)
        if sha is None and not (landing and recovering and rec["commit"] is not None):
            shared = ctx.mode == "shared"
            paths = list(task.paths) if task.paths is not None and shared else None
            outcome = ctx.workspaces.commit(
                ws.worktree,
                message,
                paths,
                None if landing else entry,  # a landing run adds the decisions when it lands
                others=lambda: ctx.other_paths(task.id),
                preserve_ref=f"refs/orch/{ctx.run_id}/violations/{task.id}",
                check_staged=scanner.for_commit(message) if scanner is not None else None,
            )
            sha, head, violations, files = outcome.commit, outcome.head, outcome.violations, list(outcome.files)
        else:
            sha = sha or rec["commit"]
            head = git.head()
            files = git.changed_files(sha) if sha else []
        claims = file_claims(answer_files(value), files, ws.worktree)
        if landing:
            if entry and scanner is not None:
                scanner.check_text(DECISIONS_FILE, entry)
            if not rec["commit"] or not recovering:
                ctx.store.record(
                    "task.committed", task=task.id, commit=sha, head=head, files_changed=files, file_claims=claims
                )
                if ctx.on_commit is not None:
                    ctx.on_commit(task.id)
            landed = land_task(ctx, task, sha, message, entry)
            sha, head = landed.commit, landed.commit or head
    except (SecretsFound, LandingConflict):
        raise
    except GuardrailError as exc:
        return record_failure(ctx, task.id, FailureKind.GUARDRAIL, str(exc))
    except OrchError as exc:
        return record_failure(ctx, task.id, FailureKind.WORKSPACE, f"commit failed: {exc}")
    if not landing:
        ctx.store.record(
            "task.committed",
            task=task.id,
            commit=sha,
            head=head,
            files_changed=files,
            violations=list(violations),
            file_claims=claims,
        )
        if ctx.on_commit is not None:
            ctx.on_commit(task.id)
    if claims:
        ctx.notify("flag", task.id, {"message": describe(claims)})
    if violations:
        ctx.notify("violation", task.id, {"files": list(violations)})
        if ctx.config.on_violation == "fail":
            return record_failure(
                ctx,
                task.id,
                FailureKind.PATHS_VIOLATION,
                f"changed files outside its paths: {', '.join(violations[:10])}",
            )
    if status in FAILED_RESULT_STATUSES:
        return record_failure(
            ctx, task.id, FailureKind.AGENT_REPORTED, f"the agent reported status {status!r}: {summary[:200]}"
        )
    ctx.store.record("task.status", task=task.id, status="succeeded")
    ctx.notify("finished", task.id, {"status": "succeeded", "commit": sha})
    return "succeeded"


def record_failure(ctx: RunContext, task_id: str, kind: FailureKind, message: str) -> str:
    message = clean_text(message, MESSAGE_CHARS)
    ctx.store.record(
        "task.status",
        task=task_id,
        status="failed",
        error={"kind": str(kind), "message": message, "hint": info(kind).hint},
    )
    ctx.notify("finished", task_id, {"status": "failed", "kind": str(kind), "message": message})
    return "failed"
