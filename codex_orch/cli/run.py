"""`run`, `task`, `resume` and `cancel`: the commands that drive a run, and the one that stops it."""

from __future__ import annotations

from pathlib import Path

import click

from codex_orch.cli.common import (
    drive_options,
    epilog,
    finish_run,
    progress_for,
    repo,
    run_options,
    run_options_value,
    say_error,
)


@click.command(
    epilog=epilog(
        [
            "codex-orch run --plan-file plan.json",
            "codex-orch run --plan-file plan.json --spec-file SPEC.md --max-workers 4",
            "codex-orch run --plan-file plan.json --merge",
        ],
        {
            0: "every task succeeded (--merge: and its work was merged)",
            1: "the run finished with failed or blocked tasks (--merge: or one failed integration)",
            2: "bad input (nothing written)",
            130: "interrupted by Ctrl-C or SIGTERM (resume continues)",
        },
    )
)
@click.option("--plan-file", required=True, type=click.Path(path_type=Path), help="The plan (JSON).")
@click.option("--spec-file", type=click.Path(path_type=Path), help="A UTF-8 text file given to every prompt.")
@click.option("--base-ref", help="The commit the run starts from (default: git.base_ref of the config).")
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0),
    help="Refuse to start when the low end of the plan's estimated cost (plan --check) is over this, in US dollars.",
)
@click.option(
    "--merge",
    "merge_after",
    is_flag=True,
    help="At the end, merge the succeeded tasks' work into the base branch (through the integration queue "
    "when integration.doctor is set), as `merge` does; also after a partial run.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "temporal"]),
    help="Where the tasks run: this process (local), or Temporal workers (docs/scale-out.md). Default: executor.",
)
@click.option("--temporal-address", help="HOST:PORT of the Temporal server (default: temporal.address).")
@click.option("--task-queue", help="The workers' task queue (default: temporal.task_queue).")
@click.option("--worktree", type=click.Path(path_type=Path), hidden=True)  # the job service's branch worktree
@run_options
def run(
    plan_file: Path,
    spec_file: Path | None,
    base_ref: str | None,
    max_cost: float | None,
    merge_after: bool,
    executor: str | None,
    temporal_address: str | None,
    task_queue: str | None,
    worktree: Path | None,
    run_id: str | None,
    agent: str | None,
    max_workers: int | None,
    fail_fast: bool,
    no_progress: bool,
    follow_next_tasks: bool | None,
) -> None:
    """Execute a plan: each task in a worktree, its work committed."""
    from dataclasses import replace

    from codex_orch.engine.run import start_run

    root = repo()
    if max_cost is not None:
        from codex_orch.commands.estimate import check_max_cost

        check_max_cost(root, plan_file, spec_file, max_cost, agent)
    inputs = (plan_file, spec_file) if spec_file else (plan_file,)
    options = run_options_value(
        run_id, max_workers, fail_fast, follow_next_tasks, inputs, agent, max_cost=max_cost, base_ref=base_ref
    )
    settings = (("address", temporal_address), ("task_queue", task_queue))
    options = replace(options, executor=executor, executor_settings=settings, worktree=worktree and worktree.resolve())
    with progress_for(no_progress) as notify:
        outcome = start_run(
            root, plan_file, spec_file, options, notify, warn=lambda line: say_error(f"warning: {line}")
        )
    finish_run(outcome, merge=merge_after)


@click.command(
    epilog=epilog(
        [
            'codex-orch task --role implementer "Add a --verbose flag to the CLI"',
            'codex-orch task --role reviewer "Review the error handling in src/"',
        ],
        {
            0: "every task succeeded",
            1: "the run finished with failed or blocked tasks",
            2: "bad input (nothing written)",
            130: "interrupted by Ctrl-C or SIGTERM (resume continues)",
        },
    )
)
@click.option("--role", required=True, help="The role (or an alias) that carries the task out.")
@click.option("--acceptance", default="", help="Acceptance criteria.")
@click.option("--spec-file", type=click.Path(path_type=Path), help="A UTF-8 text file given to the prompt.")
@click.argument("prompt")
@run_options
def task(
    role: str,
    acceptance: str,
    spec_file: Path | None,
    prompt: str,
    run_id: str | None,
    agent: str | None,
    max_workers: int | None,
    fail_fast: bool,
    no_progress: bool,
    follow_next_tasks: bool | None,
) -> None:
    """Run a single task (a one-task plan)."""
    from codex_orch.config import load_config
    from codex_orch.engine.prompts import read_spec
    from codex_orch.engine.run import create_and_drive
    from codex_orch.layout import Layout
    from codex_orch.plan_file import parse_plan

    root = repo()
    layout = Layout(root)
    config = load_config(layout)
    plan = parse_plan(
        {
            "goal": prompt,
            "assumptions": [],
            "tasks": [{"role": role, "prompt": prompt, "acceptance": acceptance, "blocked_by": []}],
        },
        config,
        "--role/PROMPT",
    )
    spec = read_spec(spec_file) if spec_file else None
    with progress_for(no_progress) as notify:
        options = run_options_value(
            run_id, max_workers, fail_fast, follow_next_tasks, (spec_file,) if spec_file else (), agent
        )
        outcome = create_and_drive(layout, config, plan, spec, options, notify)
    finish_run(outcome)


@click.command(
    epilog=epilog(
        [
            "codex-orch resume --run-id 20261125-101500-ab12",
            "codex-orch resume --run-id 20261125-101500-ab12 --budget-run-cost 20",
            "codex-orch runs   # to find the id",
        ],
        {
            0: "every task succeeded",
            1: "the run finished with failed or blocked tasks",
            2: "bad input (nothing written)",
            130: "interrupted by Ctrl-C or SIGTERM (resume continues)",
        },
    )
)
@click.option("--run-id", required=True, help="The run to continue.")
@click.option("--spec-file", type=click.Path(path_type=Path), help="Replace the run's spec text.")
@click.option(
    "--budget-run-cost",
    type=click.FloatRange(min=0, min_open=True),
    help="The run's budgets.run_cost from now on, in US dollars (after it ended budget_exhausted).",
)
@drive_options
def resume(
    run_id: str,
    spec_file: Path | None,
    budget_run_cost: float | None,
    max_workers: int | None,
    fail_fast: bool,
    no_progress: bool,
    follow_next_tasks: bool | None,
) -> None:
    """Continue a run after Ctrl-C, a crash or failures.

    Interrupted tasks go on on their agent thread; failed and blocked tasks run again; succeeded tasks
    never rerun."""
    from codex_orch.engine.run import resume_run

    root = repo()
    options = run_options_value(None, max_workers, fail_fast, follow_next_tasks, budget_run_cost=budget_run_cost)
    with progress_for(no_progress) as notify:
        outcome = resume_run(root, run_id, spec_file, options, notify)
    finish_run(outcome)


@click.command(
    epilog=epilog(
        ["codex-orch cancel --run-id 20261125-101500-ab12", "codex-orch cancel --run-id RUN --no-wait"],
        {0: "stopped, or it was not running", 2: "no such run, or its driver cannot be found"},
    )
)
@click.option("--run-id", required=True, help="The run to stop (never guessed).")
@click.option("--no-wait", is_flag=True, help="Return once the run is told to stop, before it has stopped.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries json_version).")
def cancel(run_id: str, no_wait: bool, as_json: bool) -> None:
    """Stop a run from another shell, as Ctrl-C stops it in its own.

    Its agents are stopped, what they wrote stays in their worktrees, and the run is recorded
    interrupted: `resume` continues it. A Temporal run whose submitter is gone has its workflow
    cancelled."""
    import shlex

    from codex_orch.cli.common import emit_json, say, self_command
    from codex_orch.commands.cancel import cancel_run

    done = cancel_run(repo(), run_id, wait=not no_wait)
    if as_json:
        emit_json("cancel", {"run_id": done.run_id, "how": done.how, "status": done.status, "pid": done.pid})
        return
    resume = f"`{self_command()} resume --run-id {shlex.quote(run_id)}` continues it"
    if done.how == "signalled":
        stopped = f"it stopped: {done.status}; {resume}" if not no_wait else "it is stopping"
        say(f"run {run_id}: SIGTERM sent to its driver (pid {done.pid}); {stopped}.")
    elif done.how == "workflow":
        say(f"run {run_id}: its Temporal workflow is cancelled and the run recorded interrupted; {resume}.")
    elif done.status == "running":
        say(f"run {run_id} has no live driver (it was killed): nothing runs to cancel; {resume}.")
    else:
        say(f"run {run_id} is not running ({done.status}): nothing to cancel.")
