"""One task on a worker, run exactly as a local run would run it: in a run of its own in the worker's
clone (a "shadow" run holding this task and, as context for its prompt, what its dependencies did),
landing mode, the same executor (engine/executor.py): backends, sandbox, guardrails, validation,
retries, the commit. The task's commit (before landing: the submitter lands it) is pushed to
`refs/orch/<run>/tasks/<task>` on the shared remote.

A retry on another machine cannot continue the agent's thread: it lives in the first worker's agent
home. What it can continue is the work in progress that worker pushed (`partial_ref`): it is put in
the new worktree, uncommitted, and the agent is told so (`earlier_note`).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codex_orch.config import load_config
from codex_orch.engine.agent_env import codex_home_for, redactor_for
from codex_orch.engine.context import RunContext
from codex_orch.engine.drive import RunOptions, run_context
from codex_orch.engine.executor import run_task
from codex_orch.engine.landing import task_workspace
from codex_orch.engine.run import _agent_homes
from codex_orch.engine.slots import AgentSlots
from codex_orch.git.landing import replay
from codex_orch.git.remote import delete_remote_ref, fetch_refs, push_ref, ref_commit, snapshot
from codex_orch.git.repo import Git
from codex_orch.git.worktrees import discard_worktree
from codex_orch.layout import Layout
from codex_orch.plan import Plan, Task
from codex_orch.scaffold import ensure_scaffold
from codex_orch.state import RunStore, now_iso
from codex_orch.temporal.payloads import TaskInput, TaskOutcome, partial_ref, task_ref, tip_ref
from codex_orch.temporal.places import WorkflowPlaces


@dataclass(frozen=True)
class WorkerLayout(Layout):
    """A worker's clone, where each task attempt is a run of its own: runs/<run>/worker/<task>.<n>."""

    folder: str = ""

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id / "worker" / self.folder


@dataclass
class Partial:
    """What an earlier attempt of this task left on the remote."""

    commit: str
    base: str
    files: list[str]


class TaskRun:
    """The task of one activity attempt on this worker; `snapshot_partial` may be called from another
    thread while `run` runs (the heartbeat loop pushes the work in progress)."""

    def __init__(self, clone: Path, inp: TaskInput, attempt: int, worker: str) -> None:
        self.clone, self.inp, self.attempt, self.worker = clone, inp, attempt, worker
        self.git = Git(clone)
        self.cancel = threading.Event()
        self.worktree: Path | None = None
        self.places: WorkflowPlaces | None = None  # the run's agent places (set by the worker's activity)
        self.pushed_partial: str | None = None
        self._closed = False
        self._lock = threading.Lock()

    def earlier(self, details: Mapping[str, Any] | None) -> tuple[Partial | None, str | None]:
        """The work in progress an earlier attempt pushed, and the note the agent gets about it."""
        inp = self.inp
        commit = ref_commit(self.git, partial_ref(inp.run_id, inp.task["id"]))
        if commit is None and self.attempt <= 1:
            return None, None
        partial = None
        if commit is not None:
            base = self.git.run("rev-parse", f"{commit}^")
            partial = Partial(commit, base, self.git.changed_files(commit))
        who = str(details.get("worker")) if details and details.get("worker") else "another worker"
        lines = [
            "\n\n## Note from codex-orch",
            f"An earlier attempt at this task ran on {who} and stopped before it finished (that worker stopped "
            "answering, or the run was interrupted). Its agent's conversation cannot be continued here.",
        ]
        if partial is not None:
            listing = "\n".join(f"  {f}" for f in partial.files[:100])
            lines.append(
                "The work in progress it had made has been put in your worktree, uncommitted; these files differ "
                f"from the task's starting point:\n{listing}\nCheck this work, keep what is right, and finish the task."
            )
        else:
            lines.append("It left no work in progress: start the task from the beginning.")
        return partial, "\n".join(lines) + "\n"

    def run(
        self, details: Mapping[str, Any] | None, notify: Callable[[str, str | None, Mapping[str, Any]], None]
    ) -> TaskOutcome:
        inp = self.inp
        task_id = str(inp.task["id"])
        # the run branch's tip (this task's base) and whatever work in progress the run's tasks left, at once
        fetch_refs(self.git, inp.remote, tip_ref(inp.run_id), partial_ref(inp.run_id, "*"))
        partial, note = self.earlier(details)
        task = Task.from_json(inp.task)
        if note:
            task = replace(task, prompt=task.prompt + note)
        ctx = self._context(task, notify)
        ws = task_workspace(ctx, task)
        self.worktree = ws.worktree
        if partial is not None:
            self._put_back(ws.worktree, partial)
        try:
            status = run_task(ctx, task)
        finally:
            if self.places is not None:
                self.places.close()
        ctx.workspaces.drop_spares()  # one task per context: nothing here would reuse a landed worktree
        rec = ctx.store.task(task_id)
        ctx.store.close()
        commit = rec.get("task_commit") if rec.get("landed") else rec.get("commit")
        self.snapshot_partial(final=status == "interrupted")
        if commit:
            push_ref(self.git, inp.remote, commit, task_ref(inp.run_id, task_id))
        if status == "succeeded" and (partial is not None or self.pushed_partial):
            delete_remote_ref(self.git, inp.remote, partial_ref(inp.run_id, task_id))
        if status == "succeeded":  # its work is on the remote: a worker that runs hundreds keeps no worktrees
            self._forget(ctx.layout, task)
        return TaskOutcome(
            status=status,
            worker=self.worker,
            commit=commit,
            result=rec.get("result"),
            attempts=rec["attempts"],
            files_changed=list(rec.get("files_changed") or []),
            error=rec.get("error"),
            earlier=note,
        )

    def _context(self, task: Task, notify: Callable[[str, str | None, Mapping[str, Any]], None]) -> RunContext:
        inp = self.inp
        layout = WorkerLayout(self.clone, f"{task.id}.{self.attempt}")
        ensure_scaffold(Layout(self.clone))
        config = load_config(layout)
        run_dir = layout.run_dir(inp.run_id)
        if run_dir.exists():  # this attempt ran here before and was cut short: start it afresh
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        self._forget(layout, task)
        shared = layout.runs_dir / inp.run_id / "worker"  # the worker's homes for this run, kept across tasks
        home = codex_home_for(config, shared)
        if config.codex.home == "isolated" and home is not None and not home.exists():
            from codex_orch.agents.codex_home import prepare_isolated_home

            prepare_isolated_home(home, config.codex.config)
        deps = [Task(id=d["id"], role=d["role"], prompt="", acceptance="") for d in inp.dependencies]
        plan = Plan(inp.goal, tuple(inp.assumptions), (*deps, task))
        branch = f"orch-worker/{inp.run_id}/{task.id}"
        run = {
            "run_id": inp.run_id,
            "date": now_iso()[:10],
            "repo_root": str(self.clone),
            "base_ref": inp.base,
            "base_commit": inp.base,
            "base_branch": None,
            "single_workspace": False,
            "workspace_mode": "landing",
            "branch": branch,
            "worktree": None,
            "goal": inp.goal,
            "has_spec": inp.spec is not None,
            "codex_home": str(home) if home else None,
            "agent_homes": _agent_homes(config, shared),
            "max_workers": 1,
            "agent": inp.run_agent,
            "worker": self.worker,
        }
        tasks = [{"id": t.id, "role": t.role, "blocked_by": []} for t in plan.tasks]
        store = RunStore.create(run_dir, run, tasks, redactor_for(config))
        for dep in inp.dependencies:
            store.record("task.result", task=dep["id"], result=dep.get("result"))
            store.record(
                "task.committed", task=dep["id"], commit=None, head=inp.base, files_changed=dep.get("files_changed", [])
            )
            store.record("task.status", task=dep["id"], status="succeeded")
        ctx = run_context(
            layout, config, plan, inp.spec, store, self.git, config.codex.command, home, notify, RunOptions()
        )
        ctx.cancel = self.cancel
        if self.places is not None:
            ctx.agent_slots = AgentSlots(1, ctx.cancel, self.places)
        if ctx.workspaces.guard is not None:  # this run's other tasks share the clone, each watched by its own
            quarantine = f"refs/orch/{inp.run_id}/quarantine/{task.id}/"
            ctx.workspaces.guard = ctx.workspaces.guard.narrowed(
                (quarantine, f"refs/heads/{branch}"), ("orch-worker/",)
            )
        ctx.workspaces.ensure_branch(branch, inp.base)
        store.record("run.workspace_ready")
        if ctx.workspaces.guard is not None:
            ctx.workspaces.guard.start()
        return ctx

    def _forget(self, layout: Layout, task: Task) -> None:
        """Whatever an earlier attempt of this task left in this clone: its worktree and branches."""
        worktree = layout.task_worktree(self.inp.run_id, task.id)
        if worktree.exists():
            discard_worktree(self.git, worktree)
        prefix = f"orch-worker/{self.inp.run_id}/{task.id}"
        for branch in self.git.local_branches():
            if branch == prefix or (self.inp.run_id in branch and branch.endswith(f"/{task.id}")):
                self.git.run("branch", "--quiet", "-D", branch)

    def _put_back(self, worktree: Path, partial: Partial) -> None:
        """The earlier attempt's work in progress, in this worktree, uncommitted (re-applied on this base
        with git's three-way apply when the base moved; what conflicts keeps its markers)."""
        wt = self.git.at(worktree)
        head = wt.head()
        replay(wt, head, partial.base, partial.commit)
        wt.run("reset", "-q")

    def snapshot_partial(self, final: bool | None = None) -> None:
        """Push the worktree's work in progress (if it has any and changed since the last push). `final`:
        the task has ended; True pushes what an interrupted task leaves, False nothing; none after it."""
        with self._lock:
            if self._closed:
                return
            if final is not None:
                self._closed = True
                if not final:
                    return
            if self.worktree is None or not self.worktree.is_dir():
                return
            wt = self.git.at(self.worktree)
            commit = snapshot(
                wt, self.inp.base, f"codex-orch: work in progress of {self.inp.task['id']} ({self.worker})"
            )
            if commit is None or commit == self.pushed_partial:
                return
            push_ref(self.git, self.inp.remote, commit, partial_ref(self.inp.run_id, str(self.inp.task["id"])))
            self.pushed_partial = commit
