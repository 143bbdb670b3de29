"""What the dashboard shows, as JSON-ready data read from disk: nothing here writes.

A run is its folder under `.orchestrator/runs/` (state.json + journal, folded by `state.read_state`),
a task adds its attempts' recorded events (commands/events.py), their validation reports and its
commit's diff. Agent text stays text: the pages set it with `textContent`, never as markup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codex_orch.agents.base import Usage
from codex_orch.commands.events import attempt_folder, read_attempt
from codex_orch.commands.runs import is_driven, list_runs, run_dir
from codex_orch.commands.views import TaskView, build_view, seconds_between, view_to_json
from codex_orch.engine.gates import log_tail
from codex_orch.errors import InputError
from codex_orch.git.repo import Git
from codex_orch.layout import Layout
from codex_orch.run_record import RunRecord
from codex_orch.state import read_state

DIFF_BYTES = 512 * 1024  # a bigger diff is cut, and says so
EVENTS_SHOWN = 2000  # an attempt's last events on its task page (a flooding agent writes millions)
VALIDATION_BYTES = 16 * 1024
SHA_CHARS = frozenset("0123456789abcdef")


def runs_json(root: Path) -> list[dict[str, Any]]:
    """Every run: status, start, end, tasks done of total, cost; newest first."""
    layout = Layout(root)
    out = []
    for summary in list_runs(layout):
        entry = summary.to_json()
        entry["cost_usd"] = None
        if summary.status != "unreadable":
            view = build_view(RunRecord.from_state(read_state(layout.run_dir(summary.run_id))))
            costs = [t.cost_usd for t in view.tasks if t.cost_usd is not None]
            entry["cost_usd"] = round(sum(costs), 6) if costs else None
            entry["done"] = sum(1 for t in view.tasks if t.status in ("succeeded", "failed", "blocked", "cancelled"))
        out.append(entry)
    return out[::-1]


def depths(tasks: dict[str, dict[str, Any]], order: list[str]) -> dict[str, int]:
    """Each task's depth in the DAG: 0 without dependencies, else one more than its deepest one."""
    depth: dict[str, int] = {}
    for tid in order:  # a task may wait for one listed after it: walk iteratively, no recursion
        stack = [tid]
        while stack:
            current = stack[-1]
            if current in depth:
                stack.pop()
                continue
            pending = [d for d in tasks[current]["blocked_by"] if d in tasks and d not in depth and d not in stack]
            if pending:
                stack.extend(pending)
                continue
            known = [depth[d] for d in tasks[current]["blocked_by"] if d in depth]
            depth[current] = 1 + max(known) if known else 0
            stack.pop()
    return depth


def compact_task(task: dict[str, Any]) -> dict[str, Any]:
    """A task's live state, as the run page's graph needs it (sent on every change)."""
    error = task.get("error") or {}
    return {
        "id": task["id"],
        "status": task["status"],
        "attempts": len(task["attempts"]),
        "error_kind": error.get("kind"),
        "commit": task.get("commit"),
    }


def _task_row(task: dict[str, Any], depth: int, now: str) -> dict[str, Any]:
    """What the run page shows of a task (its own page has the rest): small, for 1,000-task plans."""
    costs = [a["cost_usd"] for a in task["attempts"] if a.get("cost_usd") is not None]
    result = task.get("result")
    error = task.get("error") or {}
    end = task.get("ended_at") or (now if task["status"] == "running" else None)
    return {
        "id": task["id"],
        "role": task["role"],
        "status": task["status"],
        "blocked_by": task["blocked_by"],
        "depth": depth,
        "attempts": len(task["attempts"]),
        "duration": seconds_between(task.get("started_at"), end),
        "cost_usd": round(sum(costs), 6) if costs else None,
        "summary": result.get("summary") if isinstance(result, dict) else None,
        "error": {"kind": error.get("kind"), "message": error.get("message")} if error.get("kind") else None,
        "commit": task.get("commit"),
    }


def run_json(root: Path, run_id: str) -> dict[str, Any]:
    """A run and a row per task (with its depth in the DAG), totals of tokens and cost."""
    folder = run_dir(Layout(root), run_id)
    state = read_state(folder)
    depth = depths(state["tasks"], state["task_order"])
    now = datetime.now(UTC).isoformat()
    tasks = [_task_row(state["tasks"][tid], depth.get(tid, 0), now) for tid in state["task_order"]]
    usage = Usage()
    for task in state["tasks"].values():
        for attempt in task["attempts"]:
            usage = usage + Usage.from_json(attempt.get("usage"))
    costs = [t["cost_usd"] for t in tasks if t["cost_usd"] is not None]
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    return {
        "run_id": state["run_id"],
        "status": state["status"],
        "goal": state.get("goal"),
        "created_at": state.get("created_at"),
        "ended_at": state.get("ended_at"),
        "branch": state.get("branch"),
        "base_branch": state.get("base_branch"),
        "counts": counts,
        "usage": usage.to_json(),
        "cost_usd": round(sum(costs), 6) if costs else None,
        "driven": is_driven(folder),
        "seq": state["seq"],
        "tasks": tasks,
    }


def task_json(root: Path, run_id: str, task_id: str) -> dict[str, Any]:
    """One task: its view (with its setup, gate runs and fix rounds; a failed one's log tail), and per
    attempt its events, validation report, agent and usage; its diff."""
    folder = run_dir(Layout(root), run_id)
    state = read_state(folder)
    if task_id not in state["tasks"]:
        raise InputError(f"no task {task_id!r} in run {run_id}")
    view = build_view(RunRecord.from_state(state))
    index = [t.id for t in view.tasks].index(task_id)
    entry = view_to_json(view)["tasks"][index]
    raw = state["tasks"][task_id]
    for attempt, recorded in zip(entry["attempts"], raw["attempts"], strict=True):
        agent = recorded.get("agent") or "codex"
        attempt["started_at"] = recorded.get("started_at")
        attempt["ended_at"] = recorded.get("ended_at")
        events = read_attempt(folder, task_id, recorded["n"], agent)
        attempt["events"] = [e.to_json() for e in events[-EVENTS_SHOWN:]]
        attempt["events_left_out"] = max(0, len(events) - EVENTS_SHOWN)
        attempt["validation"] = _validation(attempt_folder(folder, task_id, recorded["n"]))
    entry["started_at"], entry["ended_at"] = raw.get("started_at"), raw.get("ended_at")
    _add_tails(folder, entry)
    entry["diff"] = commit_diff(root, view.tasks[index])
    entry["run_id"] = run_id
    entry["seq"] = state["seq"]
    return entry


def _add_tails(folder: Path, entry: dict[str, Any]) -> None:
    """The end of the log of each failed gate run and of a failed setup (None when passed or unreadable)."""
    for run in entry["gates"]:
        run["tail"] = None if run.get("ok") else _log_tail(folder, run.get("log"))
    if entry["setup"] is not None:
        entry["setup"]["tail"] = None if entry["setup"].get("ok") else _log_tail(folder, entry["setup"].get("log"))


def _log_tail(folder: Path, log: Any) -> str | None:
    """A log's tail, read only when the recorded path lies in the run's folder, where codex-orch writes them."""
    if not isinstance(log, str):
        return None
    path = Path(log).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        return None
    return log_tail(path)


def _validation(folder: Path) -> str | None:
    try:
        with open(folder / "validation.txt", "rb") as fh:
            return fh.read(VALIDATION_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


def commit_diff(root: Path, task: TaskView) -> dict[str, Any] | None:
    """The task's commit as a patch (cut at DIFF_BYTES), or None when it made none."""
    commit = task.commit
    if not commit or not set(commit) <= SHA_CHARS:
        return None
    code, out, err = Git(root).run_full(
        "show", "--no-color", "--no-ext-diff", "--no-textconv", "--stat", "--patch", "--format=%H%n%s", commit, "--"
    )
    if code != 0:
        return {"commit": commit, "patch": "", "truncated": False, "error": err.strip()[:500]}
    truncated = len(out) > DIFF_BYTES
    return {"commit": commit, "patch": out[:DIFF_BYTES], "truncated": truncated, "error": None}
