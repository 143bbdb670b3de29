"""`codex-orch init`: write .orchestrator/ from the packaged defaults, idempotently."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from codex_orch.layout import CONFIG_NAME, ORCH_DIR, Layout, packaged_templates

# Run state and worktrees, and the logs of the codex-mem service (engine/services.py), stay untracked.
GITIGNORE_LINES = (f"{ORCH_DIR}/runs/", f"{ORCH_DIR}/worktrees/", ".codex-mem/")


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
    backups: tuple[tuple[str, str], ...] = ()  # (file, its copy) of each customised file --force replaced


def init(layout: Layout, force: bool = False) -> InitResult:
    """Write the default files that are missing; with `force`, also those that differ from the defaults,
    each customised one first copied beside itself (`orchestrator.yaml.bak-<UTC time>`)."""
    written, kept, backups = [], [], []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for rel, content in default_files().items():
        target = layout.orch_dir / rel
        if target.exists() and not force:
            kept.append(rel)
            continue
        if target.exists() and target.read_bytes() == content:
            kept.append(rel)
            continue
        if target.exists():
            backup = _free_name(target.with_name(f"{target.name}.bak-{stamp}"))
            shutil.copy2(target, backup)
            backups.append((rel, str(backup.relative_to(layout.orch_dir))))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(rel)
    layout.runs_dir.mkdir(parents=True, exist_ok=True)
    layout.worktrees_dir.mkdir(parents=True, exist_ok=True)
    return InitResult(tuple(written), tuple(kept), _ensure_gitignore(layout.root), tuple(backups))


def _free_name(path: Path) -> Path:
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


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
