"""Runs: create one from a plan, drive it through the scheduler, resume it after any stop.

Everything that can be wrong with the input is checked before the first byte is written, so bad
input leaves no run folder, worktree or branch behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codex_orch.config import Config, load_config
from codex_orch.engine.context import Notify, RunContext, _no_notify, load_schema
from codex_orch.engine.executor import render_task_prompt, run_task
from codex_orch.engine.prompts import read_spec
from codex_orch.engine.scheduler import ConcurrencyRules, Scheduler
from codex_orch.engine.services import services_running
from codex_orch.errors import InputError
from codex_orch.git.repo import Git, auto_maintenance
from codex_orch.git.workspace import Workspaces, branch_name
from codex_orch.layout import Layout, id_problem
from codex_orch.plan import Plan, Task, load_plan, plan_answer_checks
from codex_orch.proc.stream import is_our_orphan, reap_group
from codex_orch.redaction import Redactor
from codex_orch.scaffold import ensure_scaffold
from codex_orch.state import RunLock, RunStore, atomic_write_json

_AGENT_KEEP_GIT = (
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_CONFIG_GLOBAL",
)


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


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def repo_root(cwd: Path | None = None) -> Path:
    return Git(cwd or Path.cwd()).toplevel()


def resolve_command(config: Config, root: Path) -> tuple[str, ...]:
    """codex.command with its program found: on PATH, or a path relative to the repository."""
    program, *rest = config.codex.command
    if "/" in program:
        path = Path(program) if Path(program).is_absolute() else root / program
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InputError(
                f"{config.source}: codex.command: {program!r} is not an executable file",
                "Install codex (npm i -g @openai/codex) or fix the path.",
            )
        return (str(path), *rest)
    if shutil.which(program) is None:
        raise InputError(
            f"{config.source}: codex.command: {program!r} was not found on PATH.",
            "Install codex (npm i -g @openai/codex) or set codex.command in orchestrator.yaml.",
        )
    return (program, *rest)


def agent_env(config: Config, codex_home: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _AGENT_KEEP_GIT}
    env.update(config.codex.env)
    if codex_home is not None:
        env["CODEX_HOME"] = str(codex_home)
    return env


def _redactor(config: Config) -> Redactor:
    return Redactor({**os.environ, **config.codex.env})


def _codex_home(config: Config, run_dir: Path) -> Path | None:
    if config.codex.home == "inherit":
        return None
    if config.codex.home == "isolated":
        return run_dir / "codex-home"
    return Path(config.codex.home)


def _check_templates(layout: Layout, config: Config, plan: Plan) -> None:
    """Load every schema and render one prompt per role now, so template errors come before any run."""
    from codex_orch.engine.prompts import PromptRenderer

    renderer = PromptRenderer(layout)
    checked: set[str] = set()
    for task in plan.tasks:
        if task.role in checked:
            continue
        checked.add(task.role)
        role = config.roles[task.role]
        load_schema(layout, role.output_schema)
        renderer.render(
            role.prompt_template,
            {
                "run_id": "check",
                "role": task.role,
                "goal": plan.goal,
                "assumptions": list(plan.assumptions),
                "spec": "",
                "task": task.context(),
                "acceptance": task.acceptance,
                "dependencies": [],
                "worktree": "",
            },
        )


def _base_branch(git: Git, base_ref: str) -> str | None:
    """The branch a merge should move: base_ref itself when it names a branch, else HEAD's branch."""
    if base_ref != "HEAD":
        return base_ref if git.branch_exists(base_ref) else None
    code, out, _ = git.run_full("symbolic-ref", "--quiet", "--short", "HEAD")
    return out if code == 0 else None


def start_run(
    root: Path, plan_file: Path, spec_file: Path | None, options: RunOptions, notify: Notify = _no_notify
) -> RunOutcome:
    layout = Layout(root)
    config = load_config(layout)
    plan = load_plan(plan_file, config, label=_label(plan_file, root))
    spec = read_spec(spec_file, _label(spec_file, root)) if spec_file else None
    return create_and_drive(layout, config, plan, spec, options, notify)


def _label(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def create_and_drive(
    layout: Layout, config: Config, plan: Plan, spec: str | None, options: RunOptions, notify: Notify = _no_notify
) -> RunOutcome:
    git = Git(layout.root)
    run_id = options.run_id or new_run_id()
    problem = id_problem(run_id)
    if problem:
        raise InputError(f"--run-id: {run_id!r} {problem}")
    run_dir = layout.run_dir(run_id)
    if run_dir.exists():
        raise InputError(f"--run-id: run {run_id!r} already exists", f"Use `codex-orch resume --run-id {run_id}`.")
    base_commit = git.rev(config.git.base_ref)
    date = datetime.now(UTC).strftime("%Y%m%d")
    single = config.use_single_workspace
    branches = []
    if single:
        branches.append(branch_name(config.git.shared_branch_template, config.source, date=date, run_id=run_id))
    else:
        for task in plan.tasks:
            branches.append(
                branch_name(
                    config.git.branch_template, config.source, date=date, run_id=run_id, task_id=task.id, role=task.role
                )
            )
    existing = git.local_branches()
    for branch in branches:
        if not git.valid_branch_name(branch):
            raise InputError(f"{config.source}: git: branch name {branch!r} is not valid for git")
        if branch in existing:
            raise InputError(f"branch {branch!r} already exists", "Choose another --run-id.")
    command = resolve_command(config, layout.root)
    _check_templates(layout, config, plan)

    # From here on, things are written.
    ensure_scaffold(layout)
    run_dir.mkdir(parents=True)
    lock = RunLock(run_dir).acquire()
    try:
        atomic_write_json(run_dir / "plan.json", plan.to_json())
        if spec is not None:
            (run_dir / "spec.md").write_text(spec, "utf-8")
        home = _codex_home(config, run_dir)
        if config.codex.home == "isolated" and home is not None:
            from codex_orch.agents.codex_home import prepare_isolated_home

            prepare_isolated_home(home, config.codex.config)
        run: dict[str, Any] = {
            "run_id": run_id,
            "date": date,
            "repo_root": str(layout.root),
            "base_ref": config.git.base_ref,
            "base_commit": base_commit,
            "base_branch": _base_branch(git, config.git.base_ref),
            "single_workspace": single,
            "branch": branches[0] if single else None,
            "worktree": str(layout.run_worktree(run_id)) if single else None,
            "goal": plan.goal,
            "has_spec": spec is not None,
            "codex_home": str(home) if home else None,
            "max_workers": options.max_workers or config.limits.max_workers,
        }
        tasks = [{"id": t.id, "role": t.role, "blocked_by": list(t.blocked_by)} for t in plan.tasks]
        store = RunStore.create(run_dir, run, tasks, _redactor(config))
        ctx = _context(layout, config, plan, spec, store, git, command, home, notify, options)
        return _drive(ctx, options)
    finally:
        lock.release()


def _context(
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
        redactor=_redactor(config),
        fail_fast=options.fail_fast,
        cancel=threading.Event(),
        answer_checks=plan_answer_checks(config),
    )


@contextmanager
def _stop_on_signals(cancel: threading.Event, stopped_by_user: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the run in order: no new task starts, running agents are stopped
    (INT -> TERM -> KILL), their tasks are recorded interrupted, and the state is written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        stopped_by_user.set()
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _drive(ctx: RunContext, options: RunOptions) -> RunOutcome:
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
    stopped_by_user = threading.Event()
    try:
        with _stop_on_signals(ctx.cancel, stopped_by_user), services_running(ctx):
            scheduler.run()
    except KeyboardInterrupt:
        stopped_by_user.set()
    finally:
        if ctx.cancel.is_set() and not stopped_by_user.is_set():  # --fail-fast
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
        if stopped_by_user.is_set():
            status = "interrupted"
        elif all(v == "succeeded" for v in values):
            status = "succeeded"
        elif any(v == "succeeded" for v in values):
            status = "partial"
        else:
            status = "failed"
        store.record("run.status", status=status)
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


def _orphaned(attempt: dict[str, Any]) -> bool:
    """Is the attempt's agent still alive (its pid not reused by another process since)?"""
    started = datetime.fromisoformat(attempt["started_at"]).timestamp() if attempt.get("started_at") else 0.0
    return is_our_orphan(int(attempt["pid"]), started)


def resume_run(
    root: Path, run_id: str, spec_file: Path | None, options: RunOptions, notify: Notify = _no_notify
) -> RunOutcome:
    layout = Layout(root)
    problem = id_problem(run_id)
    if problem:
        raise InputError(f"--run-id: {run_id!r} {problem}")
    run_dir = layout.run_dir(run_id)
    if not run_dir.is_dir():
        raise InputError(f"--run-id: no run {run_id!r} in {layout.runs_dir}")
    config = load_config(layout)
    plan = load_plan(run_dir / "plan.json", config)
    spec = (
        read_spec(spec_file)
        if spec_file
        else (read_spec(run_dir / "spec.md") if (run_dir / "spec.md").is_file() else None)
    )
    git = Git(layout.root)
    command = resolve_command(config, layout.root)
    _check_templates(layout, config, plan)
    lock = RunLock(run_dir).acquire()
    try:
        store = RunStore.open(run_dir, _redactor(config))
        added = [Task.from_json(t["spec"]) for t in store.view()["tasks"].values() if t.get("spec")]
        if added:
            plan = Plan(plan.goal, plan.assumptions, plan.tasks + tuple(added))
        for tid, task in store.view()["tasks"].items():
            if task["status"] != "running":
                continue
            attempt = task["attempts"][-1] if task["attempts"] else None
            if attempt and attempt.get("pid") and _orphaned(attempt):
                reap_group(int(attempt["pid"]))  # an agent orphaned by a crash of codex-orch
            store.record(
                "task.status",
                task=tid,
                status="interrupted",
                error={"kind": "interrupted", "message": "found running with no live codex-orch process"},
            )
        store.record("run.resumed")
        home = Path(store.get("codex_home")) if store.get("codex_home") else None
        ctx = _context(layout, config, plan, spec, store, git, command, home, notify, options)
        return _drive(ctx, options)
    finally:
        lock.release()


__all__ = ["RunOptions", "RunOutcome", "create_and_drive", "render_task_prompt", "resume_run", "start_run"]
