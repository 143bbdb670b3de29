"""Landing runs (the default): each task in a worktree of its own, its commit landed on the run branch.

Parallelism is shown by a handshake, never by the clock: each agent says it started, then waits until
every agent of the batch has said so, which can only happen if they run at the same time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCodex, Repo, answer, read_state, run_cli, write_plan

RESOLVE = "sed -i '/^<<<<<<< \\|^=======$\\|^>>>>>>> /d' {file}"  # keep both sides of every conflict


def task(tid: str, deps: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "role": "implementer",
        "prompt": f"job {tid}.",
        "acceptance": "",
        "blocked_by": list(deps),
        **extra,
    }


def landing(repo: Repo, **limits: Any) -> None:
    repo.configure(workspace="landing", limits={"max_workers": 4, **limits})


def run(repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str, tasks: list[dict[str, Any]], rules: list[Any]) -> Any:
    fake.script({"rules": rules})
    plan = write_plan(tmp_path / f"{run_id}.json", tasks)
    return run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress")


def together(tmp_path: Path, names: list[str], me: str) -> dict[str, str]:
    """A shell step: say `me` started, then wait until all of `names` have (at most 60 s, then fail)."""
    flags = tmp_path / "started"
    test = " -a ".join(f"-f {flags}/{n}" for n in names)
    return {
        "shell": f"mkdir -p {flags} && touch {flags}/{me} && "
        f"for i in $(seq 3000); do [ {test} ] && exit 0; sleep 0.02; done; exit 1"
    }


def test_tasks_that_declare_no_paths_run_side_by_side_and_each_lands_once(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    landing(repo)
    names = ["A", "B", "C", "D"]
    rules = [
        {
            "match": f"job {n}.",
            "turns": [
                [
                    together(tmp_path, names, n),
                    {"write": f"{n}.txt", "content": f"{n}\n"},
                    {"answer": answer(n, [f"{n}.txt"], decisions=[{"decision": f"d{n}", "rationale": "r"}])},
                ]
            ],
        }
        for n in names
    ]
    result = run(repo, fake_codex, tmp_path, "par", [task(n) for n in names], rules)
    assert result.code == 0, result.err
    state = read_state(repo, "par")
    branch = state["branch"]
    log = repo.git("log", "--format=%H %(trailers:key=Orch-Task,valueonly,separator=)", f"main..{branch}").splitlines()
    landed = [line.split()[1] for line in log]
    assert sorted(landed) == names  # one commit per task, on the run branch
    assert len(repo.git("rev-list", "--merges", f"main..{branch}").split()) == 0  # linear
    for n in names:
        assert repo.git("show", f"{branch}:{n}.txt") == n
        assert state["tasks"][n]["commit"] in [line.split()[0] for line in log]
        assert state["tasks"][n]["worktree"] != state["tasks"]["A"]["worktree"] or n == "A"
    decisions = repo.git("show", f"{branch}:docs/ai/decisions.md")
    assert all(f"**d{n}**" in decisions for n in names)  # appended at landing: no conflict over them


def test_a_dependency_lands_before_its_dependent_starts_from_the_tip(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    landing(repo)
    rules = [
        {"match": "job A.", "turns": [[{"write": "a.txt", "content": "A\n"}, {"answer": answer("A", ["a.txt"])}]]},
        {"match": "job B.", "turns": [[{"shell": "cat a.txt > saw.txt"}, {"answer": answer("B", ["saw.txt"])}]]},
    ]
    result = run(repo, fake_codex, tmp_path, "dep", [task("A"), task("B", ("A",))], rules)
    assert result.code == 0, result.err
    branch = read_state(repo, "dep")["branch"]
    assert repo.git("show", f"{branch}:saw.txt") == "A"
    order = repo.git("log", "--reverse", "--format=%(trailers:key=Orch-Task,valueonly,separator=)", f"main..{branch}")
    assert order.split() == ["A", "B"]


def test_a_landing_conflict_goes_back_to_the_same_agent_and_nothing_is_lost(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    landing(repo)
    repo.write("shared.txt", "top\n")
    repo.git("add", "shared.txt")
    repo.git("commit", "-qm", "shared file")
    names = ["A", "B", "C"]
    rules = [
        {
            "match": f"job {n}.",
            "turns": [
                [
                    together(tmp_path, names, n),
                    {"shell": f"echo 'line from {n}' >> shared.txt"},
                    {"answer": answer(n, ["shared.txt"])},
                ],
                [{"shell": RESOLVE.format(file="shared.txt")}, {"answer": answer(f"{n} resolved", ["shared.txt"])}],
            ],
        }
        for n in names
    ]
    result = run(repo, fake_codex, tmp_path, "con", [task(n) for n in names], rules)
    assert result.code == 0, result.err
    state = read_state(repo, "con")
    final = repo.git("show", f"{state['branch']}:shared.txt").splitlines()
    assert sorted(final) == ["line from A", "line from B", "line from C", "top"]  # every line kept
    rebased = [n for n in names if len(state["tasks"][n]["attempts"]) > 1]
    assert rebased, "with three appends to one file, later landings conflict"
    for n in rebased:
        attempts = state["tasks"][n]["attempts"]
        assert attempts[1]["resumed_thread"] == attempts[0]["thread_id"]  # the same agent thread
        prompt = (repo.path / f".orchestrator/runs/con/tasks/{n}/attempt-2/prompt.md").read_text()
        assert "shared.txt" in prompt and "conflict markers" in prompt


def test_an_agent_that_leaves_the_conflict_fails_as_conflict_with_nothing_landed(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    landing(repo, conflict_rounds=1)
    repo.write("shared.txt", "top\n")
    repo.git("add", "shared.txt")
    repo.git("commit", "-qm", "shared file")
    rules = [
        {
            "match": f"job {n}.",
            "turns": [
                [
                    together(tmp_path, ["A", "B"], n),
                    {"shell": f"echo {n} >> shared.txt"},
                    {"answer": answer(n, ["shared.txt"])},
                ]
            ],
        }
        for n in ("A", "B")
    ]
    result = run(repo, fake_codex, tmp_path, "stuck", [task("A"), task("B")], rules)
    assert result.code == 1
    state = read_state(repo, "stuck")
    statuses = sorted(state["tasks"][n]["status"] for n in ("A", "B"))
    assert statuses == ["failed", "succeeded"]
    loser = next(n for n in ("A", "B") if state["tasks"][n]["status"] == "failed")
    assert state["tasks"][loser]["error"]["kind"] == "conflict"
    final = repo.git("show", f"{state['branch']}:shared.txt")
    assert "<<<<<<<" not in final and final.count("\n") == 1  # top + the winner's line, no markers landed


def test_declared_overlapping_paths_keep_landing_tasks_apart(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    landing(repo)
    order = tmp_path / "order.txt"
    rules = [
        {
            "match": f"job {n}.",
            "turns": [
                [
                    {"shell": f"echo start-{n} >> {order} && sleep 0.3 && echo end-{n} >> {order}"},
                    {"write": f"src/{n}.txt", "content": n},
                    {"answer": answer(n, [f"src/{n}.txt"])},
                ]
            ],
        }
        for n in ("A", "B")
    ]
    tasks = [task("A", paths=["src/**"]), task("B", paths=["src/b/**"])]
    result = run(repo, fake_codex, tmp_path, "paths", tasks, rules)
    assert result.code == 0, result.err
    lines = order.read_text().split()
    assert lines in (["start-A", "end-A", "start-B", "end-B"], ["start-B", "end-B", "start-A", "end-A"])


def test_a_landing_run_merges_validates_and_cleans(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    landing(repo)
    repo.configure(validate={"commands": [{"name": "both", "run": "test -f A.txt -a -f B.txt"}]})
    rules = [
        {"match": f"job {n}.", "turns": [[{"write": f"{n}.txt", "content": n}, {"answer": answer(n, [f"{n}.txt"])}]]}
        for n in ("A", "B")
    ]
    assert run(repo, fake_codex, tmp_path, "life", [task("A"), task("B")], rules).code == 0
    validated = run_cli(repo.path, "validate", "--run-id", "life", "--json")
    assert validated.code == 0 and json.loads(validated.out)["ok"] is True
    assert run_cli(repo.path, "merge", "--run-id", "life").code == 0
    assert (repo.path / "A.txt").read_text() == "A" and (repo.path / "B.txt").read_text() == "B"
    cleaned = run_cli(repo.path, "clean", "--run-id", "life")
    assert cleaned.code == 0, cleaned.err
    assert repo.git("branch", "--list", "orch/*") == ""
    assert not (repo.path / ".orchestrator" / "worktrees" / "life").exists()


def test_a_landed_tasks_worktree_is_removed_and_a_failed_ones_kept(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A landing run keeps a worktree only while its task may still need it: its work is on the run branch."""
    landing(repo)
    rules = [
        {"match": "job A.", "turns": [[{"write": "A.txt", "content": "A"}, {"answer": answer("A", ["A.txt"])}]]},
        {"match": "job B.", "turns": [[{"write": "B.txt", "content": "B"}, {"answer": answer("B", status="failed")}]]},
    ]
    assert run(repo, fake_codex, tmp_path, "tidy", [task("A"), task("B")], rules).code == 1
    tasks = read_state(repo, "tidy")["tasks"]
    assert tasks["A"]["status"] == "succeeded" and tasks["B"]["status"] == "failed"
    assert not Path(tasks["A"]["worktree"]).exists() and tasks["A"]["worktree"] not in repo.worktrees()
    assert repo.git("show", f"{tasks['A']['branch']}:A.txt") == "A"  # its commit stays on its branch
    assert Path(tasks["B"]["worktree"]).is_dir() and tasks["B"]["worktree"] in repo.worktrees()
    cleaned = run_cli(repo.path, "clean", "--run-id", "tidy", "--force")
    assert cleaned.code == 0, cleaned.err
    assert repo.worktrees() == [str(repo.path)]


@pytest.mark.parametrize("legacy", [True, False])
def test_the_originals_use_single_workspace_still_chooses_the_mode(repo: Repo, legacy: bool) -> None:
    repo.configure(use_single_workspace=legacy, workspace=None)
    config = repo.path / ".orchestrator" / "orchestrator.yaml"
    config.write_text(config.read_text().replace("workspace: null\n", ""))
    from codex_orch.config import load_config
    from codex_orch.layout import Layout

    assert load_config(Layout(repo.path)).workspace_mode == ("shared" if legacy else "per-task")
    config.write_text(config.read_text() + "workspace: landing\n")
    result = run_cli(repo.path, "runs")
    assert result.code == 2 and "use_single_workspace" in result.err and "workspace says 'landing'" in result.err
