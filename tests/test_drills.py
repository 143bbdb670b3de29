"""The reliability drills (tests/drills.py) at CI size: every fault, every bad input, a few crash trials."""

from __future__ import annotations

from pathlib import Path

import drills
import pytest

from codex_orch.failures import FailureKind


@pytest.mark.parametrize("fault", drills.FAULTS, ids=[f.name for f in drills.FAULTS])
def test_agent_fault(tmp_path: Path, fault: drills.Fault) -> None:
    result = drills.fault_drill(tmp_path, fault)
    assert result.problems == [], result.problems


@pytest.mark.parametrize("case", drills.BAD_INPUTS, ids=[c.name for c in drills.BAD_INPUTS])
def test_bad_input(tmp_path: Path, case: drills.BadInput) -> None:
    result = drills.bad_input_drill(tmp_path, case)
    assert result.problems == [], result.problems


@pytest.mark.parametrize(
    ("seed", "single", "workers"),
    [(11, True, 1), (12, False, 1), (13, "landing", 3), (14, False, 3)],
    ids=["shared-1", "per-task-1", "landing-3", "per-task-3"],
)
def test_crash_anywhere_then_resume(tmp_path: Path, seed: int, single: bool | str, workers: int) -> None:
    result = drills.crash_trial(tmp_path, seed, single, workers)
    assert result.problems == [], result.problems


# Failure kinds no agent fault of the drill stages, each with the test that does.
STAGED_ELSEWHERE = {
    "spawn_failed": "test_bad_input.py::test_codex_not_installed",  # refused by the run's checks, before any attempt
    "answer_invalid": "test_plan_command.py::test_an_invalid_plan_is_retried_on_the_same_thread_with_the_errors_quoted",
    "interrupted": "test_parallel.py::test_fail_fast_stops_everything",
    "workspace": "test_reaper.py::test_resume_does_not_delete_a_half_made_worktree_a_process_works_in",
    "paths_violation": "test_parallel.py::test_on_violation_fail",
    "guardrail": "test_containment.py::test_decisions_file_made_a_folder_fails_that_task_only",
    "hidden_work": "test_containment.py::test_work_a_commit_would_not_hold_is_reported",
    "internal": "test_hostile_values.py::test_an_unexpected_error_in_the_executor_is_that_task_s_failure",
    "secret": "test_secrets.py::test_an_agent_writing_a_secret_value_into_a_file_gets_no_commit",
    "conflict": "test_landing.py::test_an_agent_that_leaves_the_conflict_fails_as_conflict_with_nothing_landed",
    "max_turns": "test_agents.py::test_claude_at_its_turn_limit_fails_as_max_turns",
    "setup_failed": "test_worktree_setup.py::test_a_failing_setup_fails_the_task_before_any_agent_runs",
    "gate_failed": "test_gates.py::test_an_agent_that_never_fixes_it_fails_gate_failed_with_its_work_set_aside",
    "budget": "test_budget.py::test_task_tokens_cap_stops_retries_as_budget",
    "integration_failed": "test_merge_queue.py::test_the_queue_bisects_to_the_task_that_turns_the_doctor_red_and_lands_the_rest",
}


def test_every_failure_kind_is_drilled_or_staged_by_a_named_test() -> None:
    """A new failure kind fails this until a fault of the drill or a named test makes it happen."""
    kinds = {str(kind) for kind in FailureKind}
    drilled = {fault.expect for fault in drills.FAULTS} - {"succeeded"}
    assert drilled <= kinds, drilled - kinds  # no fault expects a kind the table does not have
    assert sorted(kinds - drilled) == sorted(STAGED_ELSEWHERE), "a kind neither drilled nor named here"
    assert not drilled & set(STAGED_ELSEWHERE)
    for where in STAGED_ELSEWHERE.values():
        file, name = where.split("::")
        assert f"def {name}(" in (Path(__file__).parent / file).read_text(), where


# A representative set in CI; `tests/drills.py --long` (and without --no-points, always) crashes at every point.
CI_POINTS = [
    ("journal:after:attempt.thread", "shared"),
    ("journal:before:task.workspace", "landing"),
    ("journal:before:task.result", "shared"),
    ("journal:after:task.result", "landing"),
    ("journal:before:task.committed", "shared"),
    ("journal:before:task.committed#2", "per-task"),
    ("journal:after:task.committed", "landing"),
    ("journal:before:task.landed", "landing"),
    ("journal:before:run.status", "per-task"),
]


@pytest.mark.parametrize(("point", "mode"), CI_POINTS, ids=[f"{p}-{m}" for p, m in CI_POINTS])
def test_crash_at_a_journal_step_then_resume(tmp_path: Path, point: str, mode: str) -> None:
    result = drills.crash_point_trial(tmp_path, point, mode)
    assert result.problems == [], result.problems


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("mode", ["shared", "per-task", "landing"])
def test_crash_at_every_journal_step_then_resume(tmp_path: Path, mode: str) -> None:
    failed = {}
    for i, point in enumerate(drills.crash_points(mode)):
        result = drills.crash_point_trial(tmp_path / str(i), point, mode)
        if result.problems:
            failed[point] = result.problems
    assert failed == {}
