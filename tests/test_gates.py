"""Gates and the fix loop: a task's work must pass its gates (real commands: pytest, compileall) before
it is committed; a failing gate goes back to the same agent thread with the tail of its output, up to
limits.fix_rounds, then the task fails as `gate_failed` with its work set aside."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCodex, Repo, answer, read_state, run_cli, write_plan

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

BUGGY = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
PYTEST = [sys.executable, "-m", "pytest", "-q", "test_calc.py"]


def python_project(repo: Repo) -> None:
    """A temp Python project: a test of `calc.add`, which the agent is to write."""
    repo.write("test_calc.py", "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "project")


def task(tid: str, deps: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "role": "implementer",
        "prompt": f"job {tid}.",
        "acceptance": "",
        "blocked_by": list(deps),
        **extra,
    }


def gated(repo: Repo, *gates: dict[str, Any], **settings: Any) -> None:
    repo.configure(gates=list(gates), **settings)


def run(repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str, tasks: list[dict[str, Any]], rules: list[Any]) -> Any:
    fake.script({"rules": rules})
    plan = write_plan(tmp_path / f"{run_id}.json", tasks)
    # the gate's pytest: none of this venv's plugins; and it writes __pycache__ (not the agent's work)
    quick = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": ""}
    return run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress", env=quick)


def commits_of(repo: Repo, branch: str, tid: str) -> list[str]:
    out = repo.git("log", "--format=%H %(trailers:key=Orch-Task,valueonly,separator=)", f"main..{branch}")
    return [line.split()[0] for line in out.splitlines() if line.split()[1:] == [tid]]


@needs_bwrap
def test_a_failing_test_goes_back_to_the_same_thread_and_the_fix_is_committed_once(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    python_project(repo)
    gated(repo, {"name": "tests", "run": PYTEST, "timeout": 120}, workspace="landing")
    turns = [
        [{"write": "calc.py", "content": BUGGY}, {"answer": answer("add", ["calc.py"])}],
        [{"write": "calc.py", "content": FIXED}, {"answer": answer("add fixed", ["calc.py"])}],
    ]
    result = run(repo, fake_codex, tmp_path, "fix", [task("A")], [{"match": "job A.", "turns": turns}])
    assert result.code == 0, result.err
    assert "A: gate tests on attempt 1" in result.err and "A: gate tests on attempt 2" in result.err
    calls = fake_codex.calls()
    assert len(calls) == 2
    assert calls[1]["resume"] and calls[1]["resume_id"] == calls[0]["thread_id"]  # the same thread
    fix = calls[1]["prompt"]
    assert "gate `tests`" in fix and "exited with code 1" in fix and "a tail" in fix
    assert "assert -1 == 5" in fix  # pytest's own words, from the end of its output
    state = read_state(repo, "fix")
    rec = state["tasks"]["A"]
    assert rec["status"] == "succeeded" and rec["fix_rounds"] == 1
    assert [(g["name"], g["n"], g["ok"], g["exit_code"]) for g in rec["gate_runs"]] == [
        ("tests", 1, False, 1),
        ("tests", 2, True, 0),
    ]
    assert (repo.path / ".orchestrator/runs/fix/tasks/A/attempt-1/gates/tests.log").is_file()
    assert commits_of(repo, state["branch"], "A") == [rec["commit"]]  # one commit, the fixed one
    assert repo.git("show", f"{state['branch']}:calc.py") == FIXED.strip()
    assert rec["files_changed"] == ["calc.py"]  # not pytest's __pycache__ nor .pytest_cache
    report = json.loads(run_cli(repo.path, "report", "--run-id", "fix", "--json").out)
    shown = next(t for t in report["tasks"] if t["id"] == "A")
    assert shown["fix_rounds"] == 1 and [g["ok"] for g in shown["gates"]] == [False, True]


@needs_bwrap
def test_an_agent_that_never_fixes_it_fails_gate_failed_with_its_work_set_aside(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    python_project(repo)
    gated(repo, {"name": "tests", "run": PYTEST, "timeout": 120}, workspace="landing")
    turns = [[{"write": "calc.py", "content": BUGGY}, {"answer": answer("add", ["calc.py"])}]]
    rules = [{"match": "job A.", "turns": turns}]
    result = run(repo, fake_codex, tmp_path, "never", [task("A"), task("B", ("A",))], rules)
    assert result.code == 1
    state = read_state(repo, "never")
    a, b = state["tasks"]["A"], state["tasks"]["B"]
    assert a["status"] == "failed" and a["error"]["kind"] == "gate_failed"
    assert len(a["attempts"]) == 3 and a["fix_rounds"] == 2  # the first answer and limits.fix_rounds fixes
    assert b["status"] == "blocked"
    assert [c["prompt"] for c in fake_codex.calls() if "job B." in c["prompt"]] == []
    assert repo.git("rev-list", f"main..{state['branch']}") == ""  # nothing on the run branch
    assert repo.git("show", "refs/orch/never/failed/A:calc.py") == BUGGY.strip()
    assert "refs/orch/never/failed/A" in a["error"]["message"]


@needs_bwrap
def test_a_gate_cannot_write_outside_its_worktree(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    script = f"echo inside > inside.txt && echo escaped > {outside}"
    gated(repo, {"name": "escape", "run": ["sh", "-c", script]}, workspace="landing", limits={"fix_rounds": 0})
    turns = [[{"write": "a.txt", "content": "a\n"}, {"answer": answer("a", ["a.txt"])}]]
    result = run(repo, fake_codex, tmp_path, "jail", [task("A")], [{"match": "job A.", "turns": turns}])
    assert result.code == 1
    assert not outside.exists()
    state = read_state(repo, "jail")
    rec = state["tasks"]["A"]
    assert rec["error"]["kind"] == "gate_failed"
    log = Path(rec["gate_runs"][0]["log"]).read_text()
    assert f"{outside}: Read-only file system" in log  # its worktree was writable: `&&` got that far
    assert not (Path(rec["worktree"]) / "inside.txt").exists()  # what a gate leaves is not the agent's work


def test_a_gate_with_sandbox_none_runs_unconfined(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    gate = {"name": "free", "run": ["sh", "-c", f"echo out > {outside}"], "sandbox": "none"}
    gated(repo, gate, workspace="landing")
    turns = [[{"write": "a.txt", "content": "a\n"}, {"answer": answer("a", ["a.txt"])}]]
    result = run(repo, fake_codex, tmp_path, "free", [task("A")], [{"match": "job A.", "turns": turns}])
    assert result.code == 0, result.err
    assert outside.read_text() == "out\n"


@needs_bwrap
def test_in_a_shared_worktree_a_gate_sees_the_task_s_change_not_a_sibling_s_broken_file(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """B leaves a broken Python file in the shared worktree while A's gate (compile every .py) runs: A's
    gate runs on HEAD plus A's own change, so it passes; B fixes its file before answering."""
    flags = tmp_path / "flags"
    flags.mkdir()
    compile_all = [sys.executable, "-m", "compileall", "-q", "."]
    gated(repo, {"name": "compile", "run": compile_all}, limits={"max_workers": 2, "fix_rounds": 0})
    wait = "for i in $(seq 3000); do {cond} && exit 0; sleep 0.02; done; exit 1"
    a_turns = [
        [
            {"write": "a/ok.py", "content": "X = 1\n"},
            {"shell": wait.format(cond=f"[ -f {flags}/broken ]")},
            {"answer": answer("a", ["a/ok.py"])},
        ]
    ]
    a_committed = f"git -C {repo.path} log --all --format=%B | grep -q 'Orch-Task: A'"
    b_turns = [
        [
            {"write": "b/bad.py", "content": "def broken(:\n"},
            {"shell": f"touch {flags}/broken"},
            {"shell": wait.format(cond=a_committed)},
            {"write": "b/bad.py", "content": "def fine():\n    return 1\n"},
            {"answer": answer("b", ["b/bad.py"])},
        ]
    ]
    tasks = [task("A", paths=["a/**"]), task("B", paths=["b/**"], gates=[])]
    rules = [{"match": "job A.", "turns": a_turns}, {"match": "job B.", "turns": b_turns}]
    result = run(repo, fake_codex, tmp_path, "sib", tasks, rules)
    assert result.code == 0, result.err
    state = read_state(repo, "sib")
    a = state["tasks"]["A"]
    assert a["status"] == "succeeded" and len(a["attempts"]) == 1
    assert [g["ok"] for g in a["gate_runs"]] == [True]
    assert "gate_runs" not in state["tasks"]["B"]  # `"gates": []`: none


def test_an_unknown_gate_in_the_plan_is_an_error_naming_the_task(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    gated(repo, {"name": "tests", "run": "true"})
    result = run(repo, fake_codex, tmp_path, "bad", [task("A", gates=["tets"])], [])
    assert result.code == 2
    assert "tasks[0].gates[0]: unknown gate 'tets'" in result.err
    assert fake_codex.calls() == []
    assert not (repo.path / ".orchestrator/runs/bad").exists()


@pytest.mark.parametrize(
    ("gates", "expected"),
    [
        ([{"name": "t", "run": "true", "roles": ["tester", "dev"]}], "gates[0].roles[1]: unknown role 'dev'"),
        ([{"name": "t", "run": "true"}, {"name": "t", "run": "false"}], "gates[1].name: duplicate gate 't'"),
        ([{"name": "t", "run": "true", "sandbox": "bwrap"}], "gates[0].sandbox"),
    ],
)
def test_a_bad_gate_in_the_config_is_refused_naming_the_key(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, gates: list[dict[str, Any]], expected: str
) -> None:
    gated(repo, *gates)
    result = run(repo, fake_codex, tmp_path, "badcfg", [task("A")], [])
    assert result.code == 2
    assert f".orchestrator/orchestrator.yaml: {expected}" in result.err
    assert fake_codex.calls() == []


def test_an_answer_that_reports_the_task_blocked_is_not_gated(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    gated(repo, {"name": "never", "run": "false", "sandbox": "none"}, workspace="landing")
    turns = [[{"answer": answer("cannot: the API key is missing", status="blocked")}]]
    result = run(repo, fake_codex, tmp_path, "blk", [task("A")], [{"match": "job A.", "turns": turns}])
    assert result.code == 1
    rec = read_state(repo, "blk")["tasks"]["A"]
    assert rec["error"]["kind"] == "agent_reported" and len(rec["attempts"]) == 1
    assert "gate_runs" not in rec  # no fix round for an agent that says it cannot do the task
