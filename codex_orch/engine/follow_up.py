"""A follow-up prompt to a finished run (the job service's `continue`): a task added to the run that goes
on on the agent thread of the run's last task, then `resume` drives it.

The new task carries `continues: ID` (engine/task_prompts.py): its first attempt resumes that task's
thread with the follow-up as the prompt, on the same agent, in the run's workspace. The task it
continues is not run again by `resume`, even when it ended `blocked` (an agent's question, answered by
the follow-up). When the task it continues succeeded, the new task waits for it, so its context holds
that task's answer and, in a per-task run, its worktree starts from that task's commit.
"""

from __future__ import annotations

from pathlib import Path

from codex_orch.config import load_config
from codex_orch.engine.agent_env import redactor_for
from codex_orch.engine.task_prompts import CONTINUES
from codex_orch.errors import InputError
from codex_orch.layout import Layout
from codex_orch.plan import Task
from codex_orch.run_lock import RunLock
from codex_orch.state import RunStore


def add_follow_up(root: Path, run_id: str, prompt: str) -> str:
    """Add the follow-up task to the run (under its lock: nothing drives it now) and say its id."""
    layout = Layout(root)
    run_dir = layout.run_dir(run_id)
    if not prompt.strip():
        raise InputError("the follow-up prompt is empty")
    lock = RunLock(run_dir).acquire()
    try:
        store = RunStore.open(run_dir, redactor_for(load_config(layout)))
        try:
            order = list(store.get("task_order"))
            if not order:
                raise InputError(f"run {run_id!r} has no task to continue")
            last_id = order[-1]
            last = store.task(last_id)
            if not last.get("thread_id"):
                raise InputError(f"task {last_id!r} of run {run_id!r} has no agent thread to continue")
            n = 1 + sum(1 for tid in order if (store.task(tid).get("spec") or {}).get(CONTINUES))
            new_id = f"followup-{n}"
            while new_id in order:
                n += 1
                new_id = f"followup-{n}"
            task = Task(
                id=new_id,
                role=last["role"],
                prompt=prompt,
                acceptance="",
                blocked_by=(last_id,) if last["status"] == "succeeded" else (),
                extra={CONTINUES: last_id},
            )
            store.record("task.added", task=task.to_json(), proposed_by=None)
            return new_id
        finally:
            store.close()
    finally:
        lock.release()
