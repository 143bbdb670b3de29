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
    assert (record.repo_root, record.date, record.worktree, record.setups, record.integration_branch) == (
        None,
        "",
        None,
        {},
        None,
    )
    assert (record.validations, record.integrations, task.landed) == (0, 0, False)
    assert record.own_worktree("validate", Path("/repo")) == Path("/repo/.orchestrator/worktrees/old/validate")


def test_what_merge_validate_and_clean_read_of_a_run(tmp_path: Path) -> None:
    run: dict[str, Any] = {"run_id": "r2", "workspace_mode": "landing", "branch": "orch/r2", "date": "2026-11-30"}
    run |= {"repo_root": str(tmp_path), "worktree": None}
    with RunStore.create(tmp_path, run, TASKS) as store:
        store.record("worktree.setup", worktree="/w/A", ok=True, exclude_file="/x/exclude")
        store.record("task.workspace", task="A", branch="orch/r2/A", worktree="/w/A", base_commit="b0")
        store.record("task.committed", task="A", commit="c1", head="c1", files_changed=["a.py"])
        store.record("task.landed", task="A", commit="c2")
        store.record("run.validated", n=2, ok=True, results=[])
        store.record("run.integration", n=3, into="main", old="o", new="n")
        store.record("run.merged", into="main", old="o", new="n", integration_branch="orch/r2/integration")
    record = read_record(tmp_path)
    assert (record.repo_root, record.date, record.worktree) == (str(tmp_path), "2026-11-30", None)
    assert (record.integration_branch, record.validations, record.integrations) == ("orch/r2/integration", 2, 3)
    assert record.setups["/w/A"]["exclude_file"] == "/x/exclude"
    a, b = record.tasks
    assert (a.landed, a.commit, a.setup, b.landed) == (True, "c2", record.setups["/w/A"], False)
    assert (
        record.own_worktree("validate", Path("/elsewhere"))
        == tmp_path / ".orchestrator" / "worktrees" / "r2" / "validate"
    )
