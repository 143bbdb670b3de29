"""Bad input: exit 2, one line naming the file and the place, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeCodex, Repo, answer, run_cli

GOOD_TASK = {"role": "implementer", "prompt": "p", "acceptance": "a", "blocked_by": []}


def snapshot(repo: Repo) -> tuple[list[str], list[str], list[str]]:
    runs = repo.path / ".orchestrator" / "runs"
    return (repo.branches(), repo.worktrees(), sorted(p.name for p in runs.iterdir()) if runs.is_dir() else [])


CASES = [
    (
        "cycle",
        json.dumps(
            {
                "goal": "g",
                "assumptions": [],
                "tasks": [dict(GOOD_TASK, id="A", blocked_by=["B"]), dict(GOOD_TASK, id="B", blocked_by=["A"])],
            }
        ),
        "plan.json: tasks[0].blocked_by: dependency cycle A -> B -> A",
    ),
    (
        "unknown dependency",
        json.dumps({"goal": "g", "assumptions": [], "tasks": [dict(GOOD_TASK, blocked_by=["T7"])]}),
        "plan.json: tasks[0].blocked_by[0]: unknown task 'T7'",
    ),
    (
        "duplicate ids",
        json.dumps({"goal": "g", "assumptions": [], "tasks": [dict(GOOD_TASK, id="X"), dict(GOOD_TASK, id="X")]}),
        "plan.json: tasks[1].id: duplicate id 'X'",
    ),
    (
        "unknown role",
        json.dumps({"goal": "g", "assumptions": [], "tasks": [dict(GOOD_TASK, role="wizard")]}),
        "plan.json: tasks[0].role: unknown role 'wizard'",
    ),
    ("invalid json", '{"goal": "g", "assumptions": [], "tasks": [', "plan.json: line 1, column 44: invalid JSON"),
    (
        "path traversal id",
        json.dumps({"goal": "g", "assumptions": [], "tasks": [dict(GOOD_TASK, id="../../x")]}),
        "plan.json: tasks[0].id: '../../x' must be",
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_plan(repo: Repo, fake_codex: FakeCodex, tmp_path: Path, name: str, text: str, expected: str) -> None:
    (repo.path / "plan.json").write_text(text)
    before = snapshot(repo)
    result = run_cli(repo.path, "run", "--plan-file", "plan.json")
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"codex-orch: error: {expected}"), result.err
    assert snapshot(repo) == before
    assert fake_codex.calls() == []


def test_binary_spec_file(repo: Repo, fake_codex: FakeCodex) -> None:
    (repo.path / "plan.json").write_text(json.dumps({"goal": "g", "assumptions": [], "tasks": [GOOD_TASK]}))
    (repo.path / "spec.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    before = snapshot(repo)
    result = run_cli(repo.path, "run", "--plan-file", "plan.json", "--spec-file", "spec.bin")
    assert result.code == 2
    assert result.err.strip() == "codex-orch: error: spec.bin: not a text file (NUL byte at offset 8)"
    assert snapshot(repo) == before


def test_latin1_spec_file(repo: Repo, fake_codex: FakeCodex) -> None:
    (repo.path / "plan.json").write_text(json.dumps({"goal": "g", "assumptions": [], "tasks": [GOOD_TASK]}))
    (repo.path / "spec.txt").write_bytes("café".encode("latin-1"))
    result = run_cli(repo.path, "run", "--plan-file", "plan.json", "--spec-file", "spec.txt")
    assert result.code == 2
    assert result.err.strip() == "codex-orch: error: spec.txt: not UTF-8 text (invalid byte at offset 3)"


def test_missing_plan_file(repo: Repo, fake_codex: FakeCodex) -> None:
    result = run_cli(repo.path, "run", "--plan-file", "nope.json")
    assert result.code == 2 and result.err.strip() == "codex-orch: error: nope.json: no such file"


def test_config_with_a_wrong_type(repo: Repo, fake_codex: FakeCodex) -> None:
    (repo.path / "plan.json").write_text(json.dumps({"goal": "g", "assumptions": [], "tasks": [GOOD_TASK]}))
    repo.configure(limits={"max_workers": "many"})
    before = snapshot(repo)
    result = run_cli(repo.path, "run", "--plan-file", "plan.json")
    assert result.code == 2
    assert result.err.strip() == (
        "codex-orch: error: .orchestrator/orchestrator.yaml: limits.max_workers: 'many' is not of type 'integer'"
    )
    assert snapshot(repo) == before


def test_codex_not_installed(repo: Repo) -> None:
    (repo.path / "plan.json").write_text(json.dumps({"goal": "g", "assumptions": [], "tasks": [GOOD_TASK]}))
    repo.configure(codex={"command": "definitely-not-codex"})
    result = run_cli(repo.path, "run", "--plan-file", "plan.json")
    assert result.code == 2
    assert "codex.command: 'definitely-not-codex' was not found on PATH" in result.err
    assert not (repo.path / ".orchestrator" / "runs").exists()


def test_bad_run_id_and_existing_run(repo: Repo, fake_codex: FakeCodex) -> None:
    (repo.path / "plan.json").write_text(json.dumps({"goal": "g", "assumptions": [], "tasks": [GOOD_TASK]}))
    result = run_cli(repo.path, "run", "--plan-file", "plan.json", "--run-id", "a b")
    assert result.code == 2 and "--run-id: 'a b' must be" in result.err
    fake_codex.script({"default": [[{"answer": answer()}]]})
    assert run_cli(repo.path, "run", "--plan-file", "plan.json", "--run-id", "taken").code == 0
    result = run_cli(repo.path, "run", "--plan-file", "plan.json", "--run-id", "taken")
    assert result.code == 2 and "run 'taken' already exists" in result.err


def test_outside_a_git_repository(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "run", "--plan-file", "plan.json")
    assert result.code == 2 and "is not inside a git repository" in result.err


def test_click_usage_error_exits_2(repo: Repo) -> None:
    result = run_cli(repo.path, "run")
    assert result.code == 2 and "Missing option '--plan-file'" in result.err
