"""Runs: create one from a plan, drive it through the scheduler, resume it after any stop.

Everything that can be wrong with the input is checked before the first byte is written, so bad
input leaves no run folder, worktree or branch behind.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codex_orch.config import Config, load_config
from codex_orch.engine.agent_env import codex_home_for, redactor_for, resolve_command
from codex_orch.engine.context import Notify, _no_notify, load_schema
from codex_orch.engine.drive import RunOptions, RunOutcome, drive, run_context
from codex_orch.engine.executor import render_task_prompt
from codex_orch.engine.prompts import read_spec
from codex_orch.engine.secret_scan import check_allow
from codex_orch.errors import InputError
from codex_orch.git.repo import Git
from codex_orch.git.workspace import branch_name
from codex_orch.layout import Layout, id_problem
from codex_orch.plan import Plan, Task, load_plan
from codex_orch.proc.groups import is_our_orphan, reap_group
from codex_orch.scaffold import ensure_scaffold
from codex_orch.state import RunLock, RunStore, atomic_write_json


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def repo_root(cwd: Path | None = None) -> Path:
    return Git(cwd or Path.cwd()).toplevel()


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
    check_allow(config)

    # From here on, things are written.
    ensure_scaffold(layout)
    run_dir.mkdir(parents=True)
    lock = RunLock(run_dir).acquire()
    try:
        atomic_write_json(run_dir / "plan.json", plan.to_json())
        if spec is not None:
            (run_dir / "spec.md").write_text(spec, "utf-8")
        home = codex_home_for(config, run_dir)
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
        store = RunStore.create(run_dir, run, tasks, redactor_for(config))
        ctx = run_context(layout, config, plan, spec, store, git, command, home, notify, options)
        return drive(ctx, options)
    finally:
        lock.release()


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
    check_allow(config)
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
        ctx = run_context(layout, config, plan, spec, store, git, command, home, notify, options)
        return drive(ctx, options)
    finally:
        lock.release()


__all__ = ["RunOptions", "RunOutcome", "create_and_drive", "render_task_prompt", "resume_run", "start_run"]
