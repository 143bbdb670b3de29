"""`codex-orch plan --check`: lint a plan before running it. Runs nothing, writes nothing.

Errors (exit 2) are what would stop the run or fail its tasks at once: everything `run` checks before
it writes anything (engine/checks.py: the same function, so `run` never refuses what `plan --check`
passed — a repository without a commit, codex not found, the run id or its branches taken, a template
that does not render), a plan that does not load, a role's output schema that is not a valid schema or
is not accepted in strict mode, a prompt that does not render for some task. Warnings (exit 0) are
risks: unknown task keys, a prompt larger than PROMPT_WARN_CHARS, a reviewer or navigator that can
write, an agent without a sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codex_orch.commands.estimate import Estimate, estimate_plan
from codex_orch.config import Config, RoleConfig, load_config
from codex_orch.engine.checks import Finding, check_context, run_findings
from codex_orch.engine.context import load_schema
from codex_orch.engine.prompts import PromptRenderer, read_spec
from codex_orch.errors import EXIT_OK, EXIT_USAGE, InputError
from codex_orch.layout import Layout
from codex_orch.plan import Plan
from codex_orch.plan_file import load_plan
from codex_orch.schema_check import strict_problems

# A rendered prompt above this many characters (~25k tokens at ~4 characters a token) is a warning:
# it is sent whole on every attempt and leaves less of the model's context for the agent's own work.
PROMPT_WARN_CHARS = 100_000
READ_ONLY_ROLES = ("navigator", "reviewer")


@dataclass(frozen=True)
class CheckResult:
    plan_label: str
    tasks: int | None  # None: the plan did not load
    findings: tuple[Finding, ...]
    largest_prompt: tuple[str, int] | None = None  # (task id, characters)
    estimate: Estimate | None = None  # tokens and cost (commands/estimate.py); None: the plan did not load

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.level == "warning")

    @property
    def exit_code(self) -> int:
        return EXIT_USAGE if self.errors else EXIT_OK


def check_plan(root: Path, plan_file: Path, spec_file: Path | None = None, run_id: str | None = None) -> CheckResult:
    layout = Layout(root)
    config = load_config(layout)  # a broken config is an error of its own (exit 2), as for every command
    label = str(plan_file)
    findings: list[Finding] = []
    plan: Plan | None = None
    try:
        plan = load_plan(plan_file, config, label)
        findings += [Finding("warning", line) for line in plan.warnings]
    except InputError as exc:
        findings += _errors(exc)
    spec: str | None = None
    if spec_file is not None:
        try:
            spec = read_spec(spec_file)
        except InputError as exc:
            findings += _errors(exc)
    findings += run_findings(layout, config, plan, spec, run_id)
    used = {task.role for task in plan.tasks} if plan else set(config.roles)
    for name, role in config.roles.items():
        findings += _schema_findings(layout, role, "error" if name in used else "warning")
        findings += _sandbox_findings(config, role)
    largest = None
    if plan is not None:
        prompt_findings, largest = _prompt_findings(layout, config, plan, spec or "", label)
        findings += prompt_findings
    unique = tuple(dict.fromkeys(findings))  # the run's own checks and the lint may find the same thing
    estimate = estimate_plan(layout, config, plan, spec or "") if plan is not None else None
    return CheckResult(label, len(plan.tasks) if plan else None, unique, largest, estimate)


def _errors(exc: InputError) -> list[Finding]:
    return [Finding("error", problem) for problem in getattr(exc, "problems", None) or [exc.message]]


def _schema_findings(layout: Layout, role: RoleConfig, level: str) -> list[Finding]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    where = f"roles.{role.name}.output_schema"
    try:
        path, schema = load_schema(layout, role.output_schema)
    except InputError as exc:
        return [Finding(level, f"{where}: {exc.message}")]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [Finding(level, f"{_shown(path, layout)}: not a valid JSON Schema: {exc.message}")]
    return [
        Finding(level, f"{_shown(path, layout)}: {problem} (role {role.name}: codex sends it in strict mode)")
        for problem in strict_problems(schema)
    ]


def _sandbox_findings(config: Config, role: RoleConfig) -> list[Finding]:
    where = f"{config.source}: roles.{role.name}.sandbox"
    if role.sandbox == "danger-full-access":
        return [
            Finding(
                "warning",
                f"{where}: danger-full-access runs the {role.name} without a sandbox: it can change anything you can",
            )
        ]
    if role.name in READ_ONLY_ROLES and role.sandbox != "read-only":
        return [Finding("warning", f"{where}: {role.sandbox} lets the {role.name} change files; read-only is expected")]
    return []


def _prompt_findings(
    layout: Layout, config: Config, plan: Plan, spec: str, label: str
) -> tuple[list[Finding], tuple[str, int] | None]:
    """Each task's prompt rendered as the run would (dependencies without their results yet)."""
    renderer = PromptRenderer(layout)
    findings: list[Finding] = []
    broken: set[str] = set()
    largest: tuple[str, int] | None = None
    for index, task in enumerate(plan.tasks):
        role = config.roles[task.role]
        if role.prompt_template in broken:
            continue
        context = check_context(plan, task, spec, str(layout.root))
        try:
            size = len(renderer.render(role.prompt_template, context))
        except InputError as exc:
            broken.add(role.prompt_template)
            findings.append(Finding("error", f"roles.{task.role}.prompt_template: {exc.message}"))
            continue
        if largest is None or size > largest[1]:
            largest = (task.id, size)
        if size > PROMPT_WARN_CHARS:
            findings.append(
                Finding(
                    "warning",
                    f"{label}: tasks[{index}] ({task.id}): its prompt renders to {size:,} characters, over "
                    f"{PROMPT_WARN_CHARS:,}; it is sent whole on every attempt (split the task or the spec)",
                )
            )
    return findings, largest


def _shown(path: Path, layout: Layout) -> str:
    try:
        return str(path.relative_to(layout.root.resolve()))
    except ValueError:
        return path.name
