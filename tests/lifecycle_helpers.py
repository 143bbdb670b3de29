"""Helpers shared by the merge, clean, prune, report and validate tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import Repo


def repo_snapshot(repo: Repo) -> dict[str, str]:
    """Everything a failed merge must leave as it was: HEAD, every ref, the index, the working files."""
    files = {}
    for path in sorted(repo.path.rglob("*")):
        rel = path.relative_to(repo.path)
        if rel.parts[0] in (".git", ".orchestrator") or not path.is_file():
            continue
        files[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "HEAD": repo.git("rev-parse", "HEAD"),
        "symbolic HEAD": repo.git("symbolic-ref", "-q", "HEAD", check=False),
        "refs": repo.git("for-each-ref", "--format=%(refname) %(objectname)"),
        "index": repo.git("ls-files", "-s"),
        "staged": repo.git("diff", "--cached"),
        "status": repo.git("status", "--porcelain", "--untracked-files=all"),
        "files": repr(files),
    }


def tree_hash(root: Path) -> str:
    """Names, modes, sizes, mtimes and contents of every file under `root`."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        digest.update(f"{path.relative_to(root)} {stat.st_mode} {stat.st_size} {stat.st_mtime_ns}\n".encode())
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def start_with(repo: Repo, rel: str, text: str, workspace: str) -> None:
    """Commit `rel` holding `text` on the base branch, and run in `workspace` mode from there."""
    repo.write(rel, text)
    repo.git("add", rel)
    repo.git("commit", "-q", "-m", f"add {rel}")
    repo.configure(workspace=workspace)
