"""next_tasks proposed by agents: recorded always, followed only when asked, up to limits.max_tasks."""

from __future__ import annotations

from pathlib import Path

from conftest import FakeCodex, Repo, answer, read_state, run_cli, write_plan

PROPOSALS = [
    {"role": "tester", "prompt": "follow-up: test the parser", "acceptance": "tests pass"},
    {"role": "developer", "prompt": "follow-up: document the parser", "acceptance": "docs exist"},
    {"role": "implementer", "prompt": "follow-up: third idea", "acceptance": "done"},
]
TASK = {"role": "implementer", "prompt": "write the parser", "acceptance": "parser works", "blocked_by": []}


def script() -> dict:
    return {
        "rules": [
            {
                "match": "write the parser",
                "turns": [[{"write": "parser.py", "content": "x"}, {"answer": answer("parser", next_tasks=PROPOSALS)}]],
            },
            {
                "match": "follow-up: test the parser",
                "turns": [
                    [
                        {
                            "answer": answer(
                                "tested",
                                tests=[{"command": "pytest", "passed": True, "summary": "ok"}],
                                next_tasks=[{"role": "tester", "prompt": "follow-up: more tests", "acceptance": "x"}],
                            )
                        }
                    ]
                ],
            },
        ],
        "default": [[{"answer": answer("follow-up done")}]],
    }


def test_next_tasks_are_recorded_but_not_run_without_the_flag(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script(script())
    result = run_cli(repo.path, "run", "--plan-file", str(write_plan(tmp_path / "p.json", [TASK])), "--run-id", "n1")
    assert result.code == 0, result.err
    state = read_state(repo, "n1")
    assert state["task_order"] == ["T0001"]
    assert state["tasks"]["T0001"]["result"]["next_tasks"] == PROPOSALS
    assert len(fake_codex.calls()) == 1


def test_next_tasks_join_the_run_up_to_the_limit(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script(script())
    repo.configure(limits={"max_tasks": 3})
    result = run_cli(
        repo.path,
        "run",
        "--plan-file",
        str(write_plan(tmp_path / "p.json", [TASK])),
        "--run-id",
        "n2",
        "--follow-next-tasks",
    )
    assert result.code == 0, result.err
    state = read_state(repo, "n2")
    assert state["task_order"] == ["T0001", "T0001.1", "T0001.2"]
    added = state["tasks"]["T0001.1"]
    assert added["role"] == "tester" and added["blocked_by"] == ["T0001"] and added["proposed_by"] == "T0001"
    assert state["tasks"]["T0001.2"]["role"] == "implementer"  # "developer" went through the aliases
    assert all(t["status"] == "succeeded" for t in state["tasks"].values())
    notes = state["tasks"]["T0001"]["follow_ups"]
    assert notes[2] == {"id": "T0001.3", "skipped": "limits.max_tasks (3) reached"}
    assert state["tasks"]["T0001.1"]["follow_ups"] == [{"id": "T0001.1.1", "skipped": "limits.max_tasks (3) reached"}]
    prompts = [c["prompt"] for c in fake_codex.calls()]
    assert any("follow-up: test the parser" in p and "T0001 (implementer): succeeded" in p for p in prompts)
    assert len(prompts) == 3


def test_follow_ups_survive_resume(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    rules = script()
    failing = {"match": "follow-up: document", "turns": [[{"fail": "model down"}]]}
    fake_codex.script({**rules, "rules": [failing, *rules["rules"]]})
    repo.configure(limits={"max_tasks": 3})
    plan = write_plan(tmp_path / "p.json", [TASK])
    first = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "n3", "--follow-next-tasks")
    assert first.code == 1
    assert read_state(repo, "n3")["tasks"]["T0001.2"]["status"] == "failed"
    fake_codex.script(rules)  # the model is back
    second = run_cli(repo.path, "resume", "--run-id", "n3")
    assert second.code == 0, second.err
    state = read_state(repo, "n3")
    assert state["tasks"]["T0001.2"]["status"] == "succeeded"
    assert len(state["task_order"]) == 3
