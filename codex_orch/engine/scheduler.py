"""The DAG scheduler: ready tasks go to a pool of workers, subject to dependencies and to the
rules of what may run side by side (declared paths in a shared worktree, named read/write locks).

Per finished task the work is proportional to its dependents, never to the plan's size.
"""

from __future__ import annotations

import heapq
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from codex_orch.git.workspace import path_matches
from codex_orch.plan import Task

_WILDCARD = re.compile(r"[*?\[]")


def _literal_prefix(glob: str) -> str:
    match = _WILDCARD.search(glob)
    return glob[: match.start()] if match else glob


def globs_overlap(a: str, b: str) -> bool:
    """Could some path match both globs? Conservative: says yes when unsure."""
    pa, pb = _literal_prefix(a.rstrip("/")), _literal_prefix(b.rstrip("/"))
    if pa == a.rstrip("/") and pb == b.rstrip("/"):  # two literal paths: same, or one inside the other
        return pa == pb or pa.startswith(pb + "/") or pb.startswith(pa + "/")
    return pa.startswith(pb) or pb.startswith(pa)


@dataclass(frozen=True)
class ConcurrencyRules:
    """What may run side by side. Named locks always count. Declared paths count in a shared worktree
    (where a task that declares none runs alone) and in a landing run (where they keep two tasks that
    would change the same files from running at once, so their landings cannot conflict; a task that
    declares none runs beside anything, its landing re-applied on the tip). Per-task runs: locks only."""

    mode: str  # "landing", "shared" or "per-task" (state.workspace_mode)
    allow: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def _effective(self, task: Task) -> tuple[str, ...] | None:
        if task.paths is None:
            return None
        return tuple(p for p in task.paths if not path_matches(p, self.ignore))

    def conflict(self, task: Task, running: Sequence[Task]) -> str | None:
        """Why `task` may not start beside the running tasks, or None when it may."""
        for other in running:
            shared_writes = set(task.lock_writes) & (set(other.lock_writes) | set(other.lock_reads))
            shared_writes |= set(task.lock_reads) & set(other.lock_writes)
            if shared_writes:
                return f"lock {sorted(shared_writes)[0]!r} is held by {other.id}"
            if self.mode == "per-task":
                continue
            mine, theirs = self._effective(task), self._effective(other)
            if mine is None or theirs is None:
                if self.mode == "landing":
                    continue
                alone = task.id if mine is None else other.id
                return f"{alone} declares no paths and must run alone in the shared worktree"
            for a in mine:
                for b in theirs:
                    if globs_overlap(a, b) and not (path_matches(a, self.allow) and path_matches(b, self.allow)):
                        return f"paths {a!r} and {b!r} of {other.id} overlap"
        return None


class Scheduler:
    """Runs `run_one(task) -> status` for every runnable task; records blocked ones via `on_blocked`."""

    def __init__(
        self,
        tasks: Sequence[Task],
        statuses: dict[str, str],
        run_one: Callable[[Task], str],
        on_blocked: Callable[[Task, str], None],
        rules: ConcurrencyRules,
        max_workers: int,
        cancel: threading.Event,
        fail_fast: bool = False,
        follow_ups: Callable[[Task], list[Task]] | None = None,
        hold: Callable[[Task], str | None] | None = None,
        forecast: Callable[[Task], str | None] | None = None,
    ) -> None:
        self.tasks = list(tasks)
        self.by_id = {t.id: t for t in self.tasks}
        self.position = {t.id: i for i, t in enumerate(self.tasks)}
        self.statuses = statuses
        self.run_one = run_one
        self.on_blocked = on_blocked
        self.rules = rules
        self.max_workers = max(1, max_workers)
        self.cancel = cancel
        self.fail_fast = fail_fast
        self.failed_fast = False  # --fail-fast stopped the run (not a signal, not an internal error)
        self.follow_ups = follow_ups
        # Why a ready task may not start now: "stop" (the run's budget is spent: it stays pending),
        # "wait" (its agent is paused on a quota: it starts when the pause ends), None: it may.
        self.hold = hold
        self.held: str | None = None
        # why a ready task must wait while others run (the conflict forecast); never holds when none runs
        self.forecast = forecast
        self.dependents: dict[str, list[str]] = {t.id: [] for t in self.tasks}
        self.waiting: dict[str, int] = {}
        for task in self.tasks:
            for dep in set(task.blocked_by):
                self.dependents[dep].append(task.id)

    def add_task(self, task: Task) -> None:
        """A task that joined the plan while it runs (follow-ups)."""
        self.tasks.append(task)
        self.by_id[task.id] = task
        self.position[task.id] = len(self.tasks) - 1
        self.dependents[task.id] = []
        for dep in set(task.blocked_by):
            self.dependents[dep].append(task.id)
        self.statuses[task.id] = "pending"
        self._enqueue(task)

    def _enqueue(self, task: Task) -> None:
        deps = set(task.blocked_by)
        if any(self.statuses[d] in ("failed", "blocked", "cancelled") for d in deps):
            self._block(
                task.id, next(d for d in task.blocked_by if self.statuses[d] in ("failed", "blocked", "cancelled"))
            )
            return
        self.waiting[task.id] = sum(1 for d in deps if self.statuses[d] != "succeeded")
        if self.waiting[task.id] == 0:
            heapq.heappush(self.ready, self.position[task.id])

    def _block(self, task_id: str, because: str) -> None:
        """Block `task_id` and, transitively, everything waiting on it."""
        stack = [(task_id, because)]
        while stack:
            tid, cause = stack.pop()
            if self.statuses.get(tid) in ("succeeded", "blocked"):
                continue
            self.statuses[tid] = "blocked"
            self.waiting.pop(tid, None)
            self.on_blocked(self.by_id[tid], cause)
            stack.extend((d, tid) for d in self.dependents[tid])

    def run(self) -> None:
        self.ready: list[int] = []
        for task in self.tasks:
            if self.statuses[task.id] in ("succeeded", "blocked"):
                continue
            self._enqueue(task)
        running: dict[Future[str], Task] = {}
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="task") as pool:
            try:
                while True:
                    self._start_ready(pool, running)
                    if not running:
                        if self.held == "wait" and not self.cancel.is_set():
                            self.cancel.wait(0.5)  # an agent paused on its quota: its tasks wait
                            continue
                        break
                    done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        task = running.pop(future)
                        self._finished(task, future.result())
            except BaseException:
                self.cancel.set()
                for future, task in running.items():
                    try:
                        self.statuses[task.id] = future.result()
                    except Exception:  # the task's own recorder already logged it
                        self.statuses[task.id] = "interrupted"
                raise

    def _start_ready(self, pool: ThreadPoolExecutor, running: dict[Future[str], Task]) -> None:
        if self.cancel.is_set():
            return
        skipped: list[int] = []
        self.held = None
        while self.ready and len(running) < self.max_workers:
            index = heapq.heappop(self.ready)
            task = self.tasks[index]
            held = self.hold(task) if self.hold else None
            if (
                held
                or self.rules.conflict(task, list(running.values())) is not None
                or (running and self.forecast is not None and self.forecast(task) is not None)
            ):
                skipped.append(index)
                self.held = self.held or held
                if held == "stop":
                    break
                continue
            self.statuses[task.id] = "running"
            running[pool.submit(self.run_one, task)] = task
        for index in skipped:
            heapq.heappush(self.ready, index)

    def _finished(self, task: Task, status: str) -> None:
        self.statuses[task.id] = status
        if status == "succeeded":
            for dependent in self.dependents[task.id]:
                if dependent in self.waiting:
                    self.waiting[dependent] -= 1
                    if self.waiting[dependent] == 0:
                        heapq.heappush(self.ready, self.position[dependent])
            for follow_up in self.follow_ups(task) if self.follow_ups else ():
                self.add_task(follow_up)
        elif status == "interrupted":
            self.cancel.set()
        else:
            for dependent in self.dependents[task.id]:
                self._block(dependent, task.id)
            if self.fail_fast:
                self.failed_fast = True
                self.cancel.set()
