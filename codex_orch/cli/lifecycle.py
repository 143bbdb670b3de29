"""`merge`, `clean`, `prune` and `validate`: what happens to a run's work afterwards."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from codex_orch.cli.common import progress_for, repo, say


@click.command()
@click.option("--run-id", required=True, help="The run whose work to merge.")
@click.option("--into", help="The branch to move (default: the branch the run started from).")
@click.option("--allow-automerge", is_flag=True, help="Make merge commits where a fast-forward is not possible.")
def merge(run_id: str, into: str | None, allow_automerge: bool) -> None:
    """Bring a run's work into its base branch; on any conflict nothing changes."""
    from codex_orch.commands.merge import merge_run

    outcome = merge_run(repo(), run_id, allow_automerge=allow_automerge, into=into)
    lines = [f"{s.source} ({s.branch} at {s.commit[:12]}): {s.how}" for s in outcome.steps]
    if outcome.integration_branch:
        lines.append(f"integration branch {outcome.integration_branch} at {outcome.new[:12]}")
    if outcome.changed:
        where = f"; files updated in {outcome.checkout}" if outcome.checkout else ""
        lines.append(f"{outcome.into}: {outcome.old[:12]} -> {outcome.new[:12]}{where}")
    else:
        lines.append(f"{outcome.into} already holds all of run {run_id}'s work: nothing to do")
    lines += [f"not merged: {what}" for what in outcome.left_out]
    say(lines)


@click.command()
@click.option("--run-id", required=True, help="The run to clean.")
@click.option("--keep-branches", is_flag=True, help="Remove the worktrees only.")
@click.option("--force", is_flag=True, help="Also remove uncommitted changes and unmerged branches.")
@click.option("--into", help="The branch work must be in to count as merged (default: the run's base branch).")
def clean(run_id: str, keep_branches: bool, force: bool, into: str | None) -> None:
    """Remove a run's worktrees and branches, keeping any that hold work not in the base branch."""
    from codex_orch.commands.clean import clean_run, clean_text

    plan = clean_run(repo(), run_id, keep_branches=keep_branches, force=force, into=into)
    say(clean_text(plan, applied=True))
    if plan.keeps and not force:
        say("kept items hold work that is not merged; `clean --force` removes them too", err=True)


@click.command()
@click.option("--older-than", type=click.FloatRange(min=0), help="Runs last active this many days ago (default 7).")
@click.option("--run-id", "run_ids", multiple=True, help="These runs (repeatable) instead of every old enough run.")
@click.option("--apply", is_flag=True, help="Do it (default: only show what would be done).")
@click.option("--no-resume", is_flag=True, help="Do not resume unfinished tasks before cleaning.")
@click.option("--keep-branches", is_flag=True, help="Remove the worktrees only.")
@click.option("--spec-file", type=click.Path(path_type=Path), help="Spec text for the tasks it resumes.")
def prune(
    older_than: float | None,
    run_ids: tuple[str, ...],
    apply: bool,
    no_resume: bool,
    keep_branches: bool,
    spec_file: Path | None,
) -> None:
    """Clean old runs (a dry run unless --apply); unfinished tasks are resumed first."""
    from codex_orch.commands.clean import apply_prune, plan_prune, prune_candidates_text

    if spec_file is not None:
        from codex_orch.engine.prompts import read_spec

        read_spec(spec_file)  # a bad spec file is an error now, before anything is planned
    root = repo()
    entries = plan_prune(root, run_ids, older_than)
    if not entries:
        say("nothing to prune")
        return
    if apply:
        with progress_for(True) as notify:
            entries = apply_prune(
                root, entries, resume=not no_resume, keep_branches=keep_branches, spec_file=spec_file, notify=notify
            )
    lines: list[str] = []
    for entry in entries:
        lines += prune_candidates_text(entry, resume=not no_resume, applied=apply)
    if not apply:
        lines.append("dry run: nothing was changed and no agent started; --apply does it")
    say(lines)
    if any(e.error for e in entries):
        sys.exit(1)


@click.command()
@click.option("--run-id", required=True, help="The run to validate.")
def validate(run_id: str) -> None:
    """Run the configured test and lint commands (validate.commands) where the run's work is."""
    from codex_orch.commands.validate import validate_run

    def started(command: Any, where: str, worktree: Path) -> None:
        say(f"{command.name}: {' '.join(command.argv)} (in {worktree})", err=True)

    outcome = validate_run(repo(), run_id, on_start=started)
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
