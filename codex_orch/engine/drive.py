"""Driving a run: its context, the scheduler around the task executor, services, Ctrl-C, SIGTERM and
SIGHUP, the run's final status, follow-up tasks joining while it runs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from codex_orch.config import Config
from codex_orch.engine.agent_env import agent_env, redactor_for
from codex_orch.engine.context import Notify, RunContext
from codex_orch.engine.executor import run_task
from codex_orch.engine.scheduler import ConcurrencyRules, Scheduler
from codex_orch.engine.services import services_running
from codex_orch.git.repo import Git, auto_maintenance
from codex_orch.git.workspace import Workspaces
from codex_orch.interrupts import STOP_SIGNALS, signal_name, silence_lost_terminal
from codex_orch.layout import Layout
from codex_orch.plan import Plan, Task, plan_answer_checks
from codex_orch.state import RunStore


def run_context(
    layout: Layout,
    config: Config,
    plan: Plan,
    spec: str | None,
    store: RunStore,
    git: Git,
    command: tuple[str, ...],
    home: Path | None,
    notify: Notify,
    options: RunOptions,
) -> RunContext:
    return RunContext(
        layout=layout,
        config=config,
        run_id=store.get("run_id"),
        plan=plan,
        spec=spec,
        store=store,
        git=git,
        workspaces=Workspaces(git, Workspaces.identity_for(git)),
        agent_env=agent_env(config, home),
        command=command,
        notify=notify,
        redactor=redactor_for(config),
        fail_fast=options.fail_fast,
        cancel=threading.Event(),
        answer_checks=plan_answer_checks(config),
    )


@contextmanager
def _stop_on_signals(cancel: threading.Event, stopped_by: list[str]) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP stop the run in order: no new task starts, running agents are stopped
    (INT -> TERM -> KILL) with everything they started, their tasks are recorded interrupted, services
    are stopped, and the state is written. `stopped_by` gets the signal's name."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            silence_lost_terminal()
        if not stopped_by:
            stopped_by.append(signal_name(signum))
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def drive(ctx: RunContext, options: RunOptions) -> RunOutcome:
    store = ctx.store
    state = store.view()
    statuses = {tid: ("succeeded" if t["status"] == "succeeded" else "pending") for tid, t in state["tasks"].items()}
    if state["single_workspace"]:
        ready = bool(state.get("workspace_ready"))
        try:
            ctx.workspaces.ensure(Path(state["worktree"]), state["branch"], state["base_commit"], ready=ready)
        except BaseException:  # the run cannot start: say so in its state, then let the error speak
            store.record("run.status", status="failed")
            store.close()
            raise
        if not ready:
            store.record("run.workspace_ready")
    rules = ConcurrencyRules(state["single_workspace"], ctx.config.concurrency_allow, ctx.config.concurrency_ignore)

    def on_blocked(task: Task, cause: str) -> None:
        store.record(
            "task.status",
            task=task.id,
            status="blocked",
            error={"kind": "blocked", "message": f"waits for {cause}, which did not succeed"},
        )
        ctx.notify("finished", task.id, {"status": "blocked", "cause": cause})

    follow = ctx.config.follow_next_tasks if options.follow_next_tasks is None else options.follow_next_tasks
    scheduler = Scheduler(
        ctx.plan.tasks,
        statuses,
        lambda task: run_task(ctx, task),
        on_blocked,
        rules,
        options.max_workers or ctx.config.limits.max_workers,
        ctx.cancel,
        options.fail_fast,
        (lambda task: _follow_ups(ctx, task)) if follow else None,
    )
    ctx.notify(
        "plan", None, {"tasks": {tid: {"role": t["role"], "status": t["status"]} for tid, t in state["tasks"].items()}}
    )
    stopped_by: list[str] = []
    try:
        with _stop_on_signals(ctx.cancel, stopped_by), services_running(ctx):
            scheduler.run()
    except KeyboardInterrupt:
        stopped_by.append("SIGINT")
    finally:
        if ctx.cancel.is_set() and not stopped_by:  # --fail-fast
            for tid, task in store.view()["tasks"].items():
                if task["status"] == "pending":
                    store.record(
                        "task.status",
                        task=tid,
                        status="cancelled",
                        error={"kind": "cancelled", "message": "not started: --fail-fast stopped the run"},
                    )
        final = store.view()["tasks"]
        values = [t["status"] for t in final.values()]
        if stopped_by:
            status = "interrupted"
        elif all(v == "succeeded" for v in values):
            status = "succeeded"
        elif any(v == "succeeded" for v in values):
            status = "partial"
        else:
            status = "failed"
        store.record("run.status", status=status, **({"signal": stopped_by[0]} if stopped_by else {}))
        store.close()
    if status != "interrupted" and any(t.get("commit") for t in final.values()):
        auto_maintenance(ctx.git)  # git's upkeep after commits, once for all of them
    return RunOutcome(ctx.run_id, status, ctx.run_dir, {tid: t["status"] for tid, t in final.items()})


def _follow_ups(ctx: RunContext, task: Task) -> list[Task]:
    """The next_tasks a succeeded task proposed, as new tasks that wait for it, up to limits.max_tasks."""
    store = ctx.store
    proposals = (store.task(task.id).get("result") or {}).get("next_tasks") or []
    if not proposals:
        return []
    total = len(store.get("task_order"))
    added: list[Task] = []
    notes: list[dict[str, str]] = []
    for index, proposal in enumerate(proposals, start=1):
        task_id = f"{task.id}.{index}"
        role = ctx.config.resolve_role(str(proposal.get("role", "")))
        if total >= ctx.config.limits.max_tasks:
            notes.append({"id": task_id, "skipped": f"limits.max_tasks ({ctx.config.limits.max_tasks}) reached"})
            continue
        if role is None:
            notes.append({"id": task_id, "skipped": f"unknown role {proposal.get('role')!r}"})
            continue
        if task_id in store.get("tasks"):
            continue  # added before a crash: the scheduler already knows it from the state
        new = Task(
            id=task_id,
            role=role,
            prompt=str(proposal.get("prompt", "")),
            acceptance=str(proposal.get("acceptance", "")),
            blocked_by=(task.id,),
            written_role=str(proposal.get("role")),
        )
        store.record("task.added", task=new.to_json(), proposed_by=task.id)
        notes.append({"id": task_id, "added": new.role})
        added.append(new)
        total += 1
    store.record("task.follow_ups", task=task.id, follow_ups=notes)
    for new in added:
        ctx.notify("plan", None, {"tasks": {new.id: {"role": new.role, "status": "pending"}}})
    return added


@dataclass(frozen=True)
class RunOptions:
    run_id: str | None = None
    max_workers: int | None = None
    fail_fast: bool = False
    follow_next_tasks: bool | None = None  # None: the config's follow_next_tasks


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    run_dir: Path
    tasks: dict[str, str]

    @property
    def exit_code(self) -> int:
        from codex_orch.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_TASKS_FAILED

        if self.status == "interrupted":
            return EXIT_INTERRUPTED
        return EXIT_OK if self.status == "succeeded" else EXIT_TASKS_FAILED
