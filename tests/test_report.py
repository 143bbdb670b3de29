"""`codex-orch report` and `validate` on a real run: markdown, JSON, recorded outcomes, exit codes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from conftest import FakeCodex, Repo, answer, job, read_state, run_cli, run_plan, writer

REVIEW = {
    "status": "approved",
    "summary": "looks right",
    "findings": [{"severity": "minor", "file": "a.txt", "line": 1, "message": "no trailing | pipe"}],
    "risks": ["only reviewed a.txt"],
    "decisions": [],
    "next_tasks": [],
}


def tables(md: str) -> list[list[dict[str, str]]]:
    """Every markdown table of the report, in order: a list of rows, each a dict by column header."""
    found: list[list[dict[str, str]]] = []
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            header = [c.strip() for c in line.strip("|").split(" | ")]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("| "):
                    break
                cells = [c.strip() for c in re.split(r"(?<!\\) \| ", row.strip().removeprefix("| ").removesuffix(" |"))]
                rows.append(dict(zip(header, cells, strict=True)))
            found.append(rows)
    return found


def untimed(out: str) -> list[str]:
    """The lines of `validate`'s output without the time each command took."""
    return [re.sub(r" \(\d+\.\ds\)", "", line) for line in out.splitlines()]


def mixed_run(repo: Repo, fake: FakeCodex, tmp_path: Path) -> dict:
    """A succeeds, B succeeds on its second attempt (a schema-invalid first answer), C fails, R reviews A."""
    rules = [
        {
            "match": "job A.",
            "turns": [
                [
                    {"write": "a.txt", "content": "a\n"},
                    {"usage": {"input_tokens": 1000, "cached_input_tokens": 400, "output_tokens": 50}},
                    {
                        "answer": answer(
                            "wrote a",
                            ["a.txt"],
                            [{"decision": "plain text", "rationale": "simplest"}],
                            risks=["a.txt has no tests"],
                        )
                    },
                ]
            ],
        },
        {
            "match": "job B.",
            "turns": [
                [{"write": "b.txt", "content": "b\n"}, {"answer": {"status": "done", "summary": 7}}],
                [{"answer": answer("wrote b", ["b.txt"])}],
            ],
        },
        {"match": "job C.", "turns": [[{"fail": "model exploded"}]]},
        {"match": "job R.", "turns": [[{"answer": REVIEW}]]},
    ]
    tasks = [job("A"), job("B"), job("C"), job("R", blocked_by=("A",), role="reviewer")]
    return run_plan(repo, fake, tmp_path, "rep", tasks, rules, expect=1)


def test_report_markdown_and_json(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    state = mixed_run(repo, fake_codex, tmp_path)
    result = run_cli(repo.path, "report", "--run-id", "rep")
    assert result.code == 0, result.err
    md = result.out
    assert (repo.path / ".orchestrator/runs/rep/report.md").read_text() == md
    assert md.startswith("# codex-orch run rep — partial\n")
    short = {t: (state["tasks"][t]["commit"] or "-")[:10] for t in "ABCR"}
    task_table = tables(md)[0]
    columns = ["task", "role", "agent", "status", "attempts", "failures", "time", "tokens in/out", "commit"]
    assert all(list(row) == columns for row in task_table)
    assert [tuple(row[c] for c in columns if c != "time") for row in task_table] == [
        ("A", "implementer", "codex", "succeeded", "1", "-", "1000/50", short["A"]),
        ("B", "implementer", "codex", "succeeded", "2", "schema_invalid", "200/40", short["B"]),
        ("C", "implementer", "codex", "failed", "1", "turn_failed", "0/0", "-"),
        ("R", "reviewer", "codex", "succeeded", "1", "-", "100/20", "-"),
    ]
    assert "- Error: turn_failed: model exploded" in md
    assert f"- Commit: `{state['tasks']['A']['commit']}` on `{state['branch']}`" in md
    assert "- Files changed: `a.txt`, `docs/ai/decisions.md`" in md
    [a_attempt] = tables(md)[1]  # A's attempts: one, every kind of token
    assert a_attempt.pop("time").endswith("s") and a_attempt == {
        "attempt": "1",
        "agent (model)": "codex",
        "thread": state["tasks"]["A"]["thread_id"][:13],
        "outcome": "ok",
        "input": "1000",
        "cached": "400",
        "cache write": "0",
        "output": "50",
        "reasoning": "5",
        "cost": "$0.0047",  # at gpt-5.5's price (codex's default model)
    }
    assert "- **plain text** — simplest" in md and "- a.txt has no tests" in md
    assert "- [minor] `a.txt:1` — no trailing \\| pipe" in md
    # A + two attempts of B + R (a failed turn reports no usage)
    assert "- Tokens: input 1300 (cached 430, cache write 0), output 110 (reasoning 20)" in md

    data = json.loads(run_cli(repo.path, "report", "--run-id", "rep", "--json").out)
    assert data["report_version"] == 1 and data["run_id"] == "rep" and data["status"] == "partial"
    tasks = {t["id"]: t for t in data["tasks"]}
    assert [a["failure"] for a in tasks["B"]["attempts"]] == ["schema_invalid", None]
    priced = [(a["agent"], a["model"], a["cost_usd"], a["cost_source"]) for a in tasks["B"]["attempts"]]
    assert priced == [("codex", None, 0.001055, "prices")] * 2
    assert tasks["B"]["failure_kinds"] == ["schema_invalid"]
    assert tasks["C"]["error"]["kind"] == "turn_failed" and tasks["C"]["commit"] is None
    assert tasks["A"]["risks"] == ["a.txt has no tests"] and tasks["A"]["decisions"][0]["decision"] == "plain text"
    assert tasks["R"]["findings"] == REVIEW["findings"]
    assert data["totals"]["attempts"] == 5 and data["totals"]["tasks"] == 4
    assert data["totals"]["usage"]["input_tokens"] == sum(t["usage"]["input_tokens"] for t in data["tasks"]) == 1300
    assert all(isinstance(t["duration"], float) for t in data["tasks"])
    unknown = run_cli(repo.path, "report", "--run-id", "../x")
    assert unknown.code == 2 and unknown.err.startswith("codex-orch: error: --run-id: '../x' must be")


def test_validate_runs_the_configured_commands_and_records_the_outcome(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    none = run_plan(repo, fake_codex, tmp_path, "v", [job("A")], [writer("A", "a.txt")])
    empty = run_cli(repo.path, "validate", "--run-id", "v")
    assert empty.code == 2 and "validate.commands is empty" in empty.err
    check = f"{sys.executable} -c \"import pathlib; assert pathlib.Path('a.txt').read_text() == 'A\\n'\""
    failing = [sys.executable, "-c", "import sys; print('lint says no'); sys.exit(3)"]
    repo.configure(validate={"commands": [{"name": "tests", "run": check}, {"name": "lint", "run": failing}]})
    result = run_cli(repo.path, "validate", "--run-id", "v")
    assert result.code == 1, result.err
    log = repo.path / ".orchestrator/runs/v/validate/1/lint.stdout.log"
    assert untimed(result.out) == [
        "passed tests",
        f"FAILED lint: exit 3; output in {log}",
        "    lint says no",
        "validation failed",
    ]
    recorded = read_state(repo, "v")["validation"]
    assert recorded["ok"] is False
    assert [(r["name"], r["returncode"], r["worktree"]) for r in recorded["results"]] == [
        ("tests", 0, none["worktree"]),
        ("lint", 3, none["worktree"]),
    ]
    assert Path(recorded["results"][1]["stdout_log"]).read_text() == "lint says no\n"

    repo.configure(validate={"commands": [{"name": "tests", "run": check}, {"name": "gone", "run": "no-such-tool"}]})
    missing = run_cli(repo.path, "validate", "--run-id", "v")
    assert missing.code == 1 and "FAILED gone: cannot start 'no-such-tool'" in missing.out

    repo.configure(validate={"commands": [{"name": "tests", "run": check, "timeout": 30}]})
    passed = run_cli(repo.path, "validate", "--run-id", "v")
    assert passed.code == 0 and passed.out.endswith("validation passed\n")
    assert read_state(repo, "v")["validation"]["ok"] is True
    assert "## Validation\n\n- passed" in run_cli(repo.path, "report", "--run-id", "v").out


def test_validate_per_task_runs_in_each_head_worktree(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.configure(workspace="per-task")
    tasks = [job("A"), job("B", blocked_by=("A",)), job("C")]
    state = run_plan(repo, fake_codex, tmp_path, "pv", tasks, [writer(t, f"{t.lower()}.txt") for t in "ABC"])
    listing = [sys.executable, "-c", "import os; print(sorted(f for f in os.listdir() if f.endswith('.txt')))"]
    repo.configure(validate={"commands": [{"name": "ls", "run": listing}]})
    result = run_cli(repo.path, "validate", "--run-id", "pv")
    assert result.code == 0, result.err
    assert untimed(result.out) == ["passed ls [B]", "passed ls [C]", "validation passed"]  # the heads, not A
    results = read_state(repo, "pv")["validation"]["results"]
    assert [r["worktree"] for r in results] == [state["tasks"]["B"]["worktree"], state["tasks"]["C"]["worktree"]]
    assert Path(results[0]["stdout_log"]).read_text() == "['a.txt', 'b.txt']\n"
