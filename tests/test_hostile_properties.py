"""Property test (hypothesis): whatever answers and event lines an agent emits, through the real fake codex
in a real repository, the run ends with a classified result (exit 0 or 1, never 3: an internal error) and
`report --json` and `status --json` read what it left.

Generated: JSON values (nested, with big and non-finite numbers and lone surrogates), hostile literals
spliced into otherwise valid JSON (`1e400`, `NaN`, `Infinity`, a 5000-digit number, `"\\ud800"`, nesting
100k deep), events of every type codex-orch reads with any value in each field it reads, truncated
lines, bytes that are not UTF-8, and codex's error notices. 40 examples (about a minute and a half here).
"""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCodex, Repo, answer, examples, read_state, run_cli, write_plan
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from codex_orch.commands.report import report_json, write_report
from codex_orch.commands.views import build_view, view_to_json
from codex_orch.failures import FAILURES, FailureKind
from codex_orch.run_record import RunRecord

CLASSIFIED = {str(kind) for kind in FAILURES} - {str(FailureKind.INTERNAL)}
# Big literals are written as placeholders, expanded in the script file only: a failing example stays short.
BIG = {
    "@DIGITS@": "9" * 5000,
    "@DEEP_OBJECT@": "{" + '"a":{' * 200 + "}" * 201,
    "@DEEP@": "[" * 100_000 + "]" * 100_000,
}
HOSTILE_LITERALS = [
    "1e400",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "@DIGITS@",
    "-" + "1" * 30,
    '"\\ud800"',
    '"\\udfff tail"',
    '"nul \\u0000"',
    "[" * 70 + "]" * 70,
    "@DEEP_OBJECT@",
    "@DEEP@",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # nan and ±inf included: json.dumps spells them NaN and Infinity
    | st.text(st.characters(exclude_categories=()), max_size=12)  # lone surrogates included
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def spliced(draw: st.DrawFn, base: Any) -> str:
    """`base` as JSON with one of its values replaced by a hostile literal, or the literal alone."""
    literal = draw(st.sampled_from(HOSTILE_LITERALS))
    text = json.dumps(base)
    if draw(st.booleans()) or '"summary": "' not in text:
        return literal
    return text.replace('"summary": "', f'"summary": {literal}, "x": "', 1)


def event(kind: str, value: Any) -> dict[str, Any]:
    """An event of `kind` with `value` in (one of) the fields codex-orch reads."""
    item_fields = {"type": "agent_message", "text": value}
    return {
        "thread.started": {"thread_id": value},
        "item.started": {"item": {"type": "command_execution", "command": value}},
        "item.updated": {"item": value},
        "item.completed": {"item": item_fields},
        "item.completed/file_change": {"item": {"type": "file_change", "changes": value}},
        "item.completed/error": {"item": {"type": "error", "message": value}},
        "item.completed/type": {"item": {"type": value}},
        "turn.completed": {"usage": value},
        "turn.completed/count": {"usage": {"input_tokens": value}},
        "turn.failed": {"error": value},
        "error": {"message": value},
        "type": {},
    }[kind] | {"type": value if kind == "type" else kind.split("/", maxsplit=1)[0]}


EVENT_KINDS = [
    "thread.started",
    "item.started",
    "item.updated",
    "item.completed",
    "item.completed/file_change",
    "item.completed/error",
    "item.completed/type",
    "turn.completed",
    "turn.completed/count",
    "turn.failed",
    "error",
    "type",
]


@st.composite
def event_steps(draw: st.DrawFn) -> dict[str, Any]:
    choice = draw(st.integers(0, 4))
    if choice == 0:  # a field of any type, spelled by json.dumps (NaN, Infinity, \ud800 escapes)
        return {"raw": json.dumps(event(draw(st.sampled_from(EVENT_KINDS)), draw(json_values)))}
    if choice == 1:  # a hostile literal in a field
        line = json.dumps(event(draw(st.sampled_from(EVENT_KINDS)), "HOLE"))
        return {"raw": line.replace('"HOLE"', draw(st.sampled_from(HOSTILE_LITERALS)), 1)}
    if choice == 2:  # a truncated line
        line = json.dumps(event(draw(st.sampled_from(EVENT_KINDS)), draw(json_values)))
        return {"raw": line[: draw(st.integers(0, max(0, len(line) - 1)))]}
    if choice == 3:  # bytes that are not UTF-8, or are CESU-encoded surrogates
        data = draw(st.binary(max_size=40) | st.just(b'{"type":"error","message":"\xed\xa0\x80"}'))
        return {"raw_b64": base64.b64encode(data.replace(b"\n", b" ")).decode()}
    return {"error_event": draw(st.text(max_size=40))}


@st.composite
def answer_steps(draw: st.DrawFn) -> dict[str, Any]:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return {"answer": draw(json_values)}
    if choice == 1:
        return {"answer": draw(spliced(answer("s")))}
    if choice == 2:  # schema-valid in shape, hostile inside
        return {"answer": answer(draw(st.text(st.characters(exclude_categories=()), max_size=8)), risks=[])}
    return {"answer": answer("good")}


@st.composite
def turns(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    def one_turn() -> list[dict[str, Any]]:
        steps = draw(st.lists(event_steps() | answer_steps(), min_size=1, max_size=5))
        ending: list[dict[str, Any]] = draw(
            st.sampled_from([[], [], [{"exit": 0}], [{"exit": 1}], [{"fail": "stream closed"}]])
        )
        return steps + ending

    return [one_turn() for _ in range(draw(st.integers(1, 2)))]


RUN_IDS = itertools.count(1)


@pytest.mark.timeout(900)
@settings(
    max_examples=examples(12, 80),  # a run per example; it found a crash at 40 (its @example keeps that case)
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(script=turns())
@example(  # found by this test (session 4): a non-list `changes` crashed the report's failure digest
    script=[
        [
            {"raw": '{"thread_id": null, "type": "thread.started"}'},
            {"raw": '{"item": {"type": "file_change", "changes": 1e400}, "type": "item.completed"}'},
        ]
    ]
)
def test_no_agent_output_ends_a_run_in_an_internal_error(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, script: list[list[dict[str, Any]]]
) -> None:
    run_id = f"h{next(RUN_IDS)}"
    text = json.dumps({"default": script})
    for token, literal in BIG.items():
        text = text.replace(token, literal)
    fake_codex.script_path.write_text(text)
    repo.configure(limits={"timeout": 30, "idle_timeout": 15, "retries": 1, "transient_retries": 0})
    plan = write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": "p", "acceptance": "a"}])

    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress")
    assert result.code in (0, 1), result.err
    task = read_state(repo, run_id)["tasks"]["T0001"]
    assert task["status"] in ("succeeded", "failed")
    if task["status"] == "failed":
        assert task["error"]["kind"] in CLASSIFIED, task["error"]
    # what `report --json` and `status --json` run, in this process (two CLI starts per example saved)
    for data in (
        report_json(write_report(repo.path, run_id)[1]),
        view_to_json(build_view(RunRecord.from_state(read_state(repo, run_id)))),
    ):
        text = json.dumps(data, indent=2)
        loaded = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c)))
        assert loaded["tasks"][0]["status"] == task["status"]
