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
from codex_orch.engine.agent_choice import AttemptAgent, model_for, next_fallback, task_choice, thread_agent
from codex_orch.engine.context import RunContext
from codex_orch.engine.finish import MESSAGE_CHARS, finish_task, record_failure
from codex_orch.engine.guardrails import guardrail_prompt, hidden_work, quarantine_ref, violation_message
from codex_orch.engine.landing import (
    LandingConflict,
    conflict_prompt,
    replay_conflict,
    task_workspace,
)
from codex_orch.engine.secret_scan import SecretsFound
from codex_orch.engine.task_prompts import (
    continued_thread,
    fallback_prompt,
    follow_up_prompt,
    interrupted_prompt,
    render_task_prompt,
    restart_prompt,
    transient_prompt,
)
from codex_orch.engine.validation import Verdict, checked, judge, retry_prompt
from codex_orch.errors import OrchError
from codex_orch.failures import FailureKind, Retry, info
from codex_orch.git.guard import Change
from codex_orch.git.workspace import Workspace, branch_name
from codex_orch.plan import Task
from codex_orch.state import now_iso
from codex_orch.untrusted import clean_text

log = logging.getLogger(__name__)

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
        pending: str | None = None  # the prompt of a landing conflict found while taking the task up again
        if rec["result"] is not None:  # a crash came after a valid answer and before the commit
            last = rec["attempts"][-1]
            try:
                return self._finish(ws, rec["result"], last["n"], rec["thread_id"], thread_agent(rec["attempts"]), True)
            except SecretsFound as exc:
                return self._fail(FailureKind.SECRET, str(exc))
            except LandingConflict as exc:  # the landing a crash interrupted conflicts now: back to its agent
                try:
                    pending = conflict_prompt(replay_conflict(ctx, task, ws, exc))
                except OrchError as err:
                    return self._fail(FailureKind.WORKSPACE, f"could not replay its change on the tip: {err}")

        n = len(rec["attempts"]) + 1
        thread = rec["thread_id"]
        choice = task_choice(ctx.config, task, ctx.run_agent)
        runs_on = self._agent(choice.name, choice.source, own=True)
        continued = None if rec["attempts"] else continued_thread(ctx, task)
        if rec["status"] in ("interrupted", "running") and rec["attempts"]:
            if thread:  # the thread goes on, on the agent (and model) that owns it
                last = rec["attempts"][-1]
                runs_on = AttemptAgent(thread_agent(rec["attempts"]), last.get("model"), "thread")
            prompt = interrupted_prompt(ctx, ws.worktree) if thread else restart_prompt(ctx, task, ws.worktree)
        elif continued is not None:  # a follow-up (the job service's `continue`) on another task's thread
            thread, earlier = continued
            runs_on = AttemptAgent(thread_agent(earlier), earlier[-1].get("model"), "thread")
            prompt = follow_up_prompt(task)
        else:
            thread = None
            prompt = render_task_prompt(ctx, task, ws.worktree)
        if pending is not None and rec["thread_id"]:
            thread, prompt = rec["thread_id"], pending
            runs_on = AttemptAgent(thread_agent(rec["attempts"]), rec["attempts"][-1].get("model"), "thread")
        tried = [runs_on.agent]
        answer_retries = transient_retries = conflict_rounds = 0
        totals = (
            _thread_totals(rec["attempts"] or (continued[1] if continued else []), thread)
            if thread
            else (Usage(), None)
        )
        while True:
            result, verdict = self._attempt(ws, n, prompt, thread, totals, runs_on)
            if result.failure is None and verdict is not None and verdict.ok:
                store.record("task.result", task=task.id, result=verdict.value)
                try:
                    return self._finish(ws, verdict.value, n, result.thread_id, runs_on.agent)
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
                    totals = _totals_after(result, thread, totals)
                    thread, prompt, n = result.thread_id, conflict_prompt(files), n + 1
                    continue
            kind = result.failure or (verdict.failure if verdict else None) or FailureKind.CRASHED
            message = result.failure_message or "; ".join(verdict.errors[:3] if verdict else ())
            if kind == FailureKind.INTERRUPTED:
                store.record(
                    "task.status", task=task.id, status="interrupted", error={"kind": str(kind), "message": message}
                )
                return "interrupted"
            if result.thread_id:
                totals = _totals_after(result, thread, totals)
                thread = result.thread_id
            fallback = next_fallback(ctx.config, kind, tried)
            policy = info(kind).retry
            if fallback is not None:  # the provider failed: another agent takes the work over
                prompt = fallback_prompt(ctx, task, ws.worktree, runs_on.agent, result)
                runs_on = self._agent(fallback, "fallback", own=False, fallback_from=runs_on.agent)
                tried.append(fallback)
                thread, totals = None, (Usage(), None)
            elif policy == Retry.ANSWER and thread and answer_retries < ctx.config.limits.retries:
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

    def _agent(self, name: str, source: str, own: bool, fallback_from: str | None = None) -> AttemptAgent:
        default = self.ctx.config.agents.backend(name).model
        return AttemptAgent(name, model_for(self.ctx.config, self.task, name, own, default), source, fallback_from)

    def _attempt(
        self,
        ws: Workspace,
        n: int,
        prompt: str,
        thread: str | None,
        totals: tuple[Usage, float | None],
        runs_on: AttemptAgent,
    ) -> tuple[AgentResult, Verdict | None]:
        ctx, task, role = self.ctx, self.task, self.role
        folder = attempt_dir(ctx, task.id, n)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prompt.md").write_text(ctx.redactor.text(prompt), "utf-8")
        ctx.store.record("attempt.started", task=task.id, n=n, resume_thread=thread, **runs_on.record())
        ctx.notify("attempt", task.id, {"n": n, "thread": thread, "agent": runs_on.agent, "model": runs_on.model})
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

        try:
            setup = ctx.agent_setup(runs_on.agent)
            backend = get_backend(runs_on.agent)
        except OrchError as exc:  # its CLI is not installed: a follow-up task's agent was never checked
            result = _not_started(str(exc))
        else:
            request = AttemptRequest(
                prompt=prompt,
                workdir=ws.worktree,
                attempt_dir=folder,
                sandbox=role.sandbox,
                output_schema=self.schema_path,
                env=setup.env,
                timeout=task.timeout or role.timeout or ctx.config.limits.timeout,
                idle_timeout=role.idle_timeout or ctx.config.limits.idle_timeout,
                stop_grace=ctx.config.limits.stop_grace,
                model=runs_on.model,
                profile=role.profile if runs_on.agent == "codex" else None,
                resume_thread=thread,
                command=setup.command,
                extra_args=setup.extra_args,
                redactor=ctx.redactor,
                max_turns=setup.max_turns,
                max_reconnects=ctx.config.limits.max_reconnects,
            )
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
        usage, cost = _attempt_share(result, thread, totals)
        thread_usage, thread_cost = _totals_after(result, thread, totals)
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
            thread_usage=thread_usage.to_json(),
            cost_usd=cost,
            thread_cost_usd=thread_cost,
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

    def _finish(
        self, ws: Workspace, value: Any, n: int, thread: str | None, agent: str, recovering: bool = False
    ) -> str:
        return finish_task(self.ctx, self.task, ws, value, n, thread, agent, recovering)

    def _fail(self, kind: FailureKind, message: str) -> str:
        return record_failure(self.ctx, self.task.id, kind, message)


def _thread_totals(attempts: list[dict[str, Any]], thread: str) -> tuple[Usage, float | None]:
    """What the thread had used, as its last attempt recorded it."""
    for attempt in reversed(attempts):
        if attempt.get("thread_id") == thread and attempt.get("thread_usage"):
            return Usage.from_json(attempt["thread_usage"]), attempt.get("thread_cost_usd")
    return Usage(), None


def _totals_after(
    result: AgentResult, thread: str | None, totals: tuple[Usage, float | None]
) -> tuple[Usage, float | None]:
    """The thread's usage and cost after this attempt. codex reports usage over the whole thread, claude
    and gemini over the attempt only; claude's cost is over the whole session."""
    same = thread is not None and result.thread_id == thread
    usage = totals[0] + result.usage if same and not result.usage_cumulative else result.usage
    return usage, result.cost_usd


def _attempt_share(
    result: AgentResult, thread: str | None, totals: tuple[Usage, float | None]
) -> tuple[Usage, float | None]:
    """This attempt's own usage and cost."""
    same = thread is not None and result.thread_id == thread
    usage = result.usage - totals[0] if same and result.usage_cumulative else result.usage
    cost = result.cost_usd
    if cost is not None and same and totals[1] is not None:
        cost = round(max(0.0, cost - totals[1]), 9)
    return usage, cost


def _not_started(message: str) -> AgentResult:
    return AgentResult(None, None, Usage(), FailureKind.SPAWN_FAILED, message, None, None, 0.0, 0.0)


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
