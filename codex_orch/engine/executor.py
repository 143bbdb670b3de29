"""One task, start to finish: its workspace, its attempts, validation with retry, its commit.

A task's failure is its result, never the run's crash: every path ends in a recorded status. Even an
unexpected exception inside this module becomes the task's failure (kind `internal`), so that its
siblings and dependants go on as after any other failure.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from codex_orch.agents import AttemptRequest, Usage, get_backend
from codex_orch.agents.base import AgentResult, Progress
from codex_orch.engine.accounting import answer_files, describe, file_claims
from codex_orch.engine.context import RunContext
from codex_orch.engine.guardrails import guardrail_prompt, hidden_work, quarantine_ref, violation_message
from codex_orch.engine.landing import LandingConflict, conflict_prompt, land_task, replay_conflict, task_workspace
from codex_orch.engine.secret_scan import SecretsFound
from codex_orch.engine.task_prompts import (
    interrupted_prompt,
    render_task_prompt,
    restart_prompt,
    transient_prompt,
)
from codex_orch.engine.validation import Verdict, checked, judge, retry_prompt
from codex_orch.errors import GuardrailError, OrchError
from codex_orch.failures import FailureKind, Retry, info
from codex_orch.git.guard import Change
from codex_orch.git.workspace import DECISIONS_FILE, Workspace, branch_name, commit_message, decisions_entry
from codex_orch.plan import Task
from codex_orch.state import now_iso
from codex_orch.untrusted import clean_text

log = logging.getLogger(__name__)

FAILED_RESULT_STATUSES = ("blocked", "failed")
MESSAGE_CHARS = 2000  # of a failure message, as recorded
INTERNAL_LOG = "internal-error.log"


def attempt_dir(ctx: RunContext, task_id: str, n: int) -> Path:
    return ctx.run_dir / "tasks" / task_id / f"attempt-{n}"


def _workspace(ctx: RunContext, task: Task) -> Workspace:
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
    branch = branch_name(
        ctx.config.git.branch_template,
        ctx.config.source,
        date=ctx.store.get("date"),
        run_id=ctx.run_id,
        task_id=task.id,
        role=task.role,
    )
    worktree = ctx.layout.task_worktree(ctx.run_id, task.id)
    ws = ctx.workspaces.ensure(worktree, branch, start)
    others = [h for h in dict.fromkeys(heads[1:]) if h and h != start]
    if others:
        ctx.workspaces.merge_into(worktree, others, task.id)
    ctx.store.record("task.workspace", task=task.id, branch=branch, worktree=str(worktree), base_commit=start)
    return ws


class TaskRunner:
    def __init__(self, ctx: RunContext, task: Task) -> None:
        self.ctx = ctx
        self.task = task
        self.role = ctx.role(task.role)
        self.schema_path, self.schema = ctx.schema(self.role)

    def run(self) -> str:
        ctx, task = self.ctx, self.task
        store = ctx.store
        try:
            ws = _workspace(ctx, task)
        except OrchError as exc:
            return self._fail(FailureKind.WORKSPACE, str(exc))
        rec = store.task(task.id)
        store.record("task.status", task=task.id, status="running")
        ctx.notify("started", task.id, {"role": task.role})
        if rec["result"] is not None:  # a crash came after a valid answer and before the commit
            try:
                return self._finish(ws, rec["result"], rec["attempts"][-1]["n"], rec["thread_id"], recovering=True)
            except SecretsFound as exc:
                return self._fail(FailureKind.SECRET, str(exc))

        n = len(rec["attempts"]) + 1
        thread = rec["thread_id"]
        if rec["status"] in ("interrupted", "running") and rec["attempts"]:
            prompt = interrupted_prompt(ctx, ws.worktree) if thread else restart_prompt(ctx, task, ws.worktree)
        else:
            thread = None
            prompt = render_task_prompt(ctx, task, ws.worktree)
        answer_retries = transient_retries = conflict_rounds = 0
        previous_usage = Usage()
        if thread:
            previous_usage = _thread_usage(rec["attempts"], thread)
        while True:
            result, verdict = self._attempt(ws, n, prompt, thread, previous_usage)
            if result.failure is None and verdict is not None and verdict.ok:
                store.record("task.result", task=task.id, result=verdict.value)
                try:
                    return self._finish(ws, verdict.value, n, result.thread_id)
                except SecretsFound as exc:  # nothing was committed: the answer is retried like an invalid one
                    store.record("task.commit_refused", task=task.id, failure=str(FailureKind.SECRET), message=str(exc))
                    verdict = Verdict(None, FailureKind.SECRET, tuple(str(f) for f in exc.findings))
                except LandingConflict as exc:  # back to the same agent, on the run branch's tip
                    if conflict_rounds >= ctx.config.limits.conflict_rounds or not result.thread_id:
                        return self._fail(FailureKind.CONFLICT, str(exc))
                    conflict_rounds += 1
                    try:
                        files = replay_conflict(ctx, task, ws, exc)
                    except OrchError as err:
                        return self._fail(FailureKind.WORKSPACE, f"could not replay its change on the tip: {err}")
                    thread, previous_usage, prompt, n = result.thread_id, result.usage, conflict_prompt(files), n + 1
                    continue
            kind = result.failure or (verdict.failure if verdict else None) or FailureKind.CRASHED
            message = result.failure_message or "; ".join(verdict.errors[:3] if verdict else ())
            if kind == FailureKind.INTERRUPTED:
                store.record(
                    "task.status", task=task.id, status="interrupted", error={"kind": str(kind), "message": message}
                )
                return "interrupted"
            if result.thread_id:
                thread = result.thread_id
                previous_usage = result.usage
            policy = info(kind).retry
            if policy == Retry.ANSWER and thread and answer_retries < ctx.config.limits.retries:
                answer_retries += 1
                if kind in (FailureKind.GUARDRAIL, FailureKind.HIDDEN_WORK):
                    prompt = guardrail_prompt(message)
                else:
                    prompt = retry_prompt(verdict or Verdict(None, kind, (message,)), self.schema_path.name)
            elif policy == Retry.TRANSIENT and transient_retries < ctx.config.limits.transient_retries:
                transient_retries += 1
                prompt = transient_prompt(result) if thread else render_task_prompt(ctx, task, ws.worktree)
            else:
                return self._fail(kind, message)
            if ctx.cancel.is_set():
                store.record(
                    "task.status",
                    task=task.id,
                    status="interrupted",
                    error={"kind": "interrupted", "message": "stopped before a retry"},
                )
                return "interrupted"
            n += 1

    def _attempt(
        self, ws: Workspace, n: int, prompt: str, thread: str | None, previous_usage: Usage
    ) -> tuple[AgentResult, Verdict | None]:
        ctx, task, role = self.ctx, self.task, self.role
        folder = attempt_dir(ctx, task.id, n)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prompt.md").write_text(ctx.redactor.text(prompt), "utf-8")
        ctx.store.record("attempt.started", task=task.id, n=n, resume_thread=thread)
        ctx.notify("attempt", task.id, {"n": n, "thread": thread})
        seen_thread = [thread]

        def on_progress(progress: Progress) -> None:
            if progress.thread_id and progress.thread_id != seen_thread[0]:
                seen_thread[0] = progress.thread_id
                ctx.store.record("attempt.thread", task=task.id, thread_id=progress.thread_id)
            ctx.notify(
                "progress",
                task.id,
                {
                    "action": ctx.redactor.text(progress.action),  # a command line the agent ran, shown live
                    "usage": progress.usage.to_json() if progress.usage else None,
                },
            )

        request = AttemptRequest(
            prompt=prompt,
            workdir=ws.worktree,
            attempt_dir=folder,
            sandbox=role.sandbox,
            output_schema=self.schema_path,
            env=ctx.agent_env,
            timeout=task.timeout or role.timeout or ctx.config.limits.timeout,
            idle_timeout=role.idle_timeout or ctx.config.limits.idle_timeout,
            stop_grace=ctx.config.limits.stop_grace,
            model=task.model or role.model,
            profile=role.profile,
            resume_thread=thread,
            command=ctx.command,
            extra_args=ctx.config.codex.extra_args,
            redactor=ctx.redactor,
            max_reconnects=ctx.config.limits.max_reconnects,
        )
        backend = get_backend(task.agent)
        result = backend.run(
            request,
            cancel=ctx.cancel,
            on_progress=on_progress,
            on_start=lambda pid: ctx.store.record("attempt.pid", task=task.id, pid=pid),
        )
        changes = self._guardrails(ws, n, folder)
        violations = [c for c in changes if not c.folded]
        if violations and result.failure != FailureKind.INTERRUPTED:
            result = replace(result, failure=FailureKind.GUARDRAIL, failure_message=violation_message(violations))
        hidden = (
            hidden_work(ctx.workspaces.git_at(ws.worktree), ws.worktree, result.started) if not result.failure else []
        )
        if hidden and ctx.config.on_hidden_work == "fail":
            message = "work its commit would not hold: " + "; ".join(hidden[:5])
            result = replace(result, failure=FailureKind.HIDDEN_WORK, failure_message=message)
        elif hidden:
            ctx.notify("flag", task.id, {"message": "work its commit would not hold: " + "; ".join(hidden[:3])})
        verdict = judge(result.final_message, self.schema) if result.failure is None else None
        answer_check = ctx.answer_checks.get(task.role)
        if verdict is not None and verdict.ok and answer_check is not None:
            verdict = checked(verdict, answer_check(verdict.value))
        (folder / "final.json").write_text(ctx.redactor.text(result.final_message or ""), "utf-8")
        if verdict is not None:
            report = "valid\n" if verdict.ok else f"{verdict.failure}\n" + "".join(f"{e}\n" for e in verdict.errors)
        else:
            report = f"not validated: {result.failure}: {result.failure_message}\n"
        (folder / "validation.txt").write_text(ctx.redactor.text(report), "utf-8")
        resumed_same = thread is not None and result.thread_id == thread
        usage = result.usage - previous_usage if resumed_same else result.usage
        failure = result.failure or (verdict.failure if verdict else None)
        ctx.store.record(
            "attempt.finished",
            task=task.id,
            thread_id=result.thread_id,
            exit_code=result.exit_code,
            failure=str(failure) if failure else None,
            failure_message=clean_text(
                result.failure_message or ("; ".join(verdict.errors[:5]) if verdict else ""), MESSAGE_CHARS
            ),
            usage=usage.to_json(),
            thread_usage=result.usage.to_json(),
            events=result.event_count,
            garbage_lines=result.garbage_lines,
            items=dict(result.item_counts),
            duration=round(result.ended - result.started, 3),
            stop_steps=list(result.stop_steps),
            guardrail=[c.describe() for c in changes],
            hidden_work=hidden,
        )
        return result, verdict

    def _guardrails(self, ws: Workspace, n: int, folder: Path) -> list[Change]:
        """What the attempt changed that it may not (each put back already), and folded own commits."""
        guard = self.ctx.workspaces.guard
        if guard is None:
            return []
        return guard.check(ws.worktree, quarantine_ref(self.ctx.run_id, self.task.id, n), folder)

    def _finish(self, ws: Workspace, value: Any, n: int, thread: str | None, recovering: bool = False) -> str:
        ctx, task = self.ctx, self.task
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
        message = ctx.redactor.text(commit_message(ctx.run_id, {"id": task.id, "role": task.role}, n, thread, summary))
        scanner = ctx.secret_scanner
        try:
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
                landed = land_task(ctx, task, sha, message, entry)
                sha, head = landed.commit, landed.commit or head
        except (SecretsFound, LandingConflict):
            raise
        except GuardrailError as exc:
            return self._fail(FailureKind.GUARDRAIL, str(exc))
        except OrchError as exc:
            return self._fail(FailureKind.WORKSPACE, f"commit failed: {exc}")
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
        if claims:
            ctx.notify("flag", task.id, {"message": describe(claims)})
        if violations:
            ctx.notify("violation", task.id, {"files": list(violations)})
            if ctx.config.on_violation == "fail":
                return self._fail(
                    FailureKind.PATHS_VIOLATION, f"changed files outside its paths: {', '.join(violations[:10])}"
                )
        if status in FAILED_RESULT_STATUSES:
            return self._fail(FailureKind.AGENT_REPORTED, f"the agent reported status {status!r}: {summary[:200]}")
        ctx.store.record("task.status", task=task.id, status="succeeded")
        ctx.notify("finished", task.id, {"status": "succeeded", "commit": sha})
        return "succeeded"

    def _fail(self, kind: FailureKind, message: str) -> str:
        return record_failure(self.ctx, self.task.id, kind, message)


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


def _thread_usage(attempts: list[dict[str, Any]], thread: str) -> Usage:
    for attempt in reversed(attempts):
        if attempt.get("thread_id") == thread and attempt.get("thread_usage"):
            return Usage.from_json(attempt["thread_usage"])
    return Usage()


def run_task(ctx: RunContext, task: Task) -> str:
    """Run one task to a final status; never raises for the task's own failures, nor for a bug met on
    the way (that is the task's failure, kind `internal`, its traceback in the task's folder)."""
    ctx.set_active(task.id, task.paths, True)
    try:
        return TaskRunner(ctx, task).run()
    except OrchError as exc:
        log.info("task %s failed: %s", task.id, exc)
        return record_failure(ctx, task.id, FailureKind.WORKSPACE, str(exc))
    except Exception as exc:
        return _internal_failure(ctx, task.id, exc)
    finally:
        ctx.set_active(task.id, None, False)


def _internal_failure(ctx: RunContext, task_id: str, exc: Exception) -> str:
    """An unexpected exception in this task's executor: its open attempt is closed, the task fails."""
    message = f"{type(exc).__name__}: {exc}"
    log.info("task %s: internal error: %s", task_id, message)
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
