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
    [(11, True, 1), (12, False, 1), (13, True, 3), (14, False, 3)],
    ids=["shared-1", "per-task-1", "shared-3", "per-task-3"],
)
def test_crash_anywhere_then_resume(tmp_path: Path, seed: int, single: bool, workers: int) -> None:
    result = drills.crash_trial(tmp_path, seed, single, workers)
    assert result.problems == [], result.problems


def test_the_corpus_is_big_enough() -> None:
    assert len(drills.BAD_INPUTS) >= 30
    assert len(drills.FAULTS) >= 12
