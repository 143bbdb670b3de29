"""A run's state as the commands see it once the engine has recorded it: typed, frozen records.

The engine folds the journal into a plain dict (fold.py `apply`: the only place state changes). What
reads a run afterwards — the status table and report (commands/views.py, commands/report.py), the list
of runs and the tasks' branches (commands/runs.py), merge, validate, clean and prune — reads these
records instead: every key of the dict is read once, here, so a renamed or mistyped field is an error
mypy reports, not a None at run time. (What those commands record still goes through RunStore.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_orch.layout import Layout
from codex_orch.state import read_state, workspace_mode


@dataclass(frozen=True)
class AttemptRecord:
    n: int
    thread_id: str | None
    started_at: str | None
    ended_at: str | None
    failure: str | None
    failure_message: str
    duration: float | None
    usage: Mapping[str, Any] | None  # as the agent reported it (agents.base.Usage.from_json reads it)
    agent: str  # runs recorded before there was a choice ran codex
    model: str | None
    fallback_from: str | None
    cost_usd: float | None
    cost_source: str | None = None  # prices.py: the agent's own figure, or the price table's
    cost_note: str | None = None  # why the cost is unknown, said plainly

    @classmethod
    def from_state(cls, a: Mapping[str, Any]) -> AttemptRecord:
        return cls(
            n=a["n"],
            thread_id=a.get("thread_id"),
            started_at=a.get("started_at"),
            ended_at=a.get("ended_at"),
            failure=a.get("failure"),
            failure_message=a.get("failure_message") or "",
            duration=a.get("duration"),
            usage=a.get("usage"),
            agent=a.get("agent") or "codex",
            model=a.get("model"),
            fallback_from=a.get("fallback_from"),
            cost_usd=a.get("cost_usd"),
            cost_source=a.get("cost_source"),
            cost_note=a.get("cost_note"),
        )


@dataclass(frozen=True)
class TaskRecord:
    id: str
    role: str
    status: str
    blocked_by: tuple[str, ...]
    attempts: tuple[AttemptRecord, ...]
    thread_id: str | None
    branch: str | None
    worktree: str | None
    commit: str | None
    started_at: str | None
    ended_at: str | None
    files_changed: tuple[str, ...]
    violations: tuple[str, ...]
    file_claims: Mapping[str, Any] | None
    result: Any  # the agent's answer, as its role's schema allowed it
    error_kind: str | None
    error_message: str | None
    setup: Mapping[str, Any] | None = None  # its worktree's setup (engine/setup.py), when one is configured
    gate_runs: tuple[Mapping[str, Any], ...] = ()  # each gate run: name, n (attempt), ok, exit_code, seconds, log
    fix_rounds: int = 0
    forecast: tuple[Mapping[str, Any], ...] = ()  # conflicts predicted with other tasks (engine/forecast.py)
    held: Mapping[str, Any] | None = None  # not started while a predicted conflict on its paths was open
    integration: Mapping[str, Any] | None = None  # what the merge queue did with its work
    landed: bool = False  # a landing run: its work is on the run branch

    @classmethod
    def from_state(cls, tid: str, t: Mapping[str, Any], setups: Mapping[str, Any] | None = None) -> TaskRecord:
        error = t.get("error") or {}
        return cls(
            id=tid,
            role=t["role"],
            status=t["status"],
            blocked_by=tuple(t["blocked_by"]),
            attempts=tuple(AttemptRecord.from_state(a) for a in t.get("attempts", ())),
            thread_id=t.get("thread_id"),
            branch=t.get("branch"),
            worktree=t.get("worktree"),
            commit=t.get("commit"),
            started_at=t.get("started_at"),
            ended_at=t.get("ended_at"),
            files_changed=tuple(t.get("files_changed") or ()),
            violations=tuple(t.get("violations") or ()),
            file_claims=t.get("file_claims"),
            result=t.get("result"),
            error_kind=error.get("kind"),
            error_message=error.get("message"),
            setup=(setups or {}).get(t.get("worktree") or ""),
            gate_runs=tuple(t.get("gate_runs") or ()),
            fix_rounds=int(t.get("fix_rounds") or 0),
            forecast=tuple(t.get("forecast") or ()),
            held=t.get("held"),
            integration=t.get("integration"),
            landed=bool(t.get("landed")),
        )


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    status: str
    created_at: str | None
    ended_at: str | None
    goal: str
    base_commit: str | None
    base_branch: str | None
    branch: str | None  # the run's branch (shared and landing runs)
    workspace_mode: str
    tasks: tuple[TaskRecord, ...]  # in plan order (follow-up tasks after the plan's)
    merge: Mapping[str, Any] | None  # what `merge`, `validate` and `clean` recorded last
    validation: Mapping[str, Any] | None
    cleaned: Mapping[str, Any] | None
    integration: Mapping[str, Any] | None = None  # the merge queue's last outcome (commands/integration.py)
    paused: Mapping[str, Any] = field(default_factory=dict)  # agent: {until, reason} (engine/quota.py)
    budgets: Mapping[str, Any] = field(default_factory=dict)  # the run's own limits (resume --budget-run-cost)
    repo_root: str | None = None  # the repository it was started in (every run records it)
    date: str = ""  # the day it was started, as its branches name it
    worktree: str | None = None  # the run's worktree (shared runs)
    setups: Mapping[str, Any] = field(default_factory=dict)  # worktree path: its setup (engine/setup.py)
    integration_branch: str | None = None  # the integration branch the last `merge` moved, if any
    validations: int = 0  # the last `validate`'s number (its logs: validate/<n>/); 0 before any
    integrations: int = 0  # the merge queue's last run's number (its logs: integration/<n>/); 0 before any

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RunRecord:
        setups = dict(state.get("setups") or {})
        return cls(
            run_id=state["run_id"],
            status=state["status"],
            created_at=state.get("created_at"),
            ended_at=state.get("ended_at"),
            goal=str(state.get("goal") or ""),
            base_commit=state.get("base_commit"),
            base_branch=state.get("base_branch"),
            branch=state.get("branch"),
            workspace_mode=workspace_mode(state),
            tasks=tuple(TaskRecord.from_state(tid, state["tasks"][tid], setups) for tid in state["task_order"]),
            merge=state.get("merge"),
            validation=state.get("validation"),
            cleaned=state.get("cleaned"),
            integration=state.get("integration"),
            paused=dict(state.get("paused") or {}),
            budgets=dict(state.get("budgets") or {}),
            repo_root=state.get("repo_root"),
            date=state.get("date", ""),
            worktree=state.get("worktree"),
            setups=setups,
            integration_branch=(state.get("merge") or {}).get("integration_branch"),
            validations=int((state.get("validation") or {}).get("n", 0)),
            integrations=int((state.get("integration") or {}).get("n", 0)),
        )

    @property
    def single_workspace(self) -> bool:
        return self.workspace_mode == "shared"

    def own_worktree(self, name: str, root: Path) -> Path:
        """A worktree of the run's own beside its tasks' (the merge queue's, validate's), in the repository
        it was started in (`root`, the command's, for a state that recorded none)."""
        return Layout(Path(self.repo_root or root)).run_worktree(self.run_id) / name


def read_record(run_dir: Path) -> RunRecord:
    """The run's state, read as read_state reads it, as a record."""
    return RunRecord.from_state(read_state(run_dir))
