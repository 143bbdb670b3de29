"""The fold (fold.py), in-process: journals of the records the engine writes, folded from nothing, each
compared with the whole state expected. A field read under another name, a state key written under another,
a default or a timestamp lost: each changes the state, and the comparison fails. (Mutation testing sees only
in-process tests: docs/testing.md, "Mutation testing".)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from codex_orch.fold import apply, copied

BASE = "668e061234f69820bd2448024199d89dffda7744"
TIP = "0dbd45318d2eed8de39c2b4a3160c62aa1f41084"
C1, C2, L1 = "dfe8187287b0d6bdfa5f60bd9c11d105502a8245", "63094bf1d647509df3f27134c2eccc6e612bc172", "9" * 40
RUN: dict[str, Any] = {  # a landing run's own fields, as engine/run.py records them in run.created
    "run_id": "r1",
    "date": "20261126",
    "repo_root": "/repo",
    "base_ref": "HEAD",
    "base_commit": BASE,
    "base_branch": "main",
    "single_workspace": False,
    "workspace_mode": "landing",
    "branch": "orch/20261126/run-r1/workspace-shared",
    "worktree": None,
    "goal": "two files",
    "has_spec": False,
    "codex_home": None,
    "max_workers": 2,
    "agent": None,
    "agent_homes": {"claude": None, "gemini": None},
}
USAGE = {
    "input_tokens": 100,
    "cached_input_tokens": 10,
    "cache_write_input_tokens": 0,
    "output_tokens": 20,
    "reasoning_output_tokens": 5,
}
ANSWER = {"status": "done", "summary": "wrote a.txt", "decisions": []}
CLAIMS = {"not_in_commit": [], "listed_none": True}


def at(seq: int) -> str:
    """The time of the journal's record `seq`."""
    return f"2026-11-26T09:15:{seq:02d}.000+00:00"


def r(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


def fold(*records: dict[str, Any]) -> dict[str, Any]:
    """The state these records make, numbered from 1 and timed `at(seq)` as RunStore.record does."""
    state: dict[str, Any] = {"seq": 0}
    for seq, rec in enumerate(records, start=1):
        apply(state, {"seq": seq, "ts": at(seq), **rec})
    return state


def created(*specs: tuple[str, str, list[str]]) -> dict[str, Any]:
    return r("run.created", run=RUN, tasks=[{"id": i, "role": role, "blocked_by": deps} for i, role, deps in specs])


def pending(task_id: str, role: str = "implementer", *blocked_by: str) -> dict[str, Any]:
    """A task as run.created or task.added leaves it: pending, nothing recorded yet."""
    return {
        "id": task_id,
        "role": role,
        "blocked_by": list(blocked_by),
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


def run_state(last: int, tasks: dict[str, dict[str, Any]], **changes: Any) -> dict[str, Any]:
    """The state of RUN after `last` records, the first of them run.created: its tasks, and `changes`."""
    return {
        "seq": last,
        **RUN,
        "schema_version": 1,
        "status": "running",
        "created_at": at(1),
        "tasks": tasks,
        "task_order": list(tasks),
        "updated_at": at(last),
        **changes,
    }


def start(task: str, n: int, thread: str | None = None, agent: str = "codex", **choice: Any) -> dict[str, Any]:
    """attempt.started as the executor records it (its AttemptAgent's fields)."""
    fields = {"model": None, "agent_source": "default", "fallback_from": None, **choice}
    return r("attempt.started", task=task, n=n, resume_thread=thread, agent=agent, **fields)


def finished(task: str, thread: str | None, failure: str | None = None, message: str = "") -> dict[str, Any]:
    """attempt.finished as the executor records it, its figures from a real journal."""
    return r(
        "attempt.finished",
        task=task,
        thread_id=thread,
        exit_code=0,
        failure=failure,
        failure_message=message,
        usage=USAGE,
        thread_usage=USAGE,
        cost_usd=0.0123,
        cost_source="prices",
        cost_note=None,
        thread_cost_usd=0.0123,
        events=6,
        garbage_lines=0,
        items={"command_execution": 1, "agent_message": 1},
        duration=0.888,
        stop_steps=[],
        guardrail=[],
        hidden_work=[],
    )


def opened(n: int, seq: int, thread: str | None = None, agent: str = "codex", **choice: Any) -> dict[str, Any]:
    """The attempt that attempt.started (record `seq`) opens."""
    fields = {"model": None, "agent_source": "default", "fallback_from": None, **choice}
    return {"n": n, "started_at": at(seq), "ended_at": None, "resumed_thread": thread, "kind": "task"} | {
        "thread_id": thread,
        "pid": None,
        "agent": agent,
        **fields,
    }


def closed(attempt: dict[str, Any], seq: int, rec: dict[str, Any], **more: Any) -> dict[str, Any]:
    """The attempt once attempt.finished `rec` (record `seq`) closed it: every field it recorded kept."""
    said = {k: v for k, v in rec.items() if k not in ("type", "task")}
    return {**attempt, **said, "ended_at": at(seq), "pid": None, **more}


def test_a_created_run_holds_its_own_fields_and_each_task_pending() -> None:
    rec = json.loads(json.dumps(created(("T0001", "implementer", []), ("T0002", "tester", ["T0001"]))))
    state = fold(rec)
    expected = run_state(1, {"T0001": pending("T0001"), "T0002": pending("T0002", "tester", "T0001")})
    assert state == expected
    rec["run"]["agent_homes"]["claude"] = "/elsewhere"  # the state holds copies, not the record's values
    rec["tasks"][1]["blocked_by"].append("T0009")
    assert state == expected


def test_a_landing_task_with_a_failing_gate_goes_on_in_its_thread_and_lands() -> None:
    gate_red = {"name": "check", "ok": False, "exit_code": 3, "seconds": 0.005, "log": "/g/1/check.log"}
    gate_green = {**gate_red, "ok": True, "exit_code": 0, "log": "/g/2/check.log"}
    worktree = "/repo/.orchestrator/worktrees/r1/T0001"
    setup = {"worktree": worktree, "task": "T0001", "ok": True, "seconds": 0.042, "log": "/s/setup.log"}
    setup |= {"copied": [".env"], "excluded": ["/.env"], "exclude_file": "/s/exclude", "failed": None}
    first, second = finished("T0001", "th-1"), finished("T0001", "th-1")
    second["usage"] = {**USAGE, "input_tokens": 7}
    state = fold(
        created(("T0001", "implementer", []), ("T0002", "tester", ["T0001"])),
        r("run.workspace_ready"),
        r("task.workspace", task="T0001", branch="orch/r1/T0001", worktree=worktree, base_commit=BASE),
        r("worktree.setup", **setup),
        r("task.status", task="T0001", status="running"),  # 5
        start("T0001", 1),
        r("attempt.pid", task="T0001", pid=18616),
        r("attempt.thread", task="T0001", thread_id="th-1"),
        first,
        r("task.gates", task="T0001", n=1, runs=[gate_red]),  # 10
        r("task.fix_round", task="T0001", round=1, gate="check", n=2),
        start("T0001", 2, "th-1", agent_source="thread"),
        r("attempt.pid", task="T0001", pid=18630),
        second,
        r("task.gates", task="T0001", n=2, runs=[gate_green]),  # 15
        r("task.result", task="T0001", result=ANSWER),
        r("task.committed", task="T0001", commit=C1, head=C1, files_changed=["a.txt"], file_claims=CLAIMS),
        r("task.landed", task="T0001", commit=L1),
        r("task.status", task="T0001", status="succeeded"),
    )
    t1 = pending("T0001") | {"status": "succeeded", "started_at": at(5), "ended_at": at(19), "thread_id": "th-1"}
    t1 |= {"branch": "orch/r1/T0001", "worktree": worktree, "base_commit": BASE, "result": ANSWER}
    t1 |= {"commit": L1, "head": L1, "task_commit": C1, "landed": True, "files_changed": ["a.txt"]}
    t1 |= {"file_claims": CLAIMS, "gate_runs": [{**gate_red, "n": 1}, {**gate_green, "n": 2}], "fix_rounds": 1}
    t1["attempts"] = [
        closed(opened(1, 6), 9, first, gates=[gate_red]),
        closed(opened(2, 12, "th-1", agent_source="thread"), 14, second, gates=[gate_green]),
    ]
    setups = {worktree: {**setup, "ts": at(4)}}
    tasks = {"T0001": t1, "T0002": pending("T0002", "tester", "T0001")}
    assert state == run_state(19, tasks, workspace_ready=True, setups=setups)


def test_retries_a_fallback_agent_and_a_refused_commit_each_leave_their_attempt_then_the_task_fails() -> None:
    not_json = finished("T0001", "th-a", "not_json", "the answer is not JSON: line 1")
    limited = finished("T0001", "th-a", "rate_limited", "You've hit your usage limit.")
    answered = finished("T0001", "th-b")
    refused = "secrets in the changes to commit: deploy/env.sh:2: AWS Access Key."
    crash = r("attempt.finished", task="T0001", failure="internal", failure_message="KeyError: 'x'")  # no thread
    internal = {"kind": "internal", "message": "KeyError: 'x'", "hint": "a bug of codex-orch"}
    blocked = {"kind": "blocked", "message": "waits for T0001, which did not succeed"}
    state = fold(
        created(("T0001", "implementer", []), ("T0002", "tester", ["T0001"])),
        r("task.status", task="T0001", status="running"),
        start("T0001", 1),
        r("attempt.thread", task="T0001", thread_id="th-a"),
        not_json,  # 5
        start("T0001", 2, "th-a", agent_source="thread"),  # the answer retried in its thread
        limited,
        start("T0001", 3, agent="claude", model="claude-sonnet-4-5", agent_source="fallback", fallback_from="codex"),
        r("attempt.pid", task="T0001", pid=4242),
        r("attempt.thread", task="T0001", thread_id="th-b"),  # 10
        answered,
        r("task.result", task="T0001", result=ANSWER),
        r("task.commit_refused", task="T0001", failure="secret", message=refused),
        start("T0001", 4, "th-b", agent="claude", model="claude-sonnet-4-5", agent_source="thread"),
        crash,  # 15: internal_failure closes the attempt; the task keeps its thread
        r("task.status", task="T0001", status="failed", error=internal),
        r("task.status", task="T0002", status="blocked", error=blocked),
        r("run.status", status="failed"),
    )
    fallback = {"model": "claude-sonnet-4-5", "agent_source": "fallback", "fallback_from": "codex"}
    t1 = pending("T0001") | {"status": "failed", "started_at": at(2), "ended_at": at(16), "error": internal}
    t1["thread_id"] = "th-b"
    t1["attempts"] = [
        closed(opened(1, 3), 5, not_json),
        closed(opened(2, 6, "th-a", agent_source="thread"), 7, limited),
        closed(opened(3, 8, agent="claude", **fallback), 11, answered, failure="secret", failure_message=refused),
        closed(opened(4, 14, "th-b", "claude", model="claude-sonnet-4-5", agent_source="thread"), 15, crash),
    ]
    t2 = pending("T0002", "tester", "T0001") | {"status": "blocked", "ended_at": at(17), "error": blocked}
    assert state == run_state(18, {"T0001": t1, "T0002": t2}, status="failed", ended_at=at(18))


def test_an_interrupted_task_is_taken_up_in_its_thread_after_each_resume() -> None:
    orphaned = {"kind": "interrupted", "message": "found running with no live codex-orch process"}
    stopped = {"kind": "interrupted", "message": "stopped while its agent ran"}
    cut = finished("T0001", "th-1", "interrupted", "stopped: SIGINT")
    cut["stop_steps"] = ["SIGINT: exited"]
    done = finished("T0001", "th-1")
    state = fold(
        created(("T0001", "implementer", [])),
        r("task.workspace", task="T0001", branch="orch/r1/T0001", worktree="/w/T0001", base_commit=BASE),
        r("task.status", task="T0001", status="running"),
        start("T0001", 1),
        r("attempt.pid", task="T0001", pid=100),  # 5
        r("attempt.thread", task="T0001", thread_id="th-1"),  # then codex-orch is killed: the attempt stays open
        r("task.status", task="T0001", status="interrupted", error=orphaned),  # found so by resume
        r("run.resumed"),
        r("run.budget", budgets={"run_cost": 20.0}),
        r("task.status", task="T0001", status="running"),  # 10
        start("T0001", 2, "th-1", agent_source="thread"),
        r("attempt.pid", task="T0001", pid=200),
        cut,
        r("task.status", task="T0001", status="interrupted", error=stopped),
        r("run.status", status="interrupted", signal="SIGINT"),  # 15
        r("run.resumed"),
        r("run.budget", budgets={"run_cost": 30.0}),
        r("task.status", task="T0001", status="running"),
        start("T0001", 3, "th-1", agent_source="thread"),
        done,  # 20
        r("task.committed", task="T0001", commit=C1, head=C1, files_changed=["a.txt"], violations=["x.txt"]),
        r("task.status", task="T0001", status="succeeded"),
        r("run.status", status="succeeded"),
    )
    t1 = pending("T0001") | {"status": "succeeded", "started_at": at(3), "ended_at": at(22), "thread_id": "th-1"}
    t1 |= {"branch": "orch/r1/T0001", "worktree": "/w/T0001", "base_commit": BASE}
    t1 |= {"commit": C1, "head": C1, "files_changed": ["a.txt"], "violations": ["x.txt"]}
    t1["attempts"] = [
        opened(1, 4) | {"pid": 100, "thread_id": "th-1"},
        closed(opened(2, 11, "th-1", agent_source="thread"), 13, cut),
        closed(opened(3, 19, "th-1", agent_source="thread"), 20, done),
    ]
    expected = run_state(23, {"T0001": t1}, status="succeeded", ended_at=at(23), resumed=2)
    assert state == expected | {"budgets": {"run_cost": 30.0}}


def test_a_budget_that_runs_out_fails_the_attempt_it_stopped_and_the_task_it_kept_from_starting() -> None:
    over = "stopped: the run's cost $1.02 reached budgets.run_cost $1.00"
    stopped = finished("T0001", "th-1", "budget", over)
    hint = "Raise the budget, or resume with --budget-run-cost."
    no_start = {"kind": "budget", "message": "the run's cost $1.02 reached budgets.run_cost $1.00", "hint": hint}
    state = fold(
        created(("T0001", "implementer", []), ("T0002", "implementer", [])),
        r("task.status", task="T0001", status="running"),
        start("T0001", 1),
        stopped,
        r("task.status", task="T0001", status="failed", error={"kind": "budget", "message": over, "hint": hint}),
        r("task.workspace", task="T0002", branch="orch/r1/T0002", worktree="/w/T0002", base_commit=BASE),  # 6
        r("task.status", task="T0002", status="running"),
        r("task.status", task="T0002", status="failed", error=no_start),
        r("run.status", status="budget_exhausted"),
    )
    t1 = pending("T0001") | {"status": "failed", "started_at": at(2), "ended_at": at(5), "thread_id": "th-1"}
    t1 |= {"error": {"kind": "budget", "message": over, "hint": hint}, "attempts": [closed(opened(1, 3), 4, stopped)]}
    t2 = pending("T0002") | {"status": "failed", "started_at": at(7), "ended_at": at(8), "error": no_start}
    t2 |= {"branch": "orch/r1/T0002", "worktree": "/w/T0002", "base_commit": BASE, "head": BASE}  # no commit
    assert state == run_state(9, {"T0001": t1, "T0002": t2}, status="budget_exhausted", ended_at=at(9))


def test_quota_pauses_and_budget_warnings_are_the_run_s_own() -> None:
    until = "2026-11-26T08:57:00.095660+00:00"
    limited = "You've hit your usage limit. Please try again in 3s."
    state = fold(
        created(("T0001", "implementer", [])),
        r("run.paused", agent="codex", until=until, reason=limited, task="T0001"),
        r("run.paused", agent="claude", until=until, reason="rate limited", task="T0001"),
        r("run.unpaused", agent="codex"),
        r("run.unpaused", agent="codex"),  # two tasks waited on it: each says so, the second changes nothing
        r("run.budget_warning", limit="run_cost", message="the run's cost $1.00 reached budgets.run_cost $1.00"),
        r("run.budget_warning", limit="task_cost", message="T0001's cost $0.50 reached budgets.task_cost $0.50"),
    )
    paused = {"claude": {"until": until, "reason": "rate limited"}}
    expected = run_state(7, {"T0001": pending("T0001")}, paused=paused, budget_warnings=["run_cost", "task_cost"])
    assert state == expected


def test_services_guardrail_and_the_commands_after_a_run_each_keep_what_they_recorded() -> None:
    db_log = "/repo/.orchestrator/runs/r1/services/db.log"
    stopped = {"pid": 5029, "exit_code": None, "stop_steps": ["SIGTERM: exited"], "message": ""}
    validated = {"n": 1, "ok": True, "results": [{"name": "ok", "argv": ["true"], "ok": True, "returncode": 0}]}
    queue: dict[str, Any] = {"n": 1, "into": "main", "old": BASE, "new": TIP, "tip": TIP, "landed": [{"task": "T0001"}]}
    why = "the doctor was still red without T0003; not bisected further: `merge` again to find the next"
    queue |= {
        "failed": {"T0003": "red"},
        "left_out": {"T0002": why},
        "already_in": [],
        "doctor_runs": [],
        "canary": None,
    }
    guilty = {"kind": "integration_failed", "message": "red", "hint": "fix it on its branch and merge again"}
    steps = [{"source": "T0001", "branch": "orch/r1/T0001", "commit": C1, "how": "merge"}]
    merged: dict[str, Any] = {"into": "main", "old": BASE, "new": TIP, "integration_branch": "orch/r1/integration"}
    merged |= {"steps": steps, "left_out": ["T0003 (red)", f"T0002 ({why})"]}
    cleaned = {"removed": ["worktree /w/T0001"], "kept": ["branch orch/r1/T0001: 1 commit(s) not in main"]}
    state = fold(
        created(("T0001", "implementer", []), ("T0002", "implementer", []), ("T0003", "implementer", [])),
        r("run.service", name="db", status="started", pid=5029, started=1795683563.37, log=db_log),
        r("run.service", name="db", status="ready", pid=5029, seconds=0.5),
        r("run.service", name="web", status="failed", pid=None, message="exited with 1 before it was ready"),
        r("task.status", task="T0001", status="succeeded"),  # 5
        r("task.status", task="T0002", status="succeeded"),
        r("task.status", task="T0003", status="succeeded"),
        r("run.guardrail", changes=["created refs/heads/feat at 8c7c9f843b87; put back"]),
        r("run.service", name="db", status="stopped", **stopped),
        r("run.guardrail", changes=["the last check could not run: git failed"]),  # 10
        r("run.status", status="succeeded"),
        r("run.validated", **validated),
        r("run.integration", **queue),
        r("task.integration", task="T0001", result="landed", commit=C1, how="merge"),
        r("task.integration", task="T0002", result="left out", message=why),  # 15: a message, and no error
        r("task.integration", task="T0003", result="integration_failed", message="red", error=guilty),
        r("run.merged", **merged),
        r("run.cleaned", **cleaned),
    )
    db = {"name": "db", "status": "stopped", "started": 1795683563.37, "log": db_log, "seconds": 0.5, **stopped}
    web = {"name": "web", "status": "failed", "pid": None, "message": "exited with 1 before it was ready"}
    ends = {"status": "succeeded", "ended_at": at(5)}
    t1 = pending("T0001") | ends | {"integration": {"ts": at(14), "result": "landed", "commit": C1, "how": "merge"}}
    t2 = (
        pending("T0002")
        | ends
        | {"ended_at": at(6), "integration": {"ts": at(15), "result": "left out", "message": why}}
    )
    t3 = pending("T0003") | {"status": "failed", "ended_at": at(7), "error": guilty}
    t3["integration"] = {"ts": at(16), "result": "integration_failed", "message": "red", "error": guilty}
    expected = run_state(18, {"T0001": t1, "T0002": t2, "T0003": t3}, status="succeeded", ended_at=at(11))
    expected |= {"services": {"db": db | {"ts": at(9)}, "web": web | {"ts": at(4)}}}
    expected |= {
        "guardrail": ["created refs/heads/feat at 8c7c9f843b87; put back", "the last check could not run: git failed"]
    }
    expected |= {"validation": {"ts": at(12), **validated}, "integration": {"ts": at(13), **queue}}
    assert state == expected | {"merge": {"ts": at(17), **merged}, "cleaned": {"ts": at(18), **cleaned}}


def test_follow_ups_join_the_plan_and_predicted_conflicts_hold_or_replay_tasks() -> None:
    tester = {
        "id": "T0001.1",
        "role": "tester",
        "prompt": "test a.txt",
        "acceptance": "tests pass",
        "blocked_by": ["T0001"],
    }
    follow: dict[str, Any] = {"id": "followup-1", "role": "implementer", "prompt": "now write bye", "acceptance": ""}
    follow |= {"blocked_by": ["T0001"], "continues": "T0001"}
    notes = [{"id": "T0001.1", "added": "tester"}, {"id": "T0001.2", "skipped": "limits.max_tasks (3) reached"}]
    conflict = [{"with": "T0002", "files": ["same.txt"]}]
    state = fold(
        created(("T0001", "implementer", []), ("T0002", "implementer", []), ("T0003", "implementer", [])),
        r("task.committed", task="T0001", commit=C1, head=C1, files_changed=["same.txt"], file_claims=None),
        r("task.result", task="T0002", result=ANSWER),
        r("task.committed", task="T0002", commit=C2, head=C2, files_changed=["same.txt"], file_claims=CLAIMS),
        r("task.forecast", task="T0001", conflicts=conflict),  # 5
        r("task.held", task="T0003", by=["T0001", "T0002"], files=["same.txt"]),
        r("task.rebased", task="T0002", base_commit=TIP, conflicts=["same.txt"]),
        r("task.added", task=tester, proposed_by="T0001"),
        r("task.follow_ups", task="T0001", follow_ups=notes),
        r("task.added", task=follow, proposed_by=None),  # 10: the job service's `continue`
        r("task.forecast", task="T0001", conflicts=[]),
    )
    t1 = pending("T0001") | {
        "commit": C1,
        "head": C1,
        "files_changed": ["same.txt"],
        "forecast": [],
        "follow_ups": notes,
    }
    t2 = pending("T0002") | {"base_commit": TIP, "head": C2, "files_changed": ["same.txt"], "file_claims": CLAIMS}
    t2["conflicts"] = ["same.txt"]  # its result and commit dropped: its agent resolves the conflict first
    t3 = pending("T0003") | {"held": {"by": ["T0001", "T0002"], "files": ["same.txt"]}}
    added = pending("T0001.1", "tester", "T0001") | {"spec": tester, "proposed_by": "T0001"}
    again = pending("followup-1", "implementer", "T0001") | {"spec": follow, "proposed_by": None}
    tasks = {"T0001": t1, "T0002": t2, "T0003": t3, "T0001.1": added, "followup-1": again}
    assert state == run_state(11, tasks)


ERR = {"kind": "agent_reported", "message": "the agent reported status 'blocked'"}


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([("running", None)], {"status": "running", "started_at": at(2)}),
        ([("running", None), ("succeeded", None)], {"status": "succeeded", "started_at": at(2), "ended_at": at(3)}),
        (
            [("running", None), ("failed", ERR)],
            {"status": "failed", "started_at": at(2), "ended_at": at(3), "error": ERR},
        ),
        ([("blocked", ERR)], {"status": "blocked", "ended_at": at(2), "error": ERR}),
        ([("cancelled", ERR)], {"status": "cancelled", "ended_at": at(2), "error": ERR}),
        (
            [("running", None), ("interrupted", ERR)],
            {"status": "interrupted", "started_at": at(2), "ended_at": at(3), "error": ERR},
        ),
        # taken up again: its first start stays, its error and its end of before go
        (
            [("running", None), ("interrupted", ERR), ("running", None)],
            {"status": "running", "started_at": at(2)},
        ),
        # the last check found its commit gone from its branch
        (
            [("running", None), ("succeeded", None), ("failed", ERR)],
            {"status": "failed", "started_at": at(2), "ended_at": at(4), "error": ERR},
        ),
        # running, pending and succeeded clear the error a task had
        ([("failed", ERR), ("succeeded", None)], {"status": "succeeded", "ended_at": at(3)}),
        ([("failed", ERR), ("pending", None)], {"status": "pending"}),
    ],
    ids=lambda v: "-".join(s for s, _ in v) if isinstance(v, list) else None,
)
def test_a_task_status_sets_its_start_once_its_end_on_each_stop_and_its_error(
    records: list[tuple[str, dict[str, Any] | None]], expected: dict[str, Any]
) -> None:
    statuses = [{"status": s, **({"error": e} if e else {})} for s, e in records]
    state = fold(created(("T0001", "implementer", [])), *(r("task.status", task="T0001", **s) for s in statuses))
    assert state == run_state(len(records) + 1, {"T0001": pending("T0001") | expected})


@pytest.mark.parametrize("status", ["running", "succeeded", "failed", "partial", "interrupted", "budget_exhausted"])
def test_a_run_status_other_than_running_ends_the_run(status: str) -> None:
    state = fold(created(("T0001", "implementer", [])), r("run.status", status=status))
    ended = {} if status == "running" else {"ended_at": at(2)}
    assert state == run_state(2, {"T0001": pending("T0001")}, status=status, **ended)


def test_a_task_that_failed_on_its_answer_starts_anew_with_no_answer_left_to_finish() -> None:
    """Resume finishes a recorded answer a crash left (engine/executor.py); once a new attempt starts, the
    old answer is superseded, so a crash during that attempt must not bring it back."""
    error = {"kind": "agent_reported", "message": "the agent reported blocked"}
    blocked = {**ANSWER, "status": "blocked"}
    state = fold(
        created(("T0001", "implementer", [])),
        r("task.status", task="T0001", status="running"),
        start("T0001", 1),
        finished("T0001", "th-1"),
        r("task.result", task="T0001", result=blocked),  # 5
        r("task.status", task="T0001", status="failed", error=error),
        r("run.status", status="partial"),
        r("run.resumed"),
        r("task.status", task="T0001", status="running"),
        start("T0001", 2),  # 10
    )
    t1 = pending("T0001") | {"status": "running", "started_at": at(2), "thread_id": "th-1"}
    t1["attempts"] = [closed(opened(1, 3), 4, finished("T0001", "th-1")), opened(2, 10)]
    assert state == run_state(10, {"T0001": t1}, resumed=1)


def test_a_resumed_run_is_running_again_and_counts_its_resumes() -> None:
    state = fold(created(("T0001", "implementer", [])), r("run.status", status="interrupted"), r("run.resumed"))
    assert state == run_state(3, {"T0001": pending("T0001")}, resumed=1)  # no end while it runs again


def test_an_attempt_recorded_before_agents_could_be_chosen_ran_on_codex() -> None:
    old = r("attempt.started", task="T0001", n=1, resume_thread=None)  # the first journals' shape (9fabcd6)
    state = fold(created(("T0001", "implementer", [])), old)
    attempt = {"n": 1, "started_at": at(2), "ended_at": None, "resumed_thread": None, "kind": "task"}
    attempt |= {"thread_id": None, "pid": None, "agent": "codex", "model": None, "agent_source": None}
    t1 = pending("T0001") | {"attempts": [attempt | {"fallback_from": None}]}
    assert state == run_state(2, {"T0001": t1})


@pytest.mark.parametrize("kind", ["task.exploded", "attempt.exploded"])
def test_an_unknown_record_is_refused_and_changes_nothing(kind: str) -> None:
    state = fold(created(("T0001", "implementer", [])))
    with pytest.raises(ValueError, match=rf"^unknown journal record type '{kind}'$"):
        apply(state, {"seq": 2, "ts": at(2), "type": kind, "task": "T0001"})
    assert state == run_state(1, {"T0001": pending("T0001")})


def test_a_copy_shares_nothing_with_the_state_it_was_taken_from() -> None:
    original = {"seq": 3, "task_order": ["T0001"], "tasks": {"T0001": {"attempts": [{"n": 1, "usage": {"x": 5}}]}}}
    copy = copied(original)
    assert copy == original
    copy["tasks"]["T0001"]["attempts"][0]["usage"]["x"] = 6
    copy["tasks"]["T0001"]["attempts"].append({"n": 2})
    copy["task_order"].append("T0002")
    copy["seq"] = 4
    assert original == {
        "seq": 3,
        "task_order": ["T0001"],
        "tasks": {"T0001": {"attempts": [{"n": 1, "usage": {"x": 5}}]}},
    }
