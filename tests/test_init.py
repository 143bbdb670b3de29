from __future__ import annotations

import json
from pathlib import Path

from conftest import Repo, run_cli

from codex_orch.scaffold import default_files
from codex_orch.schema_check import strict_problems

ROOT = Path(__file__).resolve().parent.parent


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_committed_example_is_exactly_what_init_writes(repo: Repo) -> None:
    result = run_cli(repo.path, "init")
    assert result.code == 0, result.err
    written = tree(repo.path / ".orchestrator")
    assert written == tree(ROOT / ".orchestrator.example")
    assert set(written) == set(default_files())


def test_init_is_idempotent_and_force_rewrites(repo: Repo) -> None:
    assert run_cli(repo.path, "init").code == 0
    config = repo.path / ".orchestrator" / "orchestrator.yaml"
    config.write_text(config.read_text() + "# my change\n")
    second = run_cli(repo.path, "init")
    assert second.code == 0 and "already initialised" in second.out
    assert config.read_text().endswith("# my change\n")
    assert repo.path.joinpath(".gitignore").read_text().count(".orchestrator/runs/") == 1
    forced = run_cli(repo.path, "init", "--force")
    assert forced.code == 0 and "wrote .orchestrator/orchestrator.yaml" in forced.out
    assert not config.read_text().endswith("# my change\n")


def test_init_ignores_runs_and_worktrees(repo: Repo) -> None:
    assert run_cli(repo.path, "init").code == 0
    (repo.path / ".orchestrator" / "runs" / "x").mkdir(parents=True)
    (repo.path / ".orchestrator" / "runs" / "x" / "state.json").write_text("{}")
    status = repo.git("status", "--porcelain", "--untracked-files=all")
    assert ".orchestrator/runs" not in status and ".orchestrator/worktrees" not in status


def test_every_shipped_schema_is_strict_mode_compatible() -> None:
    schemas = sorted((ROOT / "templates" / "schemas").glob("*.json"))
    assert [p.name for p in schemas] == [
        "plan.schema.json",
        "review_result.schema.json",
        "task_result.schema.json",
        "test_result.schema.json",
    ]
    for path in schemas:
        assert strict_problems(json.loads(path.read_text())) == [], path.name


def test_strict_checker_catches_a_loose_schema() -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}, "required": []}
    assert strict_problems(loose) == [
        "$: additionalProperties must be false",
        "$: required must list every property (missing: a)",
    ]
