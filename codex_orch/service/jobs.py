"""The job service's operations, one function each, shared by the CLI (`jobs …`), the HTTP API and the
MCP tools, so the three cannot disagree: they take plain values, return JSON-able dicts and raise
`OrchError` (one line, a hint) for anything they refuse.

A job is a plan (`plan`: the JSON of `run --plan-file`) or a single task (`prompt`, `role`, …); either
way it is checked completely (the plan loader, the branch name, the base commit) before anything is
written, and written as `service/jobs/<id>/plan.json` before it is queued.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from codex_orch.atomic import atomic_write_json
from codex_orch.config import load_config
from codex_orch.errors import InputError, OrchError
from codex_orch.git.repo import Git
from codex_orch.layout import Layout
from codex_orch.plan_file import parse_plan
from codex_orch.schema_check import check
from codex_orch.service import execute
from codex_orch.service.store import BUSY, FINISHED, STATUSES, JobStore, db_path
from codex_orch.state import read_state

FEATURE_BRANCH = "feature/{feature_id}"


class NoSuchJob(InputError):
    """A job id the queue does not hold (HTTP 404)."""


class WrongStatus(InputError):
    """An operation the job's status does not allow: delete a running job, continue a pending one (HTTP 409)."""


JOB_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "description": "A single task: what to do."},
        "role": {"type": "string", "minLength": 1, "description": "Its role (default: implementer)."},
        "acceptance": {"type": "string", "description": "Its acceptance criteria."},
        "context_files": {"type": "array", "items": {"type": "string"}, "description": "Files the agent reads first."},
        "plan": {"type": "object", "description": "A whole plan instead (the JSON of `run --plan-file`)."},
        "base_ref": {"type": "string", "minLength": 1, "description": "The commit the job starts from."},
        "branch": {"type": "string", "minLength": 1, "description": "The branch that receives the work."},
        "feature_id": {"type": "string", "minLength": 1, "description": "Names the branch feature/<id>."},
        "push": {"enum": ["never", "always"], "description": "always: push the branch to origin when done."},
        "agent": {"type": "string", "minLength": 1, "description": "The agent (codex, claude, gemini)."},
    },
    "oneOf": [{"required": ["prompt"], "not": {"required": ["plan"]}}, {"required": ["plan"]}],
}


class JobService:
    """The operations on one repository's queue. Not shared between threads (its store is one connection)."""

    def __init__(self, root: Path) -> None:
        self.layout = Layout(root)
        self.store = JobStore(db_path(self.layout.orch_dir))

    def close(self) -> None:
        self.store.close()

    # --- queue -----------------------------------------------------------------------------------------
    def add(self, request: dict[str, Any]) -> dict[str, Any]:
        check(request, JOB_REQUEST_SCHEMA, "job")
        if "plan" in request and any(k in request for k in ("role", "acceptance", "context_files")):
            raise InputError("job: role, acceptance and context_files belong to a single task, not to a plan")
        config = load_config(self.layout)
        if request.get("agent"):
            from codex_orch.agent_registry import unknown_agent

            problem = unknown_agent(request["agent"])
            if problem:
                raise InputError(f"job.agent: {problem}")
        plan = parse_plan(request.get("plan") or _one_task(request), config, "job.plan" if "plan" in request else "job")
        branch = request.get("branch") or (
            FEATURE_BRANCH.format(feature_id=request["feature_id"]) if request.get("feature_id") else None
        )
        git = Git(self.layout.root)
        if branch is not None and not git.valid_branch_name(branch):
            raise InputError(f"job.branch: {branch!r} is not a valid branch name")
        base = request.get("base_ref")
        if base and not git.ok("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"):
            raise InputError(f"job.base_ref: {base!r} is not a commit in this repository")
        stored = {**request, **({"branch": branch} if branch else {})}
        job = self.store.add(stored, execute.RUN_PREFIX, branch)
        folder = execute.job_dir(self.layout, job["id"])
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "plan.json", plan.to_json())
        return self.view(job)

    def list_jobs(self, statuses: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise InputError(f"status: unknown {unknown[0]!r}; one of {', '.join(STATUSES)}")
        return [self.view(job, brief=True) for job in self.store.select(statuses)]

    def show(self, job_id: int) -> dict[str, Any]:
        return self.view(self._job(job_id))

    def continue_job(self, job_id: int, prompt: str) -> dict[str, Any]:
        """A follow-up to a done or awaiting job: the same agent thread goes on (engine/follow_up.py)."""
        from codex_orch.engine.follow_up import add_follow_up

        job = self._job(job_id)
        if job["status"] not in ("done", "awaiting_input"):
            raise WrongStatus(
                f"job {job_id} is {job['status']}: only a done or awaiting_input job can be continued",
                "Wait for it to finish (jobs show), or enqueue a new job.",
            )
        if not prompt.strip():
            raise InputError("continue: the prompt is empty")
        task_id = add_follow_up(self.layout.root, job["run_id"], prompt)
        again = self.store.requeue(job_id, "resume", ("done", "awaiting_input"), f"continued ({task_id})")
        if again is None:
            raise WrongStatus(f"job {job_id} changed status meanwhile; try again")
        return self.view(again)

    def cancel(self, job_id: int) -> dict[str, Any]:
        status = self.store.cancel(job_id)
        if status is None:
            raise NoSuchJob(f"no job {job_id}", "List them: codex-orch jobs list")
        if status in FINISHED:
            raise WrongStatus(f"job {job_id} is {status} already: nothing to cancel")
        return self.show(job_id)

    def delete(self, job_id: int) -> dict[str, Any]:
        """Forget a pending or finished job (its run folder and branches stay: `clean` removes them)."""
        job = self._job(job_id)
        if job["status"] in BUSY:
            raise WrongStatus(
                f"job {job_id} is {job['status']}: a running or awaiting_input job is never deleted",
                f"Cancel it first (jobs cancel {job_id}).",
            )
        if self.store.delete(job_id) != job["status"] or self.store.get(job_id) is not None:
            raise WrongStatus(f"job {job_id} changed status meanwhile; try again")
        return {"deleted": job_id, "status": job["status"], "run_id": job["run_id"]}

    def cleanup(
        self, statuses: tuple[str, ...] = FINISHED, older_than_hours: float = 0, apply: bool = False
    ) -> dict[str, Any]:
        """Finished jobs of these statuses older than that: their run cleaned (worktrees; branches whose
        work is merged into the job's branch or base) and the job forgotten, unless clean kept something
        (unmerged work is never lost). A dry run unless `apply`."""
        from codex_orch.commands.clean import clean_run

        bad = [s for s in statuses if s not in FINISHED]
        if bad:
            raise InputError(f"cleanup: {bad[0]!r} is not a finished status ({', '.join(FINISHED)})")
        cutoff = time.time() - older_than_hours * 3600
        entries = []
        for job in self.store.select(statuses):
            if (job["finished_at"] or job["updated_at"]) > cutoff:
                continue
            entry: dict[str, Any] = {"id": job["id"], "status": job["status"], "run_id": job["run_id"]}
            if self.layout.run_dir(job["run_id"]).is_dir():
                try:
                    plan = clean_run(self.layout.root, job["run_id"], into=job["branch"], dry_run=not apply)
                except OrchError as exc:
                    entries.append({**entry, "kept": True, "reason": str(exc)})
                    continue
                entry["clean"] = plan.to_json()
                entry["kept"] = bool(plan.keeps)
            else:
                entry["kept"] = False
            if apply and not entry["kept"]:
                self.store.delete(job["id"], FINISHED)
            entries.append(entry)
        return {"dry_run": not apply, "jobs": entries}

    # --- worktrees ---------------------------------------------------------------------------------------
    def worktrees(self) -> list[dict[str, Any]]:
        """The worktrees of the jobs' runs, with their job and whether they hold uncommitted changes. The
        worktree of a job branch, which each job of the branch takes up, is listed once, with its last job."""
        found: dict[str, dict[str, Any]] = {}
        for job in self.store.select():
            run_dir = self.layout.run_dir(job["run_id"])
            if not run_dir.is_dir():
                continue
            for path in _run_worktrees(read_state(run_dir)):
                if Path(path).is_dir():
                    dirty = bool(Git(Path(path)).run_full("status", "--porcelain")[1].strip())
                    found[path] = {"path": path, "job": job["id"], "status": job["status"], "dirty": dirty}
        return list(found.values())

    def delete_worktree(self, job_id: int, force: bool = False) -> dict[str, Any]:
        """Clean one job's run (clean's rules: work not merged is kept unless `force`)."""
        from codex_orch.commands.clean import clean_run

        job = self._job(job_id)
        if job["status"] in BUSY or job["status"] == "pending":
            raise WrongStatus(f"job {job_id} is {job['status']}: its worktree is in use")
        return clean_run(self.layout.root, job["run_id"], into=job["branch"], force=force).to_json()

    # --- views ---------------------------------------------------------------------------------------------
    def _job(self, job_id: int) -> dict[str, Any]:
        job = self.store.get(job_id)
        if job is None:
            raise NoSuchJob(f"no job {job_id}", "List them: codex-orch jobs list")
        return job

    def view(self, job: dict[str, Any], brief: bool = False) -> dict[str, Any]:
        result = job["result"] or {}
        out = {
            "id": job["id"],
            "status": job["status"],
            "run_id": job["run_id"],
            "branch": job["branch"] or result.get("run_branch"),
            "commit": result.get("commit"),
            "question": result.get("question"),
            "error": result.get("error"),
            "created_at": job["created_at"],
            "updated_at": job["updated_at"],
            "claims": job["claims"],
            "cancel_requested": job["cancel_requested"],
        }
        if not brief:
            out.update(request=job["request"], result=job["result"], worker=job["worker"])
        return out


def _one_task(request: dict[str, Any]) -> dict[str, Any]:
    prompt = request["prompt"]
    if request.get("context_files"):
        prompt += "\n\nRead these files first: " + ", ".join(request["context_files"])
    task = {"id": "task", "role": request.get("role", "implementer"), "prompt": prompt, "blocked_by": []}
    task["acceptance"] = request.get("acceptance", "")
    return {"goal": request["prompt"][:200], "assumptions": [], "tasks": [task]}


def _run_worktrees(state: dict[str, Any]) -> list[str]:
    paths = [state["worktree"]] if state.get("worktree") else []
    paths += [t["worktree"] for t in state["tasks"].values() if t.get("worktree")]
    return list(dict.fromkeys(paths))
