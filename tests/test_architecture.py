"""The layout shows the architecture: imports flow one way, modules stay small, the doc's picture matches."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 420  # "no module over ~400 lines": past that, a module holds two ideas


def _arch_graph() -> Any:  # a script loaded from its file: its attributes are not known to mypy
    spec = importlib.util.spec_from_file_location("arch_graph", ROOT / "scripts" / "arch_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("arch_graph", module)
    spec.loader.exec_module(module)
    return module


def test_imports_flow_one_way() -> None:
    assert _arch_graph().violations() == []


def test_an_import_against_the_arrows_is_caught(tmp_path: Path) -> None:
    graph = _arch_graph()
    fake = tmp_path / "codex_orch"
    (fake / "git").mkdir(parents=True)
    (fake / "engine").mkdir()
    (fake / "engine" / "run.py").write_text("")
    (fake / "git" / "repo.py").write_text("def f():\n    from codex_orch.engine.run import x\n")
    original = graph.PACKAGE, graph.ROOT
    graph.PACKAGE, graph.ROOT = fake, tmp_path
    try:
        assert graph.violations() == ["git -> engine: codex_orch/git/repo.py"]
    finally:
        graph.PACKAGE, graph.ROOT = original


def test_no_module_holds_two_ideas() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text("utf-8").splitlines()) for p in (ROOT / "codex_orch").rglob("*.py")
    }
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def test_the_picture_in_architecture_md_matches_the_imports() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text("utf-8")
    found = re.search(r"<!-- arch-graph:start[^>]*-->\n(.*?)\n<!-- arch-graph:end -->", doc, re.S)
    assert found, "docs/architecture.md lost its generated picture"
    assert found.group(1) == _arch_graph().mermaid(), "refresh it: python scripts/arch_graph.py"


def test_every_module_is_in_architecture_md() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text("utf-8")
    missing = [
        str(p.relative_to(ROOT / "codex_orch"))
        for p in (ROOT / "codex_orch").rglob("*.py")
        if p.name != "__init__.py" and f"`{p.name}`" not in doc and f"{p.parent.name}/{p.name}" not in doc
    ]
    assert missing == []


def test_no_dead_code() -> None:
    """vulture, with the settings and the few names it cannot see used in pyproject.toml [tool.vulture]."""
    found = subprocess.run([sys.executable, "-m", "vulture"], cwd=ROOT, capture_output=True, text=True)
    assert (found.returncode, found.stdout) == (0, ""), found.stdout + found.stderr


def test_the_dashboard_stays_out_of_the_cli_start_up_path() -> None:
    """starlette and uvicorn are imported by `codex-orch dashboard` only, not by `codex-orch --help`."""
    import subprocess

    probe = "import sys, codex_orch.cli.main; print(sorted(m for m in sys.modules if m.startswith(('starlette', 'uvicorn', 'codex_orch.web'))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
