"""`codex-orch merge`: bring a run's work into its base branch, or leave everything as it was.

Everything is decided before anything moves: fast-forwards are checked with merge-base, merges are
made with `git merge-tree --write-tree` and `git commit-tree` (new objects, no ref, no index, no
file touched), and conflicts stop the merge there with the files named. Only then does one ref
move: the base branch, by a real `git merge --ff-only` in the worktree that has it checked out (so
its files follow), or by a compare-and-swap `git update-ref` when no worktree has it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codex_orch.commands.runs import changing, heads, run_dir, task_tips
from codex_orch.config import Config, load_config
from codex_orch.errors import EXIT_TASKS_FAILED, GitError, InputError, OrchError
from codex_orch.git.refs import ZERO_SHA, branch_worktree, delete_ref, is_ancestor, merge_tree, ref_sha, update_ref
from codex_orch.git.repo import Git, local_changes, valid_branch_name
from codex_orch.git.workspace import Workspaces
from codex_orch.git.worktrees import checkout_git, detached_worktree
from codex_orch.layout import Layout
from codex_orch.run_record import RunRecord
from codex_orch.state import RunStore

if TYPE_CHECKING:
    from codex_orch.commands.integration import Queue

INTEGRATION_BRANCH = "orch/{date}/run-{run_id}/integration"


class MergeRefused(OrchError):
    """The run's work cannot go into the base branch as asked; nothing was changed."""

    exit_code = EXIT_TASKS_FAILED


@dataclass(frozen=True)
class MergeStep:
    source: str  # the task id, or the run's branch
    branch: str
    commit: str
    how: str  # "fast-forward", "merge" or "already in"


@dataclass(frozen=True)
class MergeOutcome:
    run_id: str
    into: str
    old: str
    new: str
    steps: tuple[MergeStep, ...]
    integration_branch: str | None
    checkout: Path | None  # the worktree whose files followed the base branch, if one has it checked out
    left_out: tuple[str, ...]  # tasks whose work is not merged, with why
    failed: tuple[str, ...] = ()  # tasks the integration queue found guilty (integration_failed)
    queue: Queue | None = None  # the integration queue's outcome, when a doctor ran

    @property
    def changed(self) -> bool:
        return self.old != self.new


def merge_run(root: Path, run_id: str, allow_automerge: bool = False, into: str | None = None) -> MergeOutcome:
    """Merge the run's work into `into` (default: its base branch): all or nothing, or through the
    integration queue when `integration.doctor` is configured (commands/integration.py)."""
    layout = Layout(root)
    folder = run_dir(layout, run_id)
    git = Git(root)
    config = load_config(layout)
    with changing(folder) as store:
        run = RunRecord.from_state(store.view())
        target, old, checkout = _target(git, run, into)
        if config.integration.doctor is not None:
            return _through_queue(git, config, store, run, target, old, checkout, root)
        sources, left_out = _sources(git, run)
        steps, new = _plan(git, run_id, target, old, sources, allow_automerge)
        integration = None
        if run.workspace_mode == "per-task" and sources:
            integration = INTEGRATION_BRANCH.format(date=run.date, run_id=run_id)
        outcome = MergeOutcome(run_id, target, old, new, tuple(steps), integration, checkout, tuple(left_out))
        if new != old or integration:
            _apply(git, outcome)
            _guard_follows(folder, git, outcome)
        _record(store, outcome)
    return outcome


def _target(git: Git, run: RunRecord, into: str | None) -> tuple[str, str, Path | None]:
    """The branch to move, its tip, and the worktree that has it checked out (refused when dirty)."""
    target = into or run.base_branch
    if not target:
        raise InputError(
            f"run {run.run_id} recorded no base branch (it started from a detached HEAD or a commit)",
            "Pass --into BRANCH.",
        )
    old = ref_sha(git, f"refs/heads/{target}")
    if old is None:
        raise InputError(f"--into: no branch {target!r} in this repository")
    checkout = branch_worktree(git, target)
    if checkout is not None:
        dirty = local_changes(checkout_git(git, checkout), untracked=False)
        if dirty:
            names = ", ".join(c.path for c in dirty[:5]) + (", …" if len(dirty) > 5 else "")
            raise InputError(
                f"{target} is checked out at {checkout} with uncommitted changes ({names})",
                "Commit or stash them first; merge changes nothing until then.",
            )
    return target, old, checkout


def _record(store: RunStore, outcome: MergeOutcome) -> None:
    store.record(
        "run.merged",
        into=outcome.into,
        old=outcome.old,
        new=outcome.new,
        integration_branch=outcome.integration_branch,
        steps=[{"source": s.source, "branch": s.branch, "commit": s.commit, "how": s.how} for s in outcome.steps],
        left_out=list(outcome.left_out),
    )


def _through_queue(
    git: Git,
    config: Config,
    store: RunStore,
    run: RunRecord,
    target: str,
    old: str,
    checkout: Path | None,
    root: Path,
) -> MergeOutcome:
    """The integration queue's green tip becomes the target's (commands/integration.py)."""
    from codex_orch.commands.integration import Doctor, record_queue, run_queue, untrusted

    run_id = run.run_id
    n = run.integrations + 1
    logs = store.run_dir / "integration" / str(n)
    logs.mkdir(parents=True, exist_ok=True)
    scratch = run.own_worktree("integration", root)
    doctor = Doctor(git, config, scratch, logs)
    queue = run_queue(git, store.view(), old, doctor, config.integration.canary, Workspaces.identity_for(git))
    if scratch.is_dir():  # left at the tip merge chose, without what the doctor wrote (clean keeps no stray files)
        detached_worktree(git, scratch, queue.tip, clean=True)
    if queue.canary is not None and queue.canary.ok:
        store.record(
            "run.integration", n=n, into=target, old=old, new=old, refused="doctor cannot fail", **queue.to_json()
        )
        raise untrusted(config)
    steps = tuple(MergeStep(s.task, s.branch, s.commit, s.how) for s in queue.landed)
    left = [f"{tid} ({why})" for tid, why in {**queue.failed, **queue.left_out}.items()]
    left += [f"{t.id} ({t.status})" for t in run.tasks if t.status != "succeeded"]
    branch = INTEGRATION_BRANCH.format(date=run.date, run_id=run_id) if queue.landed else None
    outcome = MergeOutcome(
        run_id, target, old, queue.tip, steps, branch, checkout, tuple(left), failed=tuple(queue.failed), queue=queue
    )
    if outcome.changed:
        _apply(git, outcome)
        _guard_follows(store.run_dir, git, outcome)
    record_queue(store, queue, n, target, old)
    _record(store, outcome)
    return outcome


def _sources(git: Git, run: RunRecord) -> tuple[list[tuple[str, str, str]], list[str]]:
    """What to merge, in order: the run's branch (shared and landing runs), or the heads of the
    succeeded tasks' branches (per-task runs)."""
    if run.workspace_mode in ("shared", "landing"):
        branch = run.branch
        sha = ref_sha(git, f"refs/heads/{branch}") if branch else None
        if branch is None or sha is None:
            raise InputError(f"the run's branch {branch!r} no longer exists", "Was the run cleaned?")
        on_branch = ", its commit is on the branch"
        unfinished = [
            f"{t.id} ({t.status}{on_branch if t.commit and run.single_workspace else ''})"
            for t in run.tasks
            if t.status != "succeeded"
        ]
        return [("run", branch, sha)], unfinished
    left_out = [f"{t.id} ({t.status})" for t in run.tasks if t.status != "succeeded"]
    return heads(git, task_tips(git, run)), left_out


def _plan(
    git: Git, run_id: str, target: str, old: str, sources: list[tuple[str, str, str]], allow_automerge: bool
) -> tuple[list[MergeStep], str]:
    """The commit the base branch would move to, found without moving anything."""
    current = old
    steps = []
    for source, branch, sha in sources:
        if is_ancestor(git, sha, current):
            steps.append(MergeStep(source, branch, sha, "already in"))
            continue
        if is_ancestor(git, current, sha):
            steps.append(MergeStep(source, branch, sha, "fast-forward"))
            current = sha
            continue
        if not allow_automerge:
            raise MergeRefused(
                f"{branch} cannot be fast-forwarded onto {target} ({target} or an earlier branch has commits it lacks);"
                " nothing was changed.",
                "Pass --allow-automerge to merge them (conflicts are checked first), or rebase the work yourself.",
            )
        merged = merge_tree(git, current, sha)
        if not merged.clean:
            files = ", ".join(merged.conflicts[:20]) + (" …" if len(merged.conflicts) > 20 else "")
            raise MergeRefused(
                f"merging {branch} into {target} would conflict in {len(merged.conflicts)} file(s): {files};"
                " nothing was changed.",
                "Resolve it by hand: git merge " + branch,
            )
        current = _commit_tree(
            git, merged.tree, (current, sha), f"Merge {branch} into {target}\n\nOrch-Run: {run_id}\n"
        )
        steps.append(MergeStep(source, branch, sha, "merge"))
    return steps, current


def _commit_tree(git: Git, tree: str, parents: tuple[str, str], message: str) -> str:
    identity = Workspaces.identity_for(git)
    config = ["-c", f"user.name={identity[0]}", "-c", f"user.email={identity[1]}"] if identity else []
    return git.run(*config, "commit-tree", tree, "-p", parents[0], "-p", parents[1], "-F", "-", stdin=message.encode())


def _guard_follows(folder: Path, git: Git, outcome: MergeOutcome) -> None:
    """The refs merge moved, as they are now, in what the run's guard expects when the run is resumed
    (guard.json): else `resume` finds them moved while it was stopped and puts them back."""
    import json

    from codex_orch.atomic import atomic_write_json

    path = folder / "guard.json"
    if not path.is_file():
        return
    saved = json.loads(path.read_text("utf-8"))
    refs = saved.setdefault("refs", {})
    for ref in (f"refs/heads/{outcome.into}", f"refs/heads/{outcome.integration_branch or ''}"):
        sha = ref_sha(git, ref) if ref != "refs/heads/" else None
        if sha is not None:
            refs[ref] = sha
    atomic_write_json(path, saved)


def _apply(git: Git, outcome: MergeOutcome) -> None:
    """Move the refs: the integration branch first, then the base branch; undo the first when the
    second cannot move (a change since the plan, an untracked file in the way)."""
    reason = f"codex-orch merge run {outcome.run_id}"
    integration_ref = f"refs/heads/{outcome.integration_branch}" if outcome.integration_branch else None
    previous = None
    if integration_ref:
        if not valid_branch_name(outcome.integration_branch or ""):
            raise InputError(f"integration branch name {outcome.integration_branch!r} is not valid for git")
        previous = ref_sha(git, integration_ref)
        update_ref(git, integration_ref, outcome.new, previous or ZERO_SHA, reason)
    try:
        if outcome.new == outcome.old:
            return
        if outcome.checkout is not None:
            code, out, err = checkout_git(git, outcome.checkout).run_full("merge", "--ff-only", "-q", outcome.new)
            if code != 0:
                why = " ".join((err or out).split())[:300]
                raise GitError(f"git merge --ff-only in {outcome.checkout} refused: {why}; nothing was changed.")
        else:
            update_ref(git, f"refs/heads/{outcome.into}", outcome.new, outcome.old, reason)
    except OrchError:
        if integration_ref:
            if previous:
                update_ref(git, integration_ref, previous, outcome.new, reason + " (undone)")
            else:
                delete_ref(git, integration_ref, outcome.new)
        raise
