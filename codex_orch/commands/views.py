"""Results are data: one view of a run's state feeds the table, the report and --json."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from codex_orch.agents.base import Usage

VIEW_VERSION = 1


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


@dataclass(frozen=True)
class AttemptView:
    n: int
    thread_id: str | None
    failure: str | None
    failure_message: str
    duration: float | None
    usage: Usage
    agent: str = "codex"
    model: str | None = None
    fallback_from: str | None = None
    cost_usd: float | None = None

    @property
    def runs_on(self) -> str:
        """`claude (claude-opus-4)`, or the agent alone when no model was named."""
        return f"{self.agent} ({self.model})" if self.model else self.agent


@dataclass(frozen=True)
class TaskView:
    id: str
    role: str
    status: str
    blocked_by: tuple[str, ...]
    attempts: tuple[AttemptView, ...]
    thread_id: str | None
    commit: str | None
    branch: str | None
    files_changed: tuple[str, ...]
    error_kind: str | None
    error_message: str | None
    duration: float | None
    usage: Usage
    result: dict[str, Any] | None = None
    violations: tuple[str, ...] = ()
    file_claims: dict[str, Any] | None = None  # engine/accounting.py: answer vs commit, when they disagree
    # engine/forecast.py: conflicts predicted with other tasks ({"with", "files"}; both sides list it)
    forecast: tuple[dict[str, Any], ...] = ()
    held: dict[str, Any] | None = None  # not started while a predicted conflict on its paths was open
    integration: dict[str, Any] | None = None  # what the merge queue did with its work

    @property
    def notes(self) -> tuple[str, ...]:
        """The forecast, the hold and the merge queue's verdict, as short lines for the status table."""
        out = [f"conflict predicted with {c['with']}: {', '.join(c['files'][:3])}" for c in self.forecast]
        if self.held:
            out.append(f"held for {' / '.join(self.held['by'])}'s conflict on {', '.join(self.held['files'][:3])}")
        if self.integration and self.integration.get("result") != "landed":
            out.append(f"integration: {self.integration['result']}")
        return tuple(out)

    @property
    def failure_kinds(self) -> tuple[str, ...]:
        return tuple(a.failure for a in self.attempts if a.failure)

    @property
    def agents(self) -> str:
        """The agents its attempts ran on, in order: `codex`, or `codex→claude` after a fallback."""
        return "→".join(dict.fromkeys(a.agent for a in self.attempts)) or "-"

    @property
    def cost_usd(self) -> float | None:
        costs = [a.cost_usd for a in self.attempts if a.cost_usd is not None]
        return round(sum(costs), 6) if costs else None


@dataclass(frozen=True)
class RunView:
    run_id: str
    status: str
    created_at: str | None
    ended_at: str | None
    base_commit: str | None
    branch: str | None
    single_workspace: bool
    tasks: tuple[TaskView, ...]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for task in self.tasks:
            total = total + task.usage
        return total


def build_view(state: dict[str, Any]) -> RunView:
    tasks = []
    counts: dict[str, int] = {}
    predicted: dict[str, list[dict[str, Any]]] = {}  # both sides of every predicted conflict
    for tid in state["task_order"]:
        for c in state["tasks"][tid].get("forecast") or ():
            for side, other in ((tid, c["with"]), (c["with"], tid)):  # once per pair, when both predicted it
                if not any(p["with"] == other for p in predicted.setdefault(side, [])):
                    predicted[side].append({"with": other, "files": c["files"]})
    for tid in state["task_order"]:
        t = state["tasks"][tid]
        attempts = tuple(
            AttemptView(
                n=a["n"],
                thread_id=a.get("thread_id"),
                failure=a.get("failure"),
                failure_message=a.get("failure_message") or "",
                duration=a.get("duration"),
                usage=Usage.from_json(a.get("usage")),
                agent=a.get("agent") or "codex",
                model=a.get("model"),
                fallback_from=a.get("fallback_from"),
                cost_usd=a.get("cost_usd"),
            )
            for a in t["attempts"]
        )
        usage = Usage()
        for a in attempts:
            usage = usage + a.usage
        error = t.get("error") or {}
        tasks.append(
            TaskView(
                id=tid,
                role=t["role"],
                status=t["status"],
                blocked_by=tuple(t["blocked_by"]),
                attempts=attempts,
                thread_id=t.get("thread_id"),
                commit=t.get("commit"),
                branch=t.get("branch"),
                files_changed=tuple(t.get("files_changed") or ()),
                error_kind=error.get("kind"),
                error_message=error.get("message"),
                duration=_seconds(
                    t.get("started_at"),
                    t.get("ended_at") or (datetime.now(UTC).isoformat() if t["status"] == "running" else None),
                ),
                usage=usage,
                result=t.get("result"),
                violations=tuple(t.get("violations") or ()),
                file_claims=t.get("file_claims"),
                forecast=tuple(predicted.get(tid, ())),
                held=t.get("held"),
                integration=t.get("integration"),
            )
        )
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    return RunView(
        run_id=state["run_id"],
        status=state["status"],
        created_at=state.get("created_at"),
        ended_at=state.get("ended_at"),
        base_commit=state.get("base_commit"),
        branch=state.get("branch"),
        single_workspace=bool(state.get("single_workspace")),
        tasks=tuple(tasks),
        counts=counts,
    )


def view_to_json(view: RunView) -> dict[str, Any]:
    return {
        "report_version": VIEW_VERSION,
        "run_id": view.run_id,
        "status": view.status,
        "created_at": view.created_at,
        "ended_at": view.ended_at,
        "base_commit": view.base_commit,
        "branch": view.branch,
        "single_workspace": view.single_workspace,
        "counts": view.counts,
        "usage": view.usage.to_json(),
        "tasks": [
            {
                "id": t.id,
                "role": t.role,
                "status": t.status,
                "blocked_by": list(t.blocked_by),
                "attempts": [
                    {
                        "n": a.n,
                        "thread_id": a.thread_id,
                        "failure": a.failure,
                        "failure_message": a.failure_message,
                        "duration": a.duration,
                        "usage": a.usage.to_json(),
                        "agent": a.agent,
                        "model": a.model,
                        "fallback_from": a.fallback_from,
                        "cost_usd": a.cost_usd,
                    }
                    for a in t.attempts
                ],
                "cost_usd": t.cost_usd,
                "thread_id": t.thread_id,
                "commit": t.commit,
                "branch": t.branch,
                "files_changed": list(t.files_changed),
                "error": {"kind": t.error_kind, "message": t.error_message} if t.error_kind else None,
                "duration": t.duration,
                "usage": t.usage.to_json(),
                "violations": list(t.violations),
                "file_claims": t.file_claims,
                "forecast": list(t.forecast),
                "held": t.held,
                "integration": t.integration,
                "result": t.result,
            }
            for t in view.tasks
        ],
    }
