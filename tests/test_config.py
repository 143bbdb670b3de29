from __future__ import annotations

import pytest
from conftest import Repo

from codex_orch.config import load_config
from codex_orch.errors import InputError
from codex_orch.layout import Layout


def load(repo: Repo, text: str) -> object:
    path = repo.path / ".orchestrator" / "orchestrator.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return load_config(Layout(repo.path))


def test_defaults_without_a_file(repo: Repo) -> None:
    config = load_config(Layout(repo.path))
    assert config.source == "(defaults)"
    assert set(config.roles) == {"navigator", "implementer", "tester", "reviewer"}
    assert config.roles["reviewer"].sandbox == "read-only"
    assert config.resolve_role("developer") == "implementer"
    assert config.limits.max_workers == 4 and config.workspace_mode == "landing"


def test_partial_file_overlays_defaults(repo: Repo) -> None:
    config = load(repo, "limits:\n  retries: 5\nroles:\n  implementer:\n    model: gpt-x\n")
    assert config.limits.retries == 5 and config.limits.timeout == 3600  # type: ignore[attr-defined]
    assert config.roles["implementer"].model == "gpt-x"  # type: ignore[attr-defined]
    assert config.roles["implementer"].sandbox == "workspace-write"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "limits:\n  retries: two\n",
            ".orchestrator/orchestrator.yaml: limits.retries: 'two' is not of type 'integer'",
        ),
        ("limit:\n  retries: 2\n", ".orchestrator/orchestrator.yaml: (top level): unknown key 'limit'"),
        (
            "roles:\n  implementer:\n    sandbox: yolo\n",
            ".orchestrator/orchestrator.yaml: roles.implementer.sandbox: 'yolo' is not one of",
        ),
        (
            "use_single_workspace: maybe\n",
            ".orchestrator/orchestrator.yaml: use_single_workspace: 'maybe' is not of type 'boolean'",
        ),
        ("role_aliases:\n  dev: wizard\n", ".orchestrator/orchestrator.yaml: role_aliases.dev: unknown role 'wizard'"),
        (
            "roles:\n  ops:\n    sandbox: read-only\n",
            ".orchestrator/orchestrator.yaml: roles.ops: missing output_schema, prompt_template",
        ),
        ("limits: [1\n", ".orchestrator/orchestrator.yaml: line 2, column 1: invalid YAML"),
        ("- a\n- b\n", ".orchestrator/orchestrator.yaml: (top level): must be a mapping"),
        (
            "codex:\n  home: relative/dir\n",
            ".orchestrator/orchestrator.yaml: codex.home: must be 'inherit', 'isolated' or an absolute path",
        ),
    ],
)
def test_bad_config_names_file_and_key(repo: Repo, text: str, expected: str) -> None:
    with pytest.raises(InputError) as info:
        load(repo, text)
    assert str(info.value).startswith(expected), str(info.value)
