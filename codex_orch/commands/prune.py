"""`codex-orch prune`: clean many runs at once (all older than N days, or those named), each by
clean's own plan; a dry run unless --apply, which first resumes unfinished runs so that interrupted
work ends up committed rather than deleted."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from codex_orch.commands.clean import CleanPlan, clean_run, clean_text, plan_clean
from codex_orch.commands.runs import UNFINISHED, all_runs, is_driven, last_activity, load_run, run_dir
from codex_orch.engine.context import Notify, _no_notify
from codex_orch.errors import OrchError
from codex_orch.layout import Layout
from codex_orch.run_record import RunRecord


@dataclass(frozen=True)
class PruneEntry:
    run_id: str
    status: str
    last_activity: datetime
    unfinished: tuple[str, ...]  # "T0002 (interrupted)", resumed first unless --no-resume
    plan: CleanPlan | None  # None: skipped
    skipped: str | None = None
    resumed: str | None = None  # the run's status after the resume (--apply)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "last_activity": self.last_activity.isoformat(),
            "unfinished": list(self.unfinished),
            "plan": self.plan.to_json() if self.plan else None,
            "skipped": self.skipped,
            "resumed": self.resumed,
            "error": self.error,
        }


def plan_prune(root: Path, run_ids: tuple[str, ...] = (), older_than_days: float | None = None) -> list[PruneEntry]:
    """The runs prune would act on and what it would do to each, by reading only."""
    layout = Layout(root)
    if older_than_days is None and not run_ids:
        older_than_days = 7
    chosen = list(dict.fromkeys(run_ids)) if run_ids else all_runs(layout)
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days) if older_than_days is not None else None
    entries = []
    for run_id in chosen:
        run = RunRecord.from_state(load_run(layout, run_id))
        when = last_activity(run)
        if cutoff is not None and when > cutoff:
            continue
        unfinished = tuple(f"{t.id} ({t.status})" for t in run.tasks if t.status in UNFINISHED)
        if is_driven(run_dir(layout, run_id)):
            entries.append(PruneEntry(run_id, run.status, when, unfinished, None, "a codex-orch process drives it"))
            continue
        plan = plan_clean(root, run)
        if not plan.items and not unfinished:
            continue  # nothing left of it
        entries.append(PruneEntry(run_id, run.status, when, unfinished, plan))
    return entries


def apply_prune(
    root: Path,
    entries: list[PruneEntry],
    resume: bool = True,
    keep_branches: bool = False,
    spec_file: Path | None = None,
    notify: Notify = _no_notify,
) -> list[PruneEntry]:
    """Resume (unless told not to) and clean each run; one run's trouble does not stop the others."""
    from codex_orch.engine.drive import RunOptions
    from codex_orch.engine.run import resume_run

    results = []
    for entry in entries:
        if entry.plan is None:
            results.append(entry)
            continue
        resumed = None
        try:
            if resume and entry.unfinished:
                resumed = resume_run(root, entry.run_id, spec_file, RunOptions(), notify).status
            plan = clean_run(root, entry.run_id, keep_branches=keep_branches)
        except OrchError as exc:
            results.append(replace(entry, resumed=resumed, error=str(exc)))
            continue
        results.append(replace(entry, plan=plan, resumed=resumed))
    return results


def prune_candidates_text(entry: PruneEntry, resume: bool, applied: bool) -> list[str]:
    """Lines describing one run of a prune, as a plan (dry run) or as what was done."""
    lines = [f"run {entry.run_id} ({entry.status}, last active {_ago(entry.last_activity)})"]
    if entry.skipped:
        return [*lines, f"  skipped: {entry.skipped}"]
    if entry.unfinished:
        tasks = ", ".join(entry.unfinished)
        if not resume:
            lines.append(f"  not resumed (--no-resume): {tasks}")
        elif applied:
            lines.append(f"  resumed: {tasks} -> run {entry.resumed or 'not resumed'}")
        else:
            lines.append(f"  would resume: {tasks} (the clean below is then decided again)")
    if entry.error:
        return [*lines, f"  error: {entry.error}"]
    if entry.plan is not None:
        lines += ["  " + line for line in clean_text(entry.plan, applied)]
    return lines


def _ago(when: datetime) -> str:
    seconds = max(0.0, (datetime.now(UTC) - when).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"
