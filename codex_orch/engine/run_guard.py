"""The guard around a whole run (git/guard.py watches each attempt): what the repository's refs and git
files should be, set when the run starts or checked when it is resumed, and the last check at its end."""

from __future__ import annotations

import json
from typing import Any

from codex_orch.atomic import atomic_write_json
from codex_orch.engine.context import RunContext


def start_guard(ctx: RunContext, state: dict[str, Any]) -> None:
    """What the repository's refs and git files should be: as the run found them when it started
    (saved in runs/<id>/guard.json), checked at once when the run is resumed."""
    guard = ctx.workspaces.guard
    if guard is None:
        return
    saved = ctx.run_dir / "guard.json"
    if not state.get("resumed") or not saved.is_file():
        guard.start()
        atomic_write_json(saved, guard.to_json())
        return
    branches = {
        f"refs/heads/{b}" for b in [state.get("branch"), *(t.get("branch") for t in state["tasks"].values())] if b
    }
    mine = f"refs/orch/{ctx.run_id}/"
    guard.resume(json.loads(saved.read_text("utf-8")), lambda ref: ref in branches or ref.startswith(mine))
    n = int(state.get("resumed", 0))
    changes = guard.check(None, f"{mine}quarantine/resume-{n}", ctx.run_dir / f"resume-{n}")
    if changes:
        ctx.store.record("run.guardrail", changes=[c.describe() for c in changes])
        ctx.notify(
            "warning", None, {"message": "while the run was stopped: " + "; ".join(c.describe() for c in changes[:5])}
        )


def last_guard(ctx: RunContext) -> None:
    """At the end of a run: put back what anything changed since the last attempt's check, and make sure
    every succeeded task's commit is on its branch (an agent that moved a branch must not lose an earlier
    task's work while the run reports success)."""
    from codex_orch.errors import OrchError
    from codex_orch.failures import FailureKind, info

    guard = ctx.workspaces.guard
    try:
        if guard is not None:
            changes = guard.check(None, f"refs/orch/{ctx.run_id}/quarantine/end", ctx.run_dir / "end")
            if changes:
                ctx.store.record("run.guardrail", changes=[c.describe() for c in changes])
        state = ctx.store.view()
        on_branch: dict[str, set[str]] = {}  # the commits of each branch since the run's base: one git call each
        for tid, task in state["tasks"].items():
            branch = state["branch"] if ctx.mode == "landing" else task.get("branch")
            if task["status"] != "succeeded" or not task.get("commit") or not branch:
                continue
            if branch not in on_branch:
                code, out, _ = ctx.git.run_full("rev-list", f"{state['base_commit']}..refs/heads/{branch}")
                on_branch[branch] = set(out.split()) if code == 0 else set()
            if task["commit"] in on_branch[branch]:
                continue
            message = f"its commit {task['commit'][:12]} is no longer on its branch {branch}"
            ctx.store.record(
                "task.status",
                task=tid,
                status="failed",
                error={
                    "kind": str(FailureKind.GUARDRAIL),
                    "message": message,
                    "hint": info(FailureKind.GUARDRAIL).hint,
                },
            )
    except OrchError as exc:  # the run's end must be recorded whatever git says
        ctx.store.record("run.guardrail", changes=[f"the last check could not run: {exc}"])
