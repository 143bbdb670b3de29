"""`codex-orch clean`: remove a run's worktrees and branches, never losing work.

A plan is made first, by reading only (git status without its optional index lock, merge checks
whose objects go to a scratch folder): each worktree and branch is to be removed or kept, with why.
A worktree with uncommitted changes is kept; a branch is kept unless its work is in the base branch
(its tip is an ancestor, or merging it would give the base's own tree: a squash or rebase merge);
--force removes them anyway. Applying the plan deletes each branch only if it still points where it
did when it was judged. A Temporal run's refs on its shared repository go too (an unfinished task's
work in progress only with --force). `prune` (prune.py) makes such plans for many runs.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codex_orch.commands.merge import INTEGRATION_BRANCH
from codex_orch.commands.runs import changing, run_dir
from codex_orch.engine.executors import ExecutorChoice, recorded_choice
from codex_orch.errors import GitError, OrchError
from codex_orch.git.refs import branch_worktree, delete_ref, patch_is_in, ref_sha, refs_under
from codex_orch.git.remote import delete_remote_ref_at, remote_refs, remote_url
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
    remote: str | None = None  # a "remote ref": the shared repository of a Temporal run it is on


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
                | ({"remote": i.remote} if i.remote else {})
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
    """The run's branches, its integration branch too: named after the run, so found even when the last
    merge recorded none (a merge with nothing to land after one that made it)."""
    integration = INTEGRATION_BRANCH.format(date=run.date, run_id=run.run_id) if run.date else None
    names = [run.branch] + [t.branch for t in run.tasks] + [run.integration_branch, integration]
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
    items += remote_items(git, run, recorded_choice(Layout(root).run_dir(run.run_id)), keep_branches, force)
    return CleanPlan(run.run_id, base, tuple(items))


def remote_items(
    git: Git, run: RunRecord, choice: ExecutorChoice | None, keep_branches: bool, force: bool
) -> list[Item]:
    """A Temporal run's refs on its shared repository (docs/scale-out.md): its last tip and each task's
    commit go with the run's branches; an unfinished task's work in progress stays unless --force."""
    if choice is None or not choice.settings.get("remote"):
        return []
    url = remote_url(git, str(choice.settings["remote"]))
    try:
        found = remote_refs(git, url, f"refs/orch/{run.run_id}/")
    except GitError as exc:
        return [
            Item(
                "remote ref", f"refs/orch/{run.run_id}/*", KEEP, f"could not list them: {exc.message}", None, remote=url
            )
        ]
    unfinished = {t.id for t in run.tasks if t.status != "succeeded"}
    items = []
    for ref, sha in sorted(found.items()):
        task = ref.rsplit("/", 1)[-1]
        if keep_branches:
            items.append(Item("remote ref", ref, KEEP, "--keep-branches", sha, remote=url))
        elif "/partial/" in ref and task in unfinished and not force:
            items.append(
                Item("remote ref", ref, KEEP, f"work in progress of {task}, which did not finish", sha, remote=url)
            )
        else:
            items.append(Item("remote ref", ref, REMOVE, f"the run's own, on {url}", sha, remote=url))
    return items


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
                _remove_worktree(root, item, in_use, force)
            elif item.kind == "remote ref":
                delete_remote_ref_at(git, item.remote or "", item.name, item.sha or "")
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


def _remove_worktree(root: Path, item: Item, in_use: dict[Path, list[PathUser]], force: bool) -> None:
    if in_use.get(Path(item.name)):
        raise OrchError(_in_use(in_use[Path(item.name)]))
    if not Path(item.name).exists():
        return
    before = _count_files(Path(item.name))
    try:
        remover = Git(root, config=_excluding(item.excludes)) if item.excludes else Git(root)
        remove_worktree(remover, Path(item.name), force=force)
    except OrchError as exc:
        left = _count_files(Path(item.name))
        if left < before:  # git removed part of it before it failed: say so, never "kept"
            raise OrchError(
                f"{exc.message} -- git removed {before - left} of its {before} files before it "
                f"stopped; the {left} left stay"
            ) from None
        raise


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
