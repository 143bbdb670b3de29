"""Print the package dependency graph of codex_orch as a Mermaid block, from the imports themselves.

docs/architecture.md carries this block; tests/test_architecture.py fails when the two differ, so the
picture always matches the tree. Run it to refresh the doc:

    .venv/bin/python scripts/arch_graph.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "codex_orch"

# What each part may import (besides itself). "core" is the modules at the package's top level.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "proc": {"core"},
    "git": {"core", "proc"},
    "agents": {"core", "proc"},
    "engine": {"core", "proc", "git", "agents"},
    "commands": {"core", "proc", "git", "agents", "engine"},
    "web": {"core", "proc", "git", "agents", "engine", "commands", "service"},  # service: its queue, read-only
    "service": {"core", "proc", "git", "agents", "engine", "commands"},
    "temporal": {"core", "proc", "git", "agents", "engine"},  # loaded by name (engine/executors.py), never imported
    "cli": {"core", "proc", "git", "agents", "engine", "commands", "web", "service"},
    "testing": {"core"},
    "entry": {"cli"},
}
ORDER = ["entry", "cli", "web", "service", "commands", "temporal", "engine", "agents", "git", "proc", "testing", "core"]
LABELS = {
    "entry": "__main__",
    "cli": "cli/ (click: parse, render)",
    "web": "web/ (dashboard: Starlette app, run API, event streams, pages)",
    "service": "service/ (job queue, workers, HTTP API, MCP server)",
    "commands": "commands/ (report, logs, merge, clean, validate, preflight, planner, runs)",
    "temporal": "temporal/ (optional: workflow, worker, submitter)",
    "engine": "engine/ (run, drive, scheduler, executor, prompts, validation, services)",
    "agents": "agents/ (backend Protocol; codex, claude, gemini)",
    "git": "git/ (repo, worktrees, refs, workspace)",
    "proc": "proc/ (child processes, groups, background)",
    "testing": "testing/ (scripted model server: not a model)",
    "core": "core (errors, layout, config, plan, state, failures, redaction, inputs, agent registry)",
}


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    if rel.name == "__main__.py" and len(rel.parts) == 1:
        return "entry"
    return rel.parts[0] if len(rel.parts) > 1 else "core"


def imports_of(path: Path) -> set[str]:
    """The codex_orch modules a file imports, anywhere in it (imports inside functions count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("codex_orch"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("codex_orch"))
    return found


def module_part(module: str) -> str | None:
    """The part a dotted module name belongs to; None for a name that is not a module."""
    parts = module.split(".")[1:]
    if not parts:
        return "core"  # `from codex_orch import __version__`
    folder = PACKAGE / parts[0]
    if folder.is_dir():
        return parts[0]
    if (PACKAGE / f"{parts[0]}.py").is_file():
        return "entry" if parts[0] == "__main__" else "core"
    return None


def edges() -> dict[tuple[str, str], list[str]]:
    """(from part, to part) -> the files that make that edge."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = part_of(path)
        for module in imports_of(path):
            target = module_part(module)
            if target is None or target == source:
                continue
            found.setdefault((source, target), []).append(str(path.relative_to(ROOT)))
    return found


def violations() -> list[str]:
    return [
        f"{source} -> {target}: {', '.join(sorted(set(files)))}"
        for (source, target), files in sorted(edges().items())
        if target not in ALLOWED[source]
    ]


def mermaid() -> str:
    lines = ["```mermaid", "flowchart TD"]
    for part in ORDER:
        lines.append(f'    {part}["{LABELS[part]}"]')
    for source, target in sorted(edges(), key=lambda e: (ORDER.index(e[0]), ORDER.index(e[1]))):
        lines.append(f"    {source} --> {target}")
    lines.append("```")
    return "\n".join(lines)


if __name__ == "__main__":
    bad = violations()
    if bad:
        print("imports against the layering:\n" + "\n".join(bad), file=sys.stderr)
        sys.exit(1)
    print(mermaid())
