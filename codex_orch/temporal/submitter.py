"""`executor: temporal` on the submitting machine: the run becomes a workflow (workflow.py) on the
workers' task queue, and this process serves the workflow's two activities on a queue of its own:
`task_started` (record the task running; the worker's input, redacted) and `land` (record the
worker's attempts and answer, land its commit on the run branch, push the new tip). state.json and
the journal stay the record `status`, `report` and the dashboard read.

Ctrl-C, SIGTERM and SIGHUP cancel the workflow: workers stop their agents and push their work in
progress; the run is recorded interrupted. A submitter that dies leaves the workflow running:
`resume --run-id` attaches to it again (its `land` activities were waiting on this queue), and
`codex-orch cancel` cancels it (`cancel` here).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker

from codex_orch.config import Config
from codex_orch.engine.context import RunContext
from codex_orch.engine.drive import (
    RunOptions,
    RunOutcome,
    _stop_on_signals,
    budget_left_work,
    follow_ups,
    run_status,
)
from codex_orch.engine.finish import record_failure
from codex_orch.engine.landing import LandingConflict, land_task
from codex_orch.engine.secret_scan import SecretsFound
from codex_orch.engine.task_prompts import dependency_context
from codex_orch.errors import InputError, OrchError
from codex_orch.failures import FailureKind
from codex_orch.git.messages import commit_message, decisions_entry
from codex_orch.git.remote import SerialPush, fetch_ref, push_ref, remote_url
from codex_orch.git.repo import auto_maintenance
from codex_orch.git.workspace import DECISIONS_FILE
from codex_orch.plan import Task
from codex_orch.state import now_iso
from codex_orch.temporal.payloads import (
    LAND,
    TASK_STARTED,
    WORKFLOW_NAME,
    LandArgs,
    Landed,
    RunInput,
    StartArgs,
    TaskInput,
    TaskOutcome,
    task_ref,
    tip_ref,
    workflow_id,
)
from codex_orch.temporal.payloads import submit_queue as submit_queue_for

DEFAULTS: dict[str, Any] = {
    "address": "127.0.0.1:7233",
    "namespace": "default",
    "task_queue": "codex-orch",
    "remote": "origin",
    "heartbeat_timeout": 60.0,
    "max_attempts": 3,
}
_STARTED_KEYS = ("n", "started_at", "ended_at", "resumed_thread", "kind", "pid", "agent", "model")
_CANCEL_WAIT = 120.0  # seconds a cancelled workflow gets to stop its agents


def check(config: Config, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings with their defaults, checked before the run writes anything."""
    merged = {**DEFAULTS, **settings}
    if not str(merged["address"]).strip() or not str(merged["task_queue"]).strip():
        raise InputError("--temporal-address and --task-queue must not be empty")
    _reachable(str(merged["address"]))
    return merged


def _reachable(address: str) -> None:
    """Refuse before anything is written when nothing listens at the server's address."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise OrchError(
            f"cannot reach the Temporal server at {address}: {getattr(exc, 'strerror', None) or exc}",
            "Start one (`temporal server start-dev`, docs/scale-out.md) or fix --temporal-address / temporal.address.",
        ) from None


class SubmitterActivities:
    """The two activities only the submitter can run: it holds the run's record and its run branch."""

    def __init__(self, ctx: RunContext, url: str, follow: bool) -> None:
        self.ctx, self.url, self.follow = ctx, url, follow
        self.by_id = {t.id: t for t in ctx.plan.tasks}
        self._land = threading.Lock()
        self._tip = SerialPush(ctx.git, url, tip_ref(ctx.run_id))  # parallel landings push it in turn

    @activity.defn(name=TASK_STARTED)
    def task_started(self, args: StartArgs) -> TaskInput:
        ctx, task = self.ctx, self.by_id[args.task_id]
        ctx.store.record("task.workspace", task=task.id, branch=None, worktree=None, base_commit=args.base)
        ctx.store.record("task.status", task=task.id, status="running")
        ctx.notify("started", task.id, {"role": task.role})
        redact = ctx.redactor
        return TaskInput(
            run_id=ctx.run_id,
            task=redact.value(task.to_json()),
            goal=redact.text(ctx.plan.goal),
            assumptions=[redact.text(a) for a in ctx.plan.assumptions],
            spec=redact.text(ctx.spec) if ctx.spec is not None else None,
            dependencies=redact.value(dependency_context(ctx, task)),
            base=args.base,
            remote=self.url,
            run_agent=ctx.run_agent,
        )

    @activity.defn(name=LAND)
    def land(self, args: LandArgs) -> Landed:
        ctx, task, out = self.ctx, self.by_id[args.task_id], args.outcome
        branch = str(ctx.store.get("branch"))
        # outside the lock: only the landing itself is serialized (the submitter's throughput is the
        # run's: every task lands here)
        fetched = fetch_ref(ctx.git, self.url, task_ref(ctx.run_id, task.id)) if out.commit else None
        status = self._land_locked(task, out, fetched, branch)
        if fetched:  # the task's own commit stays on the remote; here only what landed is kept
            ctx.git.run_full("update-ref", "-d", task_ref(ctx.run_id, task.id))
        spent = ctx.spend.run_stop() if ctx.spend is not None else None
        tip = self._tip.push(lambda: ctx.workspaces.tip(branch))  # for the workers to fetch
        return Landed(status, tip, spent, self._follow_ups(task) if status == "succeeded" and self.follow else [])

    def _follow_ups(self, task: Task) -> list[dict[str, Any]]:
        """The tasks this one's agent proposed (next_tasks), added to the run as in a local run: all of
        them, also those added by a landing of it cut short before (the workflow takes each once)."""
        with self._land:  # one landing's follow-ups at a time: limits.max_tasks counts them all
            follow_ups(self.ctx, task)
            notes = self.ctx.store.task(task.id).get("follow_ups") or []
            added = [Task.from_json(self.ctx.store.task(n["id"])["spec"]) for n in notes if "added" in n]
        self.by_id.update({t.id: t for t in added})
        return [t.to_json() for t in added]

    def _land_locked(self, task: Any, out: Any, fetched: str | None, branch: str) -> str:
        ctx = self.ctx
        with self._land:
            rec = ctx.store.task(task.id)
            if rec["status"] == "succeeded":  # this activity ran before and its answer was lost
                return "succeeded"
            self._record_attempts(task.id, len(rec["attempts"]), out.worker, out.attempts)
            if out.status == "interrupted":
                ctx.store.record("task.status", task=task.id, status="interrupted", error=out.error)
                return "interrupted"
            error = out.error or {"kind": "internal", "message": "the worker gave no result"}
            # a task whose agent reported failure has its commit landed all the same, as in a local run
            if out.status != "succeeded" and error.get("kind") != FailureKind.AGENT_REPORTED:
                return record_failure(ctx, task.id, _kind(error.get("kind")), str(error.get("message", "")))
            if out.commit and fetched != out.commit:
                return record_failure(
                    ctx, task.id, FailureKind.WORKSPACE, f"commit {out.commit[:12]} is not on {self.url}"
                )
            reported = None if out.status == "succeeded" else str(error.get("message", ""))
            return self._land_answer(task, out, rec, reported)

    def _record_attempts(self, task_id: str, before: int, worker: str, attempts: list[dict[str, Any]]) -> None:
        store = self.ctx.store
        for i, attempt in enumerate(attempts, start=before + 1):
            started = {k: attempt.get(k) for k in ("agent", "model", "agent_source", "fallback_from")}
            store.record(
                "attempt.started",
                task=task_id,
                n=i,
                resume_thread=attempt.get("resumed_thread"),
                worker=worker,
                **started,
            )
            if attempt.get("thread_id"):
                store.record("attempt.thread", task=task_id, thread_id=attempt["thread_id"])
            finished = {k: v for k, v in attempt.items() if k not in _STARTED_KEYS and k not in started}
            store.record("attempt.finished", task=task_id, worker=worker, **finished)

    def _land_answer(self, task: Any, out: TaskOutcome, rec: Any, reported: str | None) -> str:
        """Land the task's commit; `reported`: the agent said it failed (its work lands all the same, and
        the task is recorded failed, never succeeded first)."""
        ctx = self.ctx
        value, commit, files, attempts = out.result, out.commit, out.files_changed, out.attempts
        ctx.store.record("task.result", task=task.id, result=value)
        base = rec["base_commit"]
        if commit:
            message = ctx.git.run("log", "-1", "--format=%B", commit, strip=False)
        else:
            last = attempts[-1] if attempts else {}
            summary = str(value.get("summary", "")) if isinstance(value, dict) else ""
            message = ctx.redactor.text(
                commit_message(
                    ctx.run_id,
                    {"id": task.id, "role": task.role},
                    len(attempts),
                    last.get("thread_id"),
                    summary,
                    agent=last.get("agent") or "codex",
                )
            )
        decisions = value.get("decisions") if isinstance(value, dict) else None
        entry = None
        if isinstance(decisions, list) and decisions and all(isinstance(d, dict) for d in decisions):
            entry = ctx.redactor.text(decisions_entry(ctx.run_id, task.id, task.role, decisions, now_iso()[:10]))
        try:
            if entry and ctx.secret_scanner is not None:
                ctx.secret_scanner.check_text(DECISIONS_FILE, entry)
            ctx.store.record("task.committed", task=task.id, commit=commit, head=commit or base, files_changed=files)
            landed = land_task(ctx, task, commit, message, entry)
        except SecretsFound as exc:
            return record_failure(ctx, task.id, FailureKind.SECRET, str(exc))
        except LandingConflict as exc:
            message = "its change conflicts with tasks that landed meanwhile: " + ", ".join(exc.files[:10])
            return record_failure(ctx, task.id, FailureKind.CONFLICT, message)
        except OrchError as exc:
            return record_failure(ctx, task.id, FailureKind.WORKSPACE, f"landing failed: {exc}")
        if reported is not None:
            return record_failure(ctx, task.id, FailureKind.AGENT_REPORTED, reported)
        ctx.store.record("task.status", task=task.id, status="succeeded")
        ctx.notify("finished", task.id, {"status": "succeeded", "commit": landed})
        return "succeeded"


def _kind(name: Any) -> FailureKind:
    try:
        return FailureKind(str(name))
    except ValueError:  # a worker of another version
        return FailureKind.INTERNAL


def execute(ctx: RunContext, options: RunOptions, settings: Mapping[str, Any]) -> RunOutcome:
    store = ctx.store
    state = store.view()
    if not state.get("workspace_ready"):
        ctx.workspaces.ensure_branch(state["branch"], state["base_commit"])
        store.record("run.workspace_ready")
    url = remote_url(ctx.git, str(settings["remote"]))
    push_ref(ctx.git, url, ctx.workspaces.tip(state["branch"]), tip_ref(ctx.run_id))
    ctx.notify(
        "plan", None, {"tasks": {tid: {"role": t["role"], "status": t["status"]} for tid, t in state["tasks"].items()}}
    )
    stopped_by: list[str] = []
    try:
        with _stop_on_signals(ctx.cancel, stopped_by):
            statuses = asyncio.run(_run(ctx, options, settings, url))
    except KeyboardInterrupt:
        stopped_by.append("SIGINT")
        statuses = None
    return _finish(ctx, statuses, stopped_by)


async def _connect(settings: Mapping[str, Any]) -> Client:
    try:
        return await Client.connect(str(settings["address"]), namespace=str(settings["namespace"]))
    except RuntimeError as exc:
        raise OrchError(
            f"cannot reach the Temporal server at {settings['address']}: {exc}",
            "Start one (`temporal server start-dev`, docs/scale-out.md) or fix --temporal-address.",
        ) from None


def cancel(run_id: str, settings: Mapping[str, Any]) -> bool:
    """`codex-orch cancel` of a run whose submitter is gone: cancel its workflow if it runs, and wait
    until it has closed (its workers stopped their agents and pushed their work in progress)."""
    return asyncio.run(_cancel(run_id, settings))


async def _cancel(run_id: str, settings: Mapping[str, Any]) -> bool:
    handle = (await _connect(settings)).get_workflow_handle(workflow_id(run_id))
    try:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return False
    except RPCError:  # no such workflow (the server's history is gone)
        return False
    await handle.cancel()
    try:
        await asyncio.wait_for(handle.result(), _CANCEL_WAIT)
    except (WorkflowFailureError, TimeoutError):  # cancelled, as asked; or still closing
        pass
    return True


async def _run(ctx: RunContext, options: RunOptions, settings: Mapping[str, Any], url: str) -> dict[str, str] | None:
    """The workflow's statuses when it completed; None when it was cancelled."""
    client = await _connect(settings)
    queue = submit_queue_for(str(settings["task_queue"]), ctx.run_id)
    handle = await _attach_or_start(client, ctx, options, settings, queue)
    threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="submitter")
    follow = ctx.config.follow_next_tasks if options.follow_next_tasks is None else options.follow_next_tasks
    activities = SubmitterActivities(ctx, url, follow)
    worker = Worker(
        client,
        task_queue=queue,
        activities=[activities.task_started, activities.land],
        activity_executor=threads,
        max_concurrent_activities=8,
    )
    async with worker:
        result = asyncio.ensure_future(handle.result())
        while not result.done():
            await asyncio.wait([result], timeout=0.2)
            if ctx.cancel.is_set() and not result.done():
                await handle.cancel()
                await asyncio.wait([result], timeout=_CANCEL_WAIT)
                break
        if not result.done():
            result.cancel()
            return None
        try:
            return dict(result.result())
        except WorkflowFailureError:
            if ctx.cancel.is_set():
                return None
            raise


async def _attach_or_start(
    client: Client, ctx: RunContext, options: RunOptions, settings: Mapping[str, Any], queue: str
) -> WorkflowHandle[Any, Any]:
    """The run's workflow: the running one (a submitter that died and was resumed attaches to it), or a
    new one over what is not done yet."""
    wid = workflow_id(ctx.run_id)
    handle = client.get_workflow_handle(wid)
    try:
        described = await handle.describe()
    except RPCError:
        described = None
    if described is not None and described.status == WorkflowExecutionStatus.RUNNING:
        running = await handle.query("statuses_now")
        for tid, status in running.items():
            if status == "running" and ctx.store.task(tid)["status"] != "running":
                ctx.store.record("task.status", task=tid, status="running")
        return handle
    state = ctx.store.view()
    inp = RunInput(
        run_id=ctx.run_id,
        tasks=[t.to_json() for t in ctx.plan.tasks],
        done=[tid for tid, t in state["tasks"].items() if t["status"] == "succeeded"],
        tip=ctx.workspaces.tip(state["branch"]),
        max_workers=options.max_workers or int(state.get("max_workers") or ctx.config.limits.max_workers),
        task_queue=str(settings["task_queue"]),
        submit_queue=queue,
        allow=list(ctx.config.concurrency_allow),
        ignore=list(ctx.config.concurrency_ignore),
        heartbeat_timeout=float(settings["heartbeat_timeout"]),
        task_timeout=float(ctx.config.limits.timeout)
        * (ctx.config.limits.retries + ctx.config.limits.transient_retries + 2),
        max_attempts=int(settings["max_attempts"]),
        fail_fast=options.fail_fast,
        spent=ctx.spend.run_stop() if ctx.spend is not None else None,
        budgeted=ctx.spend is not None and ctx.spend.run_cost is not None and ctx.config.budgets.mode == "block",
    )
    return await client.start_workflow(WORKFLOW_NAME, inp, id=wid, task_queue=str(settings["task_queue"]))


def _finish(ctx: RunContext, statuses: dict[str, str] | None, stopped_by: list[str]) -> RunOutcome:
    store = ctx.store
    why = "--fail-fast stopped the run" if statuses is not None else "the run was cancelled"
    for tid, task in store.view()["tasks"].items():
        if task["status"] == "running":  # cancelled with the workflow (or by --fail-fast): its worker stopped it
            store.record("task.status", task=tid, status="interrupted", error={"kind": "interrupted", "message": why})
        elif statuses and statuses.get(tid) == "cancelled" and task["status"] != "cancelled":
            error = {"kind": "cancelled", "message": f"not started: {why}"}
            store.record("task.status", task=tid, status="cancelled", error=error)
        elif statuses and statuses.get(tid) == "blocked" and task["status"] != "blocked":
            cause = next((d for d in ctx.plan.tasks if d.id == tid), None)
            dep = next((d for d in (cause.blocked_by if cause else ()) if statuses.get(d) != "succeeded"), "?")
            store.record(
                "task.status",
                task=tid,
                status="blocked",
                error={"kind": "blocked", "message": f"waits for {dep}, which did not succeed"},
            )
            ctx.notify("finished", tid, {"status": "blocked", "cause": dep})
    final = store.view()["tasks"]
    budget_left = ctx.spend is not None and ctx.spend.tripped and budget_left_work(final)
    values = [t["status"] for t in final.values()]
    status = "interrupted" if statuses is None else run_status(values, stopped_by, budget_left)
    store.record("run.status", status=status, **({"signal": stopped_by[0]} if stopped_by else {}))
    store.close()
    if status != "interrupted" and any(t.get("commit") for t in final.values()):
        auto_maintenance(ctx.git)
    return RunOutcome(ctx.run_id, status, ctx.run_dir, {tid: t["status"] for tid, t in final.items()})
