"""Whole runs driven in-process: `start_run` and `resume_run` with the fake codex.

Mutation testing only sees code that tests call in-process (docs/testing.md, "What mutmut sees"); the CLI
tests reach the engine through `codex-orch` child processes, which import the unmutated package. These
tests drive the same runs from the test's own process, so that the executor, the attempt and the driver
(engine/executor.py, attempt.py, drive.py) are reached, and assert each run's whole outcome: the
RunOutcome, the state (each task's status, attempts, threads, failure kinds, commits), the journal's
records in order, the run branch's commits and files, and what each agent was told.

The agents are real processes (the fake codex); a test that needs one held uses a marker and a gate, never
the clock. `drive` installs its signal handlers in this process: the autouse fixture below checks that a
run leaves no handler, thread, child process, log handler or working directory behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    FakeCodex,
    Repo,
    alive,
    answer,
    job,
    journal,
    kill_all,
    marked,
    read_state,
    run_cli,
    start_cli,
    wait_for,
    wait_marked,
    wait_recorded,
    write_plan,
    writer,
)

from codex_orch import faults
from codex_orch.engine.drive import RunOptions, RunOutcome
from codex_orch.engine.follow_up import add_follow_up
from codex_orch.engine.run import resume_run, start_run
from codex_orch.errors import GitError
from codex_orch.failures import FailureKind, info
from codex_orch.interrupts import STOP_SIGNALS
from codex_orch.state import RunStore

RUN = "r1"
NEVER = "never-released"  # a gate no test opens: the agent waits there until codex-orch stops it

# The journal records of one task, in order (`task.status` with its status):
FIRST = [
    "task.workspace",
    "task.status:running",
    "attempt.started",
    "attempt.pid",
    "attempt.thread",
    "attempt.finished",
]
AGAIN = ["attempt.started", "attempt.pid", "attempt.finished"]  # an attempt on a thread already known
COMMITTED = ["task.result", "task.committed", "task.status:succeeded"]
LANDED = ["task.result", "task.committed", "task.landed", "task.status:succeeded"]
TRANSIENT = (
    "Your previous turn did not finish (crashed: {message}). Continue the task from where you left off, then "
    "answer with the JSON object the output schema asks for."
)
# 90 uncached input tokens at $1 per 90: each fake attempt (100 input tokens, 10 cached) costs exactly $1
PRICE = {"gpt-5.5": {"input": 1, "cached_input": 0, "output": 0, "per": 90}}
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example key; detect-secrets flags it


# --- what a run leaves behind ------------------------------------------------------------------------
def _children() -> set[int]:
    pids: set[int] = set()
    for path in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        try:
            pids.update(int(pid) for pid in path.read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def _described(before: set[int]) -> str:
    """The children born since `before`, as /proc shows them."""
    out = []
    for pid in sorted(_children() - before):
        try:
            out.append(Path(f"/proc/{pid}/stat").read_text() + " " + Path(f"/proc/{pid}/cmdline").read_text())
        except OSError:
            out.append(str(pid))
    return "; ".join(out)


@pytest.fixture(autouse=True)
def leaves_nothing_behind() -> Iterator[None]:
    """A run driven in this process restores the signal handlers it installed, ends its threads and
    child processes, removes its log handlers and never changes the working directory."""
    handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    cwd = os.getcwd()
    threads = set(threading.enumerate())
    children = _children()
    logger = logging.getLogger("codex_orch")
    log_handlers, log_level = list(logger.handlers), logger.level
    yield
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == handlers
    assert os.getcwd() == cwd
    assert (logger.handlers, logger.level) == (log_handlers, log_level)
    wait_for(lambda: not [t for t in threading.enumerate() if t not in threads], "the run's threads to end")
    try:
        wait_for(lambda: _children() <= children, "the run's child processes to end", timeout=30)
    except AssertionError:
        raise AssertionError(f"the run left child processes: {_described(children)}") from None


# --- helpers ------------------------------------------------------------------------------------------
class Heard:
    """The run's notify callback: every event, in order (from any thread)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, kind: str, task: str | None, data: Mapping[str, Any]) -> None:
        with self._lock:
            self.events.append((kind, task, dict(data)))

    def of(self, task: str) -> list[str]:
        """The kinds of one task's events, its live progress left out."""
        return [kind for kind, tid, _ in self.events if tid == task and kind != "progress"]

    def data(self, kind: str) -> list[tuple[str | None, dict[str, Any]]]:
        return [(tid, data) for k, tid, data in self.events if k == kind]


def run(
    repo: Repo, tmp_path: Path, tasks: list[dict[str, Any]], heard: Heard | None = None, **options: Any
) -> RunOutcome:
    plan = write_plan(tmp_path / "plan.json", tasks)
    return start_run(repo.path, plan, None, RunOptions(run_id=RUN, inputs=(plan,), **options), heard or Heard())


def resume(repo: Repo, heard: Heard | None = None, **options: Any) -> RunOutcome:
    return resume_run(repo.path, RUN, None, RunOptions(**options), heard or Heard())


def outcome(repo: Repo, status: str, **tasks: str) -> RunOutcome:
    return RunOutcome(RUN, status, repo.path / ".orchestrator" / "runs" / RUN, tasks)


def _step(record: dict[str, Any]) -> str:
    kind = record["type"]
    return f"{kind}:{record['status']}" if kind in ("task.status", "run.status") else kind


def attempt_rows(task: dict[str, Any], *fields: str) -> list[tuple[Any, ...]]:
    """These fields of each of a task's recorded attempts, in order."""
    return [tuple(attempt[f] for f in fields) for attempt in task["attempts"]]


def steps(repo: Repo, task: str) -> list[str]:
    """One task's journal records, in order."""
    return [_step(r) for r in journal(repo, RUN) if r.get("task") == task]


def run_steps(repo: Repo) -> list[str]:
    """The journal's records of the run itself, in order."""
    return [_step(r) for r in journal(repo, RUN) if "task" not in r]


def recorded(repo: Repo, kind: str, task: str | None = None) -> list[dict[str, Any]]:
    """The journal's records of a kind (of one task), without their sequence number and time."""
    return [
        {k: v for k, v in r.items() if k not in ("seq", "ts")}
        for r in journal(repo, RUN)
        if r["type"] == kind and (task is None or r.get("task") == task)
    ]


def landed(repo: Repo, branch: str) -> list[tuple[str, str]]:
    """(commit, Orch-Task trailer) of the branch's commits since main, oldest first."""
    out = repo.git("log", "--reverse", "--format=%H %(trailers:key=Orch-Task,valueonly,separator=)", f"main..{branch}")
    return [(line.split()[0], line.split()[1]) for line in out.splitlines()]


def trailer(repo: Repo, sha: str, key: str) -> str:
    return repo.git("log", "-1", f"--format=%(trailers:key={key},valueonly,separator=)", sha)


def files_of(repo: Repo, ref: str) -> list[str]:
    return repo.git("ls-tree", "-r", "--name-only", ref).split()


def attempt_file(repo: Repo, task: str, n: int, name: str) -> str:
    return (repo.path / ".orchestrator" / "runs" / RUN / "tasks" / task / f"attempt-{n}" / name).read_text()


def failed(kind: FailureKind, message: str) -> dict[str, str]:
    """A task's recorded error for a failure of this kind."""
    return {"kind": str(kind), "message": message, "hint": info(kind).hint}


def blocked(cause: str) -> dict[str, str]:
    return {"kind": "blocked", "message": f"waits for {cause}, which did not succeed"}


def prompts_with(fake: FakeCodex, text: str) -> int:
    return sum(text in call["prompt"] for call in fake.calls())


# --- workspace modes ----------------------------------------------------------------------------------
def test_a_landing_run_lands_each_task_on_the_run_branch_in_dependency_order(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(workspace="landing")
    decided = answer("A", ["a.txt"], decisions=[{"decision": "use a.txt", "rationale": "the plan says so"}])
    fake_codex.script(
        {
            "rules": [
                {"match": "job A.", "turns": [[{"write": "a.txt", "content": "A\n"}, {"answer": decided}]]},
                {"match": "job B.", "turns": [[{"shell": "cat a.txt > b.txt"}, {"answer": answer("B", ["b.txt"])}]]},
                writer("C", "c.txt"),
            ]
        }
    )
    heard = Heard()

    result = run(repo, tmp_path, [job("A"), job("B", ["A"]), job("C", ["B"])], heard)

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded", C="succeeded")
    assert result.exit_code == 0
    state = read_state(repo, RUN)
    assert (state["status"], state["workspace_mode"], state["worktree"]) == ("succeeded", "landing", None)
    branch = state["branch"]
    assert branch == f"orch/{state['date']}/run-{RUN}/workspace-shared"
    commits = landed(repo, branch)
    assert [tid for _, tid in commits] == ["A", "B", "C"]
    calls = fake_codex.calls()
    assert [call["resume"] for call in calls] == [False, False, False]
    for (sha, tid), call in zip(commits, calls, strict=True):
        task = state["tasks"][tid]
        assert (task["status"], task["commit"], task["error"], task["thread_id"]) == (
            "succeeded",
            sha,
            None,
            call["thread_id"],
        )
        assert task["branch"] == f"orch/{state['date']}/run-{RUN}/{tid}-implementer"
        assert not Path(task["worktree"]).exists()  # landed: its worktree is retired
        assert [(a["n"], a["failure"], a["resumed_thread"]) for a in task["attempts"]] == [(1, None, None)]
        assert trailer(repo, sha, "Codex-Thread") == call["thread_id"] and trailer(repo, sha, "Orch-Attempt") == "1"
        assert f"job {tid}." in call["prompt"]
        assert attempt_file(repo, tid, 1, "prompt.md") == call["prompt"]
        assert attempt_file(repo, tid, 1, "validation.txt") == "valid\n"
        assert steps(repo, tid) == FIRST + LANDED
    assert run_steps(repo) == ["run.created", "run.workspace_ready", "run.status:succeeded"]
    assert repo.git("show", f"{branch}:b.txt") == "A"  # B started from the tip that held A's work
    assert files_of(repo, branch) == ["README.md", "a.txt", "b.txt", "c.txt", "docs/ai/decisions.md"]
    assert "**use a.txt** — the plan says so" in repo.git("show", f"{branch}:docs/ai/decisions.md")
    assert "### A (implementer): succeeded" in calls[1]["prompt"] and "### B (implementer)" in calls[2]["prompt"]
    first = state["tasks"]["A"]["attempts"][0]
    assert {k: first[k] for k in ("exit_code", "events", "garbage_lines", "items", "stop_steps", "guardrail")} == {
        "exit_code": 0,
        "events": 6,
        "garbage_lines": 0,
        "items": {"file_change": 1, "agent_message": 1},
        "stop_steps": [],
        "guardrail": [],
    }
    assert first["thread_usage"] == first["usage"] and first["usage"]["input_tokens"] == 100
    # what a display hears: the plan, then each task's start, attempt and end
    assert heard.events[0] == (
        "plan",
        None,
        {"tasks": {t: {"role": "implementer", "status": "pending"} for t in "ABC"}},
    )
    for tid in "ABC":
        assert heard.of(tid) == ["started", "attempt", "finished"]
    assert not heard.data("warning")
    # the user's checkout is untouched
    assert repo.git("rev-parse", "HEAD") == repo.git("rev-parse", "main") and not (repo.path / "a.txt").exists()


def test_a_shared_run_commits_each_task_in_its_one_worktree(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """The fake_codex fixture's mode. The plan file inside the checkout is the user's input, not warned
    about; another uncommitted file is."""
    fake_codex.script(
        {
            "rules": [
                writer("A", "a.txt", "A\n"),
                {
                    "match": "job B.",
                    "turns": [
                        [
                            {"append": "a.txt", "content": "B\n"},
                            {"write": "b.txt", "content": "B\n"},
                            {"answer": answer("B")},
                        ]
                    ],
                },
            ]
        }
    )
    repo.write("notes.txt", "mine\n")
    plan = write_plan(repo.path / "plan.json", [job("A"), job("B", ["A"])])
    heard = Heard()

    result = start_run(repo.path, plan, None, RunOptions(run_id=RUN, inputs=(plan,)), heard)

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    state = read_state(repo, RUN)
    worktree = repo.path / ".orchestrator" / "worktrees" / RUN
    assert (state["workspace_mode"], state["worktree"]) == ("shared", str(worktree))
    branch = state["branch"]
    commits = landed(repo, branch)
    assert [tid for _, tid in commits] == ["A", "B"]
    a, b = state["tasks"]["A"], state["tasks"]["B"]
    assert (a["commit"], b["commit"]) == (commits[0][0], commits[1][0])
    assert a["worktree"] == b["worktree"] == str(worktree) and a["branch"] == b["branch"] == branch
    assert b["base_commit"] == a["commit"]  # B started where A left the worktree
    assert (a["files_changed"], b["files_changed"]) == (["a.txt"], ["a.txt", "b.txt"])
    assert (worktree / "a.txt").read_text() == "A\nB\n" and repo.git("show", f"{branch}:b.txt") == "B"
    assert [r["violations"] for r in recorded(repo, "task.committed")] == [[], []]
    assert steps(repo, "A") == steps(repo, "B") == FIRST + COMMITTED
    assert run_steps(repo) == ["run.created", "run.workspace_ready", "run.status:succeeded"]
    [(_, warning)] = heard.data("warning")
    assert warning["message"].startswith(f"1 uncommitted change(s) in {repo.path} (notes.txt) are not part of this run")


def test_a_per_task_run_branches_each_task_from_its_dependencies(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(workspace="per-task")
    fake_codex.script({"rules": [writer("A", "a.txt"), writer("B", "b.txt"), writer("C", "c.txt")]})

    result = run(repo, tmp_path, [job("A"), job("B", ["A"]), job("C")])

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded", C="succeeded")
    state = read_state(repo, RUN)
    assert (state["workspace_mode"], state["branch"], state["worktree"]) == ("per-task", None, None)
    tasks = state["tasks"]
    for tid in "ABC":
        assert tasks[tid]["branch"] == f"orch/{state['date']}/run-{RUN}/{tid}-implementer"
        assert Path(tasks[tid]["worktree"]) == repo.path / ".orchestrator" / "worktrees" / RUN / tid
        assert landed(repo, tasks[tid]["branch"])[-1] == (tasks[tid]["commit"], tid)
        assert steps(repo, tid) == FIRST + COMMITTED
    assert files_of(repo, tasks["B"]["branch"]) == ["README.md", "a.txt", "b.txt"]  # on top of A's commit
    assert files_of(repo, tasks["C"]["branch"]) == ["README.md", "c.txt"]
    assert tasks["B"]["base_commit"] == tasks["A"]["commit"]
    assert tasks["C"]["base_commit"] == tasks["A"]["base_commit"] == state["base_commit"]
    assert run_steps(repo) == ["run.created", "run.status:succeeded"]


def test_a_run_whose_workspace_cannot_be_made_is_recorded_failed(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    in_the_way = repo.write(f".orchestrator/worktrees/{RUN}", "not a worktree\n")

    with pytest.raises(GitError, match="already exists"):
        run(repo, tmp_path, [job("A")])

    assert read_state(repo, RUN)["status"] == "failed"
    assert run_steps(repo) == ["run.created", "run.status:failed"]
    assert in_the_way.read_text() == "not a worktree\n" and fake_codex.calls() == []


def test_a_failing_worktree_setup_fails_the_task_before_any_agent_runs(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(workspace="landing", worktree={"setup": [["sh", "-c", "echo no compiler here; exit 3"]]})

    result = run(repo, tmp_path, [job("A"), job("B", ["A"])])

    assert result == outcome(repo, "failed", A="failed", B="blocked")
    assert fake_codex.calls() == []  # no agent was spent
    state = read_state(repo, RUN)
    a, b = state["tasks"]["A"], state["tasks"]["B"]
    log = repo.path / ".orchestrator" / "runs" / RUN / "setup" / "A" / "setup.log"
    command = "sh -c echo no compiler here; exit 3"
    assert a["error"] == failed(FailureKind.SETUP_FAILED, f"worktree setup failed: `{command}`: exit 3 (output: {log})")
    assert (a["attempts"], a["commit"], b["error"]) == ([], None, blocked("A"))
    assert "no compiler here" in log.read_text()
    [setup] = recorded(repo, "worktree.setup")
    assert (setup["ok"], setup["failed"]) == (False, {"command": command, "exit_code": 3, "why": "exit 3"})
    assert steps(repo, "A") == ["task.workspace", "worktree.setup", "task.status:failed"]
    assert run_steps(repo) == ["run.created", "run.workspace_ready", "run.status:failed"]


# --- answers, crashes, garbage, hangs -----------------------------------------------------------------
def _plan_answer(*blocked_by: str) -> dict[str, Any]:
    """A navigator's answer: a plan of one task."""
    task = {"id": "T1", "role": "implementer", "prompt": "p", "acceptance": "a", "blocked_by": list(blocked_by)}
    return {"goal": "g", "assumptions": [], "tasks": [{**task, "paths": None, "gates": None}]}


def test_an_invalid_answer_is_retried_on_the_same_thread(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """A's answer does not fit its schema; N's (a navigator's plan) fits it but does not load: each agent
    is told what was wrong on its own thread, and answers again."""
    fake_codex.script(
        {
            "rules": [
                {
                    "match": "job A.",
                    "turns": [
                        [{"write": "x.txt", "content": "x"}, {"answer": {"status": "done", "summary": 42}}],
                        [{"answer": answer("fixed", ["x.txt"])}],
                    ],
                },
                {"match": "job N.", "turns": [[{"answer": _plan_answer("T9")}], [{"answer": _plan_answer()}]]},
            ]
        }
    )

    result = run(repo, tmp_path, [job("A"), job("N", role="navigator")], max_workers=1)

    assert result == outcome(repo, "succeeded", A="succeeded", N="succeeded")
    first, second, plan_first, plan_second = fake_codex.calls()
    thread = first["thread_id"]
    assert (second["resume"], second["resume_id"], second["thread_id"]) == (True, thread, thread)
    assert second["prompt"].startswith("Your final message could not be accepted")
    assert "- summary: 42 is not of type 'string'" in second["prompt"]
    assert "(task_result.schema.json)" in second["prompt"]
    tasks = read_state(repo, RUN)["tasks"]
    task = tasks["A"]
    assert [(a["n"], a["failure"], a["resumed_thread"], a["thread_id"]) for a in task["attempts"]] == [
        (1, "schema_invalid", None, thread),
        (2, None, thread, thread),
    ]
    assert task["thread_id"] == thread and task["result"]["summary"] == "fixed"
    assert attempt_file(repo, "A", 1, "validation.txt").startswith("schema_invalid\n")
    assert attempt_file(repo, "A", 2, "prompt.md") == second["prompt"]
    assert attempt_file(repo, "A", 1, "prompt.md") == first["prompt"]
    assert trailer(repo, task["commit"], "Orch-Attempt") == "2"
    assert trailer(repo, task["commit"], "Codex-Thread") == thread
    assert steps(repo, "A") == FIRST + AGAIN + COMMITTED
    # codex reports usage cumulated over the thread: each attempt's own share is recorded
    one, two = task["attempts"]
    assert one["usage"]["input_tokens"] == two["usage"]["input_tokens"] == 100
    assert two["thread_usage"]["input_tokens"] == 200
    # the navigator's plan, checked by loading it
    navigator = tasks["N"]
    assert [(a["failure"], a["resumed_thread"]) for a in navigator["attempts"]] == [
        ("answer_invalid", None),
        (None, plan_first["thread_id"]),
    ]
    assert (plan_first["sandbox"], plan_second["thread_id"]) == ("read-only", plan_first["thread_id"])
    assert plan_second["prompt"].startswith(
        "Your final message conforms to the output schema (plan.schema.json) but could not be accepted."
    )
    assert "T9" in navigator["attempts"][0]["failure_message"] and "T9" in plan_second["prompt"]
    assert attempt_file(repo, "N", 1, "validation.txt").startswith("answer_invalid\n")
    assert (navigator["result"], navigator["commit"]) == (_plan_answer(), None)
    assert steps(repo, "N") == FIRST + AGAIN + COMMITTED


def test_answers_still_invalid_after_the_retries_fail_the_task_and_block_its_dependents(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script({"default": [[{"answer": "not json at all"}], [{"answer": {"status": "done"}}]]})
    repo.configure(limits={"retries": 1})
    heard = Heard()

    result = run(repo, tmp_path, [job("A"), job("B", ["A"])], heard)

    assert result == outcome(repo, "failed", A="failed", B="blocked")
    assert result.exit_code == 1
    state = read_state(repo, RUN)
    a, b = state["tasks"]["A"], state["tasks"]["B"]
    assert a["error"]["kind"] == "schema_invalid" and a["error"]["hint"] == info(FailureKind.SCHEMA_INVALID).hint
    assert "files_changed: a required property is missing" in a["error"]["message"]
    assert [x["failure"] for x in a["attempts"]] == ["not_json", "schema_invalid"]
    assert a["attempts"][1]["resumed_thread"] == a["thread_id"] == fake_codex.calls()[0]["thread_id"]
    assert (a["commit"], a["result"]) == (None, None)
    assert (b["status"], b["error"], b["attempts"]) == ("blocked", blocked("A"), [])
    assert steps(repo, "A") == [*FIRST, *AGAIN, "task.status:failed"]
    assert steps(repo, "B") == ["task.status:blocked"]
    assert len(fake_codex.calls()) == 2
    assert ("B", {"status": "blocked", "cause": "A"}) in heard.data("finished")
    assert landed(repo, state["branch"]) == []


def test_crashing_agents_and_agents_that_print_garbage(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """A crash is retried on the agent's thread while limits.transient_retries lasts; lines that are not
    events are counted, not fatal; an agent that exits without completing its turn crashed."""
    repo.configure(limits={"transient_retries": 1})
    fake_codex.script(
        {
            "rules": [
                {
                    "match": "job A.",
                    "turns": [[{"exit": 3}], [{"write": "a.txt", "content": "A"}, {"answer": answer()}]],
                },
                {"match": "job B.", "turns": [[{"raw": "not an event"}, {"raw_b64": "//79"}, {"exit": 0}]]},
                {"match": "job C.", "turns": [[{"raw": "{not json"}, {"raw": "[]"}, {"answer": answer("C")}]]},
            ]
        }
    )

    result = run(repo, tmp_path, [job("A"), job("B"), job("C")], max_workers=1)

    assert result == outcome(repo, "partial", A="succeeded", B="failed", C="succeeded")
    tasks = read_state(repo, RUN)["tasks"]
    a, b, c = tasks["A"], tasks["B"], tasks["C"]
    thread_a = a["thread_id"]
    assert attempt_rows(a, "exit_code", "failure", "resumed_thread") == [
        (3, "crashed", None),
        (0, None, thread_a),
    ]
    assert a["attempts"][0]["failure_message"] == "codex exited with code 3"
    calls = fake_codex.calls()
    retry = next(call for call in calls if call["resume"] and call["thread_id"] == thread_a)
    assert retry["prompt"] == TRANSIENT.format(message="codex exited with code 3")
    assert a["files_changed"] == ["a.txt"] and steps(repo, "A") == FIRST + AGAIN + COMMITTED
    exited = "codex exited 0 without completing its turn"
    assert b["error"] == failed(FailureKind.CRASHED, exited)
    assert attempt_rows(b, "exit_code", "failure", "garbage_lines") == [
        (0, "crashed", 2),
        (0, "crashed", 2),
    ]
    assert b["attempts"][1]["resumed_thread"] == b["thread_id"]
    assert steps(repo, "B") == [*FIRST, *AGAIN, "task.status:failed"]
    assert attempt_rows(c, "failure", "garbage_lines") == [(None, 2)]
    assert steps(repo, "C") == FIRST + COMMITTED
    assert len(calls) == 5


def test_an_agent_that_hangs_is_stopped_at_the_idle_limit(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    children = tmp_path / "children.txt"
    repo.configure(
        codex=fake_codex.config(FAKE_CODEX_CHILD_PIDS=str(children)), limits={"idle_timeout": 1, "stop_grace": 0.5}
    )
    fake_codex.script(
        {"default": [[{"spawn_child": True}, {"reasoning": "thinking"}, {"gate": str(tmp_path / NEVER)}]]}
    )

    result = run(repo, tmp_path, [job("A"), job("B", ["A"])])

    assert result == outcome(repo, "failed", A="failed", B="blocked")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert a["error"] == failed(FailureKind.IDLE, "no progress for 1 s")
    [call] = fake_codex.calls()
    [attempt] = a["attempts"]
    assert recorded(repo, "attempt.pid", "A") == [{"type": "attempt.pid", "task": "A", "pid": call["pid"]}]
    assert attempt["failure"] == "idle"
    assert attempt["stop_steps"][0] == f"sent SIGINT to process group {call['pid']}"
    assert not [pid for pid in [call["pid"], *marked(children)] if alive(pid)]  # the agent and what it started
    # (on a starved machine the limit may come before the agent said which thread it is on)
    assert [s for s in steps(repo, "A") if s != "attempt.thread"] == [
        "task.workspace",
        "task.status:running",
        "attempt.started",
        "attempt.pid",
        "attempt.finished",
        "task.status:failed",
    ]
    assert steps(repo, "B") == ["task.status:blocked"]


# --- what fails, what waits, what stops ---------------------------------------------------------------
def test_a_failed_dependency_blocks_what_waits_for_it_and_the_rest_goes_on(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    reported = answer("could not finish", ["half.txt"], status="blocked")
    fake_codex.script(
        {
            "rules": [
                {"match": "job A.", "turns": [[{"write": "half.txt", "content": "half"}, {"answer": reported}]]},
                writer("D", "d.txt"),
            ]
        }
    )
    heard = Heard()

    result = run(repo, tmp_path, [job("A"), job("B", ["A"]), job("C", ["B"]), job("D")], heard, max_workers=1)

    assert result == outcome(repo, "partial", A="failed", B="blocked", C="blocked", D="succeeded")
    state = read_state(repo, RUN)
    tasks = state["tasks"]
    assert tasks["A"]["error"] == failed(
        FailureKind.AGENT_REPORTED, "the agent reported status 'blocked': could not finish"
    )
    assert tasks["A"]["files_changed"] == ["half.txt"]  # its work is still committed
    assert landed(repo, state["branch"]) == [(tasks["A"]["commit"], "A"), (tasks["D"]["commit"], "D")]
    assert (tasks["B"]["error"], tasks["C"]["error"]) == (blocked("A"), blocked("B"))
    assert steps(repo, "A") == [*FIRST, "task.result", "task.committed", "task.status:failed"]
    assert steps(repo, "B") == steps(repo, "C") == ["task.status:blocked"]
    assert steps(repo, "D") == FIRST + COMMITTED
    assert [(tid, data) for tid, data in heard.data("finished") if data["status"] == "blocked"] == [
        ("B", {"status": "blocked", "cause": "A"}),
        ("C", {"status": "blocked", "cause": "B"}),
    ]
    assert prompts_with(fake_codex, "job B.") == prompts_with(fake_codex, "job C.") == 0


def test_fail_fast_cancels_the_tasks_not_started(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script({"rules": [{"match": "job A.", "turns": [[{"exit": 3}]]}], "default": [[{"answer": answer()}]]})

    result = run(repo, tmp_path, [job("A"), job("B", ["A"]), job("C"), job("D")], max_workers=1, fail_fast=True)

    assert result == outcome(repo, "failed", A="failed", B="blocked", C="cancelled", D="cancelled")
    tasks = read_state(repo, RUN)["tasks"]
    assert tasks["A"]["error"] == failed(FailureKind.CRASHED, "codex exited with code 3")
    assert tasks["B"]["error"] == blocked("A")
    cancelled = {"kind": "cancelled", "message": "not started: --fail-fast stopped the run"}
    assert tasks["C"]["error"] == tasks["D"]["error"] == cancelled
    assert steps(repo, "C") == steps(repo, "D") == ["task.status:cancelled"]
    assert len(fake_codex.calls()) == 1
    assert recorded(repo, "run.status") == [{"type": "run.status", "status": "failed"}]  # no signal stopped it


def test_a_signal_stops_the_run_and_resume_goes_on_on_the_same_thread(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """The agent of B sends SIGINT to this process (as Ctrl-C would), then waits: the run stops it, records
    B interrupted and C not started; resume continues B on its thread and runs C, never A again."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("drive handles signals only in the main thread")
    stop = f"kill -INT {os.getpid()}"
    fake_codex.script(
        {
            "rules": [
                writer("A", "a.txt"),
                {
                    "match": "job B.",
                    "turns": [
                        [{"write": "b.txt", "content": "half\n"}, {"shell": stop}, {"gate": str(tmp_path / NEVER)}],
                        [{"write": "b.txt", "content": "B\n"}, {"answer": answer("B", ["b.txt"])}],
                    ],
                },
                writer("C", "c.txt"),
            ]
        }
    )

    first = run(repo, tmp_path, [job("A"), job("B", ["A"]), job("C", ["B"])])

    assert first == outcome(repo, "interrupted", A="succeeded", B="interrupted", C="pending")
    assert first.exit_code == 130
    assert recorded(repo, "run.status") == [{"type": "run.status", "status": "interrupted", "signal": "SIGINT"}]
    b = read_state(repo, RUN)["tasks"]["B"]
    thread = b["thread_id"]
    assert b["error"] == {"kind": "interrupted", "message": "stopped by codex-orch (interrupted)"}
    [agent] = [r["pid"] for r in recorded(repo, "attempt.pid", "B")]
    assert b["attempts"][0]["stop_steps"][0] == f"sent SIGINT to process group {agent}"
    assert not alive(agent)

    second = resume(repo)

    assert second == outcome(repo, "succeeded", A="succeeded", B="succeeded", C="succeeded")
    state = read_state(repo, RUN)
    a, b = state["tasks"]["A"], state["tasks"]["B"]
    assert len(a["attempts"]) == 1 and prompts_with(fake_codex, "job A.") == 1  # never run again
    assert attempt_rows(b, "n", "failure", "resumed_thread", "agent_source") == [
        (1, "interrupted", None, "default"),
        (2, None, thread, "thread"),
    ]
    told = fake_codex.calls()[2]
    assert (told["resume"], told["thread_id"]) == (True, thread)
    assert told["prompt"].startswith("You were interrupted before you finished this task")
    assert "  ?? b.txt\n" in told["prompt"]
    assert [tid for _, tid in landed(repo, state["branch"])] == ["A", "B", "C"]
    assert repo.git("show", f"{state['branch']}:b.txt") == "B"
    assert steps(repo, "B") == [
        *FIRST,
        "task.status:interrupted",
        "task.status:running",
        *AGAIN,
        *COMMITTED,
    ]
    assert steps(repo, "C") == FIRST + COMMITTED
    assert run_steps(repo) == [
        "run.created",
        "run.workspace_ready",
        "run.status:interrupted",
        "run.resumed",
        "run.status:succeeded",
    ]


def test_resume_takes_over_a_task_that_a_killed_codex_orch_left_running(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """codex-orch (a child process here) is killed while B's agent works; resume, in this process, stops
    the orphaned agent, records B interrupted and continues it on its thread in its own worktree."""
    repo.configure(workspace="landing")
    started = tmp_path / "started"
    fake_codex.script(
        {
            "rules": [
                writer("A", "a.txt"),
                {
                    "match": "job B.",
                    "turns": [
                        [
                            {"write": "b.txt", "content": "half\n"},
                            {"marker": str(started)},
                            {"gate": str(tmp_path / NEVER)},
                        ],
                        [{"write": "b.txt", "content": "B\n"}, {"answer": answer("B", ["b.txt"])}],
                    ],
                },
            ]
        }
    )
    plan = write_plan(tmp_path / "plan.json", [job("A"), job("B", ["A"])])
    proc = start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", RUN, "--no-progress")
    try:
        try:
            wait_marked(started, proc=proc)
            wait_recorded(repo, RUN, "attempt.thread", "B", proc=proc)
        finally:
            proc.kill()
            proc.wait()
        agents = marked(started)
        assert alive(agents[0])  # orphaned, still at its gate
        assert read_state(repo, RUN)["tasks"]["B"]["status"] == "running"

        result = resume(repo)
        orphan_stopped = not alive(agents[0])
    finally:
        agents = marked(started)
        kill_all(agents)
        for pid in agents:  # this process is a subreaper (proc/reaper.py) once a run was driven in it: the
            try:  # agent the killed codex-orch left may have come to it, and is collected here
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    assert orphan_stopped  # by resume, before it took the task up
    state = read_state(repo, RUN)
    a, b = state["tasks"]["A"], state["tasks"]["B"]
    thread = b["thread_id"]
    assert attempt_rows(b, "n", "resumed_thread", "agent_source") == [
        (1, None, "default"),
        (2, thread, "thread"),
    ]
    assert b["attempts"][1]["failure"] is None
    assert recorded(repo, "task.status", "B")[1] == {
        "type": "task.status",
        "task": "B",
        "status": "interrupted",
        "error": {"kind": "interrupted", "message": "found running with no live codex-orch process"},
    }
    assert steps(repo, "B") == [
        "task.workspace",
        "task.status:running",
        "attempt.started",
        "attempt.pid",
        "attempt.thread",
        "task.status:interrupted",
        "task.status:running",
        *AGAIN,
        *LANDED,
    ]
    assert len(a["attempts"]) == 1 and prompts_with(fake_codex, "job A.") == 1
    told = fake_codex.calls()[-1]
    assert (told["resume"], told["thread_id"]) == (True, thread)
    assert told["prompt"].startswith("You were interrupted") and "?? b.txt" in told["prompt"]
    assert [tid for _, tid in landed(repo, state["branch"])] == ["A", "B"]
    assert repo.git("show", f"{state['branch']}:b.txt") == "B"
    assert run_steps(repo) == ["run.created", "run.workspace_ready", "run.resumed", "run.status:succeeded"]


def test_an_error_of_codex_orch_inside_a_task_fails_only_that_task_and_resume_commits_its_answer(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal fails (a full disk) right after A's commit was made: A fails as `internal`, B goes on.
    Resume finds the commit by its trailers and records it, without asking A's agent again."""
    monkeypatch.setenv(faults.FAULT_ENV, "journal:before:task.committed:error")
    monkeypatch.setattr(faults, "_seen", {})
    fake_codex.script({"rules": [writer("A", "a.txt"), writer("B", "b.txt")]})

    first = run(repo, tmp_path, [job("A"), job("B")], max_workers=1)

    assert first == outcome(repo, "partial", A="failed", B="succeeded")
    state = read_state(repo, RUN)
    a = state["tasks"]["A"]
    assert a["error"] == failed(FailureKind.INTERNAL, "OSError: [Errno 28] No space left on device")
    log = (repo.path / ".orchestrator" / "runs" / RUN / "tasks" / "A" / "internal-error.log").read_text()
    assert "Traceback" in log and "OSError: [Errno 28]" in log
    assert a["result"]["summary"] == "A"
    made = landed(repo, state["branch"])
    assert [tid for _, tid in made] == ["A", "B"]  # A's commit was made, not recorded
    assert steps(repo, "A") == [*FIRST, "task.result", "task.status:failed"]

    monkeypatch.delenv(faults.FAULT_ENV)
    second = resume(repo)

    assert second == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert (a["commit"], a["files_changed"], len(a["attempts"])) == (made[0][0], ["a.txt"], 1)
    assert landed(repo, state["branch"]) == made  # no second commit
    assert len(fake_codex.calls()) == 2
    assert steps(repo, "A")[-3:] == ["task.status:running", "task.committed", "task.status:succeeded"]


def test_a_record_the_journal_could_not_write_is_not_in_the_state(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug this file found: the record was applied to the state and stayed there when its write failed
    (a full disk), so the next snapshot held a commit the journal never got."""
    monkeypatch.setenv(faults.FAULT_ENV, "journal:before:task.committed:error")
    monkeypatch.setattr(faults, "_seen", {})
    fake_codex.script({"default": [[{"write": "a.txt", "content": "a"}, {"answer": answer()}]]})
    assert run(repo, tmp_path, [job("A")]) == outcome(repo, "failed", A="failed")
    assert "task.committed" not in steps(repo, "A")
    snapshot = read_state(repo, RUN)
    (repo.path / ".orchestrator" / "runs" / RUN / "state.json").unlink()  # the state, rebuilt from the journal

    assert snapshot["tasks"]["A"]["commit"] == read_state(repo, RUN)["tasks"]["A"]["commit"]


# --- budgets --------------------------------------------------------------------------------------------
def test_the_run_cost_budget_stops_dispatch_and_a_higher_one_finishes_the_run(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script({"default": [[{"answer": answer()}]]})
    repo.configure(prices=PRICE, budgets={"run_cost": 2})

    first = run(repo, tmp_path, [job("A"), job("B"), job("C", ["A"])], max_workers=1)

    assert first == outcome(repo, "budget_exhausted", A="succeeded", B="succeeded", C="pending")
    assert first.exit_code == 1
    state = read_state(repo, RUN)
    assert [a["cost_usd"] for t in state["tasks"].values() for a in t["attempts"]] == [1.0, 1.0]
    assert steps(repo, "C") == []

    second = resume(repo, budget_run_cost=10.0)

    assert second == outcome(repo, "succeeded", A="succeeded", B="succeeded", C="succeeded")
    state = read_state(repo, RUN)
    assert state["budgets"] == {"run_cost": 10.0}
    assert [len(t["attempts"]) for t in state["tasks"].values()] == [1, 1, 1]
    assert [prompts_with(fake_codex, f"job {tid}.") for tid in "ABC"] == [1, 1, 1]
    assert run_steps(repo) == [
        "run.created",
        "run.workspace_ready",
        "run.status:budget_exhausted",
        "run.resumed",
        "run.budget",
        "run.status:succeeded",
    ]


def test_a_task_token_budget_refuses_the_tasks_next_attempt(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script({"default": [[{"answer": "not json"}]]})
    repo.configure(budgets={"task_tokens": 200}, limits={"retries": 5})

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "failed", A="failed")  # not budget_exhausted: the run's budget was not spent
    a = read_state(repo, RUN)["tasks"]["A"]
    assert a["error"] == failed(FailureKind.BUDGET, "A used 240 tokens, budgets.task_tokens is 200")
    assert [x["failure"] for x in a["attempts"]] == ["not_json", "not_json"]  # a third was never started
    assert steps(repo, "A") == [*FIRST, *AGAIN, "task.status:failed"]
    assert len(fake_codex.calls()) == 2


# --- what the agent may not do --------------------------------------------------------------------------
def test_files_outside_a_tasks_paths_are_kept_out_of_its_commit(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(concurrency={"on_violation": "fail"})
    fake_codex.script(
        {
            "default": [
                [
                    {"write": "src/a.txt", "content": "a"},
                    {"write": "other.txt", "content": "o"},
                    {"answer": answer("a", ["src/a.txt"])},
                ]
            ]
        }
    )
    heard = Heard()

    result = run(repo, tmp_path, [job("A", paths=["src/**"])], heard)

    assert result == outcome(repo, "failed", A="failed")
    state = read_state(repo, RUN)
    a = state["tasks"]["A"]
    assert a["error"] == failed(FailureKind.PATHS_VIOLATION, "changed files outside its paths: other.txt")
    assert (a["files_changed"], a["violations"]) == (["src/a.txt"], ["other.txt"])
    assert landed(repo, state["branch"]) == [(a["commit"], "A")]
    assert repo.git("show", "--name-only", "--format=", a["commit"]) == "src/a.txt"
    assert repo.git("show", f"refs/orch/{RUN}/violations/A:other.txt") == "o"  # set aside, not lost
    assert not (Path(state["worktree"]) / "other.txt").exists()
    assert recorded(repo, "task.committed")[0]["violations"] == ["other.txt"]
    assert steps(repo, "A") == [*FIRST, "task.result", "task.committed", "task.status:failed"]
    assert heard.data("violation") == [("A", {"files": ["other.txt"]})]


def test_a_guardrail_violation_is_put_back_and_the_agent_told_on_its_thread(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script(
        {
            "default": [
                [{"shell": "git tag sneaky"}, {"answer": answer()}],
                [{"write": "a.txt", "content": "a"}, {"answer": answer("a", ["a.txt"])}],
            ]
        }
    )

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    quarantine = f"refs/orch/{RUN}/quarantine/A/1/tags/sneaky"
    change = (
        f"created refs/tags/sneaky at {repo.git('rev-parse', 'main')[:12]}; put back, its version kept at {quarantine}"
    )
    assert attempt_rows(a, "failure", "guardrail") == [("guardrail", [change]), (None, [])]
    assert a["attempts"][0]["failure_message"] == f"changed what only codex-orch may change: {change}"
    assert repo.git("tag") == "" and repo.git("rev-parse", quarantine) == repo.git("rev-parse", "main")
    first, second = fake_codex.calls()
    assert (second["resume"], second["thread_id"]) == (True, first["thread_id"])
    assert second["prompt"].startswith(
        f"codex-orch found that your previous turn {change}.\n\nThose changes were undone."
    )
    assert steps(repo, "A") == FIRST + AGAIN + COMMITTED


@pytest.mark.parametrize("mode", ["shared", "landing"])
def test_a_worktree_the_agent_made_a_link_is_made_again_before_its_retry(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, mode: str
) -> None:
    """Its folder replaced by a link to a folder outside the repository: the attempt fails as `guardrail`,
    the link is removed (never followed) and the worktree made again from its branch, so the retry works
    in the repository and nothing of what the link pointed at reaches a commit (session 8: it was
    committed; then the retry ran in the link and ended `internal`)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret.txt").write_text("not the repository's\n")
    repo.configure(workspace=mode)
    worktree = repo.path / ".orchestrator" / "worktrees" / RUN  # the shared worktree, or the task's own:
    if mode == "landing":
        worktree = worktree / "A"
    swap = f'cd / && rm -rf "{worktree}" && ln -s "{victim}" "{worktree}"'
    fake_codex.script(
        {
            "default": [
                [{"shell": swap}, {"answer": answer("a", ["secret.txt"])}],
                [{"write": "a.txt", "content": "a"}, {"answer": answer("a", ["a.txt"])}],
            ]
        }
    )

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    change = (
        f"replaced the worktree {worktree} by a link to {victim}: the link was removed and the worktree made "
        "again from its branch (what it held uncommitted is gone)"
    )
    assert attempt_rows(a, "failure", "guardrail") == [("guardrail", [change]), (None, [])]
    first, second = fake_codex.calls()
    assert (second["resume"], second["thread_id"]) == (True, first["thread_id"])
    assert second["prompt"].startswith(
        f"codex-orch found that your previous turn {change}.\n\nThose changes were undone."
    )
    assert not worktree.is_symlink()  # a landing task's worktree is retired once it landed
    assert mode == "landing" or (worktree / "a.txt").read_text() == "a"
    assert repo.git("show", "--name-only", "--format=", a["commit"]) == "a.txt"
    assert "secret.txt" not in repo.git("log", "--all", "--name-only", "--format=")
    assert sorted(os.listdir(victim)) == ["secret.txt"]
    assert steps(repo, "A") == FIRST + AGAIN + (LANDED if mode == "landing" else COMMITTED)


def test_a_secret_in_the_work_is_not_committed_and_the_agent_asked_to_remove_it(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script(
        {
            "default": [
                [{"write": "env.sh", "content": f"export AWS_ACCESS_KEY_ID={AWS_KEY}\n"}, {"answer": answer("a")}],
                [{"write": "env.sh", "content": "export AWS_ACCESS_KEY_ID=$KEY\n"}, {"answer": answer("b")}],
            ]
        }
    )

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert (a["result"]["summary"], a["files_changed"]) == ("b", ["env.sh"])
    assert recorded(repo, "task.commit_refused") == [
        {
            "type": "task.commit_refused",
            "task": "A",
            "failure": "secret",
            "message": "secrets in the changes to commit: env.sh:1: AWS Access Key. Remove them from the files, "
            "or let them through with secrets.allow in orchestrator.yaml.",
        }
    ]
    first, second = fake_codex.calls()
    assert (second["resume"], second["thread_id"]) == (True, first["thread_id"])
    assert second["prompt"].startswith("codex-orch did not commit your work: it holds secrets")
    assert "- env.sh:1: AWS Access Key\n" in second["prompt"] and AWS_KEY not in second["prompt"]
    assert AWS_KEY not in repo.git("log", "--all", "-p")
    assert steps(repo, "A") == [*FIRST, "task.result", "task.commit_refused", *AGAIN, *COMMITTED]


# --- gates and landing conflicts: back to the same agent ------------------------------------------------
@pytest.mark.parametrize("fix_rounds", [1, 0])
def test_a_failing_gate_goes_back_to_the_agent_within_the_fix_rounds(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, fix_rounds: int
) -> None:
    repo.configure(
        gates=[{"name": "fixed", "run": "test -f fixed.txt", "sandbox": "none"}], limits={"fix_rounds": fix_rounds}
    )
    fake_codex.script(
        {
            "default": [
                [{"write": "a.txt", "content": "a"}, {"answer": answer("a", ["a.txt"])}],
                [{"write": "fixed.txt", "content": "f"}, {"answer": answer("f", ["fixed.txt"])}],
            ]
        }
    )

    result = run(repo, tmp_path, [job("A")])

    state = read_state(repo, RUN)
    a = state["tasks"]["A"]
    gates = recorded(repo, "task.gates", "A")
    if fix_rounds:
        assert result == outcome(repo, "succeeded", A="succeeded")
        assert [(g["n"], [r["ok"] for r in g["runs"]]) for g in gates] == [(1, [False]), (2, [True])]
        assert recorded(repo, "task.fix_round") == [
            {"type": "task.fix_round", "task": "A", "round": 1, "gate": "fixed", "n": 2}
        ]
        first, second = fake_codex.calls()
        assert (second["resume"], second["thread_id"]) == (True, first["thread_id"])
        assert second["prompt"].startswith("codex-orch ran the gate `fixed` (`test -f fixed.txt`) on your work")
        assert a["files_changed"] == ["a.txt", "fixed.txt"]
        assert landed(repo, state["branch"]) == [(a["commit"], "A")]
        assert steps(repo, "A") == [
            *FIRST,
            "task.gates",
            "task.fix_round",
            *AGAIN,
            "task.gates",
            *COMMITTED,
        ]
    else:
        assert result == outcome(repo, "failed", A="failed")
        stuck = f"gate 'fixed' still failed (exit 1) after 0 fix rounds; its work is on refs/orch/{RUN}/failed/A"
        assert (a["error"], a["commit"], len(fake_codex.calls())) == (failed(FailureKind.GATE_FAILED, stuck), None, 1)
        assert landed(repo, state["branch"]) == []
        assert "a.txt" in files_of(repo, f"refs/orch/{RUN}/failed/A")  # the work is kept aside
        assert steps(repo, "A") == [*FIRST, "task.gates", "task.status:failed"]


@pytest.mark.parametrize("conflict_rounds", [2, 0])
def test_a_landing_conflict_goes_back_to_the_agent_that_made_it(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, conflict_rounds: int
) -> None:
    """A and B both append to one file, each from the same tip (each waits at a gate until the other has
    started): the second to land conflicts, and its agent resolves the conflict on its own thread, while
    limits.conflict_rounds allows; else it fails as `conflict`, nothing of it landed."""
    repo.configure(workspace="landing", limits={"conflict_rounds": conflict_rounds})
    repo.write("shared.txt", "top\n")
    repo.git("add", "shared.txt")
    repo.git("commit", "-qm", "a shared file")
    resolve = "sed -i '/^<<<<<<< \\|^=======$\\|^>>>>>>> /d' shared.txt"  # keep both sides
    rules = [
        {
            "match": f"job {me}.",
            "turns": [
                [
                    {"append": "shared.txt", "content": f"line {me}\n"},
                    {"marker": str(tmp_path / f"started-{me}")},
                    {"gate": str(tmp_path / f"started-{other}")},
                    {"answer": answer(me, ["shared.txt"])},
                ],
                [{"shell": resolve}, {"answer": answer(f"{me} resolved", ["shared.txt"])}],
            ],
        }
        for me, other in (("A", "B"), ("B", "A"))
    ]
    fake_codex.script({"rules": rules})

    result = run(repo, tmp_path, [job("A"), job("B")], max_workers=2)

    state = read_state(repo, RUN)
    tasks = state["tasks"]
    [loser] = [tid for tid in "AB" if tasks[tid]["status"] != "succeeded" or len(tasks[tid]["attempts"]) == 2]
    winner = "B" if loser == "A" else "A"
    assert [s for s in steps(repo, winner) if s != "task.forecast"] == FIRST + LANDED
    shared = repo.git("show", f"{state['branch']}:shared.txt")
    if not conflict_rounds:
        assert result == outcome(repo, "partial", **{winner: "succeeded", loser: "failed"})
        conflict = "its change conflicts with the run branch in shared.txt"
        assert tasks[loser]["error"] == failed(FailureKind.CONFLICT, conflict)
        assert [s for s in steps(repo, loser) if s != "task.forecast"] == [
            *FIRST,
            "task.result",
            "task.committed",
            "task.status:failed",
        ]
        assert shared.splitlines() == ["top", f"line {winner}"]
        assert landed(repo, state["branch"]) == [(tasks[winner]["commit"], winner)]
        own = tasks[loser]["branch"]  # its commit stays on its own branch
        assert landed(repo, own) == [(tasks[loser]["commit"], loser)]
        assert repo.git("show", f"{own}:shared.txt").splitlines() == ["top", f"line {loser}"]
        assert [c["resume"] for c in fake_codex.calls()] == [False, False]
        return
    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    thread = tasks[loser]["thread_id"]
    assert tasks[loser]["attempts"][1]["resumed_thread"] == thread
    assert sorted(shared.splitlines()) == ["line A", "line B", "top"]
    assert landed(repo, state["branch"]) == [(tasks[winner]["commit"], winner), (tasks[loser]["commit"], loser)]
    told = attempt_file(repo, loser, 2, "prompt.md")
    assert "shared.txt" in told and "conflict markers" in told
    assert [c["prompt"] for c in fake_codex.calls() if c["resume"]] == [told]
    assert recorded(repo, "task.rebased") == [
        {"type": "task.rebased", "task": loser, "base_commit": tasks[winner]["commit"], "conflicts": ["shared.txt"]}
    ]
    no_forecast = [s for s in steps(repo, loser) if s != "task.forecast"]
    assert no_forecast == [*FIRST, "task.result", "task.committed", "task.rebased", *AGAIN, *LANDED]


# --- tasks that join the run ----------------------------------------------------------------------------
def test_tasks_proposed_by_an_agent_join_the_run_up_to_max_tasks(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(limits={"max_tasks": 3})
    proposals = [
        {"role": "tester", "prompt": "follow-up: test it", "acceptance": "tests pass"},
        {"role": "wizard", "prompt": "follow-up: magic", "acceptance": "x"},
        {"role": "dev", "prompt": "follow-up: document it", "acceptance": "docs exist"},
        {"role": "implementer", "prompt": "follow-up: one too many", "acceptance": "x"},
    ]
    tested = answer("tested", tests=[{"command": "pytest", "passed": True, "summary": "ok"}])
    fake_codex.script(
        {
            "rules": [
                {"match": "job A.", "turns": [[{"answer": answer("A", next_tasks=proposals)}]]},
                {"match": "follow-up: test it", "turns": [[{"answer": tested}]]},
            ],
            "default": [[{"answer": answer("documented")}]],
        }
    )
    heard = Heard()

    result = run(repo, tmp_path, [job("A")], heard, follow_next_tasks=True)

    assert result == outcome(repo, "succeeded", A="succeeded", **{"A.1": "succeeded", "A.3": "succeeded"})
    state = read_state(repo, RUN)
    assert state["task_order"] == ["A", "A.1", "A.3"]
    assert state["tasks"]["A"]["follow_ups"] == [
        {"id": "A.1", "added": "tester"},
        {"id": "A.2", "skipped": "unknown role 'wizard'"},
        {"id": "A.3", "added": "implementer"},  # `dev` is an alias
        {"id": "A.4", "skipped": "limits.max_tasks (3) reached"},
    ]
    for tid, role in (("A.1", "tester"), ("A.3", "implementer")):
        task = state["tasks"][tid]
        assert (task["role"], task["blocked_by"], task["proposed_by"]) == (role, ["A"], "A")
        assert steps(repo, tid) == FIRST + COMMITTED
    assert [r["task"]["id"] for r in recorded(repo, "task.added")] == ["A.1", "A.3"]
    assert steps(repo, "A") == [*FIRST, *COMMITTED, "task.follow_ups"]
    prompts = [c["prompt"] for c in fake_codex.calls()]
    assert len(prompts) == 3 and "follow-up: test it" in prompts[1] and "### A (implementer): succeeded" in prompts[1]
    added = [data["tasks"] for _, data in heard.data("plan")[1:]]
    assert added == [
        {"A.1": {"role": "tester", "status": "pending"}},
        {"A.3": {"role": "implementer", "status": "pending"}},
    ]


def test_a_follow_up_prompt_goes_on_on_the_thread_of_the_task_it_continues(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """The job service's `continue`: the agent asked a question (its task ended blocked); the follow-up
    answers it on the same thread, and the task it continues is not run again."""
    fake_codex.script(
        {
            "default": [
                [{"answer": answer("which colour?", status="blocked")}],
                [{"write": "colour.txt", "content": "blue\n"}, {"answer": answer("blue", ["colour.txt"])}],
            ]
        }
    )
    assert run(repo, tmp_path, [job("A", model="gpt-own")]) == outcome(repo, "failed", A="failed")
    thread = read_state(repo, RUN)["tasks"]["A"]["thread_id"]

    follow_up = add_follow_up(repo.path, RUN, "Blue, please.")
    result = resume(repo)

    assert follow_up == "followup-1"
    assert result == outcome(repo, "partial", A="failed", **{"followup-1": "succeeded"})
    state = read_state(repo, RUN)
    task = state["tasks"]["followup-1"]
    assert attempt_rows(task, "n", "resumed_thread", "agent_source", "model") == [(1, thread, "thread", "gpt-own")]
    assert task["thread_id"] == thread and task["files_changed"] == ["colour.txt"]
    told = fake_codex.calls()[-1]
    assert (told["resume"], told["thread_id"], len(fake_codex.calls())) == (True, thread, 2)
    assert told["model"] == "gpt-own"  # the thread's model
    assert told["prompt"] == (
        "Blue, please.\n\nWhen you are done, answer with the JSON object the output schema asks for, as before."
    )
    assert len(state["tasks"]["A"]["attempts"]) == 1  # not run again: not even taken up
    assert steps(repo, "A") == [*FIRST, "task.result", "task.committed", "task.status:failed"]
    assert steps(repo, "followup-1") == [
        "task.workspace",
        "task.status:running",
        "attempt.started",
        "attempt.pid",
        "attempt.finished",
        *COMMITTED,
    ]
    assert landed(repo, state["branch"]) == [(task["commit"], "followup-1")]


# --- bugs found while writing these tests ------------------------------------------------------------
@pytest.mark.parametrize("kind", ["agent_reported", "paths_violation"])
def test_resume_asks_the_agent_again_for_a_task_that_failed_after_its_answer(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, kind: str
) -> None:
    """A bug this file found: resume took any recorded answer for one a crash left before its commit, so
    a task failed as `agent_reported` failed again from its old answer, and one failed on `paths` had its
    commit adopted and was turned succeeded, its agent never asked again."""
    repo.configure(concurrency={"on_violation": "fail"})
    outside = {"write": "other.txt", "content": "o"}
    status = "blocked" if kind == "agent_reported" else "done"
    turn = [{"write": "src/a.txt", "content": "a"}, outside, {"answer": answer("a", ["src/a.txt"], status=status)}]
    if kind == "agent_reported":
        turn.remove(outside)
    fake_codex.script({"default": [turn]})
    assert run(repo, tmp_path, [job("A", paths=["src/**"])]) == outcome(repo, "failed", A="failed")
    assert read_state(repo, RUN)["tasks"]["A"]["error"]["kind"] == kind

    result = resume(repo)

    assert len(fake_codex.calls()) == 2, f"resume ended A {result.tasks['A']} without running it"


def _own_role(repo: Repo, name: str, schema: dict[str, Any]) -> None:
    """A role of the user's own, answering with `schema` (written to .orchestrator/schemas/)."""
    path = repo.path / ".orchestrator" / "schemas" / f"{name}.schema.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))
    role = {"sandbox": "workspace-write", "output_schema": path.name, "prompt_template": "implementer.md.j2"}
    repo.configure(roles={name: role})


def _closed(**properties: Any) -> dict[str, Any]:
    """A schema of an object with exactly these properties, each required (OpenAI strict mode)."""
    return {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}


def test_what_the_proposals_of_a_role_with_a_schema_of_its_own_become(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A role's schema may let a proposal be a plain string, or leave out its prompt or acceptance (the
    missing one is empty), or let the whole answer be a list (nothing to follow). Each proposal past
    limits.max_tasks is noted skipped, as is each one that is not an object; those after it go on."""
    text = {"type": "string"}
    proposal = {"anyOf": [text, _closed(role=text, prompt=text), _closed(role=text, acceptance=text)]}
    _own_role(repo, "scout", _closed(status=text, summary=text, next_tasks={"type": "array", "items": proposal}))
    _own_role(repo, "lister", {"type": "array", "items": text})
    repo.configure(limits={"max_tasks": 4})
    proposals = [
        "look at the tests too",
        {"role": "implementer", "prompt": "follow-up: no acceptance"},
        {"role": "tester", "acceptance": "it is tested"},
        {"role": "implementer", "prompt": "follow-up: one too many"},
        {"role": "implementer", "prompt": "follow-up: two too many"},
    ]
    fake_codex.script(
        {
            "rules": [
                {
                    "match": "job S.",
                    "turns": [[{"answer": {"status": "done", "summary": "S", "next_tasks": proposals}}]],
                },
                {"match": "job L.", "turns": [[{"answer": ["a", "b"]}]]},
                {"match": "it is tested", "turns": [[{"answer": answer("tested", tests=[])}]]},
            ],
            "default": [[{"answer": answer("followed")}]],
        }
    )

    result = run(
        repo, tmp_path, [job("L", role="lister"), job("S", role="scout")], follow_next_tasks=True, max_workers=1
    )

    assert result == outcome(
        repo, "succeeded", L="succeeded", S="succeeded", **{"S.2": "succeeded", "S.3": "succeeded"}
    )
    state = read_state(repo, RUN)
    assert state["task_order"] == ["L", "S", "S.2", "S.3"]
    assert state["tasks"]["S"]["follow_ups"] == [
        {"id": "S.1", "skipped": "not an object with role, prompt and acceptance"},
        {"id": "S.2", "added": "implementer"},
        {"id": "S.3", "added": "tester"},
        {"id": "S.4", "skipped": "limits.max_tasks (4) reached"},
        {"id": "S.5", "skipped": "limits.max_tasks (4) reached"},
    ]
    assert [r["task"] for r in recorded(repo, "task.added")] == [
        {
            "id": "S.2",
            "role": "implementer",
            "prompt": "follow-up: no acceptance",
            "acceptance": "",
            "blocked_by": ["S"],
        },
        {"id": "S.3", "role": "tester", "prompt": "", "acceptance": "it is tested", "blocked_by": ["S"]},
    ]
    assert (state["tasks"]["L"]["result"], state["tasks"]["L"]["follow_ups"]) == (["a", "b"], [])
    assert steps(repo, "L") == FIRST + COMMITTED  # nothing to follow: no task.follow_ups
    assert steps(repo, "S") == [*FIRST, *COMMITTED, "task.follow_ups"]
    assert steps(repo, "S.2") == steps(repo, "S.3") == FIRST + COMMITTED


def test_a_proposal_whose_id_a_plan_task_holds_leaves_that_task_alone_and_the_next_ones_join(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """The plan's own task `A.1` is not replaced by A's first proposal: that proposal is skipped, and its
    note says why (until session 9 it was dropped without a note); A's second proposal joins as A.2."""
    proposals = [
        {"role": "implementer", "prompt": "follow-up: first", "acceptance": "x"},
        {"role": "implementer", "prompt": "follow-up: second", "acceptance": "y"},
    ]
    fake_codex.script(
        {
            "rules": [{"match": "job A.", "turns": [[{"answer": answer("A", next_tasks=proposals)}]]}],
            "default": [[{"answer": answer("followed")}]],
        }
    )

    result = run(
        repo,
        tmp_path,
        [job("A"), job("A.1", ["A"], prompt="the plan's own A.1")],
        follow_next_tasks=True,
        max_workers=1,
    )

    assert result == outcome(repo, "succeeded", A="succeeded", **{"A.1": "succeeded", "A.2": "succeeded"})
    state = read_state(repo, RUN)
    assert state["task_order"] == ["A", "A.1", "A.2"]
    assert state["tasks"]["A"]["follow_ups"] == [
        {"id": "A.1", "skipped": "the plan has a task of that id"},
        {"id": "A.2", "added": "implementer"},
    ]
    assert [r["task"]["id"] for r in recorded(repo, "task.added")] == ["A.2"]
    assert (state["tasks"]["A.1"].get("proposed_by"), state["tasks"]["A.2"]["proposed_by"]) == (None, "A")
    assert [
        prompts_with(fake_codex, text) for text in ("the plan's own A.1", "follow-up: first", "follow-up: second")
    ] == [
        1,
        0,
        1,
    ]


def test_a_follow_up_whose_agent_is_not_installed_fails_without_an_agent(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """The agents a plan names are checked before the run starts; a follow-up's role may name another
    one: its attempt fails as `spawn_failed`, nothing having run, and is not retried."""
    role = {
        "sandbox": "workspace-write",
        "output_schema": "task_result.schema.json",
        "prompt_template": "implementer.md.j2",
        "agent": "gemini",
    }
    repo.configure(roles={"auditor": role}, agents={"gemini": {"command": ["no-such-gemini"]}})
    proposal = {"role": "auditor", "prompt": "follow-up: audit it", "acceptance": "x"}
    fake_codex.script({"default": [[{"answer": answer("A", next_tasks=[proposal])}]]})

    result = run(repo, tmp_path, [job("A")], follow_next_tasks=True)

    assert result == outcome(repo, "partial", A="succeeded", **{"A.1": "failed"})
    missing = (
        ".orchestrator/orchestrator.yaml: agents.gemini.command: 'no-such-gemini' was not found on PATH. "
        "Install gemini (npm i -g @google/gemini-cli) or set agents.gemini.command in orchestrator.yaml."
    )
    follow_up = read_state(repo, RUN)["tasks"]["A.1"]
    assert follow_up["error"] == failed(FailureKind.SPAWN_FAILED, missing)
    [attempt] = follow_up["attempts"]
    assert {k: attempt[k] for k in ("agent", "failure", "failure_message", "exit_code", "thread_id", "duration")} == {
        "agent": "gemini",
        "failure": "spawn_failed",
        "failure_message": missing,
        "exit_code": None,
        "thread_id": None,
        "duration": 0.0,
    }
    assert (attempt["usage"]["input_tokens"], attempt["events"], len(fake_codex.calls())) == (0, 0, 1)
    assert attempt_file(repo, "A.1", 1, "validation.txt") == f"not validated: spawn_failed: {missing}\n"
    assert steps(repo, "A.1") == [
        "task.workspace",
        "task.status:running",
        "attempt.started",
        "attempt.finished",
        "task.status:failed",
    ]


def test_a_task_the_run_cost_budget_stopped_ends_the_run_budget_exhausted_and_resume_runs_it_again(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """B's invalid answer takes the run to its budget: its retry is refused (B fails as `budget`). Nothing
    is left pending, yet the budget stopped work, so the run is `budget_exhausted`, not `partial`."""
    repo.configure(prices=PRICE, budgets={"run_cost": 2})
    fake_codex.script({"rules": [writer("A", "a.txt"), {"match": "job B.", "turns": [[{"answer": "not json"}]]}]})

    first = run(repo, tmp_path, [job("A"), job("B")], max_workers=1)

    assert first == outcome(repo, "budget_exhausted", A="succeeded", B="failed")
    b = read_state(repo, RUN)["tasks"]["B"]
    assert b["error"] == failed(FailureKind.BUDGET, "the run's cost $2.00 reached budgets.run_cost $2.00")
    assert [x["failure"] for x in b["attempts"]] == ["not_json"]
    assert steps(repo, "B") == [*FIRST, "task.status:failed"]

    fake_codex.script({"rules": [writer("B", "b.txt")]})
    second = resume(repo, budget_run_cost=10.0)

    assert second == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    b = read_state(repo, RUN)["tasks"]["B"]
    assert attempt_rows(b, "n", "failure", "resumed_thread") == [
        (1, "not_json", None),
        (2, None, None),
    ]
    assert steps(repo, "B") == [
        *FIRST,
        "task.status:failed",
        "task.status:running",
        *AGAIN[:2],
        "attempt.thread",
        *AGAIN[2:],
        *COMMITTED,
    ]
    assert prompts_with(fake_codex, "job A.") == 1
    assert recorded(repo, "run.status") == [
        {"type": "run.status", "status": "budget_exhausted"},
        {"type": "run.status", "status": "succeeded"},
    ]


class _OpensGate(Heard):
    """Creates `gate` when it hears the plan grow by `task` (from the scheduler's own thread)."""

    def __init__(self, gate: Path, task: str) -> None:
        super().__init__()
        self.gate, self.task = gate, task

    def __call__(self, kind: str, task: str | None, data: Mapping[str, Any]) -> None:
        super().__call__(kind, task, data)
        if kind == "plan" and self.task in data["tasks"]:
            self.gate.write_text("open\n")


def test_a_run_fail_fast_stopped_after_its_budget_held_a_task_is_not_budget_exhausted(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """C's work takes the run to its budget, so C's follow-up C.1 is held, not started; then A fails and
    --fail-fast cancels C.1. No work is left to the budget: the run ends `partial`."""
    repo.configure(workspace="landing", prices=PRICE, budgets={"run_cost": 1})
    gate = tmp_path / "C.1 held"
    proposal = {"role": "implementer", "prompt": "follow-up: more", "acceptance": "x"}
    fake_codex.script(
        {
            "rules": [
                {"match": "job A.", "turns": [[{"gate": str(gate)}, {"exit": 3}]]},
                {"match": "job C.", "turns": [[{"answer": answer("C", next_tasks=[proposal])}]]},
            ]
        }
    )

    result = run(
        repo,
        tmp_path,
        [job("A"), job("C")],
        _OpensGate(gate, "C.1"),
        max_workers=2,
        fail_fast=True,
        follow_next_tasks=True,
    )

    assert result == outcome(repo, "partial", A="failed", C="succeeded", **{"C.1": "cancelled"})
    tasks = read_state(repo, RUN)["tasks"]
    assert tasks["A"]["error"] == failed(FailureKind.CRASHED, "codex exited with code 3")
    assert tasks["C.1"]["error"] == {"kind": "cancelled", "message": "not started: --fail-fast stopped the run"}
    assert steps(repo, "C.1") == ["task.status:cancelled"]
    assert [a["cost_usd"] for t in tasks.values() for a in t["attempts"]] == [0.0, 1.0]
    assert recorded(repo, "run.status") == [{"type": "run.status", "status": "partial"}]


class _BreaksOnStart(Heard):
    """A display that fails when task `task` starts: an error of codex-orch's inside that task."""

    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task

    def __call__(self, kind: str, task: str | None, data: Mapping[str, Any]) -> None:
        super().__call__(kind, task, data)
        if (kind, task) == ("started", self.task):
            raise RuntimeError("the display broke")


def test_a_task_whose_failure_cannot_be_recorded_is_not_left_running(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error of codex-orch's in A, and the journal fails (a full disk) as A's failure is recorded: the
    error ends the run, A is recorded interrupted (never left `running`), B cancelled; resume runs both."""
    monkeypatch.setenv(faults.FAULT_ENV, "journal:before:task.status#2:error")  # the first is A's `running`
    monkeypatch.setattr(faults, "_seen", {})
    fake_codex.script({"rules": [writer("A", "a.txt"), writer("B", "b.txt")]})

    with pytest.raises(OSError, match="No space left on device"):
        run(repo, tmp_path, [job("A"), job("B")], _BreaksOnStart("A"), max_workers=1)

    state = read_state(repo, RUN)
    a, b = state["tasks"]["A"], state["tasks"]["B"]
    why = "the run stopped on an internal error"
    assert (state["status"], a["status"], b["status"]) == ("failed", "interrupted", "cancelled")
    assert a["error"] == {"kind": "internal", "message": why}
    assert b["error"] == {"kind": "cancelled", "message": f"not started: {why}"}
    assert recorded(repo, "task.status", "A")[1:] == [
        {"type": "task.status", "task": "A", "status": "interrupted", "error": {"kind": "internal", "message": why}}
    ]
    assert steps(repo, "A") == ["task.workspace", "task.status:running", "task.status:interrupted"]
    assert fake_codex.calls() == []

    monkeypatch.delenv(faults.FAULT_ENV)
    result = resume(repo)

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    assert steps(repo, "A")[3:] == ["task.status:running", *FIRST[2:], *COMMITTED]
    assert [call["resume"] for call in fake_codex.calls()] == [False, False]


# --- resume after a failure between a landing run's commit and its landing ------------------------------
def _fail_at_first_commit_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal fails (a full disk) as the first task commit is recorded: that task fails as
    `internal`, its commit made on its own branch but neither recorded nor landed."""
    monkeypatch.setenv(faults.FAULT_ENV, "journal:before:task.committed:error")
    monkeypatch.setattr(faults, "_seen", {})


def test_resume_lands_an_answer_a_failure_left_committed_but_not_landed(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The landed commit is the one its answer would have made: its message, provenance and decisions."""
    repo.configure(workspace="landing")
    _fail_at_first_commit_record(monkeypatch)
    decided = answer("A did it", ["a.txt"], decisions=[{"decision": "use a.txt", "rationale": "simplest"}])
    fake_codex.script({"default": [[{"write": "a.txt", "content": "A\n"}, {"answer": decided}]]})

    assert run(repo, tmp_path, [job("A")]) == outcome(repo, "failed", A="failed")
    state = read_state(repo, RUN)
    a = state["tasks"]["A"]
    assert (a["error"]["kind"], a["commit"]) == ("internal", None)
    [(own, _)] = landed(repo, a["branch"])
    assert landed(repo, state["branch"]) == []

    monkeypatch.delenv(faults.FAULT_ENV)
    result = resume(repo)

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    [(sha, _)] = landed(repo, state["branch"])
    assert (a["commit"], a["files_changed"], len(a["attempts"]), len(fake_codex.calls())) == (sha, ["a.txt"], 1, 1)
    assert recorded(repo, "task.committed") == [
        {
            "type": "task.committed",
            "task": "A",
            "commit": own,
            "head": own,
            "files_changed": ["a.txt"],
            "file_claims": None,
        }
    ]
    message = repo.git("log", "-1", "--format=%B", sha)
    assert message == (
        f"A (implementer): A did it\n\nOrch-Run: {RUN}\nOrch-Task: A\nOrch-Role: implementer\nOrch-Attempt: 1\n"
        f"Codex-Thread: {a['thread_id']}"
    )
    assert message == repo.git("log", "-1", "--format=%B", own)
    assert "- **use a.txt** — simplest" in repo.git("show", f"{sha}:docs/ai/decisions.md")
    assert steps(repo, "A") == [
        *FIRST,
        "task.result",
        "task.status:failed",
        "task.status:running",
        "task.committed",
        "task.landed",
        "task.status:succeeded",
    ]


def test_resume_hands_a_landing_that_conflicts_now_back_to_the_agents_thread(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's answer was committed, not landed; B landed a change to the same file meanwhile. Resume replays
    A's change on the tip and A's agent resolves the conflict on its own thread."""
    repo.configure(workspace="landing")
    repo.write("shared.txt", "top\n")
    repo.git("add", "shared.txt")
    repo.git("commit", "-qm", "a shared file")
    _fail_at_first_commit_record(monkeypatch)
    resolve = "sed -i '/^<<<<<<< \\|^=======$\\|^>>>>>>> /d' shared.txt"  # keep both sides
    fake_codex.script(
        {
            "rules": [
                {
                    "match": "job A.",
                    "turns": [
                        [{"append": "shared.txt", "content": "line A\n"}, {"answer": answer("A", ["shared.txt"])}],
                        [{"shell": resolve}, {"answer": answer("A resolved", ["shared.txt"])}],
                    ],
                },
                {
                    "match": "job B.",
                    "turns": [
                        [{"append": "shared.txt", "content": "line B\n"}, {"answer": answer("B", ["shared.txt"])}]
                    ],
                },
            ]
        }
    )
    assert run(repo, tmp_path, [job("A", model="gpt-own"), job("B")], max_workers=1) == outcome(
        repo, "partial", A="failed", B="succeeded"
    )
    monkeypatch.delenv(faults.FAULT_ENV)

    result = resume(repo)

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    state = read_state(repo, RUN)
    a, b = state["tasks"]["A"], state["tasks"]["B"]
    thread = a["thread_id"]
    assert attempt_rows(a, "n", "failure", "resumed_thread", "agent_source", "model") == [
        (1, None, None, "default", "gpt-own"),
        (2, None, thread, "thread", "gpt-own"),  # on its thread's agent and model
    ]
    first, _, told = fake_codex.calls()
    assert (told["resume"], told["thread_id"], first["thread_id"]) == (True, thread, thread)
    assert told["model"] == "gpt-own"
    assert (
        told["prompt"].startswith("Your work could not land on the run branch") and "- shared.txt\n" in told["prompt"]
    )
    assert recorded(repo, "task.rebased") == [
        {"type": "task.rebased", "task": "A", "base_commit": b["commit"], "conflicts": ["shared.txt"]}
    ]
    assert landed(repo, state["branch"]) == [(b["commit"], "B"), (a["commit"], "A")]
    assert repo.git("show", f"{state['branch']}:shared.txt").splitlines() == ["top", "line B", "line A"]
    assert [s for s in steps(repo, "A") if s != "task.forecast"] == [
        *FIRST,
        "task.result",
        "task.status:failed",
        "task.status:running",
        "task.committed",
        "task.rebased",
        *AGAIN,
        *LANDED,
    ]


def test_resume_fails_an_answer_left_unlanded_whose_decisions_now_show_a_secret(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run had secrets.scan off; resume has it on, and the decisions A's answer would land hold an AWS
    key: A fails as `secret`, nothing of it landed, its agent not asked again."""
    repo.configure(workspace="landing", secrets={"scan": False})
    _fail_at_first_commit_record(monkeypatch)
    leaky = answer("A", ["a.txt"], decisions=[{"decision": f"use {AWS_KEY}", "rationale": "it works"}])
    fake_codex.script({"default": [[{"write": "a.txt", "content": "A\n"}, {"answer": leaky}]]})
    assert run(repo, tmp_path, [job("A")]) == outcome(repo, "failed", A="failed")
    monkeypatch.delenv(faults.FAULT_ENV)
    repo.configure(secrets={"scan": True})

    result = resume(repo)

    assert result == outcome(repo, "failed", A="failed")
    state = read_state(repo, RUN)
    a = state["tasks"]["A"]
    found = (
        "secrets in the changes to commit: docs/ai/decisions.md:3: AWS Access Key. Remove them from the files, "
        "or let them through with secrets.allow in orchestrator.yaml."
    )
    assert a["error"] == failed(FailureKind.SECRET, found)
    assert (a["commit"], len(a["attempts"]), len(fake_codex.calls())) == (None, 1, 1)
    assert landed(repo, state["branch"]) == []
    assert AWS_KEY not in repo.git("log", "--all", "-p", "--", "docs")
    assert steps(repo, "A") == [
        *FIRST,
        "task.result",
        "task.status:failed",
        "task.status:running",
        "task.status:failed",
    ]


# --- how many times an agent is asked again -------------------------------------------------------------
def test_retries_are_counted_one_by_one_up_to_each_limit(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """limits.retries (invalid answers) and limits.transient_retries (crashes) of 2: three attempts each,
    all on the first attempt's thread; the failure names the first three of the validator's errors (in order)."""
    repo.configure(limits={"retries": 2, "transient_retries": 2})
    fake_codex.script(
        {
            "rules": [
                {"match": "job A.", "turns": [[{"answer": {"status": "done"}}]]},
                {"match": "job B.", "turns": [[{"exit": 3}]]},
            ]
        }
    )

    result = run(repo, tmp_path, [job("A"), job("B")], max_workers=1)

    assert result == outcome(repo, "failed", A="failed", B="failed")
    tasks = read_state(repo, RUN)["tasks"]
    a, b = tasks["A"], tasks["B"]
    missing = [f"{key}: a required property is missing" for key in ("decisions", "files_changed", "next_tasks")]
    assert a["error"] == failed(FailureKind.SCHEMA_INVALID, "; ".join(missing))
    assert b["error"] == failed(FailureKind.CRASHED, "codex exited with code 3")
    for task, failure in ((a, "schema_invalid"), (b, "crashed")):
        thread = task["thread_id"]
        assert attempt_rows(task, "n", "failure", "resumed_thread") == [
            (1, failure, None),
            (2, failure, thread),
            (3, failure, thread),
        ]
    assert steps(repo, "A") == steps(repo, "B") == [*FIRST, *AGAIN, *AGAIN, "task.status:failed"]
    assert len(fake_codex.calls()) == 6


def test_an_agent_that_reports_it_is_blocked_is_not_gated(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """The gates check work that is said to be done: an answer with status `blocked` fails the task as
    `agent_reported` (its work committed) without running them, nor a fix round."""
    repo.configure(gates=[{"name": "fixed", "run": "test -f fixed.txt", "sandbox": "none"}])
    stuck = answer("stuck", ["a.txt"], status="blocked")
    fake_codex.script({"default": [[{"write": "a.txt", "content": "a"}, {"answer": stuck}]]})

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "failed", A="failed")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert a["error"] == failed(FailureKind.AGENT_REPORTED, "the agent reported status 'blocked': stuck")
    assert a["files_changed"] == ["a.txt"] and len(fake_codex.calls()) == 1
    assert recorded(repo, "task.gates") == [] and recorded(repo, "task.fix_round") == []
    assert steps(repo, "A") == [*FIRST, "task.result", "task.committed", "task.status:failed"]


class _OpensGateWhenDone(Heard):
    """Creates `gate` when it hears task `task` finish."""

    def __init__(self, gate: Path, task: str) -> None:
        super().__init__()
        self.gate, self.task = gate, task

    def __call__(self, kind: str, task: str | None, data: Mapping[str, Any]) -> None:
        super().__call__(kind, task, data)
        if (kind, task) == ("finished", self.task):
            self.gate.write_text("open\n")


def test_an_agent_that_leaves_the_conflict_markers_fails_after_the_conflict_rounds(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """B lands first (A waits at a gate until B has finished), so A's landing conflicts; A's agent answers
    twice more leaving the markers: limits.conflict_rounds (2) hands it back twice, then A fails."""
    repo.configure(workspace="landing", limits={"conflict_rounds": 2})
    repo.write("shared.txt", "top\n")
    repo.git("add", "shared.txt")
    repo.git("commit", "-qm", "a shared file")
    gate = tmp_path / "B finished"
    fake_codex.script(
        {
            "rules": [
                {
                    "match": "job A.",
                    "turns": [
                        [
                            {"append": "shared.txt", "content": "line A\n"},
                            {"gate": str(gate)},
                            {"answer": answer("A", ["shared.txt"])},
                        ],
                        [{"answer": answer("A again", ["shared.txt"])}],
                    ],
                },
                {
                    "match": "job B.",
                    "turns": [
                        [{"append": "shared.txt", "content": "line B\n"}, {"answer": answer("B", ["shared.txt"])}]
                    ],
                },
            ]
        }
    )

    result = run(repo, tmp_path, [job("A"), job("B")], _OpensGateWhenDone(gate, "B"), max_workers=2)

    assert result == outcome(repo, "partial", A="failed", B="succeeded")
    state = read_state(repo, RUN)
    a, b = state["tasks"]["A"], state["tasks"]["B"]
    assert a["error"] == failed(FailureKind.CONFLICT, "its change still holds conflict markers in shared.txt")
    thread = a["thread_id"]
    assert attempt_rows(a, "n", "failure", "resumed_thread") == [
        (1, None, None),
        (2, None, thread),
        (3, None, thread),
    ]
    assert recorded(repo, "task.rebased") == [
        {"type": "task.rebased", "task": "A", "base_commit": b["commit"], "conflicts": ["shared.txt"]}
    ]
    assert landed(repo, state["branch"]) == [(b["commit"], "B")]
    assert [s for s in steps(repo, "A") if s != "task.forecast"] == [
        *FIRST,
        "task.result",
        "task.committed",
        "task.rebased",
        *AGAIN,
        "task.result",
        *AGAIN,
        "task.result",
        "task.status:failed",
    ]


# --- quotas: a rate limit waits for the agent, then the attempt goes on -----------------------------------
LIMIT = "429 Too Many Requests (Retry-After: 0)"  # a reset now: the pause lasts its half-second margin


def _went_on(result: str, message: str) -> str:
    """The prompt an attempt that did not finish goes on with (task_prompts.transient_prompt)."""
    return TRANSIENT.replace("crashed", result).format(message=message)


def test_a_rate_limited_attempt_waits_for_the_quota_and_goes_on_on_its_thread_without_counting(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """No fallback agent left: the agent is paused until its reset (`run.paused` naming the agent, the task and
    the reason), then the attempt goes on on its thread, told it did not finish; with limits.transient_retries
    0 that retry is free."""
    repo.configure(limits={"transient_retries": 0})
    fake_codex.script(
        {"default": [[{"write": "a.txt", "content": "a"}, {"fail": LIMIT}], [{"answer": answer("a", ["a.txt"])}]]}
    )

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    thread = a["thread_id"]
    assert attempt_rows(a, "n", "failure", "resumed_thread") == [
        (1, "rate_limited", None),
        (2, None, thread),
    ]
    first, second = fake_codex.calls()
    assert (first["thread_id"], second["resume_id"], second["thread_id"]) == (thread, thread, thread)
    assert second["prompt"] == _went_on("rate_limited", LIMIT)
    [paused] = recorded(repo, "run.paused")
    assert {k: v for k, v in paused.items() if k != "until"} == {
        "type": "run.paused",
        "agent": "codex",
        "reason": LIMIT,
        "task": "A",
    }
    assert recorded(repo, "run.unpaused") == [{"type": "run.unpaused", "agent": "codex"}]
    assert steps(repo, "A") == [*FIRST, "run.paused", *AGAIN, *COMMITTED]
    assert files_of(repo, read_state(repo, RUN)["branch"]) == ["README.md", "a.txt"]


_LIMITED_FIRST = """\
import json, os, sys
from pathlib import Path

limited = Path(sys.argv[1])
if limited.exists():
    os.execv(sys.argv[2], sys.argv[2:])
limited.write_text(sys.stdin.read())
print(json.dumps({"type": "turn.failed", "error": {"message": MESSAGE}}), flush=True)
sys.exit(1)
"""


def test_a_rate_limit_met_before_the_agent_named_its_thread_asks_again_with_the_task_prompt(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """An agent that reports its rate limit before its thread starts (a wrapper in front of the fake codex
    does, once, keeping the prompt it was given): after the pause the task's own prompt starts a new thread."""
    wrapper, limited = tmp_path / "limited-first.py", tmp_path / "limited-prompt.md"
    wrapper.write_text(_LIMITED_FIRST.replace("MESSAGE", repr(LIMIT)))
    codex = fake_codex.config()
    repo.configure(codex={**codex, "command": [sys.executable, str(wrapper), str(limited), *codex["command"]]})
    repo.configure(limits={"transient_retries": 0})
    template = repo.path / ".orchestrator" / "prompts" / "implementer.md.j2"  # the template shows the worktree
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text("{{ task.prompt }}\nWork in {{ worktree }}.\n")
    fake_codex.script({"default": [[{"write": "a.txt", "content": "a"}, {"answer": answer("a", ["a.txt"])}]]})

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    [call] = fake_codex.calls()
    assert (call["resume"], call["thread_id"]) == (False, a["thread_id"])
    assert attempt_rows(a, "n", "failure", "thread_id", "resumed_thread") == [
        (1, "rate_limited", None, None),
        (2, None, call["thread_id"], None),
    ]
    assert call["prompt"] == limited.read_text() == attempt_file(repo, "A", 1, "prompt.md")
    assert call["prompt"] == f"job A.\nWork in {a['worktree']}.\n"
    assert [r["agent"] for r in recorded(repo, "run.paused")] == ["codex"]
    assert [s for s in steps(repo, "A") if s != "attempt.thread"] == [
        "task.workspace",
        "task.status:running",
        "attempt.started",
        "attempt.pid",
        "attempt.finished",
        "run.paused",
        *AGAIN,
        *COMMITTED,
    ]


# --- an answer retried without a verdict; a committed failure run again ------------------------------------
def test_an_empty_answer_is_asked_for_again_on_the_same_thread(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A turn that ends without a final message (`empty_answer`, the agent's failure: no verdict) is retried
    on its thread within limits.retries, the validator's report quoting what was wrong."""
    repo.configure(limits={"retries": 1})
    fake_codex.script({"default": [[{"reasoning": "thinking"}], [{"answer": answer()}]]})

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    thread = a["thread_id"]
    assert attempt_rows(a, "n", "failure", "resumed_thread") == [
        (1, "empty_answer", None),
        (2, None, thread),
    ]
    _, second = fake_codex.calls()
    assert second["prompt"] == (
        "Your final message could not be accepted: it must be one JSON object that conforms to the output "
        "schema (task_result.schema.json), with no text around it.\n\n"
        "The validator reported:\n- the turn ended without a final message\n\n"
        "Do not redo the work unless it is incomplete. Reply with the corrected JSON object only."
    )
    assert steps(repo, "A") == FIRST + AGAIN + COMMITTED


def test_resume_commits_the_new_work_of_a_task_that_failed_after_its_commit(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A's agent reported `blocked` (its work committed, A failed); resume asks it again and commits its new
    work in a commit of its own: the earlier commit of A is not taken for it, as after a crash."""
    first = [{"write": "a.txt", "content": "one\n"}, {"answer": answer("stuck", ["a.txt"], status="blocked")}]
    again = [{"write": "a.txt", "content": "two\n"}, {"answer": answer("done", ["a.txt"])}]
    fake_codex.script({"default": [first]})
    assert run(repo, tmp_path, [job("A")]) == outcome(repo, "failed", A="failed")
    earlier = read_state(repo, RUN)["tasks"]["A"]["commit"]
    fake_codex.script({"default": [again]})

    result = resume(repo)

    assert result == outcome(repo, "succeeded", A="succeeded")
    state = read_state(repo, RUN)
    a = state["tasks"]["A"]
    assert a["commit"] != earlier
    assert [sha for sha, _ in landed(repo, state["branch"])] == [earlier, a["commit"]]
    assert repo.git("show", f"{a['commit']}:a.txt") == "two"
    assert [r["commit"] for r in recorded(repo, "task.committed", "A")] == [earlier, a["commit"]]


# --- what an attempt is run on and what it records ----------------------------------------------------
def test_an_attempt_runs_on_its_tasks_model_and_its_roles_profile_and_records_what_it_cost(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """The task's `model` and its role's `profile` go to codex; the attempt is priced under that model, its
    answer kept in final.json, its progress shown with the usage so far. git run by the agent stops looking
    for a repository at the run's worktrees folder (GIT_CEILING_DIRECTORIES)."""
    repo.configure(prices={"gpt-own": PRICE["gpt-5.5"]}, roles={"implementer": {"profile": "careful"}})
    said = answer("A", ["ceiling.txt"])
    fake_codex.script(
        {"default": [[{"shell": 'printf %s "$GIT_CEILING_DIRECTORIES" > ceiling.txt'}, {"answer": said}]]}
    )
    heard = Heard()

    before = time.monotonic()
    result = run(repo, tmp_path, [job("A", model="gpt-own")], heard)
    whole_run = time.monotonic() - before

    assert result == outcome(repo, "succeeded", A="succeeded")
    [call] = fake_codex.calls()
    assert (call["model"], call["profile"]) == ("gpt-own", "careful")
    [first] = read_state(repo, RUN)["tasks"]["A"]["attempts"]
    assert (first["model"], first["cost_usd"], first["cost_source"]) == ("gpt-own", 1.0, "prices")
    # the agent's own time, to the millisecond: within the run, whatever the machine's speed
    assert isinstance(first["duration"], float) and 0 < first["duration"] <= whole_run
    assert json.loads(attempt_file(repo, "A", 1, "final.json")) == said
    assert heard.data("attempt") == [("A", {"n": 1, "thread": None, "agent": "codex", "model": "gpt-own"})]
    usage = [data["usage"] for _, data in heard.data("progress") if data["usage"] is not None]
    assert usage and usage[-1]["input_tokens"] == 100
    worktrees = repo.path / ".orchestrator" / "worktrees"
    assert repo.git("show", f"{read_state(repo, RUN)['branch']}:ceiling.txt") == str(worktrees)


_FAKE_CLAUDE = """\
import json, os, sys, time
from pathlib import Path

told, capture, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
told.write_text(json.dumps({"argv": sys.argv[4:], "ceiling": os.environ.get("GIT_CEILING_DIRECTORIES")}))
Path("hello.txt").write_text("hello from claude\\n")
lines = capture.read_text().splitlines()
print("\\n".join(lines if how == "all" else lines[:2]), flush=True)
if how == "hang":
    time.sleep(600)
"""
CLAUDE_CAPTURE = Path(__file__).parent / "agent_captures" / "claude_success_structured_stream.jsonl"


def _fake_claude(repo: Repo, tmp_path: Path, how: str) -> Path:
    """claude as a script that replays a captured stream (`all`), or its first response and then waits
    (`hang`); a role `maker` whose schema fits the captured answer; what claude was told goes to the file
    returned (its arguments, its GIT_CEILING_DIRECTORIES)."""
    script, told = tmp_path / "fake-claude.py", tmp_path / "claude-told.json"
    script.write_text(_FAKE_CLAUDE)
    command = [sys.executable, str(script), str(told), str(CLAUDE_CAPTURE), how]
    repo.configure(agents={"claude": {"command": command, "model": "claude-own"}})
    strings = {"type": "array", "items": {"type": "string"}}
    _own_role(repo, "maker", _closed(status={"type": "string"}, files_changed=strings, summary={"type": "string"}))
    return told


def test_a_task_on_claude_runs_on_claudes_model_and_records_the_cost_claude_reports(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    told = _fake_claude(repo, tmp_path, "all")

    result = run(repo, tmp_path, [job("A", role="maker", agent="claude")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert attempt_rows(a, "agent", "model", "cost_usd", "cost_source", "thread_cost_usd") == [
        ("claude", "claude-own", 0.002, "agent", 0.002)
    ]
    argv = json.loads(told.read_text())["argv"]
    assert argv[argv.index("--model") + 1] == "claude-own"
    assert json.loads(told.read_text())["ceiling"] == str(repo.path / ".orchestrator" / "worktrees")
    assert repo.git("show", f"{read_state(repo, RUN)['branch']}:hello.txt") == "hello from claude"
    assert fake_codex.calls() == []


def test_an_attempt_that_crosses_the_tasks_token_budget_midway_is_stopped_and_fails_the_task_as_budget(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """budgets.task_tokens in block mode, reached by the usage claude reports while its turn runs: the agent
    is stopped there, and the task fails as `budget`, saying how far it got."""
    _fake_claude(repo, tmp_path, "hang")
    repo.configure(budgets={"task_tokens": 50})

    result = run(repo, tmp_path, [job("A", role="maker", agent="claude")])

    assert result == outcome(repo, "failed", A="failed")
    a = read_state(repo, RUN)["tasks"]["A"]
    message = "stopped: A used 101 tokens by the middle of an attempt, budgets.task_tokens is 50"
    assert a["error"] == failed(FailureKind.BUDGET, message)
    assert attempt_rows(a, "n", "failure", "failure_message") == [(1, "budget", message)]
    [pid] = [r["pid"] for r in recorded(repo, "attempt.pid", "A")]
    assert a["attempts"][0]["stop_steps"][0] == f"sent SIGINT to process group {pid}"
    assert "not validated: budget: " + message in attempt_file(repo, "A", 1, "validation.txt")


def test_a_task_its_provider_failed_goes_on_on_the_fallback_agent_with_that_agents_own_model(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """codex is rate limited: the next attempt runs on claude (agents.fallback), on claude's configured model,
    not the task's `model`, which names one of codex's provider."""
    told = _fake_claude(repo, tmp_path, "all")
    repo.configure(agents={"fallback": ["claude"]})
    fake_codex.script({"default": [[{"fail": LIMIT}]]})

    result = run(repo, tmp_path, [job("A", role="maker", model="gpt-own")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert attempt_rows(a, "n", "agent", "model", "agent_source", "fallback_from", "failure") == [
        (1, "codex", "gpt-own", "default", None, "rate_limited"),
        (2, "claude", "claude-own", "fallback", "codex", None),
    ]
    [call] = fake_codex.calls()
    assert call["model"] == "gpt-own"
    argv = json.loads(told.read_text())["argv"]
    assert argv[argv.index("--model") + 1] == "claude-own" and "--resume" not in argv


def test_a_task_stopped_while_its_gates_ran_goes_on_on_its_thread_and_model_with_the_fix_rounds_it_used(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A's first answer fails the gate (fix round 1 of 1); the run is stopped while the gate checks its second
    (the gate sends SIGINT to this process, as Ctrl-C would). Resume goes on on A's thread and model; its third answer
    fails the gate again, and with its one fix round spent before the stop, the task fails."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("drive handles signals only in the main thread")
    runs = tmp_path / "gate-runs"  # the gate's second run stops the run
    stop_in_gate = (
        f"echo run >> {runs}; if [ $(wc -l < {runs}) -eq 2 ]; then kill -INT {os.getpid()}; sleep 600; fi; "
        "test -f fixed.txt"
    )
    gate = {"name": "fixed", "run": ["sh", "-c", stop_in_gate], "sandbox": "none"}
    repo.configure(gates=[gate], limits={"fix_rounds": 1})
    fake_codex.script(
        {
            "default": [
                [{"write": "a.txt", "content": "a"}, {"answer": answer("a", ["a.txt"])}],
                [{"answer": answer("stopped in the gate")}],
                [{"answer": answer("again")}],
                [{"write": "fixed.txt", "content": "f"}, {"answer": answer("f", ["fixed.txt"])}],
            ]
        }
    )

    first = run(repo, tmp_path, [job("A", model="gpt-own")])

    assert first == outcome(repo, "interrupted", A="interrupted")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert a["error"] == {"kind": "interrupted", "message": "stopped while its gates ran"}

    second = resume(repo)

    assert second == outcome(repo, "failed", A="failed")
    a = read_state(repo, RUN)["tasks"]["A"]
    thread = a["thread_id"]
    assert attempt_rows(a, "n", "resumed_thread", "agent_source", "model") == [
        (1, None, "default", "gpt-own"),
        (2, thread, "default", "gpt-own"),
        (3, thread, "thread", "gpt-own"),
    ]
    assert fake_codex.calls()[2]["model"] == "gpt-own"
    assert fake_codex.calls()[2]["prompt"].startswith("You were interrupted before you finished this task")
    assert a["error"]["kind"] == "gate_failed" and "after 1 fix rounds" in a["error"]["message"]
    assert [r["round"] for r in recorded(repo, "task.fix_round")] == [1]


def test_after_a_run_that_committed_git_packs_its_objects_when_its_thresholds_say_so(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """git's own upkeep after commits (`maintenance run --auto`), once at the end of the run: here two packs
    are more than gc.autoPackLimit allows, so they become one (gc.autoDetach off: before the run returns)."""
    repo.git("config", "gc.autoPackLimit", "1")
    repo.git("config", "gc.autoDetach", "false")
    repo.git("repack", "-d", "-q")
    repo.write("more.txt", "more\n")
    repo.git("add", "more.txt")
    repo.git("commit", "-qm", "more")
    repo.git("repack", "-d", "-q")
    packs = repo.path / ".git" / "objects" / "pack"
    assert len(list(packs.glob("*.pack"))) == 2
    fake_codex.script({"rules": [writer("A", "a.txt")]})

    assert run(repo, tmp_path, [job("A")]) == outcome(repo, "succeeded", A="succeeded")

    assert len(list(packs.glob("*.pack"))) == 1


def test_resume_leaves_a_task_the_merge_queue_found_guilty_alone_and_blocks_what_waits_for_it(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A succeeded, then the merge queue found it `integration_failed` (its work is done and merged nowhere):
    resume does not run it again, and B, which waits for it, is blocked; C, failed at its gate, runs again."""
    go = tmp_path / "go"
    gate = {"name": "go", "run": ["sh", "-c", f"test ! -f c.txt || test -f {go}"], "sandbox": "none"}  # C's
    repo.configure(gates=[gate], limits={"fix_rounds": 0})
    fake_codex.script({"rules": [writer("A", "a.txt"), writer("B", "b.txt"), writer("C", "c.txt")]})
    plan = [job("A"), job("C"), job("B", ["A", "C"])]
    assert run(repo, tmp_path, plan, max_workers=1) == outcome(repo, "partial", A="succeeded", C="failed", B="blocked")
    guilty = {"kind": "integration_failed", "message": "red", "hint": "fix it on its branch and merge again"}
    with RunStore.open(repo.path / ".orchestrator" / "runs" / RUN) as store:
        store.record("task.integration", task="A", result="integration_failed", message="red", error=guilty)
    go.write_text("")

    result = resume(repo)

    assert result == outcome(repo, "partial", A="failed", C="succeeded", B="blocked")
    assert [prompts_with(fake_codex, f"job {tid}.") for tid in "ACB"] == [1, 2, 0]
    state = read_state(repo, RUN)
    assert state["tasks"]["A"]["error"] == guilty
    assert state["tasks"]["B"]["error"] == blocked("A")


def test_in_a_shared_worktree_the_files_of_a_task_still_running_are_not_a_committing_tasks_violations(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """B works on b/ and is held until A's commit writes the decisions file; Z, then A (which waits for Z), commit
    meanwhile: B's file is B's work in progress, not theirs to set aside, and B commits it."""
    decisions = repo.path / ".orchestrator" / "worktrees" / RUN / "docs" / "ai" / "decisions.md"
    decided = answer("A", ["a/a.txt"], decisions=[{"decision": "a", "rationale": "b waits for it"}])
    fake_codex.script(
        {
            "rules": [
                writer("Z", "z/z.txt"),
                {"match": "job A.", "turns": [[{"write": "a/a.txt", "content": "A\n"}, {"answer": decided}]]},
                {
                    "match": "job B.",
                    "turns": [
                        [
                            {"write": "b/b.txt", "content": "B\n"},
                            {"gate": str(decisions)},
                            {"answer": answer("B", ["b/b.txt"])},
                        ]
                    ],
                },
            ]
        }
    )
    plan = [job("B", paths=["b/**"]), job("Z", paths=["z/**"]), job("A", ["Z"], paths=["a/**"])]

    result = run(repo, tmp_path, plan, max_workers=2)

    assert result == outcome(repo, "succeeded", B="succeeded", Z="succeeded", A="succeeded")
    assert [(r["task"], r["violations"]) for r in recorded(repo, "task.committed")] == [
        ("Z", []),
        ("A", []),
        ("B", []),
    ]
    tasks = read_state(repo, RUN)["tasks"]
    assert [tasks[tid]["files_changed"] for tid in "ZAB"] == [
        ["z/z.txt"],
        ["a/a.txt", "docs/ai/decisions.md"],
        ["b/b.txt"],
    ]


# --- a stop while a task waits ------------------------------------------------------------------------
def test_a_stop_while_a_task_waits_for_an_agent_slot_interrupts_it_before_its_worktree_is_set_up(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A landing run of two workers admits four tasks of five: two agents hold the two agent slots, two
    tasks (their worktrees made) wait for one, the fifth is not started. The run is stopped (SIGINT, as
    Ctrl-C would): the waiting tasks are interrupted before their set-up ran, even when a slot a stopped
    agent gives back comes free for one of them."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("drive handles signals only in the main thread")
    setups, started = tmp_path / "setups", tmp_path / "started"
    repo.configure(workspace="landing", worktree={"setup": [["sh", "-c", f"echo set up >> {setups}"]]})
    fake_codex.script({"default": [[{"marker": str(started)}, {"gate": str(tmp_path / NEVER)}]]})

    def stop_when_two_agents_run() -> None:
        wait_marked(started, 2)
        os.kill(os.getpid(), signal.SIGINT)

    stopper = threading.Thread(target=stop_when_two_agents_run)
    stopper.start()
    try:
        result = run(repo, tmp_path, [job(tid) for tid in "ABCDE"], max_workers=2)
    finally:
        stopper.join()

    four = dict.fromkeys("ABCD", "interrupted")
    assert result == outcome(repo, "interrupted", **four, E="pending")
    tasks = read_state(repo, RUN)["tasks"]
    waiting = [tid for tid in "ABCD" if not tasks[tid]["attempts"]]
    assert len(waiting) == 2
    for tid in waiting:
        assert tasks[tid]["error"] == {"kind": "interrupted", "message": "stopped before its worktree was set up"}
        assert steps(repo, tid) == ["task.workspace", "task.status:interrupted"]
    assert steps(repo, "E") == []
    assert len(marked(started)) == 2 and len(fake_codex.calls()) == 2
    assert setups.read_text() == "set up\nset up\n"  # the two others'


def test_a_stop_while_a_task_waits_for_its_agents_quota_interrupts_it_before_its_retry(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A's agent is rate limited for ten minutes; the run is stopped (SIGINT, as Ctrl-C would) while A waits."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("drive handles signals only in the main thread")
    fake_codex.script({"default": [[{"fail": "429 Too Many Requests (Retry-After: 600)"}]]})

    def stop_when_paused() -> None:
        wait_recorded(repo, RUN, "run.paused")
        os.kill(os.getpid(), signal.SIGINT)

    stopper = threading.Thread(target=stop_when_paused)
    stopper.start()
    try:
        result = run(repo, tmp_path, [job("A")])
    finally:
        stopper.join()

    assert result == outcome(repo, "interrupted", A="interrupted")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert a["error"] == {"kind": "interrupted", "message": "stopped before a retry"}
    assert attempt_rows(a, "n", "failure") == [(1, "rate_limited")]
    assert recorded(repo, "run.unpaused") == [{"type": "run.unpaused", "agent": "codex"}]


def test_the_runs_agent_runs_the_tasks_that_name_none(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """`--agent claude` (RunOptions.agent): a task without an `agent` of its own runs on claude."""
    _fake_claude(repo, tmp_path, "all")

    result = run(repo, tmp_path, [job("A", role="maker")], agent="claude")

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert attempt_rows(a, "agent", "agent_source") == [("claude", "--agent")]
    assert fake_codex.calls() == []


def test_a_budget_in_warn_mode_warns_once_and_the_run_goes_on(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """budgets.run_cost of $1 in warn mode: after A's attempt ($1) the run is told, once, and B runs anyway."""
    repo.configure(prices=PRICE, budgets={"run_cost": 1, "mode": "warn"})
    fake_codex.script({"rules": [writer("A", "a.txt"), writer("B", "b.txt"), writer("C", "c.txt")]})
    heard = Heard()

    result = run(repo, tmp_path, [job("A"), job("B"), job("C")], heard, max_workers=1)

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded", C="succeeded")
    [(task, warning)] = heard.data("warning")
    assert task is None and warning["message"].startswith("budget: ")
    assert warning["message"].endswith("(budgets.mode: warn, the run goes on)")
    assert [r["limit"] for r in recorded(repo, "run.budget_warning")] == ["run_cost"]


def test_a_per_task_run_forecasts_the_conflict_of_two_tasks_changing_the_same_lines(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.configure(workspace="per-task")
    fake_codex.script({"rules": [writer("A", "x.txt", "A\n"), writer("B", "x.txt", "B\n")]})
    heard = Heard()

    result = run(repo, tmp_path, [job("A"), job("B")], heard, max_workers=1)

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    assert recorded(repo, "task.forecast") == [
        {"type": "task.forecast", "task": "B", "conflicts": [{"with": "A", "files": ["x.txt"]}]}
    ]
    assert heard.data("warning") == [("B", {"message": "B: conflict predicted with A in x.txt"})]


def test_tasks_whose_paths_overlap_only_where_concurrency_allows_it_run_side_by_side(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """concurrency.allow: docs/** may be shared. A and B, whose paths overlap only there, run at once (each
    agent waits until the other has started)."""
    repo.configure(concurrency={"allow": ["docs/**"]})
    a_started, b_started = tmp_path / "A-started", tmp_path / "B-started"

    def meets(tid: str, mine: Path, theirs: Path) -> dict[str, Any]:
        path = f"docs/{tid}.md"
        steps = [{"marker": str(mine)}, {"gate": str(theirs)}, {"write": path, "content": tid}]
        return {"match": f"job {tid}.", "turns": [[*steps, {"answer": answer(tid, [path])}]]}

    fake_codex.script({"rules": [meets("A", a_started, b_started), meets("B", b_started, a_started)]})

    result = run(repo, tmp_path, [job("A", paths=["docs/A.md"]), job("B", paths=["docs/**"])], max_workers=2)

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    state = read_state(repo, RUN)
    # B's paths hold A's file: whichever commits first, each file is committed once
    assert sorted(f for task in state["tasks"].values() for f in task["files_changed"]) == ["docs/A.md", "docs/B.md"]
    assert files_of(repo, state["branch"]) == ["README.md", "docs/A.md", "docs/B.md"]


_STOPS_FIRST = """\
import os, signal, sys, time
from pathlib import Path

once = Path(sys.argv[1])
if once.exists():
    os.execv(sys.argv[3], sys.argv[3:])
once.write_text("")
Path("half.txt").write_text("half\\n")
os.kill(int(sys.argv[2]), signal.SIGINT)
time.sleep(600)
"""


def test_a_task_stopped_before_its_agent_named_a_thread_starts_over_told_what_the_worktree_holds(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """An agent (a wrapper in front of the fake codex, once) leaves half.txt and sends SIGINT to this process
    before any thread started; resume starts A over with its task prompt and a note of the leftover file."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("drive handles signals only in the main thread")
    wrapper = tmp_path / "stops-first.py"
    wrapper.write_text(_STOPS_FIRST)
    codex = fake_codex.config()
    command = [sys.executable, str(wrapper), str(tmp_path / "stopped-once"), str(os.getpid()), *codex["command"]]
    repo.configure(codex={**codex, "command": command})
    fake_codex.script({"default": [[{"write": "a.txt", "content": "a"}, {"answer": answer("a", ["a.txt"])}]]})

    first = run(repo, tmp_path, [job("A")])

    assert first == outcome(repo, "interrupted", A="interrupted")
    assert read_state(repo, RUN)["tasks"]["A"]["thread_id"] is None

    second = resume(repo)

    assert second == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert attempt_rows(a, "n", "failure", "resumed_thread") == [(1, "interrupted", None), (2, None, None)]
    [call] = fake_codex.calls()
    assert not call["resume"] and "job A." in call["prompt"]
    assert "An earlier attempt at this task was interrupted." in call["prompt"] and "?? half.txt" in call["prompt"]


def test_a_follow_up_of_a_task_on_claude_goes_on_on_claudes_session(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    told = _fake_claude(repo, tmp_path, "all")
    assert run(repo, tmp_path, [job("A", role="maker", agent="claude")]) == outcome(repo, "succeeded", A="succeeded")
    session = read_state(repo, RUN)["tasks"]["A"]["thread_id"]

    add_follow_up(repo.path, RUN, "Say hello again.")
    result = resume(repo)

    assert result == outcome(repo, "succeeded", A="succeeded", **{"followup-1": "succeeded"})
    task = read_state(repo, RUN)["tasks"]["followup-1"]
    assert attempt_rows(task, "agent", "model", "agent_source", "resumed_thread") == [
        ("claude", "claude-own", "thread", session)
    ]
    argv = json.loads(told.read_text())["argv"]
    assert argv[argv.index("--resume") + 1] == session
    assert fake_codex.calls() == []


def test_another_runs_branch_made_while_a_run_works_is_not_put_back(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """Branches under the templates' `orch/` belong to the runs that make them: one made meanwhile (here by
    the agent, as another run would) is that run's, not a change this run's guard puts back."""
    other = "orch/2026-01-01/run-r2/T1-implementer"
    fake_codex.script(
        {
            "default": [
                [
                    {"shell": f"git branch {other}"},
                    {"write": "a.txt", "content": "a"},
                    {"answer": answer("a", ["a.txt"])},
                ]
            ]
        }
    )

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    assert other in repo.branches()
    a = read_state(repo, RUN)["tasks"]["A"]
    assert attempt_rows(a, "n", "failure", "guardrail") == [(1, None, [])]
    assert recorded(repo, "run.guardrail") == []


def test_a_ref_the_agent_makes_among_the_runs_own_refs_is_put_back(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """refs/orch/<run>/ holds what codex-orch keeps for the run (work set aside, failed work): the agent may
    not add to it."""
    fake_codex.script(
        {
            "default": [
                [{"shell": f"git update-ref refs/orch/{RUN}/mine HEAD"}, {"answer": answer("a")}],
                [{"answer": answer("a")}],
            ]
        }
    )

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    assert repo.git("for-each-ref", f"refs/orch/{RUN}/mine") == ""
    a = read_state(repo, RUN)["tasks"]["A"]
    sha = repo.git("rev-parse", "--short=12", "main")
    kept = f"refs/orch/{RUN}/quarantine/A/1/orch/{RUN}/mine"
    assert attempt_rows(a, "n", "failure", "guardrail") == [
        (1, "guardrail", [f"created refs/orch/{RUN}/mine at {sha}; put back, its version kept at {kept}"]),
        (2, None, []),
    ]


def test_a_landing_run_makes_the_next_tasks_worktree_out_of_the_one_a_landed_task_left(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A landed: its worktree is kept as a spare while tasks are still to start, and B's is made of it (git's
    admin folder of the worktree stays A's); none is left at the end."""
    repo.configure(workspace="landing")
    gitdir = {"shell": "cat .git > gitdir.txt"}
    fake_codex.script(
        {"rules": [writer("A", "a.txt"), {"match": "job B.", "turns": [[gitdir, {"answer": answer("B")}]]}]}
    )

    result = run(repo, tmp_path, [job("A"), job("B", ["A"])], max_workers=1)

    assert result == outcome(repo, "succeeded", A="succeeded", B="succeeded")
    told = repo.git("show", f"{read_state(repo, RUN)['branch']}:gitdir.txt")
    assert told == f"gitdir: {repo.path / '.git' / 'worktrees' / 'A'}"
    assert repo.worktrees() == [str(repo.path)]


def test_resume_lands_the_commit_a_codex_orch_killed_before_recording_it_left_behind(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """codex-orch (a child process here) is killed (a fault point: SIGKILL) right after A's commit was made
    and before the journal said so. Resume, in this process, finds A running with no codex-orch, records it
    interrupted, and lands that commit: the answer is not asked for again."""
    repo.configure(workspace="landing")
    fake_codex.script({"rules": [writer("A", "a.txt")]})
    plan = write_plan(tmp_path / "plan.json", [job("A")])
    killed = run_cli(
        repo.path,
        "run",
        "--plan-file",
        str(plan),
        "--run-id",
        RUN,
        "--no-progress",
        env={faults.FAULT_ENV: "journal:before:task.committed"},
    )
    assert killed.code == -signal.SIGKILL
    assert read_state(repo, RUN)["tasks"]["A"]["status"] == "running"

    result = resume(repo)

    assert result == outcome(repo, "succeeded", A="succeeded")
    state = read_state(repo, RUN)
    a = state["tasks"]["A"]
    assert len(a["attempts"]) == 1 and len(fake_codex.calls()) == 1
    assert landed(repo, state["branch"]) == [(a["commit"], "A")]
    assert steps(repo, "A")[-5:] == [
        "task.status:interrupted",
        "task.status:running",
        "task.committed",
        "task.landed",
        "task.status:succeeded",
    ]


def test_resume_runs_the_attempt_a_codex_orch_killed_as_it_started_it_had_begun(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """codex-orch (a child process here) is killed (a fault point: SIGKILL) after it wrote A's first attempt's
    prompt and before the journal said the attempt started; resume runs that attempt, in the same folder."""
    fake_codex.script({"rules": [writer("A", "a.txt")]})
    plan = write_plan(tmp_path / "plan.json", [job("A")])
    fault = {faults.FAULT_ENV: "journal:before:attempt.started"}
    killed = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", RUN, "--no-progress", env=fault)
    assert killed.code == -signal.SIGKILL
    assert read_state(repo, RUN)["tasks"]["A"]["attempts"] == [] and fake_codex.calls() == []
    assert "job A." in attempt_file(repo, "A", 1, "prompt.md")

    result = resume(repo)

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    assert attempt_rows(a, "n", "failure") == [(1, None)]
    [call] = fake_codex.calls()
    assert attempt_file(repo, "A", 1, "prompt.md") == call["prompt"]


def test_resume_commits_the_answer_a_failure_left_uncommitted_of_a_task_on_claude_under_claudes_name(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal failed right after A's answer was recorded, before its commit; resume commits and lands
    that answer, its provenance trailer naming claude's session (not a codex thread)."""
    _fake_claude(repo, tmp_path, "all")
    repo.configure(workspace="landing")
    monkeypatch.setenv(faults.FAULT_ENV, "journal:after:task.result:error")
    monkeypatch.setattr(faults, "_seen", {})
    assert run(repo, tmp_path, [job("A", role="maker", agent="claude")]) == outcome(repo, "failed", A="failed")
    monkeypatch.delenv(faults.FAULT_ENV)

    result = resume(repo)

    assert result == outcome(repo, "succeeded", A="succeeded")
    state = read_state(repo, RUN)
    a = state["tasks"]["A"]
    [(sha, _)] = landed(repo, state["branch"])
    assert len(a["attempts"]) == 1 and sha == a["commit"]
    assert trailer(repo, sha, "Agent-Thread") == f"claude:{a['thread_id']}"
    assert trailer(repo, sha, "Codex-Thread") == ""


def test_a_secret_of_the_agents_environment_the_agent_prints_is_redacted_in_its_events_log(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    secret = "tok-" + "9f8e7d6c5b4a3210fedc"
    repo.configure(codex=fake_codex.config(DEPLOY_TOKEN=secret))
    fake_codex.script({"default": [[{"shell": "echo $DEPLOY_TOKEN"}, {"answer": answer()}]]})

    result = run(repo, tmp_path, [job("A")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    events = attempt_file(repo, "A", 1, "events.jsonl")
    assert "[REDACTED:DEPLOY_TOKEN]" in events and secret not in events


def test_a_claude_tasks_thread_usage_adds_up_over_its_fix_rounds(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """claude reports each attempt's usage alone, on one session: the gate fails twice (two fix rounds on
    that session), and each attempt's thread_usage is the session's so far."""
    _fake_claude(repo, tmp_path, "all")
    runs = tmp_path / "gate-runs"
    third_passes = f"echo run >> {runs}; [ $(wc -l < {runs}) -ge 3 ]"
    gate = {"name": "third", "run": ["sh", "-c", third_passes], "sandbox": "none"}
    repo.configure(gates=[gate], limits={"fix_rounds": 2})

    result = run(repo, tmp_path, [job("A", role="maker", agent="claude")])

    assert result == outcome(repo, "succeeded", A="succeeded")
    a = read_state(repo, RUN)["tasks"]["A"]
    each = a["attempts"][0]["usage"]["input_tokens"]
    assert each > 0
    assert attempt_rows(a, "n", "resumed_thread") == [(1, None), (2, a["thread_id"]), (3, a["thread_id"])]
    assert [x["thread_usage"]["input_tokens"] for x in a["attempts"]] == [each, 2 * each, 3 * each]
