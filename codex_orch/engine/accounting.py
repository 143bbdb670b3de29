"""What a task's commit holds, against what its agent said it changed.

An agent that says it changed files that are not in its commit (it wrote them somewhere codex-orch does not
commit, or not at all), or that says nothing while its commit changes files, has an answer that cannot be
taken at its word: the task is flagged in the status table, the report and --json.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def answer_files(value: Any) -> list[str] | None:
    """The files an answer says it changed; None when its role's answer has no such list."""
    if not isinstance(value, dict) or not isinstance(value.get("files_changed"), list):
        return None
    return [f for f in value["files_changed"] if isinstance(f, str)]


def _normal(path: str, worktree: Path) -> str:
    """A path as the agent may write it (absolute in the worktree, `./x`, `a//b`) as git names it."""
    text = path.strip()
    if text.startswith("/"):
        try:
            text = str(Path(text).relative_to(worktree))
        except ValueError:
            return text
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return "/".join(parts)


def file_claims(claimed: Sequence[str] | None, committed: Sequence[str], worktree: Path) -> dict[str, Any] | None:
    """What does not add up between the answer's list and the commit, or None when it does.

    `not_in_commit`: files the answer lists that the commit does not change; `listed_none`: the commit
    changes files while the answer lists none. A folder the answer lists covers the files under it."""
    if claimed is None:
        return None
    in_commit = set(committed)
    missing = []
    for raw in claimed:
        path = _normal(raw, worktree)
        if path and path not in in_commit and not any(c.startswith(path.rstrip("/") + "/") for c in in_commit):
            missing.append(raw)
    listed_none = not claimed and bool(committed)
    if not missing and not listed_none:
        return None
    return {"not_in_commit": missing[:100], "listed_none": listed_none}


def describe(claims: dict[str, Any]) -> str:
    if claims.get("listed_none"):
        return "its answer lists no files, but its commit changes some"
    missing = claims.get("not_in_commit") or []
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return f"its answer lists files its commit does not hold: {shown}"
