"""`codex-orch clean` and `prune`: remove a run's worktrees and branches, never losing work.

A plan is made first, by reading only (git status without its optional index lock, merge checks
whose objects go to a scratch folder): each worktree and branch is to be removed or kept, with why.
A worktree with uncommitted changes is kept; a branch is kept unless its work is in the base branch
(its tip is an ancestor, or merging it would give the base's own tree: a squash or rebase merge);
--force removes them anyway. Applying the plan deletes each branch only if it still points where it
did when it was judged. `prune` makes such plans for many runs: a dry run unless --apply, which first
resumes unfinished runs so that interrupted work ends up committed rather than deleted.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from codex_orch.commands.runs import UNFINISHED, all_runs, changing, is_driven, last_activity, load_run, run_dir
from codex_orch.engine.context import Notify, _no_notify
from codex_orch.errors import OrchError
from codex_orch.git.refs import branch_worktree, delete_ref, patch_is_in, ref_sha, refs_under
from codex_orch.git.repo import Git, local_changes
from codex_orch.git.worktrees import admin_dir, remove_worktree, repo_lock, worktree_list
from codex_orch.layout import Layout
from codex_orch.proc.procfs import PathUser, path_users
from codex_orch.run_record import RunRecord, read_record

REMOVE, KEEP = "remove", "keep"


@dataclass(frozen=True)
class Item:
    kind: str  # "worktree", "branch" or "ref"
    name: str  # a path, a branch name or a full ref name
    action: str  # REMOVE or KEEP
    reason: str
    sha: str | None = None  # what a branch or ref pointed at when it was judged
    done: bool = False  # applied (removed)
    excludes: str | None = None  # a worktree's setup exclude list: what its setup left is no change


@dataclass(frozen=True)
class CleanPlan:
    run_id: str
    base: str | None
    items: tuple[Item, ...]

    @property
    def keeps(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.action == KEEP)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "base": self.base,
            "items": [
                {"kind": i.kind, "name": i.name, "action": i.action, "reason": i.reason, "sha": i.sha, "done": i.done}
                for i in self.items
            ],
        }


def _excluding(excludes: str | None) -> tuple[str, ...]:
    return (f"core.excludesFile={excludes}",) if excludes else ()


def _names(changes: list[Any]) -> str:
    shown = ", ".join(c.path for c in changes[:3])
    return shown + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")


def _worktrees(git: Git, layout: Layout, run: RunRecord) -> list[Path]:
    """The run's worktrees: recorded in its state, or registered with git under its folder."""
    paths = [run.worktree] + [t.worktree for t in run.tasks]
    found = [Path(p) for p in paths if p]
    folder = layout.run_worktree(run.run_id).resolve()
    for entry in worktree_list(git):
        path = Path(entry["worktree"])
        if path.resolve() == folder or folder in path.resolve().parents:
            found.append(path)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _branches(run: RunRecord) -> list[str]:
    names = [run.branch] + [t.branch for t in run.tasks] + [run.integration_branch]
    return list(dict.fromkeys(n for n in names if n))


def plan_clean(
    root: Path, run: RunRecord, keep_branches: bool = False, force: bool = False, into: str | None = None
) -> CleanPlan:
    """What clean would do to this run, decided by reading only."""
    git = Git(root)
    base = into or run.base_branch
    items = _worktree_items(git, Layout(root), run, force)
    items += _branch_items(git, run, base, items, keep_branches, force)
    for ref, sha in refs_under(git, f"refs/orch/{run.run_id}/").items():
        if force and not keep_branches:
            items.append(Item("ref", ref, REMOVE, "set-aside changes deleted (--force)", sha))
        else:
            items.append(Item("ref", ref, KEEP, "changes set aside from a task (outside its paths)", sha))
    return CleanPlan(run.run_id, base, tuple(items))


def _worktree_items(git: Git, layout: Layout, run: RunRecord, force: bool) -> list[Item]:
    registered = {Path(entry["worktree"]).resolve() for entry in worktree_list(git)}
    worktrees = _worktrees(git, layout, run)
    in_use = path_users([p for p in worktrees if p.exists()])
    items = []
    for path in worktrees:
        if not path.exists():
            if path.resolve() in registered:
                items.append(Item("worktree", str(path), REMOVE, "its folder is gone; git forgets it"))
        elif in_use[path]:
            items.append(Item("worktree", str(path), KEEP, _in_use(in_use[path])))
        else:
            # what the worktree's setup left is not a change (engine/setup.py)
            excludes = (run.setups.get(str(path)) or {}).get("exclude_file")
            items.append(_worktree_item(git, path, force, excludes))
    return items


def _worktree_item(git: Git, path: Path, force: bool, excludes: str | None) -> Item:
    """Remove or keep a worktree no process uses: kept while it holds work git would lose."""
    try:
        wgit = git.worktree(path, admin_dir(git, path), _excluding(excludes))  # never through its own .git file
    except OrchError:
        return Item("worktree", str(path), KEEP, "a folder that is not a git worktree (left untouched)")
    changes = local_changes(wgit)
    nested = nested_repositories(wgit, path)
    if nested and not force:
        shown = ", ".join(nested[:3]) + (f" and {len(nested) - 3} more" if len(nested) > 3 else "")
        why = f"holds a nested git repository, whose work git does not see: {shown}"
        return Item("worktree", str(path), KEEP, why)
    if changes and not force:
        return Item("worktree", str(path), KEEP, f"uncommitted changes: {_names(changes)}")
    reason = f"uncommitted changes discarded (--force): {_names(changes)}" if changes else "no uncommitted changes"
    return Item("worktree", str(path), REMOVE, reason, excludes=excludes)


def _branch_items(
    git: Git, run: RunRecord, base: str | None, worktrees: list[Item], keep_branches: bool, force: bool
) -> list[Item]:
    """Each branch of the run: removed only when its work is in `base` (or --force), never while checked
    out in a worktree that stays or that is not the run's."""
    base_sha = ref_sha(git, f"refs/heads/{base}") if base else None
    kept = {Path(i.name).resolve() for i in worktrees if i.action == KEEP}
    landed = {t.branch for t in run.tasks if t.landed and t.branch}
    items = []
    for branch in _branches(run):
        sha = ref_sha(git, f"refs/heads/{branch}")
        if sha is None:
            continue
        checkout = branch_worktree(git, branch)
        if keep_branches:
            items.append(Item("branch", branch, KEEP, "--keep-branches", sha))
        elif checkout is not None and (checkout.resolve() in kept or not _is_run_worktree(worktrees, checkout)):
            items.append(Item("branch", branch, KEEP, f"checked out in {checkout}", sha))
        elif branch in landed:
            items.append(Item("branch", branch, REMOVE, f"its task's work landed on the run branch {run.branch}", sha))
        elif base_sha is not None and patch_is_in(git, base_sha, sha):
            items.append(Item("branch", branch, REMOVE, f"its work is in {base}", sha))
        elif force:
            items.append(Item("branch", branch, REMOVE, f"unmerged work deleted (--force; it was at {sha[:12]})", sha))
        elif base_sha is None:
            why = f"no branch {base!r} to compare with" if base else "the run recorded no base branch"
            items.append(Item("branch", branch, KEEP, f"{why} (pass --into BRANCH)", sha))
        else:
            ahead = git.run("rev-list", "--count", f"{base_sha}..{sha}")
            items.append(Item("branch", branch, KEEP, f"{ahead} commit(s) not in {base}", sha))
    return items


def nested_repositories(git: Git, worktree: Path) -> list[str]:
    """Folders of the worktree that are git repositories of their own (untracked or ignored): their
    files are in no status and no commit of the worktree's, so removing the worktree would lose them."""
    found = []
    for entry in git.status(ignored=True):
        path = worktree / entry.path
        if entry.code in ("??", "!!") and path.is_dir() and not path.is_symlink() and (path / ".git").exists():
            found.append(entry.path.rstrip("/"))
    return found


def _count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _in_use(users: list[PathUser]) -> str:
    """Why a worktree is kept: even --force does not delete a folder a process works in."""
    shown = "; ".join(str(u) for u in users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
    return f"in use by {shown} (stop it, then clean again)"


def _is_run_worktree(items: list[Item], checkout: Path) -> bool:
    return any(i.kind == "worktree" and Path(i.name).resolve() == checkout.resolve() for i in items)


def apply_clean(root: Path, plan: CleanPlan, force: bool = False) -> CleanPlan:
    """Carry the plan out: worktrees first (a checked-out branch cannot go), then branches and refs."""
    git = Git(root)
    done: list[Item] = []
    folders = [Path(i.name) for i in plan.items if i.kind == "worktree" and i.action == REMOVE]
    in_use = path_users([f for f in folders if f.exists()])  # again: a process may have started since
    for item in plan.items:
        if item.action != REMOVE:
            done.append(item)
            continue
        try:
            if item.kind == "worktree":
                if in_use.get(Path(item.name)):
                    raise OrchError(_in_use(in_use[Path(item.name)]))
                if Path(item.name).exists():
                    before = _count_files(Path(item.name))
                    try:
                        remover = Git(root, config=_excluding(item.excludes)) if item.excludes else git
                        remove_worktree(remover, Path(item.name), force=force)
                    except OrchError as exc:
                        left = _count_files(Path(item.name))
                        if left < before:  # git removed part of it before it failed: say so, never "kept"
                            raise OrchError(
                                f"{exc.message} -- git removed {before - left} of its {before} files before it "
                                f"stopped; the {left} left stay"
                            ) from None
                        raise
            elif item.kind == "branch":
                checkout = branch_worktree(git, item.name)
                if checkout is not None:  # its worktree could not be removed
                    raise OrchError(f"still checked out in {checkout}")
                delete_ref(git, f"refs/heads/{item.name}", item.sha or "")
            else:
                delete_ref(git, item.name, item.sha or "")
        except OrchError as exc:
            done.append(replace(item, action=KEEP, reason=f"could not remove: {exc.message}"))
            continue
        done.append(replace(item, done=True))
    with repo_lock(git):
        git.run("worktree", "prune")
    folder = Layout(root).run_worktree(plan.run_id)
    if folder.is_dir() and not any(folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
    return replace(plan, items=tuple(done))


def clean_run(
    root: Path,
    run_id: str,
    keep_branches: bool = False,
    force: bool = False,
    into: str | None = None,
    dry_run: bool = False,
) -> CleanPlan:
    """Clean the run; with `dry_run`, only the plan of what would be done (nothing is changed or written)."""
    folder = run_dir(Layout(root), run_id)
    if dry_run:
        return plan_clean(root, read_record(folder), keep_branches, force, into)
    with changing(folder) as store:
        plan = plan_clean(root, RunRecord.from_state(store.view()), keep_branches, force, into)
        result = apply_clean(root, plan, force)
        store.record(
            "run.cleaned",
            removed=[f"{i.kind} {i.name}" for i in result.items if i.done],
            kept=[f"{i.kind} {i.name}: {i.reason}" for i in result.keeps],
        )
    return result


# --- prune ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PruneEntry:
    run_id: str
    status: str
    last_activity: datetime
    unfinished: tuple[str, ...]  # "T0002 (interrupted)", resumed first unless --no-resume
    plan: CleanPlan | None  # None: skipped
    skipped: str | None = None
    resumed: str | None = None  # the run's status after the resume (--apply)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "last_activity": self.last_activity.isoformat(),
            "unfinished": list(self.unfinished),
            "plan": self.plan.to_json() if self.plan else None,
            "skipped": self.skipped,
            "resumed": self.resumed,
            "error": self.error,
        }


def plan_prune(root: Path, run_ids: tuple[str, ...] = (), older_than_days: float | None = None) -> list[PruneEntry]:
    """The runs prune would act on and what it would do to each, by reading only."""
    layout = Layout(root)
    if older_than_days is None and not run_ids:
        older_than_days = 7
    chosen = list(dict.fromkeys(run_ids)) if run_ids else all_runs(layout)
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days) if older_than_days is not None else None
    entries = []
    for run_id in chosen:
        run = RunRecord.from_state(load_run(layout, run_id))
        when = last_activity(run)
        if cutoff is not None and when > cutoff:
            continue
        unfinished = tuple(f"{t.id} ({t.status})" for t in run.tasks if t.status in UNFINISHED)
        if is_driven(run_dir(layout, run_id)):
            entries.append(PruneEntry(run_id, run.status, when, unfinished, None, "a codex-orch process drives it"))
            continue
        plan = plan_clean(root, run)
        if not plan.items and not unfinished:
            continue  # nothing left of it
        entries.append(PruneEntry(run_id, run.status, when, unfinished, plan))
    return entries


def apply_prune(
    root: Path,
    entries: list[PruneEntry],
    resume: bool = True,
    keep_branches: bool = False,
    spec_file: Path | None = None,
    notify: Notify = _no_notify,
) -> list[PruneEntry]:
    """Resume (unless told not to) and clean each run; one run's trouble does not stop the others."""
    from codex_orch.engine.drive import RunOptions
    from codex_orch.engine.run import resume_run

    results = []
    for entry in entries:
        if entry.plan is None:
            results.append(entry)
            continue
        resumed = None
        try:
            if resume and entry.unfinished:
                resumed = resume_run(root, entry.run_id, spec_file, RunOptions(), notify).status
            plan = clean_run(root, entry.run_id, keep_branches=keep_branches)
        except OrchError as exc:
            results.append(replace(entry, resumed=resumed, error=str(exc)))
            continue
        results.append(replace(entry, plan=plan, resumed=resumed))
    return results


def prune_candidates_text(entry: PruneEntry, resume: bool, applied: bool) -> list[str]:
    """Lines describing one run of a prune, as a plan (dry run) or as what was done."""
    lines = [f"run {entry.run_id} ({entry.status}, last active {_ago(entry.last_activity)})"]
    if entry.skipped:
        return [*lines, f"  skipped: {entry.skipped}"]
    if entry.unfinished:
        tasks = ", ".join(entry.unfinished)
        if not resume:
            lines.append(f"  not resumed (--no-resume): {tasks}")
        elif applied:
            lines.append(f"  resumed: {tasks} -> run {entry.resumed or 'not resumed'}")
        else:
            lines.append(f"  would resume: {tasks} (the clean below is then decided again)")
    if entry.error:
        return [*lines, f"  error: {entry.error}"]
    if entry.plan is not None:
        lines += ["  " + line for line in clean_text(entry.plan, applied)]
    return lines


def _ago(when: datetime) -> str:
    seconds = max(0.0, (datetime.now(UTC) - when).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def clean_text(plan: CleanPlan, applied: bool) -> list[str]:
    lines = []
    for item in plan.items:
        if item.action == REMOVE:
            verb = "removed" if applied else "would remove"
            extra = f" (was {item.sha[:12]})" if item.sha and applied else ""
            lines.append(f"{verb} {item.kind} {item.name}{extra}: {item.reason}")
        else:
            lines.append(f"{'kept' if applied else 'would keep'} {item.kind} {item.name}: {item.reason}")
    return lines or ["nothing to clean"]
