"""`codex-orch plan`: the navigator turns a spec (or a goal) into a plan file that `run` carries out.

The navigator works in a normal one-task run (run folder, state, events; nothing to commit, its sandbox
being read-only). Its answer is checked against the plan schema and then loaded like any plan file
(ids, dependencies, cycles, roles); either failing sends the errors back to it on the same thread, up
to limits.retries (see plan.plan_answer_checks and the executor).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from codex_orch.atomic import atomic_write
from codex_orch.config import load_config
from codex_orch.engine.context import Notify, _no_notify
from codex_orch.engine.drive import RunOptions, RunOutcome
from codex_orch.engine.prompts import read_spec
from codex_orch.engine.run import create_and_drive
from codex_orch.errors import InputError
from codex_orch.layout import Layout
from codex_orch.plan_file import parse_plan
from codex_orch.state import read_state

PLAN_TASK_ID = "plan"
NAVIGATOR = "navigator"
_ACCEPTANCE = (
    "Carried out in dependency order, the tasks achieve the goal. Every task is small, has one role, a prompt "
    "an engineer could follow without asking questions, and acceptance criteria that can be checked."
)


@dataclass(frozen=True)
class PlanOutcome:
    run: RunOutcome
    path: Path | None  # the plan file written, when the navigator succeeded
    tasks: int = 0
    error_kind: str | None = None
    error_message: str | None = None


def make_plan(
    root: Path,
    spec_file: Path | None,
    goal: str | None,
    out: Path,
    force: bool,
    options: RunOptions,
    notify: Notify = _no_notify,
) -> PlanOutcome:
    """Run the navigator on the spec or goal (exactly one) and write its plan to `out`."""
    if (spec_file is None) == (goal is None):
        raise InputError("give either --spec-file or --goal (exactly one)")
    if goal is not None and not goal.strip():
        raise InputError("--goal: empty goal")
    if out.exists() and not force:
        raise InputError(
            f"--out: {out} already exists", "Use --force to overwrite it, or --out to choose another file."
        )
    if not out.parent.resolve().is_dir():
        raise InputError(f"--out: {out.parent} is not a directory")
    layout = Layout(root)
    config = load_config(layout)
    spec = read_spec(spec_file) if spec_file is not None else None
    if goal is not None:
        plan_goal, prompt = goal, goal
    else:
        assert spec_file is not None
        plan_goal = f"Plan the work the specification {spec_file.name} describes"
        prompt = "Plan the work the specification above describes, starting from this repository as it is now."
    navigator_plan = parse_plan(
        {
            "goal": plan_goal,
            "assumptions": [],
            "tasks": [{"id": PLAN_TASK_ID, "role": NAVIGATOR, "prompt": prompt, "acceptance": _ACCEPTANCE}],
        },
        config,
        "plan",
    )
    outcome = create_and_drive(layout, config, navigator_plan, spec, options, notify)
    task = read_state(outcome.run_dir)["tasks"][PLAN_TASK_ID]
    if outcome.status != "succeeded":
        error = task.get("error") or {}
        return PlanOutcome(outcome, None, error_kind=error.get("kind"), error_message=error.get("message"))
    plan = parse_plan(task["result"], config, "the navigator's plan")
    text = json.dumps(plan.to_json(), indent=2, ensure_ascii=False) + "\n"
    if force:
        atomic_write(out, text.encode("utf-8"))
    else:
        try:
            with open(out, "x", encoding="utf-8") as fh:  # never over a file that appeared meanwhile
                fh.write(text)
        except FileExistsError:
            raise InputError(
                f"--out: {out} appeared while the navigator worked; its plan is in run {outcome.run_id}",
                "Use --force to overwrite it, or --out to choose another file.",
            ) from None
    return PlanOutcome(outcome, out, tasks=len(plan.tasks))
