"""Runs: create one from a plan, drive it through the scheduler, resume it after any stop.

Everything that can be wrong with the input is checked before the first byte is written (one set of
checks, engine/checks.py, shared with `plan --check`), so bad input leaves no run folder, worktree or
branch behind.

Creating a run writes, in order: the run folder and its lock, plan.json, spec.md, the isolated
CODEX_HOME, then the journal's first record (`run.created`). The run exists from that record on.
A creation that fails on the way (an error, a full disk) removes what it wrote; one that is killed
leaves a folder without that record, in which nothing ran: `run` with the same --run-id takes its
lock, clears it and creates the run afresh, and `resume` says to do so.

Test hook (faults.py): with CODEX_ORCH_FAULT_AT=STEP in the environment, creation stops right after
STEP (run-dir, plan.json, spec.md, codex-home, created): killed with SIGKILL, or with STEP:error,
failing as a full disk would (ENOSPC). tests/test_run_creation.py uses it to crash a real `codex-orch run`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from codex_orch.atomic import atomic_write_json
from codex_orch.config import Config, load_config
from codex_orch.engine.agent_env import codex_home_for, home_for, redactor_for
from codex_orch.engine.checks import (
    agent_findings,
    new_run_id,
    raise_errors,
    run_branches,
    run_date,
    run_findings,
    run_was_created,
    template_findings,
)
from codex_orch.engine.context import Notify, _no_notify
from codex_orch.engine.drive import RunOptions, RunOutcome, run_context
from codex_orch.engine.executors import choose, prepare
from codex_orch.engine.prompts import read_spec
from codex_orch.engine.secret_scan import check_allow
from codex_orch.engine.task_prompts import render_task_prompt
from codex_orch.errors import InputError, OrchError
from codex_orch.faults import fault_point
from codex_orch.git.repo import Git
from codex_orch.layout import Layout, id_problem
from codex_orch.logs import run_log
from codex_orch.plan import Plan, Task
from codex_orch.plan_file import load_plan
from codex_orch.proc.groups import reap_orphan
from codex_orch.run_lock import LOCK_NAME, RunLock
from codex_orch.scaffold import ensure_scaffold
from codex_orch.state import RunStore, read_state


def repo_root(cwd: Path | None = None) -> Path:
    return Git(cwd or Path.cwd()).toplevel()


def _base_branch(git: Git, base_ref: str) -> str | None:
    """The branch a merge should move: base_ref itself when it names a branch, else HEAD's branch."""
    if base_ref != "HEAD":
        return base_ref if git.branch_exists(base_ref) else None
    code, out, _ = git.run_full("symbolic-ref", "--quiet", "--short", "HEAD")
    return out if code == 0 else None


def start_run(
    root: Path,
    plan_file: Path,
    spec_file: Path | None,
    options: RunOptions,
    notify: Notify = _no_notify,
    warn: Callable[[str], None] | None = None,
) -> RunOutcome:
    """`run`: load the plan and the spec, check everything, create the run and drive it. `warn(line)`
    hears what the plan loader accepted but the user should know (unknown task keys), once."""
    layout = Layout(root)
    config = load_config(layout)
    plan = load_plan(plan_file, config, label=_label(plan_file, root))
    spec = read_spec(spec_file, _label(spec_file, root)) if spec_file else None
    if warn is not None:
        for line in plan.warnings:
            warn(line)
    return create_and_drive(layout, config, plan, spec, options, notify)


def _label(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def create_and_drive(
    layout: Layout, config: Config, plan: Plan, spec: str | None, options: RunOptions, notify: Notify = _no_notify
) -> RunOutcome:
    run_id = options.run_id or new_run_id()
    if options.base_ref:
        config = replace(config, git=replace(config.git, base_ref=options.base_ref))
    if options.worktree is not None:  # the job service's worktree of a job branch: one shared worktree
        config = replace(config, workspace_mode="shared")
    raise_errors(run_findings(layout, config, plan, spec, run_id, options.agent))
    execute = prepare(config, choose(config, options))
    git = Git(layout.root)
    base_commit = git.rev(config.git.base_ref)
    date = run_date()
    mode = config.workspace_mode
    branches = run_branches(config, plan, run_id, date)

    # From here on, things are written.
    ensure_scaffold(layout)
    run_dir = layout.run_dir(run_id)
    lock = _claim(run_dir, run_id)
    try:
        run: dict[str, Any] = {
            "run_id": run_id,
            "date": date,
            "repo_root": str(layout.root),
            "base_ref": config.git.base_ref,
            "base_commit": base_commit,
            "base_branch": _base_branch(git, config.git.base_ref),
            "single_workspace": mode == "shared",
            "workspace_mode": mode,
            "branch": branches[0] if mode in ("shared", "landing") else None,
            "worktree": str(options.worktree or layout.run_worktree(run_id)) if mode == "shared" else None,
            "goal": plan.goal,
            "has_spec": spec is not None,
            "codex_home": None,
            "max_workers": options.max_workers or config.limits.max_workers,
            "agent": options.agent,  # --agent: the run's default agent
        }
        store, home = _create(run_dir, config, plan, spec, run)
        fault_point("created")
        ctx = run_context(layout, config, plan, spec, store, git, config.codex.command, home, notify, options)
        with run_log(run_dir, ctx.redactor):
            return execute(ctx, options)
    finally:
        lock.release()


def _create(
    run_dir: Path, config: Config, plan: Plan, spec: str | None, run: dict[str, Any]
) -> tuple[RunStore, Path | None]:
    """Write the run's files into its claimed folder, the journal's first record last. On any failure
    before that record, the folder is removed: nothing ran, nothing is left."""
    try:
        fault_point("run-dir")
        atomic_write_json(run_dir / "plan.json", plan.to_json())
        fault_point("plan.json")
        if spec is not None:
            (run_dir / "spec.md").write_text(spec, "utf-8")
            fault_point("spec.md")
        home = codex_home_for(config, run_dir)
        if config.codex.home == "isolated" and home is not None:
            from codex_orch.agents.codex_home import prepare_isolated_home

            prepare_isolated_home(home, config.codex.config)
            fault_point("codex-home")
        agent_homes = _agent_homes(config, run_dir)
        tasks = [{"id": t.id, "role": t.role, "blocked_by": list(t.blocked_by)} for t in plan.tasks]
        run = {**run, "codex_home": str(home) if home else None, "agent_homes": agent_homes}
        return RunStore.create(run_dir, run, tasks, redactor_for(config)), home
    except BaseException as exc:
        if not run_was_created(run_dir):
            _clear(run_dir, keep_lock=False)
        if isinstance(exc, OSError):
            run_id = run["run_id"]
            raise OrchError(
                f"cannot create run {run_id!r} in {run_dir}: {exc.strerror or exc}.",
                f"Nothing ran; once fixed, start it again with --run-id {run_id}.",
            ) from None
        raise


def _agent_homes(config: Config, run_dir: Path) -> dict[str, str | None]:
    """The home of every backend besides codex (CLAUDE_CONFIG_DIR, GEMINI_CLI_HOME): None for the user's
    own; an isolated one is made now, with the settings file its CLI reads."""
    from codex_orch.agents.homes import prepare_agent_home

    homes: dict[str, str | None] = {}
    for name, backend in config.agents.backends.items():
        if name == "codex":
            continue
        home = home_for(config, name, run_dir)
        if home is not None and backend.home == "isolated":
            prepare_agent_home(name, home, backend.settings)
        homes[name] = str(home) if home else None
    return homes


def _claim(run_dir: Path, run_id: str) -> RunLock:
    """The run folder, made or taken over, and its lock. A folder whose journal never got its first
    record is what a killed creation left: nothing ran there, so it is cleared and used afresh."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir).acquire()  # another process creating or driving this run: RunLockedError
    try:
        if run_was_created(run_dir):  # created by another process since the checks
            raise InputError(f"--run-id: run {run_id!r} already exists.", f"Use `codex-orch resume --run-id {run_id}`.")
        _clear(run_dir, keep_lock=True)
    except BaseException:
        lock.release()
        raise
    return lock


def _clear(run_dir: Path, keep_lock: bool) -> None:
    """Remove what a creation wrote into the run folder (all but the held lock), or the whole folder."""
    if not keep_lock:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for entry in run_dir.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _stop_orphan(attempt: dict[str, Any]) -> None:
    """Stop the attempt's agent if it outlived the codex-orch that ran it (its pid not reused since): its
    process group and its session. Processes it started in sessions of their own are out of reach now
    (unless cgroups were in use: proc/cgroups.py empties a killed codex-orch's cgroups)."""
    started = datetime.fromisoformat(attempt["started_at"]).timestamp() if attempt.get("started_at") else 0.0
    reap_orphan(int(attempt["pid"]), started)


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
    if not run_was_created(run_dir):
        raise InputError(
            f"--run-id: run {run_id!r} was never fully created (codex-orch stopped while creating it); nothing ran.",
            f"Start it again: codex-orch run --plan-file PLAN --run-id {run_id}",
        )
    config = load_config(layout)
    plan = load_plan(run_dir / "plan.json", config)
    spec = (
        read_spec(spec_file)
        if spec_file
        else (read_spec(run_dir / "spec.md") if (run_dir / "spec.md").is_file() else None)
    )
    git = Git(layout.root)
    run_agent = read_state(run_dir).get("agent")  # the run's --agent
    raise_errors(
        agent_findings(layout, config, plan.tasks, run_agent) + template_findings(layout, config, plan, spec or "")
    )
    check_allow(config)
    execute = prepare(config, choose(config, options, run_dir))
    lock = RunLock(run_dir).acquire()
    try:
        store = RunStore.open(run_dir, redactor_for(config))
        added = [Task.from_json(t["spec"]) for t in store.view()["tasks"].values() if t.get("spec")]
        if added:
            plan = Plan(plan.goal, plan.assumptions, plan.tasks + tuple(added))
        for tid, task in store.view()["tasks"].items():
            if task["status"] != "running":
                continue
            attempt = task["attempts"][-1] if task["attempts"] else None
            if attempt and attempt.get("pid"):
                _stop_orphan(attempt)  # an agent orphaned by a crash of codex-orch
            store.record(
                "task.status",
                task=tid,
                status="interrupted",
                error={"kind": "interrupted", "message": "found running with no live codex-orch process"},
            )
        store.record("run.resumed")
        if options.budget_run_cost is not None:
            store.record("run.budget", budgets={"run_cost": options.budget_run_cost})
        for agent in store.get("paused") or {}:  # a pause of the run that stopped: this one decides anew
            store.record("run.unpaused", agent=agent)
        home = Path(store.get("codex_home")) if store.get("codex_home") else None
        ctx = run_context(layout, config, plan, spec, store, git, config.codex.command, home, notify, options)
        with run_log(run_dir, ctx.redactor):
            return execute(ctx, options)
    finally:
        lock.release()


__all__ = ["RunOptions", "RunOutcome", "create_and_drive", "render_task_prompt", "resume_run", "start_run"]
