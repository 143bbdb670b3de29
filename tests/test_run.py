"""End to end through the CLI with the fake codex: runs, commits, state, retries, exit codes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import FakeCodex, Repo, alive, answer, marked, read_state, run_cli, start_cli, wait_marked, write_plan

THREE_TASKS = [
    {"role": "implementer", "prompt": "create a.txt", "acceptance": "a.txt exists", "blocked_by": []},
    {"role": "developer", "prompt": "create b.txt", "acceptance": "b.txt exists", "blocked_by": ["T0001"]},
    {"role": "implementer", "prompt": "create c.txt", "acceptance": "c.txt exists", "blocked_by": ["T0002"]},
]


def three_task_script() -> dict:
    rules = []
    for name in "abc":
        rules.append(
            {
                "match": f"create {name}.txt",
                "turns": [
                    [
                        {"write": f"{name}.txt", "content": f"{name}\n"},
                        {
                            "answer": answer(
                                f"created {name}.txt",
                                [f"{name}.txt"],
                                [{"decision": f"use {name}.txt", "rationale": "the plan says so"}],
                            )
                        },
                    ]
                ],
            }
        )
    return {"rules": rules}


def trailers(repo: Repo, sha: str) -> dict[str, str]:
    out = repo.git("log", "-1", "--format=%(trailers:only,unfold)", sha)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def test_three_task_plan_in_a_shared_worktree(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script(three_task_script())
    plan = write_plan(tmp_path / "plan.json", THREE_TASKS)
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "r1")
    assert result.code == 0, result.err + result.out

    state = read_state(repo, "r1")
    assert state["status"] == "succeeded"
    assert [state["tasks"][t]["status"] for t in state["task_order"]] == ["succeeded"] * 3
    branch = state["branch"]
    assert branch.startswith("orch/") and branch.endswith("/run-r1/workspace-shared")
    commits = repo.git("rev-list", "--reverse", f"main..{branch}").split()
    assert len(commits) == 3
    calls = fake_codex.calls()
    for task_id, sha, call in zip(["T0001", "T0002", "T0003"], commits, calls, strict=True):
        t = trailers(repo, sha)
        assert t["Orch-Run"] == "r1" and t["Orch-Task"] == task_id and t["Orch-Attempt"] == "1"
        assert t["Orch-Role"] == "implementer"
        assert t["Codex-Thread"] == call["thread_id"] == state["tasks"][task_id]["thread_id"]
        assert state["tasks"][task_id]["commit"] == sha
    assert repo.git("show", f"{branch}:c.txt") == "c"
    decisions = repo.git("show", f"{branch}:docs/ai/decisions.md")
    assert decisions.count("## ") == 3 and "**use b.txt** — the plan says so" in decisions
    assert "docs/ai/decisions.md" in repo.git("show", "--name-only", "--format=", commits[0])

    # every attempt folder is complete
    for task_id in ("T0001", "T0002", "T0003"):
        folder = repo.path / ".orchestrator/runs/r1/tasks" / task_id / "attempt-1"
        assert {p.name for p in folder.iterdir()} >= {
            "prompt.md",
            "events.jsonl",
            "stderr.log",
            "final.json",
            "validation.txt",
        }
        assert (folder / "validation.txt").read_text() == "valid\n"
        assert json.loads((folder / "final.json").read_text())["status"] == "done"
        events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
        assert events[0]["type"] == "thread.started" and events[-1]["type"] == "turn.completed"
    usage = state["tasks"]["T0001"]["attempts"][0]["usage"]
    assert set(usage) == {
        "input_tokens",
        "cached_input_tokens",
        "cache_write_input_tokens",
        "output_tokens",
        "reasoning_output_tokens",
    }
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0

    # the prompt reached the agent on stdin, rendered with the plan's context
    assert "create b.txt" in calls[1]["prompt"] and "b.txt exists" in calls[1]["prompt"]
    assert "T0001 (implementer): succeeded" in calls[1]["prompt"]  # the dependency's result
    assert (
        calls[0]["sandbox"] == "workspace-write" and calls[0]["output_schema_json"]["title"] == "codex-orch task result"
    )
    # the user's checkout is untouched
    assert repo.git("rev-parse", "HEAD") == repo.git("rev-parse", "main")
    assert not (repo.path / "a.txt").exists()


def test_per_task_worktrees_branch_from_their_dependencies(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script(three_task_script())
    repo.configure(workspace="per-task")
    tasks = [dict(t) for t in THREE_TASKS]
    tasks.append(
        {"id": "J", "role": "implementer", "prompt": "create d.txt", "acceptance": "", "blocked_by": ["T0001"]}
    )
    tasks.append(
        {"id": "K", "role": "reviewer", "prompt": "review all", "acceptance": "", "blocked_by": ["T0003", "J"]}
    )
    script = three_task_script()
    script["rules"].append(
        {"match": "create d.txt", "turns": [[{"write": "d.txt", "content": "d\n"}, {"answer": answer("d")}]]}
    )
    script["rules"].append(
        {
            "match": "review all",
            "turns": [
                [
                    {
                        "answer": {
                            "status": "approved",
                            "summary": "fine",
                            "findings": [],
                            "risks": [],
                            "decisions": [],
                            "next_tasks": [],
                        }
                    }
                ]
            ],
        }
    )
    fake_codex.script(script)
    plan = write_plan(tmp_path / "plan.json", tasks)
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "r2")
    assert result.code == 0, result.err + result.out
    state = read_state(repo, "r2")
    branches = {t: state["tasks"][t]["branch"] for t in state["task_order"]}
    assert len(set(branches.values())) == 5
    assert branches["T0002"].endswith("/run-r2/T0002-implementer")

    def files(branch: str) -> set[str]:
        return set(repo.git("ls-tree", "--name-only", branch).split())

    assert files(branches["T0001"]) >= {"a.txt"} and "b.txt" not in files(branches["T0001"])
    assert files(branches["T0003"]) >= {"a.txt", "b.txt", "c.txt"}
    assert "b.txt" not in files(branches["J"]) and "d.txt" in files(branches["J"])
    assert files(branches["K"]) >= {"a.txt", "b.txt", "c.txt", "d.txt"}  # both dependencies merged
    assert state["tasks"]["K"]["commit"] is None  # a reviewer changes nothing: no commit, recorded
    assert (
        repo.git("merge-base", "--is-ancestor", state["tasks"]["T0001"]["commit"], branches["T0002"], check=False) == ""
    )
    worktrees = repo.worktrees()
    assert str(repo.path / ".orchestrator/worktrees/r2/T0003") in worktrees


def test_schema_invalid_answer_is_retried_on_the_same_thread(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script(
        {
            "default": [
                [{"write": "x.txt", "content": "x"}, {"answer": {"status": "done", "summary": 42}}],
                [{"answer": answer("fixed", ["x.txt"])}],
            ]
        }
    )
    plan = write_plan(tmp_path / "plan.json", [THREE_TASKS[0]])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "r3")
    assert result.code == 0, result.err
    calls = fake_codex.calls()
    assert len(calls) == 2 and calls[1]["resume"] and calls[1]["thread_id"] == calls[0]["thread_id"]
    assert "summary: 42 is not of type 'string'" in calls[1]["prompt"]
    assert "files_changed: a required property is missing" in calls[1]["prompt"]
    attempts = repo.path / ".orchestrator/runs/r3/tasks/T0001"
    assert (attempts / "attempt-1/prompt.md").read_text() == calls[0]["prompt"]  # the task's prompt is untouched
    assert (attempts / "attempt-2/prompt.md").read_text() == calls[1]["prompt"]
    assert (attempts / "attempt-1/validation.txt").read_text().startswith("schema_invalid\n")
    state = read_state(repo, "r3")
    task = state["tasks"]["T0001"]
    assert [a["failure"] for a in task["attempts"]] == ["schema_invalid", None]
    branch = state["branch"]
    assert trailers(repo, branch)["Orch-Attempt"] == "2"
    assert trailers(repo, branch)["Codex-Thread"] == calls[0]["thread_id"]
    # usage after resume is cumulative in codex: the second attempt's own share is recorded
    first, second = (a["usage"]["input_tokens"] for a in task["attempts"])
    assert task["attempts"][1]["thread_usage"]["input_tokens"] == first + second


def test_past_the_retry_limit_the_task_fails_schema_invalid(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script({"default": [[{"answer": "not json at all"}], [{"answer": {"status": "done"}}]]})
    repo.configure(limits={"retries": 2})
    plan = write_plan(tmp_path / "plan.json", [THREE_TASKS[0], THREE_TASKS[1]])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "r4")
    assert result.code == 1
    state = read_state(repo, "r4")
    task = state["tasks"]["T0001"]
    assert task["status"] == "failed" and task["error"]["kind"] == "schema_invalid"
    assert [a["failure"] for a in task["attempts"]] == ["not_json", "schema_invalid", "schema_invalid"]
    assert state["tasks"]["T0002"]["status"] == "blocked"
    assert state["status"] == "failed"
    assert len(fake_codex.calls()) == 3


def test_task_command_runs_one_task(repo: Repo, fake_codex: FakeCodex) -> None:
    fake_codex.script({"default": [[{"write": "v.txt", "content": "v"}, {"answer": answer("added v")}]]})
    result = run_cli(repo.path, "task", "--role", "dev", "--run-id", "t1", "add a v file")
    assert result.code == 0, result.err
    state = read_state(repo, "t1")
    assert state["tasks"]["T0001"]["role"] == "implementer" and state["tasks"]["T0001"]["status"] == "succeeded"
    assert "add a v file" in fake_codex.calls()[0]["prompt"]


def test_status_table_and_json(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    fake_codex.script(three_task_script())
    plan = write_plan(tmp_path / "plan.json", THREE_TASKS[:1])
    assert run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "s1").code == 0
    table = run_cli(repo.path, "status", "--run-id", "s1")
    assert table.code == 0 and "T0001" in table.out and "succeeded" in table.out
    data = json.loads(run_cli(repo.path, "status", "--json").out)
    assert data["report_version"] == 1 and data["run_id"] == "s1"
    assert data["tasks"][0]["status"] == "succeeded" and data["tasks"][0]["commit"]
    missing = run_cli(repo.path, "status", "--run-id", "nope")
    assert missing.code == 2 and "no run 'nope'" in missing.err


def test_agent_reported_failure_fails_the_task_but_keeps_its_work(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    fake_codex.script(
        {
            "default": [
                [{"write": "half.txt", "content": "half"}, {"answer": answer("could not finish", status="blocked")}]
            ]
        }
    )
    plan = write_plan(tmp_path / "plan.json", THREE_TASKS[:1])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "b1")
    assert result.code == 1
    task = read_state(repo, "b1")["tasks"]["T0001"]
    assert task["status"] == "failed" and task["error"]["kind"] == "agent_reported"
    assert task["commit"] and "half.txt" in task["files_changed"]


def test_a_hanging_agent_is_stopped_by_the_idle_timeout(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    children = tmp_path / "children.txt"
    repo.configure(
        codex=fake_codex.config(FAKE_CODEX_CHILD_PIDS=str(children)), limits={"idle_timeout": 1, "stop_grace": 0.5}
    )
    fake_codex.script({"default": [[{"spawn_child": True}, {"reasoning": "thinking"}, {"hang": True}]]})
    plan = write_plan(tmp_path / "plan.json", THREE_TASKS[:1])
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "idle")
    assert result.code == 1
    task = read_state(repo, "idle")["tasks"]["T0001"]
    assert task["error"]["kind"] == "idle"
    [agent] = [c["pid"] for c in fake_codex.calls()]
    assert task["attempts"][0]["stop_steps"][0] == f"sent SIGINT to process group {agent}"
    assert not [p for p in [agent, *marked(children)] if alive(p)]
    # what codex-orch did is in the run's log (it went nowhere before)
    log = (repo.path / ".orchestrator" / "runs" / "idle" / "codex-orch.log").read_text()
    assert f"codex_orch.proc.stream INFO: pid {agent}: sent SIGINT to process group {agent}\n" in log


def test_an_agent_ignoring_sigterm_is_killed(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """Ctrl-C once the agent ignores SIGINT and SIGTERM (its marker comes after): INT, TERM, then KILL.
    (A wall-clock limit could fire before the agent had its handlers in place.)"""
    children, ready = tmp_path / "children.txt", tmp_path / "ready"
    repo.configure(codex=fake_codex.config(FAKE_CODEX_CHILD_PIDS=str(children)), limits={"stop_grace": 0.5})
    turn = [{"ignore_signals": True}, {"spawn_child": True}, {"marker": str(ready)}, {"hang": True}]
    fake_codex.script({"default": [turn]})
    plan = write_plan(tmp_path / "plan.json", THREE_TASKS[:1])
    proc = start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "term", "--no-progress")
    try:
        wait_marked(ready, proc=proc)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    task = read_state(repo, "term")["tasks"]["T0001"]
    assert task["status"] == "interrupted"
    steps = task["attempts"][0]["stop_steps"]
    assert [s.split()[1] for s in steps[:3]] == ["SIGINT", "SIGTERM", "SIGKILL"]
    pids = [c["pid"] for c in fake_codex.calls()] + marked(children)
    assert not [p for p in pids if alive(p)]


def two_packs_over_the_limit(repo: Repo) -> None:
    """A repository whose next `git maintenance run --auto` repacks, in the foreground."""
    repo.git("gc", "-q")
    repo.write("second.txt", "more\n")
    repo.git("add", "second.txt")
    repo.git("commit", "-q", "-m", "second")
    repo.git("repack", "-q")  # a second pack: over the limit below, so git's auto upkeep repacks
    repo.git("config", "gc.autoPackLimit", "1")
    repo.git("config", "gc.autoDetach", "false")  # in the foreground, so the test can see it done
    assert "packs: 2" in repo.git("count-objects", "-v")


def object_counts(repo: Repo) -> dict[str, str]:
    return dict(line.split(": ") for line in repo.git("count-objects", "-v").splitlines())


@pytest.mark.parametrize("user_setting", [None, "false"])
def test_git_upkeep_runs_once_the_run_is_done(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, user_setting: str | None
) -> None:
    """codex-orch's commits skip git's per-commit `maintenance run --auto`; the run does it at its end,
    unless the repository turned it off (maintenance.auto=false), as git itself would."""
    if user_setting is not None:
        repo.git("config", "maintenance.auto", user_setting)
    two_packs_over_the_limit(repo)
    fake_codex.script(three_task_script())
    plan = write_plan(tmp_path / "plan.json", THREE_TASKS)

    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "r1")

    assert result.code == 0, result.err
    assert len(repo.git("rev-list", f"main..{read_state(repo, 'r1')['branch']}").split()) == 3
    counts = object_counts(repo)
    if user_setting == "false":
        assert counts["packs"] == "2" and counts["count"] != "0"  # left alone, as the user asked
    else:
        assert counts["packs"] == "1" and counts["count"] == "0"  # everything, the run's commits too, packed


def test_no_git_upkeep_after_a_run_that_committed_nothing(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """Like git, which runs its upkeep after a commit: a run whose agents changed nothing leaves it be."""
    two_packs_over_the_limit(repo)
    fake_codex.script({"default": [[{"answer": answer("nothing to change")}]]})
    plan = write_plan(tmp_path / "plan.json", THREE_TASKS[:1])

    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "r1")

    assert result.code == 0, result.err
    assert read_state(repo, "r1")["tasks"]["T0001"]["commit"] is None
    assert object_counts(repo)["packs"] == "2"
