"""The integration merge queue on real repositories: a doctor that checks an invariant across files, a
bisection to the task that breaks it, the target moved only to a green tip; the canary."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from conftest import FakeCodex, Repo, git, job, read_state, run_cli, run_plan, writer
from lifecycle_helpers import repo_snapshot, start_with

from codex_orch.proc.sandbox import bwrap_path

needs_bwrap = pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")

# Every `uses NAME` line in a *.txt file must name what defs.txt defines; each run is counted.
DOCTOR = """\
import os, pathlib, sys
counter = pathlib.Path(sys.argv[1])
canary = os.environ.get("CODEX_ORCH_CANARY") == "1"
with counter.open("a") as fh:
    fh.write(("canary" if canary else "run") + "\\n")
if canary:
    sys.exit(1)
defined = set(pathlib.Path("defs.txt").read_text().split())
used = {line.split()[1] for p in pathlib.Path(".").glob("*.txt") for line in p.read_text().splitlines()
        if line.startswith("uses ")}
sys.exit(0 if used <= defined else 1)
"""


def _doctor(repo: Repo, tmp_path: Path, argv: list[str] | None = None, canary: bool = True) -> Path:
    script = tmp_path / "doctor.py"
    script.write_text(DOCTOR)
    counter = tmp_path / "doctor-runs.txt"
    doctor: dict[str, object] = {"doctor": argv or [sys.executable, str(script), str(counter)], "canary": canary}
    if argv is None:  # the counting doctor writes its tally outside the worktree: it runs unconfined
        doctor["sandbox"] = "none"
    repo.configure(integration=doctor)
    return counter


def _four_tasks(repo: Repo, fake: FakeCodex, tmp_path: Path, mode: str, c_blocks_d: bool = False) -> dict:
    start_with(repo, "defs.txt", "api_v1\n", mode)
    tasks = [job("A"), job("B"), job("C"), job("D", blocked_by=("C",) if c_blocks_d else ())]
    rules = [
        writer("A", "a.txt", "uses api_v1\n"),
        writer("B", "b.txt", "uses api_v1\n"),
        writer("C", "defs.txt", "api_v2\n"),  # fine alone; breaks every user of api_v1
        writer("D", "d.txt", "uses api_v1\n"),
    ]
    for rule, tid in zip(rules, "ABCD", strict=True):  # each appends to docs/ai/decisions.md too
        rule["turns"][0][-1]["answer"]["decisions"] = [{"decision": f"decided {tid}", "rationale": "r"}]
    fake.script({"rules": rules})
    from conftest import write_plan

    plan = write_plan(tmp_path / "plan.json", tasks)
    # one task at a time: the order tasks land in is the plan's, so "the first task whose merge turns
    # the doctor red" is C whatever the machine's load
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "q", "--no-progress", "--max-workers", "1")
    assert result.code == 0, result.err + result.out
    return read_state(repo, "q")


def test_the_queue_bisects_to_the_task_that_turns_the_doctor_red_and_lands_the_rest(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    counter = _doctor(repo, tmp_path)
    _four_tasks(repo, fake_codex, tmp_path, "landing")
    result = run_cli(repo.path, "merge", "--run-id", "q")
    assert result.code == 1, result.err + result.out  # a task failed integration; the rest merged
    assert "integration_failed: C: the doctor passed with A, B and failed once C was merged on top" in result.out
    # main moved to a green tip holding A, B and D, and not C
    tree = sorted(repo.git("ls-tree", "--name-only", "main").split())
    assert tree == ["README.md", "a.txt", "b.txt", "d.txt", "defs.txt", "docs"]
    decisions = repo.git("show", "main:docs/ai/decisions.md")  # D's entry re-applied without C's before it
    assert [d for d in ("decided A", "decided B", "decided C", "decided D") if d in decisions] == [
        "decided A",
        "decided B",
        "decided D",
    ]
    assert repo.git("show", "main:defs.txt") == "api_v1"
    assert (repo.path / "d.txt").exists()  # main is checked out here: its files followed
    state = read_state(repo, "q")
    integration = "orch/" + state["date"] + "/run-q/integration"
    assert repo.git("rev-parse", "main") == repo.git("rev-parse", integration)
    # the doctor's runs: 1 canary, then the batch, the bisection and the rebuilt batch
    runs = counter.read_text().split()
    assert runs[0] == "canary" and runs.count("canary") == 1
    n = 4
    assert runs.count("run") <= 1 + math.ceil(math.log2(n)) + 1
    record = state["integration"]
    assert record["culprit"] == "C" and record["new"] == repo.git("rev-parse", "main")
    assert [r["ok"] for r in record["doctor_runs"]][-1] is True  # the tip main moved to was checked green
    assert record["doctor_runs"][-1]["commit"] == record["new"]
    assert state["tasks"]["C"]["status"] == "failed"
    assert state["tasks"]["C"]["error"]["kind"] == "integration_failed"
    assert [state["tasks"][t]["integration"]["result"] for t in "ABD"] == ["landed"] * 3
    report = run_cli(repo.path, "report", "--run-id", "q")
    assert "integration_failed" in report.out and "Doctor runs: 4" in report.out
    scratch = repo.path / ".orchestrator" / "worktrees" / "q" / "integration"
    assert git(scratch, "rev-parse", "HEAD") == repo.git("rev-parse", "main")  # left at main's new tip
    cleaned = run_cli(repo.path, "clean", "--run-id", "q")
    assert cleaned.code == 0, cleaned.err
    assert not scratch.exists()  # the doctor's worktree goes with the run's others


def test_a_task_depending_on_the_culprit_does_not_land_either(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    counter = _doctor(repo, tmp_path, canary=False)
    _four_tasks(repo, fake_codex, tmp_path, "per-task", c_blocks_d=True)
    result = run_cli(repo.path, "merge", "--run-id", "q")
    assert result.code == 1, result.err + result.out
    tree = sorted(repo.git("ls-tree", "--name-only", "main").split())
    assert tree == ["README.md", "a.txt", "b.txt", "defs.txt", "docs"]
    decisions = repo.git("show", "main:docs/ai/decisions.md")  # A's and B's branches both appended to it
    assert "decided A" in decisions and "decided B" in decisions and "decided C" not in decisions
    state = read_state(repo, "q")
    assert state["integration"]["culprit"] == "C"
    assert state["tasks"]["D"]["integration"] == {
        "ts": state["tasks"]["D"]["integration"]["ts"],
        "result": "left out",
        "message": "depends on C, which is not integrated",
    }
    assert state["tasks"]["D"]["status"] == "succeeded"  # not to blame
    assert "canary" not in counter.read_text()
    # resume does not run the guilty task again: its work is done, and merged nowhere
    calls = len(fake_codex.calls())
    merged = repo.git("rev-parse", "main")
    resumed = run_cli(repo.path, "resume", "--run-id", "q", "--no-progress")
    assert resumed.code == 1, resumed.err
    assert len(fake_codex.calls()) == calls
    assert repo.git("rev-parse", "main") == merged, resumed.err
    assert read_state(repo, "q")["tasks"]["C"]["error"]["kind"] == "integration_failed"


def test_nothing_moves_when_nothing_is_green(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    _doctor(repo, tmp_path, argv=["false"], canary=False)
    run_plan(repo, fake_codex, tmp_path, "red", [job("A")], [writer("A", "a.txt")])
    before = repo_snapshot(repo)
    result = run_cli(repo.path, "merge", "--run-id", "red")
    assert result.code == 1, result.err + result.out
    assert repo_snapshot(repo)["refs"] == before["refs"] and repo.git("ls-tree", "--name-only", "main") == "README.md"
    assert "main stays at" in result.out
    assert read_state(repo, "red")["tasks"]["A"]["error"]["kind"] == "integration_failed"


def test_a_doctor_that_cannot_fail_is_refused_by_the_canary(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    _doctor(repo, tmp_path, argv=["true"], canary=True)
    run_plan(repo, fake_codex, tmp_path, "can", [job("A")], [writer("A", "a.txt")])
    before = repo_snapshot(repo)
    result = run_cli(repo.path, "merge", "--run-id", "can")
    assert result.code == 2, result.err + result.out
    assert "integration.doctor (true) exited 0 with CODEX_ORCH_CANARY=1 set: it cannot fail" in result.err
    assert repo_snapshot(repo) == before  # nothing merged
    record = read_state(repo, "can")["integration"]
    assert record["refused"] == "doctor cannot fail" and record["canary"]["ok"] is True
    assert record["doctor_runs"] == []  # its green was never asked for
    assert "cannot fail" in run_cli(repo.path, "report", "--run-id", "can").out


def test_run_merge_merges_a_partial_run_through_the_queue(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    counter = _doctor(repo, tmp_path, canary=False)
    start_with(repo, "defs.txt", "api_v1\n", "landing")
    from conftest import answer, write_plan

    fake_codex.script(
        {
            "rules": [
                writer("A", "a.txt", "uses api_v1\n"),
                {
                    "match": "job B.",
                    "turns": [[{"write": "b.txt", "content": "B\n"}, {"answer": answer("gave up", status="failed")}]],
                },
            ]
        }
    )
    plan = write_plan(tmp_path / "plan.json", [job("A"), job("B")])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "rm", "--no-progress", "--merge")
    assert result.code == 1, result.err + result.out  # the run was partial
    assert "doctor run 1 on" in result.out and ": green" in result.out
    assert sorted(repo.git("ls-tree", "--name-only", "main").split()) == ["README.md", "a.txt", "defs.txt"]
    state = read_state(repo, "rm")
    assert state["status"] == "partial" and state["tasks"]["A"]["integration"]["result"] == "landed"
    assert counter.read_text().split() == ["run"]


def test_run_merge_merges_nothing_when_no_task_succeeded(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    from conftest import answer, write_plan

    fake_codex.script({"default": [[{"answer": answer("no", status="failed")}]]})
    plan = write_plan(tmp_path / "plan.json", [job("A")])
    before = repo.git("rev-parse", "main")
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "none", "--no-progress", "--merge")
    assert result.code == 1 and "not merged: the run ended failed" in result.err
    assert repo.git("rev-parse", "main") == before and "merge" not in read_state(repo, "none")


@needs_bwrap
def test_the_doctor_runs_confined_and_cannot_write_outside_its_worktree(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """It runs the agents' code: by default confined like a gate, so an escape fails it (red: nothing lands)."""
    outside = tmp_path / "outside.txt"
    script = f"echo inside > inside.txt && echo escaped > {outside}"
    repo.configure(integration={"doctor": ["sh", "-c", script]})
    run_plan(repo, fake_codex, tmp_path, "jail", [job("A")], [writer("A", "a.txt")])
    before = repo.git("rev-parse", "main")
    result = run_cli(repo.path, "merge", "--run-id", "jail")
    assert result.code == 1, result.err + result.out
    assert not outside.exists()
    assert repo.git("rev-parse", "main") == before  # no green tip: the target did not move
    stdout = Path(read_state(repo, "jail")["integration"]["doctor_runs"][0]["log"])
    assert "Read-only file system" in stdout.with_name(stdout.name.replace(".stdout.", ".stderr.")).read_text()
    # `sandbox: none` runs it unconfined: the counting doctor of the tests above writes its tally outside
