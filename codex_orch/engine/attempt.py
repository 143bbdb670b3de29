"""One attempt of a task: its agent started (within the run's agent slots and budgets), watched as it
streams (its thread, its usage against the task's budget, its commands shown live), then its answer
judged against the role's schema and everything about it recorded (`attempt.finished`) and written to
its folder (prompt.md, final.json, validation.txt). What follows an attempt (retry, gates, commit) is
executor.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codex_orch.agents import AttemptRequest, Usage, get_backend
from codex_orch.agents.base import AgentResult, Progress, StopEither
from codex_orch.config import RoleConfig
from codex_orch.engine.accounting import attempt_share, totals_after
from codex_orch.engine.agent_choice import AttemptAgent
from codex_orch.engine.context import RunContext
from codex_orch.engine.finish import MESSAGE_CHARS
from codex_orch.engine.guardrails import after_attempt
from codex_orch.engine.slots import Slot
from codex_orch.engine.validation import Verdict, checked, judge
from codex_orch.errors import OrchError
from codex_orch.failures import FailureKind
from codex_orch.git.workspace import Workspace
from codex_orch.plan import Task
from codex_orch.prices import attempt_cost
from codex_orch.untrusted import clean_text


def attempt_dir(ctx: RunContext, task_id: str, n: int) -> Path:
    return ctx.run_dir / "tasks" / task_id / f"attempt-{n}"


@dataclass(frozen=True)
class TaskAttempts:
    """What every attempt of one task shares: the run, the task, its role and answer schema, its slot."""

    ctx: RunContext
    task: Task
    role: RoleConfig
    schema: dict[str, Any]
    schema_path: Path
    slot: Slot

    def run(
        self,
        ws: Workspace,
        n: int,
        prompt: str,
        thread: str | None,
        totals: tuple[Usage, float | None],
        runs_on: AttemptAgent,
    ) -> tuple[AgentResult, Verdict | None]:
        ctx, task, role = self.ctx, self.task, self.role
        if not self.slot.take():  # the run was stopped while this task waited for an agent slot
            return replace(_not_started("stopped before its agent started"), failure=FailureKind.INTERRUPTED), None
        stop = ctx.spend.before_attempt(task.id) if ctx.spend else None
        if stop:  # budgets.mode block: a limit is reached, no attempt starts (the task fails as `budget`)
            return replace(_not_started(stop), failure=FailureKind.BUDGET), None
        folder = attempt_dir(ctx, task.id, n)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prompt.md").write_text(ctx.redactor.text(prompt), "utf-8")
        ctx.store.record("attempt.started", task=task.id, n=n, resume_thread=thread, **runs_on.record())
        ctx.notify("attempt", task.id, {"n": n, "thread": thread, "agent": runs_on.agent, "model": runs_on.model})
        seen_thread = [thread]
        halt = StopEither(ctx.cancel)  # set when a budget is crossed mid-attempt (budget.within_attempt)
        over: list[str] = []

        def on_progress(progress: Progress) -> None:
            if progress.so_far is not None and ctx.spend is not None and not over:
                over.extend(filter(None, [ctx.spend.within_attempt(task.id, progress.so_far)]))
                if over:
                    halt.set()
            if progress.thread_id and progress.thread_id != seen_thread[0]:
                seen_thread[0] = progress.thread_id
                ctx.store.record("attempt.thread", task=task.id, thread_id=progress.thread_id)
            ctx.notify(
                "progress",
                task.id,
                {
                    "action": ctx.redactor.text(progress.action),  # a command line the agent ran, shown live
                    "usage": usage.to_json() if (usage := progress.usage or progress.so_far) else None,
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
                cancel=halt,
                on_progress=on_progress,
                on_start=lambda pid: ctx.store.record("attempt.pid", task=task.id, pid=pid),
            )
        self.slot.give_back()  # its agent has ended: the checks, gates, commit and landing follow without it
        if over and result.failure is FailureKind.INTERRUPTED and not ctx.cancel.is_set():
            result = replace(result, failure=FailureKind.BUDGET, failure_message=f"stopped: {over[0]}")
        result, changes, hidden = after_attempt(ctx, task.id, ws, n, folder, result)
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
        usage, agent_cost = attempt_share(result, thread, totals)
        cost = attempt_cost(ctx.config.prices, runs_on.agent, runs_on.model, usage, agent_cost)
        thread_usage, thread_cost = totals_after(result, thread, totals)
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
            **cost.record(),
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


def _not_started(message: str) -> AgentResult:
    return AgentResult(None, None, Usage(), FailureKind.SPAWN_FAILED, message, None, None, 0.0, 0.0)
