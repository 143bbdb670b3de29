"""The conflict forecast in a landing run: two tasks editing the same lines, the conflict predicted after
a commit and shown by `status`, and a third task whose paths overlap it held until one of them lands.
Every wait is on a journal record, never on time."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FakeCodex, Repo, answer, read_state, run_cli, start_cli, wait_for, write_plan
from lifecycle_helpers import start_with

from codex_orch.engine.forecast import FileIndex


def _wait_for_record(journal: Path, kind: str, task: str) -> str:
    """A shell loop the fake agent runs: wait until the run's journal holds this record (bounded)."""
    needle = f'"type":"{kind}","task":"{task}"'
    return f"for i in $(seq 1 1200); do grep -qF '{needle}' {journal} && break; sleep 0.05; done"


def _journal(repo: Repo, run_id: str) -> list[dict]:
    path = repo.path / ".orchestrator" / "runs" / run_id / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _seq(records: list[dict], kind: str, task: str, **match: object) -> int:
    return next(
        r["seq"]
        for r in records
        if r["type"] == kind and r.get("task") == task and all(r.get(k) == v for k, v in match.items())
    )


def test_a_predicted_conflict_is_shown_and_holds_a_task_on_its_files_until_one_side_lands(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    start_with(repo, "f.txt", "line\n", "landing")
    journal = repo.path / ".orchestrator" / "runs" / "fc" / "journal.jsonl"
    go = tmp_path / "go"
    fake_codex.script(
        {
            "rules": [
                {  # A commits after B landed: its landing conflicts, and its second turn resolves it
                    "match": "job A.",
                    "turns": [
                        [
                            {"shell": _wait_for_record(journal, "task.landed", "B")},
                            {"write": "f.txt", "content": "from A\n"},
                            {"answer": answer("A", ["f.txt"])},
                        ],
                        [
                            {"shell": f"for i in $(seq 1 1200); do [ -e {go} ] && break; sleep 0.05; done"},
                            {"write": "f.txt", "content": "from A and B\n"},
                            {"answer": answer("A resolved", ["f.txt"])},
                        ],
                    ],
                },
                {"match": "job B.", "turns": [[{"write": "f.txt", "content": "from B\n"}, {"answer": answer("B")}]]},
                {  # D ends once A's conflict is predicted: then C, which waits for D, is ready
                    "match": "job D.",
                    "turns": [
                        [
                            {"shell": _wait_for_record(journal, "task.forecast", "A")},
                            {"write": "d.txt", "content": "D\n"},
                            {"answer": answer("D", ["d.txt"])},
                        ]
                    ],
                },
                {"match": "job C.", "turns": [[{"write": "f.txt", "content": "from C\n"}, {"answer": answer("C")}]]},
            ]
        }
    )
    tasks = [
        {"id": "A", "role": "implementer", "prompt": "job A.", "acceptance": "", "blocked_by": []},
        {"id": "B", "role": "implementer", "prompt": "job B.", "acceptance": "", "blocked_by": []},
        {"id": "D", "role": "implementer", "prompt": "job D.", "acceptance": "", "blocked_by": []},
        {
            "id": "C",
            "role": "implementer",
            "prompt": "job C.",
            "acceptance": "",
            "blocked_by": ["D"],
            "paths": ["f.txt"],
        },
    ]
    plan = write_plan(tmp_path / "plan.json", tasks)
    proc = start_cli(
        repo.path, "run", "--plan-file", str(plan), "--run-id", "fc", "--no-progress", "--max-workers", "4"
    )
    try:
        wait_for(lambda: journal.is_file() and '"type":"task.held","task":"C"' in journal.read_text(), "C held", 90)
        status = run_cli(repo.path, "status", "--run-id", "fc")
        assert status.code == 0, status.err
        rows = {line.split()[0]: line for line in status.out.splitlines()[2:] if line.strip()}
        assert "conflict predicted with B: f.txt" in rows["A"]
        assert "conflict predicted with A: f.txt" in rows["B"]
        assert "held for A / B's conflict on f.txt" in rows["C"] and "pending" in rows["C"]
        view = json.loads(run_cli(repo.path, "status", "--run-id", "fc", "--json").out)
        by_id = {t["id"]: t for t in view["tasks"]}
        assert by_id["A"]["forecast"] == [{"with": "B", "files": ["f.txt"]}]
        assert by_id["C"]["held"] == {"by": ["A", "B"], "files": ["f.txt"]} and by_id["C"]["status"] == "pending"
        go.write_text("")
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    records = _journal(repo, "fc")
    b_landed = _seq(records, "task.landed", "B")
    predicted = _seq(records, "task.forecast", "A", conflicts=[{"with": "B", "files": ["f.txt"]}])
    held = _seq(records, "task.held", "C")
    a_landed = _seq(records, "task.landed", "A")
    c_started = _seq(records, "task.status", "C", status="running")
    assert b_landed < predicted < held < a_landed < c_started
    state = read_state(repo, "fc")
    assert all(t["status"] == "succeeded" for t in state["tasks"].values())
    assert repo.git("show", f"{state['branch']}:f.txt") == "from C"


def test_per_task_branches_editing_the_same_lines_are_forecast_on_both(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    start_with(repo, "f.txt", "line\n", "per-task")
    fake_codex.script(
        {
            "rules": [
                {"match": "job A.", "turns": [[{"write": "f.txt", "content": "A\n"}, {"answer": answer("A")}]]},
                {"match": "job B.", "turns": [[{"write": "f.txt", "content": "B\n"}, {"answer": answer("B")}]]},
                {"match": "job C.", "turns": [[{"write": "c.txt", "content": "C\n"}, {"answer": answer("C")}]]},
            ]
        }
    )
    tasks = [{"id": t, "role": "implementer", "prompt": f"job {t}.", "acceptance": "", "blocked_by": []} for t in "ABC"]
    plan = write_plan(tmp_path / "plan.json", tasks)
    result = run_cli(
        repo.path, "run", "--plan-file", str(plan), "--run-id", "pt", "--no-progress", "--max-workers", "3"
    )
    assert result.code == 0, result.err
    # whichever committed second saw the other's commit (both, when they committed at once); shown on both
    state = read_state(repo, "pt")
    recorded = {tid: t["forecast"] for tid, t in state["tasks"].items() if t.get("forecast")}
    assert recorded and set(recorded) <= {"A", "B"}
    for tid, conflicts in recorded.items():
        assert conflicts == [{"with": "B" if tid == "A" else "A", "files": ["f.txt"]}]
    view = json.loads(run_cli(repo.path, "status", "--run-id", "pt", "--json").out)
    shown = {t["id"]: t["forecast"] for t in view["tasks"]}
    assert shown["A"] == [{"with": "B", "files": ["f.txt"]}] and shown["B"] == [{"with": "A", "files": ["f.txt"]}]
    assert shown["C"] == []
    assert "conflict predicted with" in run_cli(repo.path, "report", "--run-id", "pt").out


def test_changes_meet_on_a_common_file_or_where_one_has_a_file_and_the_other_a_folder() -> None:
    """The landing forecast's first filter: only changes that meet are merged to look for a conflict."""

    def touching(mine: list[str] | None, theirs: list[str] | None) -> bool:
        index = FileIndex()
        index.add("other", theirs)
        index.add("unrelated", ["zzz/unrelated.txt"])
        return index.meeting(mine) - {"unrelated"} == {"other"}

    assert touching(["a.txt", "b.txt"], ["b.txt"])
    assert touching(["a"], ["a/b.txt"]) and touching(["a/b.txt"], ["a"])
    assert touching(["x/a"], ["x/a/b/c.txt"]) and touching(["x/a/b/c.txt"], ["x/a"])
    assert not touching(["a/b.txt"], ["a/c.txt"])
    assert not touching(["ab"], ["a/b"]) and not touching(["a/b"], ["ab"])
    assert not touching([], ["x"]) and not touching(["x"], [])
    assert touching(None, ["x"]) and touching(["x"], None)  # a run recorded before files were

    index = FileIndex()  # a task that commits again (a landing conflict resolved) meets by its new files only
    index.add("T", ["a/old.txt"])
    index.add("T", ["b.txt"])
    assert index.meeting(["a/old.txt"]) == index.meeting(["a"]) == set() and index.meeting(["b.txt"]) == {"T"}
