"""The conflict forecast of per-task and landing runs: after each task commit, which other tasks' work
it would conflict with (`git merge-tree --write-tree`, nothing checked out or committed), and a hold on
starting a task whose declared paths overlap a predicted conflict that is still open.

Against whom. Per-task runs: the branch tip of every other succeeded task, and of every running task
that has committed something. Landing runs: the change of every other task landed since this task's
branch started (one landed earlier is in its base already), and the committed change of a running task
(one whose landing is being resolved); each change is cherry-picked onto this task's commit, so a
conflict is between these two tasks' own changes.

A predicted conflict is recorded (`task.forecast`: with whom, which files) and shown by `status` and
`report`. It stays open while one of its two tasks has not finished: the running one's work will still
change or land. Meanwhile a task whose `paths` match one of its files is not started (`task.held`,
once per task): it would become a third party to the same conflict. Once both have landed (landing),
succeeded (per-task: the merge queue settles it) or failed, the held task starts. A task that declares
no paths is never held, and nothing is held when no task runs, so the hold cannot stall a run.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from codex_orch.engine.context import RunContext
from codex_orch.errors import OrchError
from codex_orch.git.integrate import pick_conflicts
from codex_orch.git.refs import merge_tree, ref_sha
from codex_orch.git.workspace import path_matches
from codex_orch.plan import Task

SETTLED = ("succeeded", "failed", "blocked", "cancelled")


class Forecast:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._held: set[str] = set()
        # (task, other, files) for every conflict recorded so far (a resumed run's too)
        self._conflicts: list[tuple[str, str, tuple[str, ...]]] = []
        self._index = FileIndex()  # the files of every task that committed (landing runs ask it)
        for tid, task in ctx.store.view()["tasks"].items():
            for c in task.get("forecast") or ():
                self._conflicts.append((tid, c["with"], tuple(c["files"])))
            if task.get("held"):
                self._held.add(tid)
            if task.get("commit"):
                self._index.add(tid, task.get("files_changed"))

    def after_commit(self, task_id: str) -> None:
        """Forecast the conflicts of the task's commit just recorded; a git failure is only a warning."""
        try:
            found = self._predict(task_id)
        except OrchError as exc:
            self.ctx.notify("warning", task_id, {"message": f"{task_id}: conflict forecast failed: {exc}"})
            return
        with self._lock:
            before = [c for c in self._conflicts if c[0] == task_id]
            self._conflicts = [c for c in self._conflicts if c[0] != task_id]
            self._conflicts += [(task_id, c["with"], tuple(c["files"])) for c in found]
        if found or before:
            self.ctx.store.record("task.forecast", task=task_id, conflicts=found)
        for c in found:
            files = ", ".join(c["files"][:5])
            self.ctx.notify(
                "warning", task_id, {"message": f"{task_id}: conflict predicted with {c['with']} in {files}"}
            )

    def _predict(self, task_id: str) -> list[dict[str, Any]]:
        fields = ("status", "commit", "branch", "base_commit", "files_changed")
        if self.ctx.mode == "landing":  # only changes that meet this one's files can conflict with it
            mine = self.ctx.store.task_fields(*fields, ids=[task_id])[task_id]
            with self._lock:
                self._index.add(task_id, mine.get("files_changed"))
                meeting = self._index.meeting(mine.get("files_changed"))
            tasks = self.ctx.store.task_fields(*fields, ids=sorted(meeting | {task_id}))
        else:
            tasks = self.ctx.store.task_fields(*fields)
            mine = tasks[task_id]
        if not mine.get("commit"):
            return []
        git = self.ctx.git
        branch = f"refs/heads/{self.ctx.store.get('branch')}"

        @functools.cache
        def landed_since() -> set[str]:  # landing: what landed since this task's branch started
            return set(git.run("rev-list", f"{mine['base_commit']}..{branch}").split())

        found = []
        for other_id, other in tasks.items():
            if other_id == task_id or not other.get("commit") or other["status"] not in ("succeeded", "running"):
                continue
            files = self._conflict_files(mine, other, landed_since)
            if files:
                found.append({"with": other_id, "files": list(files)})
        return found

    def _conflict_files(
        self, mine: dict[str, Any], other: dict[str, Any], landed_since: Callable[[], set[str]]
    ) -> tuple[str, ...]:
        """The files where `other`'s work would conflict with this task's commit."""
        git = self.ctx.git
        if self.ctx.mode != "landing":
            theirs = other["commit"] if other["status"] == "running" else ref_sha(git, f"refs/heads/{other['branch']}")
            return merge_tree(git, mine["commit"], theirs).conflicts if theirs else ()
        if other["status"] == "succeeded" and other["commit"] not in landed_since():
            return ()  # landed before this task's branch started: it is in its base
        return pick_conflicts(git, mine["commit"], other["commit"])

    def hold(self, task: Task) -> str | None:
        """Why `task` may not start yet (an open predicted conflict on its paths), or None."""
        if task.paths is None:
            return None
        with self._lock:
            conflicts = list(self._conflicts)
        for a, b, files in conflicts:
            if task.id in (a, b):
                continue
            overlap = [f for f in files if path_matches(f, task.paths)]
            if not overlap:
                continue
            open_ = [t for t in (a, b) if self.ctx.store.task(t)["status"] not in SETTLED]
            if not open_:
                continue
            if task.id not in self._held:
                self._held.add(task.id)
                self.ctx.store.record("task.held", task=task.id, by=[a, b], files=overlap)
            return f"its paths overlap the conflict predicted between {a} and {b} in {', '.join(overlap[:5])}"
        return None


class FileIndex:
    """Which tasks' changes meet a change: a file both change, or one's file where the other has a folder
    (`a` and `a/b`); two changes that do not meet cannot conflict, and need no git process to say so.
    Unknown files (a run recorded before files were) meet every change. Kept commit by commit, so that
    a run of hundreds of tasks does not compare each commit with every other task's files."""

    def __init__(self) -> None:
        self._files: dict[str, set[str]] = {}  # a file -> the tasks that changed it
        self._folders: dict[str, set[str]] = {}  # a file or any folder above it -> the tasks that changed it
        self._unknown: set[str] = set()
        self._known: dict[str, list[str] | None] = {}

    def add(self, task_id: str, files: list[str] | None) -> None:
        """The task's files (again, after a later commit of it: its earlier ones are dropped)."""
        for file in self._known.pop(task_id, None) or ():
            self._files.get(file, set()).discard(task_id)
            for folder in _prefixes(file):
                self._folders.get(folder, set()).discard(task_id)
        self._unknown.discard(task_id)
        self._known[task_id] = files
        if files is None:
            self._unknown.add(task_id)
            return
        for file in files:
            self._files.setdefault(file, set()).add(task_id)
            for folder in _prefixes(file):
                self._folders.setdefault(folder, set()).add(task_id)

    def meeting(self, files: list[str] | None) -> set[str]:
        """The tasks whose changes meet a change of `files` (every task, when those are unknown)."""
        if files is None:
            return set(self._known)
        found = set(self._unknown)
        for file in files:
            found |= self._folders.get(file, set())
            for folder in _prefixes(file):
                found |= self._files.get(folder, set())
        return found


def _prefixes(path: str) -> list[str]:
    """`a/b/c`: `a`, `a/b`, `a/b/c`."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
