"""One task, start to finish: its workspace, its attempts, validation with retry, its commit.

A task's failure is its result, never the run's crash: every path ends in a recorded status. Even an
unexpected exception inside this module becomes the task's failure (kind `internal`), so that its
siblings and dependants go on as after any other failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codex_orch.agents import AttemptRequest, Usage, get_backend
from codex_orch.agents.base import AgentResult, Progress, StopEither
from codex_orch.engine.accounting import attempt_share, thread_after, thread_totals, totals_after
from codex_orch.engine.agent_choice import AttemptAgent, model_for, next_fallback, task_choice, thread_agent
from codex_orch.engine.context import RunContext
from codex_orch.engine.finish import MESSAGE_CHARS, finish_task, internal_failure, record_failure
from codex_orch.engine.gates import check_gates, fix_prompt, gate_failure
from codex_orch.engine.guardrails import after_attempt, guardrail_prompt
from codex_orch.engine.landing import LandingConflict, conflict_prompt, replay_conflict
from codex_orch.engine.secret_scan import SecretsFound
from codex_orch.engine.setup import SetupFailed, prepare_worktree
from codex_orch.engine.slots import unlimited
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
from codex_orch.engine.workspaces import task_worktree
from codex_orch.errors import OrchError
from codex_orch.failures import FailureKind, Retry, info
from codex_orch.git.workspace import Workspace
from codex_orch.plan import Task
from codex_orch.prices import attempt_cost
from codex_orch.untrusted import clean_text

log = logging.getLogger(__name__)


def attempt_dir(ctx: RunContext, task_id: str, n: int) -> Path:
    return ctx.run_dir / "tasks" / task_id / f"attempt-{n}"


@dataclass(frozen=True)
class _Next:
    """The task ended (its status), or the prompt its agent goes on with."""

    ended: str | None
    prompt: str = ""


def _failure_of(result: AgentResult, verdict: Verdict | None) -> tuple[FailureKind, str]:
    """Why an attempt did not end the task: the agent's failure, else its answer's."""
    kind = result.failure or (verdict.failure if verdict else None) or FailureKind.CRASHED
    return kind, result.failure_message or "; ".join(verdict.errors[:3] if verdict else ())


class TaskRunner:
    def __init__(self, ctx: RunContext, task: Task) -> None:
        self.ctx = ctx
        self.task = task
        self.role = ctx.role(task.role)
        self.schema_path, self.schema = ctx.schema(self.role)
        self.answer_retries = self.transient_retries = 0  # retries on the same agent, by retry policy
        self.conflict_rounds = 0  # landing conflicts handed back to the agent
        self.earlier: list[dict[str, Any]] = []  # the attempts of the task whose thread a follow-up continues
        self.slot = ctx.agent_slots.slot() if ctx.agent_slots else unlimited()  # engine/slots.py

    def run(self) -> str:
        try:
            status = self._run()
        finally:
            self.slot.give_back()
        if status == "succeeded" and self.ctx.mode == "landing":
            self._retire()
        return status

    def _retire(self) -> None:
        """A landed task's worktree is removed: its work is on the run branch (and its own branch)."""
        worktree = self.ctx.store.task(self.task.id)["worktree"]
        try:
            self.ctx.workspaces.retire(Path(worktree))
        except OrchError as exc:  # it stays for `clean`; the task's work is safe either way
            self.ctx.notify("warning", self.task.id, {"message": f"{self.task.id}: its worktree stays: {exc}"})

    def _run(self) -> str:
        ctx, task = self.ctx, self.task
        store = ctx.store
        ws = self._prepare()
        if isinstance(ws, str):
            return ws
        rec = store.task(task.id)
        store.record("task.status", task=task.id, status="running")
        ctx.notify("started", task.id, {"role": task.role})
        first = self._take_up(ws, rec)
        if isinstance(first, str):
            return first
        thread, prompt, runs_on = first
        n = len(rec["attempts"]) + 1
        tried = [runs_on.agent]
        totals = thread_totals(rec["attempts"] or self.earlier, thread)
        self.fix_rounds = int(rec.get("fix_rounds") or 0)  # failing gates handed back to the agent so far
        while True:
            result, verdict = self._attempt(ws, n, prompt, thread, totals, runs_on)
            if result.failure is None and verdict is not None and verdict.ok:
                step = self._after_valid(ws, n, result, verdict, runs_on.agent)
                if isinstance(step, Verdict):  # its commit was refused: failed like an invalid answer
                    verdict = step
                elif step.ended is not None:
                    return step.ended
                else:  # a failing gate or a landing conflict: back to the same thread
                    thread, totals = thread_after(result, thread, totals)
                    prompt, n = step.prompt, n + 1
                    continue
            kind, message = _failure_of(result, verdict)
            if kind == FailureKind.INTERRUPTED:
                return self._interrupted(message)
            thread, totals = thread_after(result, thread, totals)
            fallback = next_fallback(ctx.config, kind, tried)
            if fallback is not None:  # the provider failed: another agent takes the work over
                prompt = fallback_prompt(ctx, task, ws.worktree, runs_on.agent, result)
                runs_on = self._agent(fallback, "fallback", own=False, fallback_from=runs_on.agent)
                tried.append(fallback)
                thread, totals = None, (Usage(), None)
            else:
                retry = self._retry(ws, kind, message, result, verdict, thread, runs_on.agent)
                if retry is None:
                    return self._fail(kind, message)
                prompt = retry
            if ctx.cancel.is_set():
                return self._interrupted("stopped before a retry")
            n += 1

    def _prepare(self) -> Workspace | str:
        """The task's worktree, set up (worktree.setup) before any agent is spent; or the task's end."""
        try:
            ws = task_worktree(self.ctx, self.task)
        except OrchError as exc:
            return self._fail(FailureKind.WORKSPACE, str(exc))
        if not self.slot.take():  # set-ups run the repository's code: counted like agents
            return self._interrupted("stopped before its worktree was set up")
        try:
            prepare_worktree(self.ctx, self.task.id, ws)
        except SetupFailed as exc:
            return self._fail(FailureKind.SETUP_FAILED, str(exc))
        return ws

    def _after_valid(self, ws: Workspace, n: int, result: AgentResult, verdict: Verdict, agent: str) -> _Next | Verdict:
        """A valid answer: its gates, then its commit (and landing). The task's end; or the prompt its
        agent goes on with (a failing gate, a landing conflict); or, when the commit was refused for the
        secrets it held, the verdict that fails it like an invalid answer."""
        gate = self._gates(ws, n, result, verdict)
        if gate is not None:
            return gate
        self.ctx.store.record("task.result", task=self.task.id, result=verdict.value)
        try:
            return _Next(self._finish(ws, verdict.value, n, result.thread_id, agent))
        except SecretsFound as exc:  # nothing was committed: the answer is retried like an invalid one
            failure = str(FailureKind.SECRET)
            self.ctx.store.record("task.commit_refused", task=self.task.id, failure=failure, message=str(exc))
            return Verdict(None, FailureKind.SECRET, tuple(str(f) for f in exc.findings))
        except LandingConflict as exc:  # back to the same agent, on the run branch's tip
            return self._conflict_round(ws, exc, result.thread_id)

    def _gates(self, ws: Workspace, n: int, result: AgentResult, verdict: Verdict) -> _Next | None:
        """The task's gates on a valid answer's work: None when they pass; else the failing gate's report
        for the same thread, up to limits.fix_rounds, or the task's end."""
        ctx, task = self.ctx, self.task
        gate = check_gates(ctx, task, ws, n, attempt_dir(ctx, task.id, n), verdict.value, self.slot)
        if gate is None:
            return None
        if ctx.cancel.is_set():
            return _Next(self._interrupted("stopped while its gates ran"))
        if self.fix_rounds >= ctx.config.limits.fix_rounds or not result.thread_id:
            return _Next(self._fail(FailureKind.GATE_FAILED, gate_failure(ctx, task, ws, gate)))
        self.fix_rounds += 1
        ctx.store.record("task.fix_round", task=task.id, round=self.fix_rounds, gate=gate.name, n=n + 1)
        return _Next(None, ctx.redactor.text(fix_prompt(gate)))

    def _retry(
        self,
        ws: Workspace,
        kind: FailureKind,
        message: str,
        result: AgentResult,
        verdict: Verdict | None,
        thread: str | None,
        agent: str,
    ) -> str | None:
        """The prompt of a retry on the same agent, while the failure's retry policy allows one more. A
        rate limit waits for the agent's quota first (no fallback agent was left): that retry is free."""
        limits, policy = self.ctx.config.limits, info(kind).retry
        quota = self.ctx.quota  # paused until the agent's quota is back (engine/quota.py)
        if kind == FailureKind.RATE_LIMITED and quota is not None and quota.wait(agent, self.task.id, message):
            return transient_prompt(result) if thread else render_task_prompt(self.ctx, self.task, ws.worktree)
        if policy == Retry.ANSWER and thread and self.answer_retries < limits.retries:
            self.answer_retries += 1
            if kind in (FailureKind.GUARDRAIL, FailureKind.HIDDEN_WORK):
                return guardrail_prompt(message)
            return retry_prompt(verdict or Verdict(None, kind, (message,)), self.schema_path.name)
        if policy == Retry.TRANSIENT and self.transient_retries < limits.transient_retries:
            self.transient_retries += 1
            return transient_prompt(result) if thread else render_task_prompt(self.ctx, self.task, ws.worktree)
        return None

    def _recover(self, ws: Workspace, rec: dict[str, Any]) -> _Next:
        """The answer a crash left before its commit, committed now: the task's end, or the prompt of
        the landing conflict it meets now (back to its agent)."""
        try:
            last = rec["attempts"][-1]
            return _Next(
                self._finish(ws, rec["result"], last["n"], rec["thread_id"], thread_agent(rec["attempts"]), True)
            )
        except SecretsFound as exc:
            return _Next(self._fail(FailureKind.SECRET, str(exc)))
        except LandingConflict as exc:  # the landing a crash interrupted conflicts now: back to its agent
            return self._replay(ws, exc)

    def _conflict_round(self, ws: Workspace, exc: LandingConflict, thread: str | None) -> _Next:
        """A landing conflict back to the agent's thread, up to limits.conflict_rounds; then a failure."""
        if self.conflict_rounds >= self.ctx.config.limits.conflict_rounds or not thread:
            return _Next(self._fail(FailureKind.CONFLICT, str(exc)))
        self.conflict_rounds += 1
        return self._replay(ws, exc)

    def _replay(self, ws: Workspace, exc: LandingConflict) -> _Next:
        try:
            return _Next(None, conflict_prompt(replay_conflict(self.ctx, self.task, ws, exc)))
        except OrchError as err:
            return _Next(self._fail(FailureKind.WORKSPACE, f"could not replay its change on the tip: {err}"))

    def _take_up(self, ws: Workspace, rec: dict[str, Any]) -> str | tuple[str | None, str, AttemptAgent]:
        """The thread, prompt and agent of this run's first attempt: a new task, one taken up after an
        interruption (its thread going on, on the agent that owns it), or a conflict to resolve; or the
        task's end, when the answer a crash left is committed now."""
        ctx, task = self.ctx, self.task
        pending: str | None = None  # the prompt of a landing conflict found while taking the task up again
        if rec["result"] is not None:  # a crash came after a valid answer and before the commit
            recovered = self._recover(ws, rec)
            if recovered.ended is not None:
                return recovered.ended
            pending = recovered.prompt
        thread = rec["thread_id"]
        choice = task_choice(ctx.config, task, ctx.run_agent)
        runs_on = self._agent(choice.name, choice.source, own=True)
        continued = None if rec["attempts"] else continued_thread(ctx, task)
        if rec["status"] in ("interrupted", "running") and rec["attempts"]:
            if thread:  # the thread goes on, on the agent (and model) that owns it
                runs_on = AttemptAgent(thread_agent(rec["attempts"]), rec["attempts"][-1].get("model"), "thread")
            prompt = interrupted_prompt(ctx, ws.worktree) if thread else restart_prompt(ctx, task, ws.worktree)
        elif continued is not None:  # a follow-up (the job service's `continue`) on another task's thread
            thread, self.earlier = continued
            runs_on = AttemptAgent(thread_agent(self.earlier), self.earlier[-1].get("model"), "thread")
            prompt = follow_up_prompt(task)
        else:
            thread = None
            prompt = render_task_prompt(ctx, task, ws.worktree)
        if pending is not None and rec["thread_id"]:
            thread, prompt = rec["thread_id"], pending
            runs_on = AttemptAgent(thread_agent(rec["attempts"]), rec["attempts"][-1].get("model"), "thread")
        return thread, prompt, runs_on

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

    def _finish(
        self, ws: Workspace, value: Any, n: int, thread: str | None, agent: str, recovering: bool = False
    ) -> str:
        return finish_task(self.ctx, self.task, ws, value, n, thread, agent, recovering)

    def _interrupted(self, message: str) -> str:
        error = {"kind": str(FailureKind.INTERRUPTED), "message": message}
        self.ctx.store.record("task.status", task=self.task.id, status="interrupted", error=error)
        return "interrupted"

    def _fail(self, kind: FailureKind, message: str) -> str:
        return record_failure(self.ctx, self.task.id, kind, message)


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
        return internal_failure(ctx, task.id, exc)
    finally:
        ctx.set_active(task.id, None, False)
