"""`merge`, `clean`, `prune` and `validate`: what happens to a run's work afterwards."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from codex_orch.cli.common import checked_layout, emit_json, epilog, progress_for, run_id_or_latest, say, self_command


@click.command(
    epilog=epilog(
        ["codex-orch merge --run-id 20261125-101500-ab12", "codex-orch merge --run-id RUN --into release"],
        {
            0: "merged, or nothing to merge",
            1: "a conflict (nothing changed), or a task failed integration.doctor (the rest merged)",
            2: "no such run, bad input, or a doctor that cannot fail (integration.canary)",
        },
    )
)
@click.option("--run-id", required=True, help="The run whose work to merge (never guessed: merging moves a branch).")
@click.option("--into", help="The branch to move (default: the branch the run started from).")
@click.option("--allow-automerge", is_flag=True, help="Make merge commits where a fast-forward is not possible.")
def merge(run_id: str, into: str | None, allow_automerge: bool) -> None:
    """Bring a run's work into its base branch (all or nothing)."""
    from codex_orch.commands.merge import merge_run

    outcome = merge_run(checked_layout().root, run_id, allow_automerge=allow_automerge, into=into)
    say(merge_lines(outcome))
    import shlex

    say(f"next: {self_command()} clean --run-id {shlex.quote(run_id)}   (its worktrees and merged branches)", err=True)
    if outcome.failed:
        sys.exit(1)


def merge_lines(outcome: Any) -> list[str]:
    """What `merge` (and `run --merge`) did, one line each: doctor runs, steps, the move, what was left out."""
    lines = []
    queue = outcome.queue
    if queue is not None and queue.canary is not None:
        lines.append(f"doctor canary (CODEX_ORCH_CANARY=1): exit {queue.canary.returncode}: it can fail")
    for i, run in enumerate(queue.doctor_runs if queue is not None else (), start=1):
        verdict = "green" if run.ok else ("timed out" if run.timed_out else f"red (exit {run.returncode})")
        lines.append(f"doctor run {i} on {run.commit[:12]} ({', '.join(run.tasks)}): {verdict}")
    if queue is not None and queue.culprit:
        lines.append(f"integration_failed: {queue.culprit}: {queue.failed[queue.culprit]}")
    lines += [f"{s.source} ({s.branch} at {s.commit[:12]}): {s.how}" for s in outcome.steps]
    if outcome.integration_branch:
        lines.append(f"integration branch {outcome.integration_branch} at {outcome.new[:12]}")
    if outcome.changed:
        where = f"; files updated in {outcome.checkout}" if outcome.checkout else ""
        lines.append(f"{outcome.into}: {outcome.old[:12]} -> {outcome.new[:12]}{where}")
    elif queue is not None and (queue.failed or queue.left_out):
        lines.append(f"{outcome.into} stays at {outcome.old[:12]}: no green tip holds more than it does")
    else:
        lines.append(f"{outcome.into} already holds all of run {outcome.run_id}'s work: nothing to do")
    lines += [f"not merged: {what}" for what in outcome.left_out]
    return lines


@click.command(
    epilog=epilog(
        [
            "codex-orch clean --run-id RUN --dry-run",
            "codex-orch clean --run-id RUN",
            "codex-orch clean --run-id RUN --force",
        ],
        {0: "cleaned (kept items are listed with why)", 2: "no such run, or the run is being driven"},
    )
)
@click.option("--run-id", required=True, help="The run to clean (never guessed: cleaning removes things).")
@click.option("--keep-branches", is_flag=True, help="Remove the worktrees only.")
@click.option("--force", is_flag=True, help="Also remove uncommitted changes and unmerged branches.")
@click.option("--into", help="The branch work must be in to count as merged (default: the run's base branch).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed and kept; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries json_version).")
def clean(run_id: str, keep_branches: bool, force: bool, into: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove a run's worktrees and its merged branches."""
    from codex_orch.commands.clean import clean_run, clean_text

    plan = clean_run(
        checked_layout().root, run_id, keep_branches=keep_branches, force=force, into=into, dry_run=dry_run
    )
    if as_json:
        emit_json("clean", {"dry_run": dry_run, **plan.to_json()})
        return
    say(clean_text(plan, applied=not dry_run))
    if dry_run:
        say("dry run: nothing was changed; run it without --dry-run to do it", err=True)
    elif plan.keeps and not force:
        say("kept items hold work that is not merged; `clean --force` removes them too", err=True)


@click.command(
    epilog=epilog(
        [
            "codex-orch prune",
            "codex-orch prune --older-than 30 --apply",
            "codex-orch prune --run-id RUN --apply --no-resume",
        ],
        {0: "listed or done", 1: "--apply: a run could not be resumed or cleaned", 2: "bad input"},
    )
)
@click.option("--older-than", type=click.FloatRange(min=0), help="Runs last active this many days ago (default 7).")
@click.option("--run-id", "run_ids", multiple=True, help="These runs (repeatable) instead of every old enough run.")
@click.option("--apply", is_flag=True, help="Do it (default: only show what would be done).")
@click.option("--no-resume", is_flag=True, help="Do not resume unfinished tasks before cleaning.")
@click.option("--keep-branches", is_flag=True, help="Remove the worktrees only.")
@click.option("--spec-file", type=click.Path(path_type=Path), help="Spec text for the tasks it resumes.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries json_version).")
def prune(
    older_than: float | None,
    run_ids: tuple[str, ...],
    apply: bool,
    no_resume: bool,
    keep_branches: bool,
    spec_file: Path | None,
    as_json: bool,
) -> None:
    """Clean old runs (a dry run unless --apply)."""
    from codex_orch.commands.prune import apply_prune, plan_prune, prune_candidates_text

    if spec_file is not None:
        from codex_orch.engine.prompts import read_spec

        read_spec(spec_file)  # a bad spec file is an error now, before anything is planned
    root = checked_layout().root
    entries = plan_prune(root, run_ids, older_than)
    if apply and entries:
        with progress_for(True) as notify:
            entries = apply_prune(
                root, entries, resume=not no_resume, keep_branches=keep_branches, spec_file=spec_file, notify=notify
            )
    if as_json:
        emit_json("prune", {"dry_run": not apply, "runs": [e.to_json() for e in entries]})
    elif not entries:
        say("nothing to prune")
    else:
        lines: list[str] = []
        for entry in entries:
            lines += prune_candidates_text(entry, resume=not no_resume, applied=apply)
        if not apply:
            lines.append("dry run: nothing was changed and no agent started; --apply does it")
        say(lines)
    if any(e.error for e in entries):
        sys.exit(1)


@click.command(
    epilog=epilog(
        ["codex-orch validate", "codex-orch validate --run-id RUN --json"],
        {0: "every command passed", 1: "a command failed", 2: "no such run, or no validate.commands configured"},
    )
)
@click.option("--run-id", help="The run to validate (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (carries json_version).")
def validate(run_id: str | None, as_json: bool) -> None:
    """Run validate.commands (tests, lint) where a run's work is."""
    from codex_orch.commands.validate import validate_run

    def started(command: Any, where: str, worktree: Path) -> None:
        say(f"{command.name}: {' '.join(command.argv)} (in {worktree})", err=True)

    layout = checked_layout()
    outcome = validate_run(layout.root, run_id_or_latest(layout, run_id), on_start=started)
    if as_json:
        emit_json("validate", outcome.to_json())
        sys.exit(0 if outcome.ok else 1)
    lines = []
    for r in outcome.results:
        label = f"{r.name} [{r.where}]" if r.where != "run" else r.name
        if r.ok:
            lines.append(f"passed {label} ({r.duration:.1f}s)")
            continue
        why = "timed out" if r.timed_out else (r.error or f"exit {r.returncode}")
        lines += [f"FAILED {label}: {why} ({r.duration:.1f}s); output in {r.stdout_log}"]
        lines += ["    " + line for line in r.tail.splitlines()]
    lines.append("validation passed" if outcome.ok else "validation failed")
    say(lines)
    sys.exit(0 if outcome.ok else 1)
