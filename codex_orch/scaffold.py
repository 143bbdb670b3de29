"""`codex-orch init`: write .orchestrator/ from the packaged defaults, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codex_orch.layout import CONFIG_NAME, ORCH_DIR, Layout, packaged_templates

GITIGNORE_LINES = (f"{ORCH_DIR}/runs/", f"{ORCH_DIR}/worktrees/")


def default_files() -> dict[str, bytes]:
    """Relative path inside .orchestrator/ -> content, exactly what init writes."""
    src = packaged_templates()
    files = {CONFIG_NAME: (src / CONFIG_NAME).read_bytes()}
    for folder, pattern in (("schemas", "*.json"), ("prompts", "*.j2")):
        for path in sorted((src / folder).glob(pattern)):
            files[f"{folder}/{path.name}"] = path.read_bytes()
    return files


@dataclass(frozen=True)
class InitResult:
    written: tuple[str, ...]
    kept: tuple[str, ...]
    gitignore_updated: bool


def init(layout: Layout, force: bool = False) -> InitResult:
    written, kept = [], []
    for rel, content in default_files().items():
        target = layout.orch_dir / rel
        if target.exists() and not force:
            kept.append(rel)
            continue
        if target.exists() and target.read_bytes() == content:
            kept.append(rel)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(rel)
    layout.runs_dir.mkdir(parents=True, exist_ok=True)
    layout.worktrees_dir.mkdir(parents=True, exist_ok=True)
    return InitResult(tuple(written), tuple(kept), _ensure_gitignore(layout.root))


def ensure_scaffold(layout: Layout) -> None:
    """Every command that writes creates .orchestrator/ when it is missing."""
    if not layout.config_path.is_file():
        init(layout)
    else:
        layout.runs_dir.mkdir(parents=True, exist_ok=True)
        layout.worktrees_dir.mkdir(parents=True, exist_ok=True)
        _ensure_gitignore(layout.root)


def _ensure_gitignore(root: Path) -> bool:
    path = root / ".gitignore"
    text = path.read_text("utf-8") if path.is_file() else ""
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line in GITIGNORE_LINES if line not in present]
    if not missing:
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    text += "# codex-orch: run state and worktrees stay out of the repository\n" + "\n".join(missing) + "\n"
    path.write_text(text, "utf-8")
    return True
