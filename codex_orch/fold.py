"""The fold: how one journal record changes a run's state (`apply`, the only place state changes).

A run's state is its journal folded record by record from nothing (state.py keeps the journal, the
snapshot and the store around it; the dashboard's event stream folds the records it reads with the
same function). Each record kind changes the run, its spend, one task or one of its attempts.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1  # of the folded state (state.json): a newer one is refused by read_state
TERMINAL = ("succeeded", "failed", "blocked", "cancelled")
TASK_STATUSES = ("pending", "running", "succeeded", "failed", "blocked", "interrupted", "cancelled")
RUN_STATUSES = ("running", "succeeded", "failed", "partial", "interrupted", "budget_exhausted")


def copied(value: Any) -> Any:
    """A deep copy of JSON data (what the state holds): copy.deepcopy's work without its memo, several
    times faster on the state of a run of hundreds of tasks."""
    if isinstance(value, dict):
        return {k: copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copied(v) for v in value]
    return value


def _new_task(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": spec["id"],
        "role": spec["role"],
        "blocked_by": list(spec.get("blocked_by", [])),
        "status": "pending",
        "attempts": [],
        "thread_id": None,
        "branch": None,
        "worktree": None,
        "base_commit": None,
        "commit": None,
        "head": None,
        "files_changed": [],
        "result": None,
        "error": None,
        "started_at": None,
        "ended_at": None,
        "violations": [],
        "file_claims": None,
        "follow_ups": [],
    }


def apply(state: dict[str, Any], rec: dict[str, Any]) -> None:
    """Fold one journal record into the state (the only place the state changes)."""
    kind, ts = rec["type"], rec.get("ts")
    if not _apply_run(state, kind, rec, ts):
        _apply_task(state["tasks"][rec["task"]], kind, rec, ts)
    state["seq"] = rec["seq"]
    state["updated_at"] = ts


def _apply_run(state: dict[str, Any], kind: str, rec: dict[str, Any], ts: str | None) -> bool:
    """A record about the run as a whole (or one adding a task); False for a task's own record."""
    if kind == "run.created":
        state.update(copied(rec["run"]))
        state.update(schema_version=SCHEMA_VERSION, status="running", created_at=ts)
        state["tasks"] = {spec["id"]: _new_task(spec) for spec in rec["tasks"]}
        state["task_order"] = [spec["id"] for spec in rec["tasks"]]
    elif kind == "run.status":
        state["status"] = rec["status"]
        if rec["status"] != "running":
            state["ended_at"] = ts
    elif kind == "run.workspace_ready":
        state["workspace_ready"] = True
    elif kind in ("run.merged", "run.cleaned", "run.validated", "run.integration"):  # lifecycle outcomes
        key = {"run.merged": "merge", "run.cleaned": "cleaned", "run.validated": "validation"}.get(kind, "integration")
        state[key] = {k: v for k, v in rec.items() if k not in ("type", "seq")}
    elif kind == "run.service":  # a service of the run: started, ready, failed or stopped
        service = state.setdefault("services", {}).setdefault(rec["name"], {})
        service.update({k: v for k, v in rec.items() if k not in ("type", "seq")})
    elif kind == "run.guardrail":  # what the check at a run's end found and put back
        state.setdefault("guardrail", []).extend(rec["changes"])
    elif kind in ("run.budget", "run.budget_warning", "run.paused", "run.unpaused"):
        _apply_spend(state, kind, rec)
    elif kind == "run.resumed":
        state["status"] = "running"
        state.pop("ended_at", None)  # it runs again: its end of before is no end now
        state["resumed"] = state.get("resumed", 0) + 1
    elif kind == "worktree.setup":  # a worktree set up (or not) before its first agent, once
        state.setdefault("setups", {})[rec["worktree"]] = {k: v for k, v in rec.items() if k not in ("type", "seq")}
    elif kind == "task.added":
        spec = rec["task"]
        task = _new_task(spec)
        task["spec"] = spec  # the whole task: it is in no frozen plan.json
        task["proposed_by"] = rec.get("proposed_by")
        state["tasks"][spec["id"]] = task
        state["task_order"].append(spec["id"])
    else:
        return False
    return True


def _apply_spend(state: dict[str, Any], kind: str, rec: dict[str, Any]) -> None:
    if kind == "run.budget":  # `resume --budget-run-cost`: the run's own limits over the config's
        state.setdefault("budgets", {}).update(rec["budgets"])
    elif kind == "run.budget_warning":  # budgets.mode warn: a limit reached, said once
        state.setdefault("budget_warnings", []).append(rec["limit"])
    elif kind == "run.paused":  # dispatch to an agent paused on its provider's quota, until a time
        state.setdefault("paused", {})[rec["agent"]] = {"until": rec["until"], "reason": rec["reason"]}
    else:  # run.unpaused
        state.setdefault("paused", {}).pop(rec["agent"], None)


def _apply_task(task: dict[str, Any], kind: str, rec: dict[str, Any], ts: str | None) -> None:
    if kind.startswith("attempt."):
        _apply_attempt(task, kind, rec, ts)
    elif kind == "task.status":
        _task_status(task, rec, ts)
    elif kind == "task.workspace":
        for key in ("branch", "worktree", "base_commit"):
            task[key] = rec[key]
        task["head"] = task["head"] or rec["base_commit"]
    elif kind == "task.result":
        task["result"] = rec["result"]
    elif kind == "task.commit_refused":  # its commit was refused (secrets): the answer stands no more
        task["result"] = None
        task["attempts"][-1].update(failure=rec["failure"], failure_message=rec["message"])
    elif kind == "task.committed":
        task.update({k: rec[k] for k in ("commit", "head", "files_changed")})
        task.update(violations=rec.get("violations", []), file_claims=rec.get("file_claims"))
    elif kind == "task.landed":  # a landing run: the task's work is on the run branch, as this commit
        task["task_commit"] = task["commit"]
        task.update(commit=rec["commit"], head=rec["commit"], landed=True)
    elif kind == "task.rebased":  # its change replayed on the run branch's tip, for its agent to resolve
        task.update(base_commit=rec["base_commit"], conflicts=rec.get("conflicts", []), result=None, commit=None)
    elif kind in ("task.gates", "task.fix_round", "task.integration", "task.forecast", "task.held"):
        (_apply_gates if kind in ("task.gates", "task.fix_round") else _apply_integration)(task, kind, rec)
    elif kind == "task.follow_ups":
        task["follow_ups"] = rec["follow_ups"]
    else:
        raise ValueError(f"unknown journal record type {kind!r}")


def _apply_integration(task: dict[str, Any], kind: str, rec: dict[str, Any]) -> None:
    if kind == "task.integration":  # what the merge queue did with its work (commands/integration.py)
        task["integration"] = {k: v for k, v in rec.items() if k not in ("type", "task", "seq")}
        if rec.get("error"):  # integration_failed: its work is not verified any more
            task["status"] = "failed"
            task["error"] = rec["error"]
    elif kind == "task.forecast":  # conflicts predicted with other tasks' branches (engine/forecast.py)
        task["forecast"] = rec["conflicts"]
    else:  # task.held: not started, its paths overlap a predicted conflict that is still open
        task["held"] = {"by": rec["by"], "files": rec["files"]}


def _apply_gates(task: dict[str, Any], kind: str, rec: dict[str, Any]) -> None:
    if kind == "task.gates":  # the gates run on attempt n's work
        task.setdefault("gate_runs", []).extend({**run, "n": rec["n"]} for run in rec["runs"])
        if task["attempts"]:
            task["attempts"][-1]["gates"] = rec["runs"]
    else:  # a failing gate handed back to the agent's thread
        task["fix_rounds"] = rec["round"]


def _apply_attempt(task: dict[str, Any], kind: str, rec: dict[str, Any], ts: str | None) -> None:
    if kind == "attempt.started":
        thread = rec.get("resume_thread")
        task["result"] = None  # a new attempt: the last answer is superseded, never finished later
        task["attempts"].append(
            {"n": rec["n"], "started_at": ts, "ended_at": None, "resumed_thread": thread}
            | {"kind": rec.get("kind", "task"), "thread_id": thread, "pid": None}
            # the agent and model it ran on (records from before the choice existed: codex)
            | {"agent": rec.get("agent") or "codex", "model": rec.get("model")}
            | {"agent_source": rec.get("agent_source"), "fallback_from": rec.get("fallback_from")}
        )
    elif kind == "attempt.pid":
        task["attempts"][-1]["pid"] = rec["pid"]
    elif kind == "attempt.thread":
        task["attempts"][-1]["thread_id"] = task["thread_id"] = rec["thread_id"]
    elif kind == "attempt.finished":
        attempt = task["attempts"][-1]
        attempt.update({k: v for k, v in rec.items() if k not in ("type", "task", "ts", "seq")})
        attempt.update(ended_at=ts, pid=None)
        task["thread_id"] = rec.get("thread_id") or task["thread_id"]
    else:
        raise ValueError(f"unknown journal record type {kind!r}")


def _task_status(task: dict[str, Any], rec: dict[str, Any], ts: str | None) -> None:
    task["status"] = rec["status"]
    if rec["status"] == "running" and task["started_at"] is None:
        task["started_at"] = ts
    if rec["status"] in TERMINAL or rec["status"] == "interrupted":
        task["ended_at"] = ts
    elif rec["status"] in ("running", "pending"):  # taken up again: its end of before is no end now
        task["ended_at"] = None
    if "error" in rec:
        task["error"] = rec["error"]
    elif rec["status"] in ("running", "pending", "succeeded"):
        task["error"] = None
