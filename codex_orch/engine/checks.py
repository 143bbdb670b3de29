"""What a run checks before it writes anything, as findings rather than the first exception.

`run`, `task` and `plan` (engine/run.py) refuse to start when any finding is an error; `plan --check`
(commands/preflight.py) reports the same findings, next to its own warnings. Being one function, the
two cannot disagree: whatever `run` would refuse at once, `plan --check` has already named.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codex_orch.config import Config
from codex_orch.engine.agent_choice import agents_used
from codex_orch.engine.agent_env import resolve_command
from codex_orch.engine.context import load_schema
from codex_orch.engine.prompts import PromptRenderer
from codex_orch.engine.secret_scan import check_allow
from codex_orch.errors import InputError, InputProblems, OrchError
from codex_orch.git.repo import Git
from codex_orch.git.workspace import branch_name
from codex_orch.layout import Layout, id_problem
from codex_orch.plan import Plan, Task
from codex_orch.state import JOURNAL_NAME


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    message: str  # starts with the file and the place: `plan.json: tasks[1].blocked_by: …`

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def raise_errors(findings: Sequence[Finding]) -> None:
    """Refuse to go on when any finding is an error: one line for one, all of them for several."""
    errors = [f.message for f in findings if f.level == "error"]
    if errors:
        raise InputProblems(errors)


def run_date() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")


def new_run_id() -> str:
    import secrets

    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def run_branches(config: Config, plan: Plan, run_id: str, date: str) -> list[str]:
    """The branches a run makes: the run branch (shared and landing runs) first, then one per task
    (per-task and landing runs)."""
    mode = config.workspace_mode
    branches = []
    if mode in ("shared", "landing"):
        branches.append(branch_name(config.git.shared_branch_template, config.source, date=date, run_id=run_id))
    if mode in ("per-task", "landing"):
        branches += [
            branch_name(config.git.branch_template, config.source, date=date, run_id=run_id, task_id=t.id, role=t.role)
            for t in plan.tasks
        ]
    return branches


def run_was_created(run_dir: Path) -> bool:
    """Does the run folder hold a run, i.e. did its journal get its first record? A folder without one
    was left by a creation that stopped half-way (a crash, a full disk): nothing ran in it."""
    try:
        with open(run_dir / JOURNAL_NAME, "rb") as fh:
            first = fh.readline()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not first.endswith(b"\n"):
        return False
    try:
        return bool(json.loads(first).get("type") == "run.created")
    except (ValueError, AttributeError):
        return False


def check_context(plan: Plan, task: Task, spec: str, worktree: str) -> dict[str, Any]:
    """A task's prompt context as the run renders it, its dependencies not yet done."""
    return {
        "run_id": "check",
        "role": task.role,
        "goal": plan.goal,
        "assumptions": list(plan.assumptions),
        "spec": spec,
        "task": task.context(),
        "acceptance": task.acceptance,
        "dependencies": [
            {
                "id": dep,
                "role": plan.task(dep).role,
                "status": "succeeded",
                "summary": "",
                "files_changed": [],
                "decisions": [],
                "result": {},
            }
            for dep in task.blocked_by
        ],
        "worktree": worktree,
    }


def agent_findings(layout: Layout, config: Config, tasks: Sequence[Task], run_agent: str | None) -> list[Finding]:
    """The command of every agent these tasks may run on (their own, then agents.fallback) is installed."""
    findings = []
    names = agents_used(config, tasks, run_agent) if tasks else [run_agent or config.agents.default or "codex"]
    for agent in dict.fromkeys([*names, *config.agents.fallback]):
        try:
            resolve_command(config, layout.root, agent)
        except OrchError as exc:
            findings.append(Finding("error", str(exc)))
    return findings


def run_findings(
    layout: Layout,
    config: Config,
    plan: Plan | None,
    spec: str | None,
    run_id: str | None,
    run_agent: str | None = None,
) -> list[Finding]:
    """Every reason a run of `plan` would be refused before it writes anything (errors only).

    `run_id` None (plan --check without --run-id): the run id's own checks are skipped, and the branch
    templates are tried with a fresh id. `plan` None (it did not load): what does not need it."""
    git = Git(layout.root)
    errors: list[str] = []

    def attempt(check: Any, *args: Any) -> Any:
        try:
            return check(*args)
        except InputProblems as exc:
            errors.extend(exc.problems)
        except OrchError as exc:
            errors.append(str(exc))
        return None

    if run_id is not None:
        problem = id_problem(run_id)
        if problem:
            errors.append(f"--run-id: {run_id!r} {problem}")
            run_id = None
        elif run_was_created(layout.run_dir(run_id)):
            errors.append(f"--run-id: run {run_id!r} already exists. Use `codex-orch resume --run-id {run_id}`.")
    attempt(_base_commit, git, config, layout.root)
    if plan is not None:
        branches = attempt(run_branches, config, plan, run_id or new_run_id(), run_date()) or []
        existing = git.local_branches()
        for branch in branches:
            if not git.valid_branch_name(branch):
                errors.append(f"{config.source}: git: branch name {branch!r} is not valid for git")
            elif run_id is not None and branch in existing:
                errors.append(f"branch {branch!r} already exists. Choose another --run-id.")
    attempt(check_allow, config)
    findings = [Finding("error", message) for message in errors]
    findings += agent_findings(layout, config, plan.tasks if plan is not None else (), run_agent)
    if plan is not None:
        findings += template_findings(layout, config, plan, spec or "")
        findings += gate_findings(config, plan)
    return findings


def gate_findings(config: Config, plan: Plan) -> list[Finding]:
    """A gate that runs confined needs bubblewrap: said before the run starts, not after an agent."""
    from codex_orch.proc.sandbox import bwrap_path
    from codex_orch.verify_config import gates_for

    confined = {
        gate.name
        for task in plan.tasks
        for gate in gates_for(config.gates, task.role, config.roles[task.role].sandbox, task.gates)
        if gate.sandbox != "none"
    }
    if not confined or bwrap_path() is not None:
        return []
    names = ", ".join(sorted(confined))
    return [
        Finding(
            "error",
            f"{config.source}: gates: {names} run confined by bubblewrap, and `bwrap` is not installed. Install it "
            "(Debian/Ubuntu: apt-get install bubblewrap), or give the gate `sandbox: none`.",
        )
    ]


def _base_commit(git: Git, config: Config, root: Path) -> str:
    try:
        return git.rev(config.git.base_ref)
    except OrchError:
        if config.git.base_ref == "HEAD" and not git.ok("rev-parse", "--verify", "--quiet", "HEAD"):
            raise InputError(
                f"{root}: the repository has no commit yet, and a run starts from one (git.base_ref: HEAD).",
                "Make a first commit (git commit --allow-empty -m 'first commit').",
            ) from None
        raise InputError(
            f"{config.source}: git.base_ref: {config.git.base_ref!r} is not a commit in this repository."
        ) from None


def template_findings(layout: Layout, config: Config, plan: Plan, spec: str) -> list[Finding]:
    """Each used role's output schema loads and its prompt renders (once per role, with its first task)."""
    renderer = PromptRenderer(layout)
    errors: list[str] = []
    checked: set[str] = set()
    for task in plan.tasks:
        if task.role in checked:
            continue
        checked.add(task.role)
        role = config.roles[task.role]
        try:
            load_schema(layout, role.output_schema)
        except InputError as exc:
            errors.append(f"roles.{role.name}.output_schema: {exc.message}")
        try:
            renderer.render(role.prompt_template, check_context(plan, task, spec, str(layout.root)))
        except InputError as exc:
            errors.append(f"roles.{role.name}.prompt_template: {exc.message}")
    return [Finding("error", message) for message in errors]
