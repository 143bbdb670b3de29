"""One job's execution: the run it is, driven by a codex-orch child process, and what the run's state
says about the job afterwards (done, failed, awaiting_input, cancelled), its branch moved and pushed.

A job is a run `job-<id>` under `runs/`. Its first execution is `codex-orch run --plan-file
service/jobs/<id>/plan.json --run-id job-<id>`; every later one (a lease that expired, a `continue`) is
`codex-orch resume --run-id job-<id>`: the engine goes on with the recorded threads. A job with a
`branch` starts from that branch's tip (or from its `base_ref` while the branch does not exist), as a
`shared` run in the branch's one worktree (taken up from the branch's previous job: the store runs
them one after another), and when it is done the branch is moved to the run branch's tip, only as a
fast-forward.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from codex_orch.engine.checks import run_was_created
from codex_orch.engine.task_prompts import CONTINUES
from codex_orch.git.refs import branch_worktree
from codex_orch.git.repo import Git
from codex_orch.layout import Layout
from codex_orch.state import read_state

RUN_PREFIX = "job"


def job_dir(layout: Layout, job_id: int) -> Path:
    return layout.orch_dir / "service" / "jobs" / str(job_id)


def branch_worktree_path(layout: Layout, branch: str) -> Path:
    """The one worktree of a job branch, which each job of that branch runs in, one after another:
    `service/worktrees/<branch, percent-encoded>` (a branch `a` and a branch `a/b` never nest)."""
    return layout.orch_dir / "service" / "worktrees" / quote(branch, safe="")


def child_argv(layout: Layout, job: dict[str, Any]) -> list[str]:
    """The codex-orch command that executes the job now."""
    me = [sys.executable, "-m", "codex_orch"]
    run_id = job["run_id"]
    if run_was_created(layout.run_dir(run_id)):
        return [*me, "resume", "--run-id", run_id, "--no-progress"]
    request = job["request"]
    argv = [*me, "run", "--plan-file", str(job_dir(layout, job["id"]) / "plan.json"), "--run-id", run_id]
    branch = request.get("branch")
    git = Git(layout.root)
    if branch and git.branch_exists(branch):
        argv += ["--base-ref", f"refs/heads/{branch}"]
    elif request.get("base_ref"):
        argv += ["--base-ref", request["base_ref"]]
    if branch:
        argv += ["--worktree", str(branch_worktree_path(layout, branch))]
    if request.get("agent"):
        argv += ["--agent", request["agent"]]
    return [*argv, "--no-progress"]


def _live_tasks(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The tasks that speak for the job: all but those whose thread a follow-up took over."""
    tasks = state["tasks"]
    continued = {t["spec"][CONTINUES] for t in tasks.values() if (t.get("spec") or {}).get(CONTINUES)}
    return [{"id": tid, **tasks[tid]} for tid in state["task_order"] if tid not in continued]


def outcome(layout: Layout, job: dict[str, Any], exit_code: int, cancelled: bool) -> tuple[str, dict[str, Any]]:
    """The job's status after its child ended, and what to record about it."""
    run_dir = layout.run_dir(job["run_id"])
    if not run_was_created(run_dir):
        log = job_dir(layout, job["id"]) / "driver.log"
        return ("cancelled" if cancelled else "failed"), {"error": _last_line(log), "exit_code": exit_code}
    state = read_state(run_dir)
    tasks = _live_tasks(state)
    result: dict[str, Any] = {
        "run_id": job["run_id"],
        "run_status": state.get("status"),
        "exit_code": exit_code,
        "tasks": {t["id"]: t["status"] for t in tasks},
    }
    branch = state.get("branch") or next((t.get("branch") for t in reversed(tasks) if t.get("branch")), None)
    result["run_branch"] = branch
    if branch:
        code, tip, _ = Git(layout.root).run_full("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
        result["commit"] = tip.strip() if code == 0 else None
    if cancelled:
        return "cancelled", result
    if state.get("status") == "interrupted":
        return "pending", result  # stopped by the service itself (shutting down): resumed by the next claim
    questions = [t for t in tasks if isinstance(t.get("result"), dict) and t["result"].get("status") == "blocked"]
    if questions:
        asked = questions[-1]["result"]
        result["question"] = str(asked.get("summary", ""))
        result["awaiting_task"] = questions[-1]["id"]
        return "awaiting_input", result
    if tasks and all(t["status"] == "succeeded" for t in tasks):
        return "done", result
    failed = [t for t in tasks if t["status"] != "succeeded"]
    result["error"] = "; ".join(
        f"{t['id']}: {t['status']}"
        + (f" ({(t.get('error') or {}).get('message', '')[:200]})" if t.get("error") else "")
        for t in failed[:5]
    )
    return "failed", result


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return "the run was not created"
    return lines[-1][:500] if lines else "the run was not created"


def move_branch(layout: Layout, branch: str, tip: str) -> str | None:
    """Move the job's branch to the run's tip, as a fast-forward only (compare-and-swap). Why not, or None."""
    git = Git(layout.root)
    ref = f"refs/heads/{branch}"
    if not git.valid_branch_name(branch):
        return f"{branch!r} is not a valid branch name"
    code, current, _ = git.run_full("rev-parse", "--verify", "--quiet", ref)
    current = current.strip() if code == 0 else ""
    if current == tip:
        return None
    if current and not git.ok("merge-base", "--is-ancestor", current, tip):
        return f"branch {branch!r} moved on since the job started ({current[:12]} is not in {tip[:12]}); left as is"
    holder = branch_worktree(git, branch) if current else None
    if holder is not None:
        return f"branch {branch!r} is checked out in {holder}; not moved (merge {tip[:12]} there)"
    old = current or "0" * 40
    code, _, err = git.run_full("update-ref", "-m", "codex-orch job", ref, tip, old)
    return None if code == 0 else f"could not move {branch!r}: {err.strip()[:300]}"


def push(layout: Layout, branch: str) -> str | None:
    """`git push origin BRANCH`; why it failed, or None."""
    code, out, err = Git(layout.root).run_full("push", "--quiet", "origin", f"refs/heads/{branch}:refs/heads/{branch}")
    return None if code == 0 else f"push of {branch!r} to origin failed: {(err or out).strip()[-300:]}"
