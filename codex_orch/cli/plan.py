"""`plan`: the navigator writes a plan; `plan --check` lints one."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from codex_orch.cli.common import emit_json, epilog, progress_for, repo, run_options_value, say, say_error


@click.command(
    "plan",
    epilog=epilog(
        [
            "codex-orch plan --goal 'Add a --verbose flag' --out plan.json",
            "codex-orch plan --spec-file SPEC.md",
            "codex-orch plan --check plan.json --json",
        ],
        {
            0: "a plan written, or --check found no error",
            1: "the navigator gave no usable plan",
            2: "bad input, or --check found errors",
            130: "interrupted",
        },
    ),
)
@click.option("--spec-file", type=click.Path(path_type=Path), help="The specification to plan from (UTF-8 text).")
@click.option("--goal", help="A goal in a few words, instead of --spec-file.")
@click.option("--out", type=click.Path(path_type=Path), help="Where to write the plan (default: ./plan.json).")
@click.option("--force", is_flag=True, help="Overwrite --out when it exists.")
@click.option(
    "--check",
    "check_file",
    type=click.Path(path_type=Path),
    metavar="PLAN",
    help="Lint PLAN instead: run nothing, write nothing (--spec-file: the spec its prompts will carry; "
    "--run-id: the id the run will have).",
)
@click.option("--run-id", help="Name the navigator's run (default: date, time and a random suffix).")
@click.option("--no-progress", is_flag=True, help="Plain progress lines instead of the live table.")
@click.option("--json", "as_json", is_flag=True, help="With --check: machine-readable findings (carries json_version).")
def plan_command(
    spec_file: Path | None,
    goal: str | None,
    out: Path | None,
    force: bool,
    check_file: Path | None,
    run_id: str | None,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Let the navigator write a plan (--check PLAN: lint one)."""
    if check_file is not None:
        if goal is not None or out is not None or force:
            raise click.UsageError("--check takes a plan file and optionally --spec-file and --run-id, nothing else")
        _check_plan(check_file, spec_file, run_id, as_json)
        return
    if as_json:
        raise click.UsageError("--json goes with --check")
    if (spec_file is None) == (goal is None):
        raise click.UsageError("give either --spec-file or --goal (exactly one), or --check PLAN")
    from codex_orch.commands.planner import make_plan

    root = repo()
    with progress_for(no_progress) as notify:
        options = run_options_value(run_id, None, False)
        result = make_plan(root, spec_file, goal, out or Path("plan.json"), force, options, notify)
    run = result.run
    if result.path is not None:
        say([f"wrote {result.path}: {result.tasks} tasks (navigator run {run.run_id})"])
        say(f"next: codex-orch run --plan-file {result.path}", err=True)
        return
    if run.status == "interrupted":
        say_error(f"interrupted: no plan was written (navigator run {run.run_id})")
    else:
        say_error(
            f"error: the navigator gave no usable plan ({result.error_kind}: {result.error_message}); "
            f"navigator run {run.run_id}, state: {run.run_dir / 'state.json'}"
        )
    sys.exit(run.exit_code)


def _check_plan(plan_file: Path, spec_file: Path | None, run_id: str | None, as_json: bool) -> None:
    from codex_orch.commands.preflight import check_plan

    result = check_plan(repo(), plan_file, spec_file, run_id)
    if as_json:
        emit_json(
            "plan-check",
            {
                "plan": result.plan_label,
                "tasks": result.tasks,
                "errors": result.errors,
                "warnings": result.warnings,
                "findings": [{"level": f.level, "message": f.message} for f in result.findings],
                "largest_prompt": list(result.largest_prompt) if result.largest_prompt else None,
                "estimate": result.estimate.to_json() if result.estimate else None,
            },
        )
        sys.exit(result.exit_code)
    lines = [str(finding) for finding in result.findings]
    if result.estimate is not None:  # before the summary, which stays the last line
        lines += result.estimate.lines()
    counts = f"{result.errors} error(s), {result.warnings} warning(s)"
    if result.tasks is None:
        lines.append(f"{result.plan_label}: the plan does not load; {counts}")
    else:
        largest = f", largest prompt {result.largest_prompt[1]:,} characters" if result.largest_prompt else ""
        lines.append(f"{result.plan_label}: {result.tasks} task(s){largest}; {counts}")
    say(lines)
    sys.exit(result.exit_code)
