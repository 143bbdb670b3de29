"""Property test (hypothesis): over random histories, the check clean relies on before it deletes a
branch — gitops.patch_is_in — never calls a branch merged when some change of it is missing from base."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import examples, git
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_orch.git.refs import patch_is_in
from codex_orch.git.repo import Git

FILES = ["a.txt", "b.txt", "c.txt"]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("branch_commit"), st.sampled_from(FILES), st.sampled_from(["x", "y", "z"])),
        st.tuples(st.just("base_commit"), st.sampled_from(FILES), st.sampled_from(["x", "y", "w"])),
        st.tuples(st.just("squash"), st.just(""), st.just("")),
        st.tuples(st.just("merge"), st.just(""), st.just("")),
        st.tuples(st.just("cherry_pick_last"), st.just(""), st.just("")),
        st.tuples(st.just("branch_delete"), st.sampled_from(FILES), st.just("")),
    ),
    min_size=1,
    max_size=8,
)


def sh(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A git command that may fail (a merge with conflicts): the caller looks at its return code."""
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


def show(repo: Path, rev: str, path: str) -> str | None:
    result = sh(repo, "show", f"{rev}:{path}")
    return result.stdout if result.returncode == 0 else None


def on_branch(repo: Path, op: str, path: str, text: str) -> None:
    git(repo, "checkout", "-q", "task")
    if op == "branch_delete":
        (repo / path).unlink(missing_ok=True)
    else:
        (repo / path).write_text(text + "\n")
    commit(repo, f"task: {op} {path}")
    git(repo, "checkout", "-q", "main")


def on_base(repo: Path, op: str, path: str, text: str) -> None:
    """Change main: a commit of its own, or the branch's work brought in (each may fail, then undone)."""
    if op == "base_commit":
        (repo / path).write_text(text + "\n")
        commit(repo, f"main: {path}")
    elif op == "squash":
        if sh(repo, "merge", "--squash", "task").returncode == 0:
            commit(repo, "squash task")
        else:
            git(repo, "reset", "-q", "--hard")
    elif op == "merge":
        if sh(repo, "merge", "-q", "--no-edit", "task").returncode != 0:
            git(repo, "merge", "--abort")
    elif sh(repo, "cherry-pick", "task").returncode != 0:  # cherry_pick_last
        git(repo, "cherry-pick", "--abort")


@settings(max_examples=examples(20, 150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_a_branch_is_called_merged_only_when_base_holds_every_change(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str, str]]
) -> None:
    repo = tmp_path_factory.mktemp("history")
    git(repo, "init", "-q", "-b", "main")
    for name in FILES:
        (repo / name).write_text("start\n")
    commit(repo, "start")
    git(repo, "branch", "task")
    for op, path, text in ops:
        (on_branch if op in ("branch_commit", "branch_delete") else on_base)(repo, op, path, text)
    merged = patch_is_in(Git(repo), "main", "task")
    fork = git(repo, "merge-base", "main", "task")
    changed = git(repo, "diff", "--name-only", fork, "task").split()
    missing = [p for p in changed if show(repo, "main", p) != show(repo, "task", p)]
    if merged:
        assert missing == [], (ops, missing)
    if not changed:
        assert merged  # a branch with nothing of its own is merged
