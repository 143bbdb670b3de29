"""A half-created run is never a dead end.

A real `codex-orch run` is stopped at each step of creating its run (SIGKILL, or a full disk) through
the engine's test hook CODEX_ORCH_FAULT_AT (engine/run.py); then `run` with the same --run-id, or
`resume`, must get the user going again.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import FakeCodex, Repo, answer, read_state, run_cli

RUN = "r1"
STEPS_BEFORE_THE_RUN_EXISTS = ["run-dir", "plan.json", "spec.md", "codex-home"]


@pytest.fixture
def inputs(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> list[str]:
    repo.configure(codex={"home": "isolated"})  # so that creating the run writes a CODEX_HOME too
    fake_codex.script({"default": [[{"answer": answer()}]]})
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "goal": "g",
                "assumptions": [],
                "tasks": [{"role": "implementer", "prompt": "p", "acceptance": "a", "blocked_by": []}],
            }
        )
    )
    spec = tmp_path / "spec.md"
    spec.write_text("the spec\n")
    return ["--plan-file", str(plan), "--spec-file", str(spec), "--run-id", RUN, "--no-progress"]


def run_dir(repo: Repo) -> Path:
    return repo.path / ".orchestrator" / "runs" / RUN


@pytest.mark.parametrize("step", STEPS_BEFORE_THE_RUN_EXISTS)
def test_a_run_killed_while_being_created_is_created_again_by_run(
    repo: Repo, fake_codex: FakeCodex, inputs: list[str], step: str
) -> None:
    killed = run_cli(repo.path, "run", *inputs, env={"CODEX_ORCH_FAULT_AT": step})
    assert killed.code == -signal.SIGKILL
    assert run_dir(repo).is_dir() and not (run_dir(repo) / "journal.jsonl").exists()

    resumed = run_cli(repo.path, "resume", "--run-id", RUN)
    assert resumed.code == 2
    assert resumed.err.strip() == (
        f"codex-orch: error: --run-id: run '{RUN}' was never fully created (codex-orch stopped while creating it); "
        f"nothing ran. Start it again: codex-orch run --plan-file PLAN --run-id {RUN}"
    )

    again = run_cli(repo.path, "run", *inputs)
    assert again.code == 0, again.err
    state = read_state(repo, RUN)
    assert state["status"] == "succeeded" and state["tasks"]["T0001"]["status"] == "succeeded"
    assert (run_dir(repo) / "spec.md").read_text() == "the spec\n"
    assert len(fake_codex.calls()) == 1


def test_a_run_killed_once_it_exists_is_resumed_not_created_again(
    repo: Repo, fake_codex: FakeCodex, inputs: list[str]
) -> None:
    killed = run_cli(repo.path, "run", *inputs, env={"CODEX_ORCH_FAULT_AT": "created"})
    assert killed.code == -signal.SIGKILL
    again = run_cli(repo.path, "run", *inputs)
    assert again.code == 2 and f"run '{RUN}' already exists" in again.err
    resumed = run_cli(repo.path, "resume", "--run-id", RUN, "--no-progress")
    assert resumed.code == 0, resumed.err
    assert read_state(repo, RUN)["tasks"]["T0001"]["status"] == "succeeded"


@pytest.mark.parametrize("step", STEPS_BEFORE_THE_RUN_EXISTS)
def test_a_creation_that_fails_leaves_nothing_and_can_be_run_again(
    repo: Repo, fake_codex: FakeCodex, inputs: list[str], step: str
) -> None:
    failed = run_cli(repo.path, "run", *inputs, env={"CODEX_ORCH_FAULT_AT": f"{step}:error"})
    assert failed.code == 2
    assert failed.err.strip() == (
        f"codex-orch: error: cannot create run '{RUN}' in {run_dir(repo)}: No space left on device. "
        f"Nothing ran; once fixed, start it again with --run-id {RUN}."
    )
    assert not run_dir(repo).exists() and fake_codex.calls() == []
    assert run_cli(repo.path, "run", *inputs).code == 0
    assert read_state(repo, RUN)["status"] == "succeeded"
