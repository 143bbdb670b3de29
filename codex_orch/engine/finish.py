"""The end of a task: its commit after a valid answer (in a landing run, its landing too), what is flagged
about it, and its recorded status, succeeded or failed."""

from __future__ import annotations

import traceback
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
from codex_orch.git.messages import commit_message, decisions_entry
from codex_orch.git.workspace import DECISIONS_FILE, Workspace
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
    status, summary, decisions = _answer_fields(value)
    rec = ctx.store.task(task.id)
    landing = ctx.mode == "landing"
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
        left = unresolved(ctx, task, ws) if landing else ()
        if left:  # the agent answered without resolving the conflict: nothing is committed
            raise LandingConflict(left, None, "", still=True)
        sha, head, violations, files = _commit(ctx, task, ws, message, entry, recovering)
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
            sha, head = landed, landed or head
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
    return _final_status(ctx, task, sha, claims, violations, status, summary)


def _final_status(
    ctx: RunContext,
    task: Task,
    sha: str | None,
    claims: dict[str, Any] | None,
    violations: tuple[str, ...],
    status: str,
    summary: str,
) -> str:
    """The task's end once its work is committed: flagged, failed (files outside its paths when the
    config says so, or the agent's own word) or succeeded."""
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


def _commit(
    ctx: RunContext, task: Task, ws: Workspace, message: str, entry: str | None, recovering: bool
) -> tuple[str | None, str, tuple[str, ...], list[str]]:
    """The task's commit, made now or (after a crash between commit and journal) adopted: its sha, the
    worktree's head, the files set aside as outside its paths, and the files it changed."""
    rec = ctx.store.task(task.id)
    landing = ctx.mode == "landing"
    git = ctx.workspaces.git_at(ws.worktree)
    # After a crash between commit and journal, the commit exists already: adopt it.
    sha = (
        ctx.workspaces.find_commit(ws.worktree, ctx.run_id, task.id, rec["base_commit"] or ws.base_commit)
        if recovering
        else None
    )
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
            check_staged=ctx.secret_scanner.for_commit(message) if ctx.secret_scanner is not None else None,
        )
        return outcome.commit, outcome.head, outcome.violations, list(outcome.files)
    sha = sha or rec["commit"]
    return sha, git.head(), (), git.changed_files(sha) if sha else []


def _answer_fields(value: Any) -> tuple[str, str, list[dict[str, Any]] | None]:
    """The answer's status, summary and decisions, as far as its role's schema has them."""
    if not isinstance(value, dict):
        return "done", "", None
    decisions = value.get("decisions")
    if not isinstance(decisions, list) or not all(isinstance(d, dict) for d in decisions):
        decisions = None  # a role whose schema says otherwise: nothing to append to decisions.md
    return str(value.get("status", "done")), str(value.get("summary", "")), decisions


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


INTERNAL_LOG = "internal-error.log"


def internal_failure(ctx: RunContext, task_id: str, exc: Exception) -> str:
    """An unexpected exception in this task's executor: its open attempt is closed, the task fails."""
    message = f"{type(exc).__name__}: {exc}"
    folder = ctx.run_dir / "tasks" / task_id
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / INTERNAL_LOG, "a", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"{now_iso()}\n{''.join(traceback.format_exception(exc))}\n")
    except OSError:
        pass  # the message still says what happened
    attempts = ctx.store.task(task_id)["attempts"]
    if attempts and attempts[-1].get("ended_at") is None:
        ctx.store.record(
            "attempt.finished",
            task=task_id,
            failure=str(FailureKind.INTERNAL),
            failure_message=clean_text(message, MESSAGE_CHARS),
        )
    return record_failure(ctx, task_id, FailureKind.INTERNAL, message)
