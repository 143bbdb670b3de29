"""Driving a run: its context, the scheduler around the task executor, services, Ctrl-C, SIGTERM and
SIGHUP, the run's final status, follow-up tasks joining while it runs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_orch.config import Config
from codex_orch.engine.agent_env import AgentSetups, agent_env, redactor_for
from codex_orch.engine.budget import Breaker, dispatch_hold
from codex_orch.engine.context import Notify, RunContext
from codex_orch.engine.executor import run_task
from codex_orch.engine.forecast import Forecast
from codex_orch.engine.quota import QuotaPauses
from codex_orch.engine.run_guard import last_guard, start_guard
from codex_orch.engine.scheduler import ConcurrencyRules, Scheduler
from codex_orch.engine.secret_scan import SecretScanner
from codex_orch.engine.services import services_running
from codex_orch.engine.slots import AgentSlots
from codex_orch.engine.workspaces import landing_branch_ready
from codex_orch.git.guard import Guard
from codex_orch.git.repo import Git, auto_maintenance, local_changes
from codex_orch.git.workspace import Workspaces
from codex_orch.interrupts import STOP_SIGNALS, signal_name, silence_lost_terminal
from codex_orch.layout import ORCH_DIR, Layout
from codex_orch.plan import Plan, Task
from codex_orch.plan_file import plan_answer_checks
from codex_orch.scaffold import GITIGNORE_LINES
from codex_orch.state import RunStore, workspace_mode
from codex_orch.untrusted import short


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
    redactor = redactor_for(config)

    def warn(message: str) -> None:
        notify("warning", None, {"message": message})

    codex_env = agent_env(config, home, layout.worktrees_dir)
    homes = store.get("agent_homes") or {}
    cancel = threading.Event()
    return RunContext(
        layout=layout,
        config=config,
        run_id=store.get("run_id"),
        plan=plan,
        spec=spec,
        store=store,
        git=git,
        workspaces=Workspaces(git, Workspaces.identity_for(git), _guard(git, config, store.get("run_id"))),
        agent_env=codex_env,
        command=command,
        run_agent=store.get("agent"),
        setups=AgentSetups(config, layout.root, homes, layout.worktrees_dir, codex_env),
        notify=notify,
        redactor=redactor,
        secret_scanner=SecretScanner(config, redactor),
        fail_fast=options.fail_fast,
        cancel=cancel,
        answer_checks=plan_answer_checks(config),
        spend=Breaker(store, config.budgets, warn),
        quota=QuotaPauses(store, config.limits.max_quota_wait, cancel, warn),
    )


def _guard(git: Git, config: Config, run_id: str) -> Guard:
    templates = (config.git.branch_template, config.git.shared_branch_template)
    prefixes = tuple(t.split("{", 1)[0] for t in templates)
    return Guard(git, run_id, all_refs=config.guard_all_refs, run_branch_prefixes=prefixes)


@contextmanager
def _stop_on_signals(cancel: threading.Event, stopped_by: list[str]) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP stop the run in order: no new task starts, running agents are stopped
    (INT -> TERM -> KILL) with everything they started, their tasks are recorded interrupted, services
    are stopped, and the state is written. `stopped_by` gets the signal's name."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
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


def only_our_gitignore_lines(git: Git) -> bool:
    """Is what is uncommitted in .gitignore only the lines codex-orch adds to it (scaffold.py)?"""
    code, diff, _ = git.run_full("diff", "--no-color", "--no-ext-diff", "-U0", "HEAD", "--", ".gitignore")
    if code != 0:
        return False
    if not diff and (git.cwd / ".gitignore").is_file() and not git.ok("ls-files", "--error-unmatch", ".gitignore"):
        diff = "".join(f"+{line}\n" for line in (git.cwd / ".gitignore").read_text("utf-8", "replace").splitlines())
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    return bool(added) and not removed and all(a in GITIGNORE_LINES or a.startswith("# codex-orch") for a in added)


def uncommitted_warning(git: Git, inputs: tuple[Path, ...], copied: Sequence[str] = ()) -> str | None:
    """A run starts from a commit (git.base_ref): what the checkout holds that the run will not see
    (untracked files `worktree.copy_files` copies into each worktree are seen)."""
    from fnmatch import fnmatchcase

    skip = set()
    for path in inputs:
        try:
            skip.add(str(path.resolve().relative_to(git.cwd.resolve())))
        except ValueError:
            continue
    if only_our_gitignore_lines(git):
        skip.add(".gitignore")
    changes = [
        c.path
        for c in local_changes(git)
        if not c.path.startswith(f"{ORCH_DIR}/")
        and c.path not in skip
        and not (c.code == "??" and any(fnmatchcase(c.path, glob) for glob in copied))
    ]
    if not changes:
        return None
    shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
    return (
        f"{len(changes)} uncommitted change(s) in {git.cwd} ({shown}) are not part of this run: it starts from "
        "a commit (git.base_ref). Commit them first if the agents need them."
    )


def drive(ctx: RunContext, options: RunOptions) -> RunOutcome:
    store = ctx.store
    state = store.view()
    statuses = {tid: _start_status(t) for tid, t in state["tasks"].items()}
    for tid in _continued(state):  # its thread went on in a follow-up task: it is not run again
        if statuses[tid] != "succeeded":
            statuses[tid] = "blocked"
    start_guard(ctx, state)
    mode = workspace_mode(state)
    _prepare_workspace(ctx, state, mode)
    rules = ConcurrencyRules(mode, ctx.config.concurrency_allow, ctx.config.concurrency_ignore)

    def on_blocked(task: Task, cause: str) -> None:
        store.record(
            "task.status",
            task=task.id,
            status="blocked",
            error={"kind": "blocked", "message": f"waits for {cause}, which did not succeed"},
        )
        ctx.notify("finished", task.id, {"status": "blocked", "cause": cause})

    follow = ctx.config.follow_next_tasks if options.follow_next_tasks is None else options.follow_next_tasks
    forecast = Forecast(ctx) if mode in ("landing", "per-task") else None
    if forecast is not None:
        ctx.on_commit = forecast.after_commit
    workers = options.max_workers or ctx.config.limits.max_workers
    ctx.agent_slots = AgentSlots(workers, ctx.cancel) if mode == "landing" and workers > 1 else None
    ctx.workspaces.spares_wanted = lambda: min(workers, list(statuses.values()).count("pending"))
    scheduler = Scheduler(
        ctx.plan.tasks,
        statuses,
        lambda task: run_task(ctx, task),
        on_blocked,
        rules,
        workers * 2 if ctx.agent_slots else workers,
        ctx.cancel,
        options.fail_fast,
        (lambda task: follow_ups(ctx, task)) if follow else None,
        hold=lambda task: dispatch_hold(ctx, task),
        forecast=forecast.hold if forecast is not None else None,
    )
    ctx.notify(
        "plan", None, {"tasks": {tid: {"role": t["role"], "status": t["status"]} for tid, t in state["tasks"].items()}}
    )
    if not state.get("resumed"):
        warning = uncommitted_warning(ctx.git, options.inputs, ctx.config.worktree.copy_files)
        if warning:
            ctx.notify("warning", None, {"message": warning})
    stopped_by: list[str] = []
    if ctx.secret_scanner is not None:
        threading.Thread(target=ctx.secret_scanner.warm_up, name="warm-up", daemon=True).start()
    try:
        with _stop_on_signals(ctx.cancel, stopped_by), services_running(ctx):
            scheduler.run()
    except KeyboardInterrupt:
        stopped_by.append("SIGINT")
    finally:
        if ctx.cancel.is_set() and not stopped_by:  # --fail-fast, or an error of codex-orch
            why = "--fail-fast stopped the run" if scheduler.failed_fast else "the run stopped on an internal error"
            _end_unfinished(store, why)
        ctx.workspaces.drop_spares()  # before the last check: their removal is no change to find
        last_guard(ctx)
        final = store.view()["tasks"]
        budget_left = ctx.spend is not None and ctx.spend.tripped and budget_left_work(final)
        status = run_status([t["status"] for t in final.values()], stopped_by, budget_left)
        store.record("run.status", status=status, **({"signal": stopped_by[0]} if stopped_by else {}))
        store.close()
    if status != "interrupted" and any(t.get("commit") for t in final.values()):
        auto_maintenance(ctx.git)  # git's upkeep after commits, once for all of them
    return RunOutcome(ctx.run_id, status, ctx.run_dir, {tid: t["status"] for tid, t in final.items()})


def _prepare_workspace(ctx: RunContext, state: dict[str, Any], mode: str) -> None:
    """The run's shared worktree, or its run branch for landing runs, made once (`run.workspace_ready`)."""
    ready = bool(state.get("workspace_ready"))
    try:
        if mode == "shared":  # its worktree may be one another run left (the job service's of a job branch)
            worktree, branch, base = Path(state["worktree"]), state["branch"], state["base_commit"]
            taken = ctx.workspaces.take_up(worktree, branch, base, f"refs/orch/{ctx.run_id}/taken-up")
            ctx.workspaces.ensure(worktree, branch, base, ready=ready or taken)
        elif mode == "landing":
            landing_branch_ready(ctx, ready)
    except BaseException:  # the run cannot start: say so in its state, then let the error speak
        ctx.store.record("run.status", status="failed")
        ctx.store.close()
        raise
    if mode in ("shared", "landing") and not ready:
        ctx.store.record("run.workspace_ready")


def _end_unfinished(store: RunStore, why: str) -> None:
    """A run cancelled by codex-orch itself: tasks not started are cancelled, and none is left running."""
    for tid, task in store.view()["tasks"].items():
        if task["status"] == "pending":
            store.record(
                "task.status",
                task=tid,
                status="cancelled",
                error={"kind": "cancelled", "message": f"not started: {why}"},
            )
        elif task["status"] == "running":  # its executor never came back: never leave it running
            store.record("task.status", task=tid, status="interrupted", error={"kind": "internal", "message": why})


def run_status(statuses: list[str], stopped_by: list[str], budget_left: bool) -> str:
    if stopped_by:
        return "interrupted"
    if all(v == "succeeded" for v in statuses):
        return "succeeded"
    if budget_left:  # the budget stopped work that was still to do
        return "budget_exhausted"
    return "partial" if any(v == "succeeded" for v in statuses) else "failed"


def budget_left_work(tasks: dict[str, Any]) -> bool:
    """Did the budget leave work undone: a task not started, or one it stopped (kind `budget`)?"""
    return any(
        t["status"] == "pending" or (t["status"] == "failed" and (t.get("error") or {}).get("kind") == "budget")
        for t in tasks.values()
    )


def _start_status(task: dict[str, Any]) -> str:
    """What the scheduler starts from: succeeded tasks stay; so do those the merge queue found guilty
    (integration_failed: their work is done and merged nowhere; running them again would redo it), which
    the scheduler skips like a blocked task, blocking what waits for them."""
    if task["status"] == "succeeded":
        return "succeeded"
    return "blocked" if (task.get("error") or {}).get("kind") == "integration_failed" else "pending"


def _continued(state: dict[str, Any]) -> set[str]:
    """Tasks whose thread a follow-up task (`continues`, the job service's `continue`) took over."""
    return {t["spec"]["continues"] for t in state["tasks"].values() if (t.get("spec") or {}).get("continues")}


def follow_ups(ctx: RunContext, task: Task) -> list[Task]:
    """The next_tasks a succeeded task proposed, as new tasks that wait for it, up to limits.max_tasks."""
    store = ctx.store
    result = store.task(task.id).get("result")
    proposals = result.get("next_tasks") if isinstance(result, dict) else None
    if not proposals or not isinstance(proposals, list):  # a role whose schema has no such list
        return []
    total = len(store.get("task_order"))
    added: list[Task] = []
    notes: list[dict[str, str]] = []
    for index, proposal in enumerate(proposals, start=1):
        task_id = f"{task.id}.{index}"
        if not isinstance(proposal, dict):
            notes.append({"id": task_id, "skipped": "not an object with role, prompt and acceptance"})
            continue
        role = ctx.config.resolve_role(str(proposal.get("role", "")))
        if total >= ctx.config.limits.max_tasks:
            notes.append({"id": task_id, "skipped": f"limits.max_tasks ({ctx.config.limits.max_tasks}) reached"})
            continue
        if role is None:
            notes.append({"id": task_id, "skipped": f"unknown role {short(proposal.get('role'))}"})
            continue
        held = store.get("tasks").get(task_id)
        if held is not None and held.get("proposed_by") == task.id:
            continue  # added before a crash: the scheduler already knows it from the state
        if held is not None:
            notes.append({"id": task_id, "skipped": "the plan has a task of that id"})
            continue
        new = Task(
            id=task_id,
            role=role,
            prompt=str(proposal.get("prompt", "")),
            acceptance=str(proposal.get("acceptance", "")),
            blocked_by=(task.id,),
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
    agent: str | None = None  # --agent: the run's default agent (a task's own `agent` comes first)
    # The user's input files (plan, spec): not warned about as uncommitted changes of the checkout.
    inputs: tuple[Path, ...] = ()
    base_ref: str | None = None  # --base-ref: the commit the run starts from, instead of git.base_ref
    worktree: Path | None = None  # --worktree (the job service's): a shared run in this worktree, taken up
    budget_run_cost: float | None = None  # resume --budget-run-cost: the run's budgets.run_cost from now on
    max_cost: float | None = None  # run --max-cost: refuse to start when the estimate's low end is over it
    executor: str | None = None  # --executor: how the tasks run (engine/executors.py); None: the config's
    executor_settings: tuple[tuple[str, Any], ...] = ()  # --temporal-address and the like, over the config's


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
