"""A recorded run as the lifecycle commands see it (report, merge, clean, prune, validate).

Finding a run, taking it for a change (nobody may be driving it), its tasks in dependency order,
and the branches that carry its work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codex_orch.errors import InputError, OrchError
from codex_orch.git.refs import is_ancestor, ref_sha
from codex_orch.git.repo import Git
from codex_orch.layout import Layout, id_problem
from codex_orch.plan import Task, topological_order
from codex_orch.run_lock import RunLock
from codex_orch.run_record import RunRecord, TaskRecord, read_record
from codex_orch.state import JOURNAL_NAME, RunStore, read_state

UNFINISHED = ("pending", "running", "interrupted", "cancelled")


def run_dir(layout: Layout, run_id: str) -> Path:
    """The run's folder; a bad or unknown id is an input error."""
    problem = id_problem(run_id)
    if problem:
        raise InputError(f"--run-id: {run_id!r} {problem}")
    folder = layout.run_dir(run_id)
    if not (folder / JOURNAL_NAME).is_file():
        raise InputError(f"--run-id: no run {run_id!r} in {layout.runs_dir}", "`codex-orch runs` lists them.")
    return folder


def load_run(layout: Layout, run_id: str) -> dict[str, Any]:
    state: dict[str, Any] = read_state(run_dir(layout, run_id))
    return state


def all_runs(layout: Layout) -> list[str]:
    if not layout.runs_dir.is_dir():
        return []
    return sorted(p.name for p in layout.runs_dir.iterdir() if (p / JOURNAL_NAME).is_file())


def latest_run(layout: Layout) -> str:
    """The run most recently active (its journal written last)."""
    runs = [layout.run_dir(name) for name in all_runs(layout)]
    if not runs:
        raise OrchError(f"no runs in {layout.runs_dir}", "Start one with `codex-orch run --plan-file PLAN`.")
    return max(runs, key=lambda p: (p / JOURNAL_NAME).stat().st_mtime).name


@dataclass(frozen=True)
class RunSummary:
    """One line of `codex-orch runs`."""

    run_id: str
    status: str  # the run's status; "unreadable" when its state cannot be read
    created_at: str | None
    ended_at: str | None
    tasks: int
    succeeded: int
    failed: int
    branch: str | None
    base_branch: str | None
    driven: bool  # a codex-orch process drives it now
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def list_runs(layout: Layout) -> list[RunSummary]:
    """Every run of the repository, oldest first; a run whose state cannot be read is listed as such."""
    out = []
    for name in all_runs(layout):
        folder = layout.run_dir(name)
        try:
            run = read_record(folder)
        except OrchError as exc:
            out.append(RunSummary(name, "unreadable", None, None, 0, 0, 0, None, None, is_driven(folder), str(exc)))
            continue
        statuses = [t.status for t in run.tasks]
        branches = {t.branch for t in run.tasks if t.branch}
        out.append(
            RunSummary(
                run_id=name,
                status=run.status,
                created_at=run.created_at,
                ended_at=run.ended_at,
                tasks=len(statuses),
                succeeded=statuses.count("succeeded"),
                failed=sum(1 for s in statuses if s in ("failed", "blocked")),
                branch=run.branch or (f"{len(branches)} task branches" if branches else None),
                base_branch=run.base_branch,
                driven=is_driven(folder),
            )
        )
    return sorted(out, key=lambda r: (r.created_at or "", r.run_id))


def last_activity(run: RunRecord) -> datetime:
    """When the run last did work: its end, or its latest task event after a crash. What merge,
    clean or validate recorded later does not count (a cleaned run does not grow younger)."""
    stamps = [run.created_at, run.ended_at]
    for task in run.tasks:
        stamps += [task.started_at, task.ended_at]
        stamps += [a.ended_at or a.started_at for a in task.attempts]
    known = [datetime.fromisoformat(s) for s in stamps if s]
    return max(known) if known else datetime.fromtimestamp(0, UTC)


def is_driven(folder: Path) -> bool:
    """Does a codex-orch process hold the run's lock now? Reads only: creates no lock file."""
    return (folder / "lock").is_file() and RunLock(folder).is_held_elsewhere()


@contextmanager
def changing(folder: Path) -> Iterator[RunStore]:
    """The run's store, with its lock held: refused while a codex-orch process drives the run."""
    lock = RunLock(folder).acquire()
    try:
        with RunStore.open(folder) as store:
            yield store
    finally:
        lock.release()


def dependency_order(run: RunRecord) -> list[TaskRecord]:
    """The run's tasks, dependencies first; plan order among tasks ready together."""
    by_id = {t.id: t for t in run.tasks}
    tasks = [Task(id=t.id, role=t.role, prompt="", acceptance="", blocked_by=t.blocked_by) for t in run.tasks]
    return [by_id[t.id] for t in topological_order(tasks)]


def task_tips(git: Git, run: RunRecord) -> list[tuple[str, str, str]]:
    """(task id, branch, tip) of each succeeded task, in dependency order (per-task workspaces)."""
    tips = []
    for task in dependency_order(run):
        if task.status != "succeeded" or not task.branch:
            continue
        sha = ref_sha(git, f"refs/heads/{task.branch}")
        if sha is None:
            raise InputError(
                f"branch {task.branch!r} of task {task.id} no longer exists",
                "Was the run cleaned? Nothing of it can be merged or validated now.",
            )
        tips.append((task.id, task.branch, sha))
    return tips


def heads(git: Git, tips: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The tips no other tip contains: together they hold all the work (a task's branch starts from
    its dependencies' commits, so a chain is one head and a diamond joined by a task is one too)."""
    out = []
    for i, (tid, branch, sha) in enumerate(tips):
        contained = any(other != sha and is_ancestor(git, sha, other) for j, (_, _, other) in enumerate(tips) if j != i)
        duplicate = any(other == sha for _, _, other in tips[i + 1 :])
        if not contained and not duplicate:
            out.append((tid, branch, sha))
    return out
