"""Results are data: one view of a run's state feeds the table, the report and --json."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from codex_orch.agents.base import Usage
from codex_orch.run_record import RunRecord

VIEW_VERSION = 1


def seconds_between(start: str | None, end: str | None) -> float | None:
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
    cost_source: str | None = None  # "agent" (its own figure), "prices" (usage at the price table)
    cost_note: str | None = None  # why the cost is unknown ("no price for model X")

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
    file_claims: Mapping[str, Any] | None = None  # engine/accounting.py: answer vs commit, when they disagree
    setup: Mapping[str, Any] | None = None  # its worktree's setup (engine/setup.py), when one is configured
    gates: tuple[Mapping[str, Any], ...] = ()  # each gate run: name, n (attempt), ok, exit_code, seconds, log
    fix_rounds: int = 0

    @property
    def checks(self) -> str:
        """Setup and gates in a few words: `setup ok · tests 1→0 · 1 fix`."""
        parts = []
        if self.setup is not None:
            parts.append("setup " + ("ok" if self.setup.get("ok") else "failed"))
        names: dict[str, list[str]] = {}
        for run in self.gates:
            names.setdefault(run["name"], []).append("T" if run.get("timed_out") else str(run.get("exit_code")))
        parts += [f"{name} {'→'.join(codes)}" for name, codes in names.items()]
        if self.fix_rounds:
            parts.append(f"{self.fix_rounds} fix" + ("es" if self.fix_rounds > 1 else ""))
        return " · ".join(parts)

    # engine/forecast.py: conflicts predicted with other tasks ({"with", "files"}; both sides list it)
    forecast: tuple[Mapping[str, Any], ...] = ()
    held: Mapping[str, Any] | None = None  # not started while a predicted conflict on its paths was open
    integration: Mapping[str, Any] | None = None  # what the merge queue did with its work

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

    @property
    def cost_unknown(self) -> tuple[str, ...]:
        """Why some of its cost is unknown: each distinct reason, e.g. "no price for model X"."""
        return tuple(dict.fromkeys(a.cost_note or "cost not recorded" for a in self.attempts if a.cost_usd is None))


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
    paused: dict[str, dict[str, str]] = field(default_factory=dict)  # agent -> {until, reason} (quota)
    run_cost_budget: float | None = None  # `resume --budget-run-cost`, when given

    @property
    def cost_usd(self) -> float:
        """What the attempts whose cost is known cost (see cost_unknown)."""
        return round(sum(t.cost_usd or 0.0 for t in self.tasks), 6)

    @property
    def cost_unknown(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(note for t in self.tasks for note in t.cost_unknown))

    @property
    def usage(self) -> Usage:
        total = Usage()
        for task in self.tasks:
            total = total + task.usage
        return total


def build_view(run: RunRecord) -> RunView:
    tasks = []
    counts: dict[str, int] = {}
    predicted: dict[str, list[dict[str, Any]]] = {}  # both sides of every predicted conflict
    for t in run.tasks:
        for c in t.forecast:
            for side, other in ((t.id, c["with"]), (c["with"], t.id)):  # once per pair, when both predicted it
                if not any(p["with"] == other for p in predicted.setdefault(side, [])):
                    predicted[side].append({"with": other, "files": c["files"]})
    for t in run.tasks:
        attempts = tuple(
            AttemptView(
                n=a.n,
                thread_id=a.thread_id,
                failure=a.failure,
                failure_message=a.failure_message,
                duration=a.duration,
                usage=Usage.from_json(a.usage),
                agent=a.agent,
                model=a.model,
                fallback_from=a.fallback_from,
                cost_usd=a.cost_usd,
                cost_source=a.cost_source,
                cost_note=a.cost_note,
            )
            for a in t.attempts
        )
        usage = Usage()
        for a in attempts:
            usage = usage + a.usage
        tasks.append(
            TaskView(
                id=t.id,
                role=t.role,
                status=t.status,
                blocked_by=t.blocked_by,
                attempts=attempts,
                thread_id=t.thread_id,
                commit=t.commit,
                branch=t.branch,
                files_changed=t.files_changed,
                error_kind=t.error_kind,
                error_message=t.error_message,
                duration=seconds_between(
                    t.started_at, t.ended_at or (datetime.now(UTC).isoformat() if t.status == "running" else None)
                ),
                usage=usage,
                result=t.result,
                violations=t.violations,
                file_claims=t.file_claims,
                setup=t.setup,
                gates=t.gate_runs,
                fix_rounds=t.fix_rounds,
                forecast=tuple(predicted.get(t.id, ())),
                held=t.held,
                integration=t.integration,
            )
        )
        counts[t.status] = counts.get(t.status, 0) + 1
    return RunView(
        run_id=run.run_id,
        status=run.status,
        created_at=run.created_at,
        ended_at=run.ended_at,
        base_commit=run.base_commit,
        branch=run.branch,
        single_workspace=run.single_workspace,
        tasks=tuple(tasks),
        counts=counts,
        paused=dict(run.paused),
        run_cost_budget=run.budgets.get("run_cost"),
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
        "cost_usd": view.cost_usd,
        "cost_unknown": list(view.cost_unknown),
        "paused": view.paused,
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
                        "cost_source": a.cost_source,
                        "cost_note": a.cost_note,
                    }
                    for a in t.attempts
                ],
                "cost_usd": t.cost_usd,
                "cost_unknown": list(t.cost_unknown),
                "thread_id": t.thread_id,
                "commit": t.commit,
                "branch": t.branch,
                "files_changed": list(t.files_changed),
                "error": {"kind": t.error_kind, "message": t.error_message} if t.error_kind else None,
                "duration": t.duration,
                "usage": t.usage.to_json(),
                "violations": list(t.violations),
                "file_claims": t.file_claims,
                "setup": _setup_json(t.setup),
                "gates": list(t.gates),
                "fix_rounds": t.fix_rounds,
                "forecast": list(t.forecast),
                "held": t.held,
                "integration": t.integration,
                "result": t.result,
            }
            for t in view.tasks
        ],
    }


def _setup_json(setup: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if setup is None:
        return None
    keys = ("ok", "seconds", "log", "copied", "excluded", "failed")
    return {k: setup.get(k) for k in keys}
