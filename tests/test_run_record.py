"""The typed records the read-only commands see a run through (codex_orch/run_record.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codex_orch.run_record import RunRecord, read_record
from codex_orch.state import RunStore

TASKS: list[dict[str, Any]] = [
    {"id": "A", "role": "implementer"},
    {"id": "B", "role": "reviewer", "blocked_by": ["A"]},
]


def test_a_run_s_journal_read_as_records(tmp_path: Path) -> None:
    run = {"run_id": "r1", "workspace_mode": "landing", "branch": "orch/r1", "base_branch": "main", "goal": "g"}
    with RunStore.create(tmp_path, run, TASKS) as store:
        store.record("task.status", task="A", status="running")
        store.record("attempt.started", task="A", n=1, agent="claude", model="m1", agent_source="plan")
        store.record("attempt.thread", task="A", thread_id="t-1")
        store.record("attempt.finished", task="A", failure="schema_invalid", failure_message="bad", cost_usd=0.5)
        store.record("task.status", task="A", status="failed", error={"kind": "schema_invalid", "message": "bad"})
    record = read_record(tmp_path)
    assert (record.run_id, record.status, record.workspace_mode, record.single_workspace) == (
        "r1",
        "running",
        "landing",
        False,
    )
    assert (record.branch, record.base_branch, record.goal) == ("orch/r1", "main", "g")
    a, b = record.tasks
    assert (a.id, a.status, a.error_kind, a.error_message, a.thread_id) == (
        "A",
        "failed",
        "schema_invalid",
        "bad",
        "t-1",
    )
    assert (b.id, b.blocked_by, b.attempts, b.error_kind) == ("B", ("A",), (), None)
    [attempt] = a.attempts
    assert (attempt.n, attempt.agent, attempt.model, attempt.failure, attempt.cost_usd, attempt.thread_id) == (
        1,
        "claude",
        "m1",
        "schema_invalid",
        0.5,
        "t-1",
    )


def test_a_run_recorded_before_landing_and_agents_reads_with_their_defaults() -> None:
    """A state from before `workspace_mode` and the attempt's agent existed: shared, and codex."""
    old = {
        "run_id": "old",
        "status": "succeeded",
        "single_workspace": True,
        "task_order": ["A"],
        "tasks": {
            "A": {"role": "implementer", "status": "succeeded", "blocked_by": [], "attempts": [{"n": 1}]},
        },
    }
    record = RunRecord.from_state(old)
    assert (record.workspace_mode, record.single_workspace, record.goal) == ("shared", True, "")
    [task] = record.tasks
    assert (task.files_changed, task.violations, task.attempts[0].agent, task.attempts[0].failure_message) == (
        (),
        (),
        "codex",
        "",
    )
