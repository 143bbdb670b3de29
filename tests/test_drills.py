"""The reliability drills (tests/drills.py) at CI size: every fault, every bad input, a few crash trials."""

from __future__ import annotations

from pathlib import Path

import drills
import pytest


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


def test_the_corpus_is_big_enough() -> None:
    assert len(drills.BAD_INPUTS) >= 30
    assert len(drills.FAULTS) >= 12


# A representative set in CI; `tests/drills.py --long` (and without --no-points, always) crashes at every point.
CI_POINTS = [
    ("journal:after:attempt.thread", "shared"),
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
