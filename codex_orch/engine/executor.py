"""One task, start to finish: its workspace, its attempts, validation with retry, its commit.

A task's failure is its result, never the run's crash: every path ends in a recorded status. Even an
unexpected exception inside this module becomes the task's failure (kind `internal`), so that its
siblings and dependants go on as after any other failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_orch.agents import Usage
from codex_orch.agents.base import AgentResult
from codex_orch.engine.accounting import thread_after, thread_totals
from codex_orch.engine.agent_choice import AttemptAgent, model_for, next_fallback, task_choice, thread_agent
from codex_orch.engine.attempt import TaskAttempts, attempt_dir
from codex_orch.engine.context import RunContext
from codex_orch.engine.finish import finish_task, internal_failure, record_failure
from codex_orch.engine.gates import check_gates, fix_prompt, gate_failure
from codex_orch.engine.guardrails import guardrail_prompt
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
from codex_orch.engine.validation import Verdict, retry_prompt
from codex_orch.engine.workspaces import task_worktree
from codex_orch.errors import OrchError
from codex_orch.failures import FailureKind, Retry, info
from codex_orch.git.workspace import Workspace
from codex_orch.plan import Task

log = logging.getLogger(__name__)


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
        self.attempts = TaskAttempts(ctx, task, self.role, self.schema, self.schema_path, self.slot)

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
            result, verdict = self.attempts.run(ws, n, prompt, thread, totals, runs_on)
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
        if _answer_left_unfinished(rec):
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


# failures of codex-orch's own after a valid answer: the answer was not judged, so resume finishes it
_OUR_FAILURES = (FailureKind.INTERNAL, FailureKind.WORKSPACE)


def _answer_left_unfinished(rec: dict[str, Any]) -> bool:
    """A valid answer whose commit and landing were cut short: by a crash or a stop (the task running or
    interrupted), or by a failure of ours. An answer judged and failed (the agent's own report, paths, a
    gate, a conflict) is not finished again: resume runs such a task anew."""
    if rec["result"] is None:
        return False
    if rec["status"] in ("running", "interrupted"):
        return True
    return rec["status"] == "failed" and (rec.get("error") or {}).get("kind") in _OUR_FAILURES


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
