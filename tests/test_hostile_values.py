"""Every value from an agent is untrusted data: a hostile agent (the real fake codex, scripted) hands over
poisoned answers and events, and each one fails only its own attempt, with a classified kind. The run
ends normally, its siblings and dependants carry on as they would after any failure, and `report` and
`status` read the state afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, FakeCodex, Repo, answer, read_state, run_cli, write_plan

ONE_TASK = [{"role": "implementer", "prompt": "hostile task", "acceptance": "none", "blocked_by": []}]


def run_plan(
    repo: Repo,
    fake: FakeCodex,
    tmp_path: Path,
    turns: list[list[dict[str, Any]]],
    tasks: list[dict[str, Any]] | None = None,
    rules: list[dict[str, Any]] | None = None,
    **limits: Any,
) -> CliResult:
    fake.script({"default": turns, "rules": rules or []})
    if limits:
        repo.configure(limits=limits)
    plan = write_plan(tmp_path / "plan.json", tasks or ONE_TASK)
    return run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "r1", "--no-progress")


def readable_afterwards(repo: Repo) -> dict[str, Any]:
    """`report --json`, `report` and `status --json` work on whatever the run left; the report's JSON."""
    for args in (("status", "--json", "--run-id", "r1"), ("report", "--run-id", "r1"), ("status", "--run-id", "r1")):
        result = run_cli(repo.path, *args)
        assert result.code == 0, f"{args}: {result.err}"
    result = run_cli(repo.path, "report", "--json", "--run-id", "r1")
    assert result.code == 0, result.err
    report: dict[str, Any] = json.loads(result.out)
    run_dir = repo.path / ".orchestrator" / "runs" / "r1"
    (run_dir / "report.md").read_bytes().decode("utf-8")  # strict UTF-8
    state_text = (run_dir / "state.json").read_bytes().decode("utf-8")
    journal = (run_dir / "journal.jsonl").read_bytes().decode("utf-8").splitlines()
    for text in (state_text, *journal):  # strict JSON: no NaN/Infinity, no lone surrogates
        value = json.loads(text, parse_constant=lambda c: pytest.fail(f"the state holds {c}"))
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    return report


def task_of(repo: Repo, task_id: str = "T0001") -> dict[str, Any]:
    task: dict[str, Any] = read_state(repo, "r1")["tasks"][task_id]
    return task


# --- hostile answers: each fails its attempt as answer_unsafe, retried on the same thread ----------------
DEEP = "[" * 100_000 + "]" * 100_000
HUGE_NUMBER = (
    '{"status": "done", "summary": "s", "files_changed": [], "decisions": [], "risks": [], "next_tasks": [], "n": '
    + "9" * 5000
    + "}"
)


@pytest.mark.parametrize(
    ("hostile", "says"),
    [
        pytest.param(DEEP, "nested deeper than", id="nested-100k-deep"),
        pytest.param(HUGE_NUMBER, "number out of range", id="5000-digit-number"),
        pytest.param(answer("\ud800 lone surrogate"), "lone surrogate", id="lone-surrogate"),
        pytest.param(answer("a NUL \u0000 in the summary"), "NUL", id="nul-character"),
        pytest.param(HUGE_NUMBER.replace("9" * 5000, "1e400"), "1e400", id="1e400"),
        pytest.param('{"status": NaN}', "NaN", id="nan"),
        pytest.param(answer("x" * 1_100_000), "larger than", id="over-1-MiB"),
    ],
)
def test_a_hostile_answer_fails_its_attempt_and_is_retried_on_the_thread(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, hostile: Any, says: str
) -> None:
    result = run_plan(repo, fake_codex, tmp_path, [[{"answer": hostile}], [{"answer": answer("fixed")}]])
    assert result.code == 0, result.err + result.out
    task = task_of(repo)
    assert task["status"] == "succeeded"
    first, _ = task["attempts"]
    assert first["failure"] == "answer_unsafe"
    assert says in first["failure_message"]
    calls = fake_codex.calls()
    assert calls[1]["resume_id"] == calls[0]["thread_id"]  # answer-retryable: the same thread
    assert says in calls[1]["prompt"]  # the agent is told what was wrong
    validation = repo.path / ".orchestrator/runs/r1/tasks/T0001/attempt-1/validation.txt"
    assert validation.read_text("utf-8").startswith("answer_unsafe")
    report = readable_afterwards(repo)
    assert report["tasks"][0]["status"] == "succeeded"
    assert report["tasks"][0]["failure_kinds"] == ["answer_unsafe"]


def test_a_lone_surrogate_that_fits_the_schema_never_reaches_the_commit_or_the_report(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """Before: the answer was accepted, the commit message could not be encoded (crash, exit 3), and
    report.md could never be written again."""
    hostile = answer("\ud800", decisions=[{"decision": "\udfff", "rationale": "r"}])
    result = run_plan(repo, fake_codex, tmp_path, [[{"write": "a.txt", "content": "a"}, {"answer": hostile}]])
    assert result.code == 1, result.err
    task = task_of(repo)
    assert task["status"] == "failed"
    assert task["error"]["kind"] == "answer_unsafe"
    assert task["commit"] is None and task["result"] is None
    assert len(task["attempts"]) == 3  # the first try and limits.retries (2) on the same thread
    readable_afterwards(repo)


# --- hostile events: a crash-like failure of the attempt (kind protocol) ---------------------------------
def turn_ending_with(line: str) -> list[dict[str, Any]]:
    """A good answer, then a hostile turn.completed in place of the real one."""
    return [{"answer": answer("ok")}, {"raw": line}, {"exit": 0}]


@pytest.mark.parametrize(
    ("steps", "says"),
    [
        pytest.param(
            turn_ending_with('{"type":"turn.completed","usage":{"input_tokens":1e400}}'),
            "usage.input_tokens",
            id="usage-1e400",
        ),
        pytest.param(
            turn_ending_with('{"type":"turn.completed","usage":"lots"}'), "usage must be an object", id="usage-string"
        ),
        pytest.param(
            turn_ending_with('{"type":"turn.completed","usage":[1,2]}'), "usage must be an object", id="usage-list"
        ),
        pytest.param(
            turn_ending_with('{"type":"turn.completed","usage":{"output_tokens":"20"}}'),
            "usage.output_tokens",
            id="usage-count-string",
        ),
        pytest.param(
            turn_ending_with('{"type":"turn.completed","usage":{"output_tokens":-5}}'),
            "usage.output_tokens",
            id="usage-negative",
        ),
        pytest.param(
            turn_ending_with('{"type":"turn.completed","usage":{"input_tokens":' + "7" * 5000 + "}}"),
            "out of range",
            id="usage-5000-digits",
        ),
        pytest.param(
            [{"raw": '{"type":"item.completed","item":' + DEEP + "}"}, {"answer": answer()}],
            "nested deeper than",
            id="event-100k-deep",
        ),
        pytest.param(
            [
                {"raw": '{"type":"item.completed","item":{"type":"agent_message","text":"\\ud800"}}'},
                {"answer": answer()},
            ],
            "lone surrogate",
            id="event-lone-surrogate",
        ),
        pytest.param(
            [{"raw": '{"type":"item.completed","item":{"type":"agent_message","text":{"a":1}}}'}],
            "item.text must be a string",
            id="answer-text-object",
        ),
        pytest.param([{"raw": '{"type":"error","message":NaN}'}, {"answer": answer()}], "NaN", id="nan-literal"),
        pytest.param(
            [{"raw": '{"type":"turn.failed","error":{"message":["x"]}}'}, {"exit": 1}],
            "error.message must be a string",
            id="turn-failed-list",
        ),
        pytest.param([{"raw": '{"type":7}'}, {"answer": answer()}], "type must be a string", id="type-number"),
    ],
)
def test_a_hostile_event_fails_its_attempt_as_protocol(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, steps: list[dict[str, Any]], says: str
) -> None:
    result = run_plan(repo, fake_codex, tmp_path, [steps])
    assert result.code == 1, result.err + result.out
    task = task_of(repo)
    assert task["status"] == "failed"
    assert task["error"]["kind"] == "protocol"
    assert says in task["error"]["message"]
    assert task["commit"] is None
    readable_afterwards(repo)


@pytest.mark.parametrize(
    "thread_id",
    [
        pytest.param("--dangerously-bypass-approvals-and-sandbox", id="an-option"),
        pytest.param("abc\nOrch-Task: T9", id="a-forged-trailer"),
        pytest.param("x" * 1000, id="1000-chars"),
    ],
)
def test_a_hostile_thread_id_is_never_resumed_nor_committed(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, thread_id: str
) -> None:
    """Before: `codex exec … resume --dangerously-bypass-approvals-and-sandbox -` ran the retry unsandboxed."""
    started = json.dumps({"type": "thread.started", "thread_id": thread_id})
    result = run_plan(
        repo,
        fake_codex,
        tmp_path,
        [[{"raw": started}, {"answer": "not json"}], [{"answer": answer("ok")}]],
        transient_retries=1,
    )
    assert result.code == 0, result.err + result.out
    task = task_of(repo)
    assert task["attempts"][0]["failure"] == "protocol"
    assert "thread_id" in task["attempts"][0]["failure_message"]
    second = fake_codex.calls()[1]
    assert not second["bypass"] and thread_id not in second["argv"]
    state = read_state(repo, "r1")
    recorded = [task["thread_id"], *(a.get("thread_id") for a in task["attempts"])]
    assert thread_id not in recorded and thread_id not in json.dumps(state, ensure_ascii=False)
    assert "Orch-Task: T9" not in repo.git("log", "--all", "--format=%B")
    readable_afterwards(repo)


def test_a_hostile_event_is_retried_as_transient(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    turns = [turn_ending_with('{"type":"turn.completed","usage":"lots"}'), [{"answer": answer("second try")}]]
    result = run_plan(repo, fake_codex, tmp_path, turns, transient_retries=1)
    assert result.code == 0, result.err + result.out
    task = task_of(repo)
    assert [a.get("failure") for a in task["attempts"]] == ["protocol", None]
    assert fake_codex.calls()[1]["resume_id"] == fake_codex.calls()[0]["thread_id"]


# --- containment: one task's failure, whatever it is, is that task's result -------------------------------
SIBLINGS = [
    {"id": "T1", "role": "implementer", "prompt": "HOSTILE-T1", "acceptance": "", "blocked_by": [], "paths": ["a/**"]},
    {"id": "T2", "role": "implementer", "prompt": "SIBLING-T2", "acceptance": "", "blocked_by": [], "paths": ["b/**"]},
    {
        "id": "T3",
        "role": "implementer",
        "prompt": "DEPENDANT-T3",
        "acceptance": "",
        "blocked_by": ["T1"],
        "paths": ["c/**"],
    },
]


def sibling_rules(repo: Repo, marks: Path, hostile: list[Any]) -> list[dict[str, Any]]:
    """T1 waits until T2 runs, then misbehaves; T2 goes on only once T1's failure is in the journal, so it
    is running when T1 fails (a handshake through the journal, not a sleep)."""
    wait_for_t2 = {"shell": f"until [ -e {marks}/t2 ]; do sleep 0.02; done"}
    journal = repo.path / ".orchestrator" / "runs" / "r1" / "journal.jsonl"
    t1_failed = '"type":"task.status","task":"T1","status":"failed"'
    wait_for_t1 = {"shell": f"until grep -qF '{t1_failed}' {journal}; do sleep 0.02; done"}
    return [
        {"match": "HOSTILE-T1", "turns": [[wait_for_t2, *hostile]]},
        {
            "match": "SIBLING-T2",
            "turns": [
                [
                    {"shell": f"touch {marks}/t2"},
                    wait_for_t1,
                    {"write": "b/b.txt", "content": "b"},
                    {"answer": answer("b", ["b/b.txt"])},
                ]
            ],
        },
        {"match": "DEPENDANT-T3", "turns": [[{"answer": answer("c")}]]},
    ]


def assert_contained(repo: Repo, kind: str) -> dict[str, Any]:
    state = read_state(repo, "r1")
    tasks = state["tasks"]
    assert tasks["T1"]["status"] == "failed" and tasks["T1"]["error"]["kind"] == kind
    assert tasks["T2"]["status"] == "succeeded"  # not interrupted
    assert tasks["T3"]["status"] == "blocked"  # not "cancelled by --fail-fast"
    assert "fail-fast" not in json.dumps(state)
    assert state["status"] == "partial"
    readable_afterwards(repo)
    return tasks["T1"]


def test_a_hostile_answer_leaves_siblings_and_dependants_alone(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """Before: the deep answer crashed the run (exit 3), T1 stayed running, T2 was interrupted and T3
    was "cancelled: --fail-fast stopped the run"."""
    marks = tmp_path / "marks"
    marks.mkdir()
    rules = sibling_rules(repo, marks, [{"answer": DEEP}])
    result = run_plan(repo, fake_codex, tmp_path, [[{"answer": answer()}]], SIBLINGS, rules, max_workers=2, retries=0)
    assert result.code == 1, result.err + result.out
    assert_contained(repo, "answer_unsafe")


def test_an_unexpected_error_in_the_executor_is_that_task_s_failure(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """The agent turns its attempt's final.json into a folder: writing it raises IsADirectoryError inside
    the executor. Before: the run crashed (exit 3), T1 stayed running, T2 was interrupted, T3 cancelled."""
    marks = tmp_path / "marks"
    marks.mkdir()
    attempt = repo.path / ".orchestrator/runs/r1/tasks/T1/attempt-1"
    hostile = [{"shell": f"mkdir -p {attempt}/final.json"}, {"answer": answer("ok")}]
    rules = sibling_rules(repo, marks, hostile)
    result = run_plan(repo, fake_codex, tmp_path, [[{"answer": answer()}]], SIBLINGS, rules, max_workers=2)
    assert result.code == 1, result.err + result.out
    assert "internal error" not in result.err
    t1 = assert_contained(repo, "internal")
    assert t1["error"]["message"].startswith("IsADirectoryError")
    assert t1["attempts"][0]["failure"] == "internal" and t1["attempts"][0]["ended_at"]


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), "\ud800", {"k\udfff": 1}])
def test_the_journal_refuses_a_record_it_could_not_read_back(tmp_path: Path, poison: Any) -> None:
    """Defence in depth behind the checks at the source: whatever code records, the journal holds strict
    JSON and valid Unicode, and a refused record changes neither the journal nor the state."""
    from codex_orch.state import RunStore

    store = RunStore.create(tmp_path, {"run_id": "r1"}, [{"id": "T1", "role": "implementer"}])
    journal = (tmp_path / "journal.jsonl").read_bytes()
    with pytest.raises(ValueError):
        store.record("task.result", task="T1", result={"summary": poison})
    store.record("task.result", task="T1", result={"summary": "astral \U0001f600 is fine"})
    store.close()
    assert (tmp_path / "journal.jsonl").read_bytes().startswith(journal)
    assert read_state_dir(tmp_path)["tasks"]["T1"]["result"] == {"summary": "astral \U0001f600 is fine"}


def read_state_dir(run_dir: Path) -> dict[str, Any]:
    from codex_orch.state import read_state as read

    state: dict[str, Any] = read(run_dir)
    return state


def test_a_run_recorded_before_these_checks_can_still_be_reported(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A journal written by an older codex-orch may hold a lone surrogate (JSON-escaped, so it was
    written fine): report.md is written with it escaped instead of failing for good."""
    assert run_plan(repo, fake_codex, tmp_path, [[{"answer": answer("ok")}]]).code == 0
    journal = repo.path / ".orchestrator/runs/r1/journal.jsonl"
    seq = json.loads(journal.read_text().splitlines()[-1])["seq"] + 1
    old = {"seq": seq, "ts": "2026-11-01T00:00:00.000+00:00", "type": "task.result", "task": "T0001"}
    with open(journal, "a") as fh:
        fh.write(json.dumps({**old, "result": {"summary": "old \ud800 value"}}) + "\n")
    for args in (("report", "--run-id", "r1"), ("report", "--json", "--run-id", "r1"), ("status", "--json")):
        assert run_cli(repo.path, *args).code == 0, args
    assert "old \\ud800 value" in (journal.parent / "report.md").read_text("utf-8")
