"""A hostile agent with a shell in its worktree: codex-orch never runs, follows or moves what it controls.

Every agent here is the fake codex doing, in its own shell, what a careful attacker would (see
docs/security.md): the first turn attacks and answers; where the task can go on, the second turn
(the retry on the same thread) behaves.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCodex, Repo, answer, read_state, run_cli, write_plan

PLAN = [
    {"id": "T1", "role": "implementer", "prompt": "job T1.", "acceptance": "", "blocked_by": []},
    {"id": "T2", "role": "implementer", "prompt": "job T2.", "acceptance": "", "blocked_by": ["T1"]},
]


def _writes(task: str, name: str) -> list[dict[str, Any]]:
    return [{"write": name, "content": f"{task}\n"}, {"answer": answer(task, [name])}]


def _run(repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str, rules: list[Any], plan: Any = None) -> Any:
    fake.script({"rules": rules})
    path = write_plan(tmp_path / f"{run_id}.json", plan or PLAN)
    return run_cli(repo.path, "run", "--plan-file", str(path), "--run-id", run_id, "--no-progress")


def _attempts(repo: Repo, run_id: str, task: str) -> list[dict[str, Any]]:
    return list(read_state(repo, run_id)["tasks"][task]["attempts"])


def _marker_script(path: Path, marker: Path) -> Path:
    path.write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    path.chmod(0o755)
    return path


# --- files codex-orch writes are written without following links -----------------------------------
@pytest.mark.parametrize("link", ["docs/ai/decisions.md", "docs"])
def test_decisions_are_never_written_through_a_link(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / ("victim.md" if link.endswith(".md") else "")
    (outside / "victim.md").write_text("precious\n")
    (outside / "ai").mkdir()
    plant = f"mkdir -p $(dirname {link}) && rm -rf {link} && ln -s {target if link.endswith('.md') else outside} {link}"
    decisions = [{"decision": "EVIL TEXT", "rationale": "x"}]
    rules = [{"match": "job T1.", "turns": [[{"shell": plant}, {"answer": answer("d", decisions=decisions)}]]}]
    result = _run(repo, fake_codex, tmp_path, "s", rules, PLAN[:1])
    assert result.code == 1, result.err
    assert (outside / "victim.md").read_text() == "precious\n"
    assert not (outside / "ai" / "decisions.md").exists()
    error = read_state(repo, "s")["tasks"]["T1"]["error"]
    assert error["kind"] == "guardrail" and "symbolic link" in error["message"] + "a part of it is not a folder"


def test_decisions_file_made_a_folder_fails_that_task_only(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    decisions = [{"decision": "d", "rationale": "r"}]
    plan = [dict(PLAN[0]), {**PLAN[1], "blocked_by": []}]
    rules = [
        {
            "match": "job T1.",
            "turns": [[{"shell": "mkdir -p docs/ai/decisions.md"}, {"answer": answer("d", decisions=decisions)}]],
        },
        {"match": "job T2.", "turns": [_writes("T2", "b.txt")]},
    ]
    repo.configure(workspace="per-task")
    result = _run(repo, fake_codex, tmp_path, "f", rules, plan)
    assert result.code == 1, result.err  # a finished run with a failed task, not an internal error (3)
    tasks = read_state(repo, "f")["tasks"]
    assert tasks["T1"]["status"] == "failed" and tasks["T1"]["error"]["kind"] == "guardrail"
    assert "is a folder" in tasks["T1"]["error"]["message"]
    assert tasks["T2"]["status"] == "succeeded"
    assert run_cli(repo.path, "report", "--run-id", "f").code == 0


# --- codex-orch's own git never runs what the agent wrote ------------------------------------------
def test_a_repointed_dotgit_is_never_used_and_runs_nothing(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    evil = tmp_path / "evil.git"
    fsmonitor = _marker_script(tmp_path / "fsmonitor.sh", marker)
    hooks = tmp_path / "evil-hooks"
    hooks.mkdir()
    for hook in ("pre-commit", "post-commit", "post-index-change", "reference-transaction"):
        _marker_script(hooks / hook, marker)
    attack = (
        f"git init -q --bare {evil} && git --git-dir={evil} config core.fsmonitor {fsmonitor} && "
        f"git --git-dir={evil} config core.hooksPath {hooks} && git --git-dir={evil} config core.bare false && "
        f"echo 'gitdir: {evil}' > .git"
    )
    rules = [{"match": "job T1.", "turns": [[{"shell": attack}, *_writes("T1", "a.txt")], _writes("T1", "a.txt")]}]
    result = _run(repo, fake_codex, tmp_path, "g", rules, PLAN[:1])
    assert result.code == 0, result.err
    assert not marker.exists(), marker.read_text()
    state = read_state(repo, "g")
    first = _attempts(repo, "g", "T1")[0]
    assert first["failure"] == "guardrail" and "the worktree's .git" in first["failure_message"]
    worktree = Path(state["worktree"])
    assert (worktree / ".git").read_text().startswith(f"gitdir: {repo.path / '.git' / 'worktrees'}")
    commit = state["tasks"]["T1"]["commit"]
    assert repo.git("show", f"{commit}:a.txt") == "T1"
    assert "gitdir:" in (repo.path / ".orchestrator/runs/g/tasks/T1/attempt-1/guardrail/dotgit").read_text()


def test_hooks_an_agent_plants_never_run_and_are_taken_away(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    payload = tmp_path / "payload.sh"
    _marker_script(payload, marker)
    hooks = ("pre-commit", "post-commit", "reference-transaction", "post-checkout", "post-merge", "post-rewrite")
    plant = "d=$(git rev-parse --git-common-dir)/hooks && mkdir -p $d && " + " && ".join(
        f"cp {payload} $d/{h}" for h in hooks
    )
    rules = [
        {"match": "job T1.", "turns": [[{"shell": plant}, *_writes("T1", "a.txt")], _writes("T1", "a.txt")]},
        {"match": "job T2.", "turns": [_writes("T2", "b.txt")]},
    ]
    assert _run(repo, fake_codex, tmp_path, "h", rules).code == 0
    assert _attempts(repo, "h", "T1")[0]["failure"] == "guardrail"
    for hook in hooks:
        assert not (repo.path / ".git" / "hooks" / hook).exists(), hook
        assert (repo.path / f".orchestrator/runs/h/tasks/T1/attempt-1/guardrail/git/hooks/{hook}").is_file()
    assert run_cli(repo.path, "merge", "--run-id", "h").code == 0
    assert run_cli(repo.path, "clean", "--run-id", "h").code == 0
    repo.write("mine.txt", "the user's own commit\n")
    repo.git("add", "mine.txt")
    repo.git("commit", "-qm", "mine")
    assert not marker.exists()


def test_a_deleted_dotgit_never_lets_a_commit_into_the_users_checkout(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.write("README.md", "the user's uncommitted edit\n")
    main_before = repo.git("rev-parse", "main")
    rules = [
        {"match": "job T1.", "turns": [[{"shell": "rm -f .git"}, *_writes("T1", "a.txt")], _writes("T1", "a.txt")]}
    ]
    result = _run(repo, fake_codex, tmp_path, "d", rules, PLAN[:1])
    assert result.code == 0, result.err
    assert repo.git("rev-parse", "main") == main_before
    assert (repo.path / "README.md").read_text() == "the user's uncommitted edit\n"
    assert repo.git("status", "--porcelain", "--untracked-files=no") == "M README.md"
    state = read_state(repo, "d")
    assert _attempts(repo, "d", "T1")[0]["failure"] == "guardrail"
    assert repo.git("show", f"{state['tasks']['T1']['commit']}:a.txt") == "T1"
    assert repo.git("merge-base", "--is-ancestor", state["tasks"]["T1"]["commit"], state["branch"], check=False) == ""


# --- refs and HEAD are checked after every attempt -------------------------------------------------
ATTACKS = {
    "reset --hard": "git reset -q --hard HEAD~1",
    "checkout --detach": "git checkout -q --detach HEAD~1",
    "symbolic-ref HEAD main": "git symbolic-ref HEAD refs/heads/main && git add -A && git commit -qm onto-main",
    "move main": "git update-ref refs/heads/main HEAD",
    "make a tag": "git tag evil-tag HEAD~1",
    "stash": "echo stashed > s.txt && git stash -q -u",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_refs_and_head_moved_by_an_agent_are_put_back(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, attack: str
) -> None:
    main_before = repo.git("rev-parse", "main")
    rules = [
        {"match": "job T1.", "turns": [_writes("T1", "a.txt")]},
        {
            "match": "job T2.",
            "turns": [
                [
                    {"shell": ATTACKS[attack]},
                    {"write": "b.txt", "content": "T2\n"},
                    {"answer": answer("T2", ["b.txt"])},
                ],
                _writes("T2", "b.txt"),
            ],
        },
    ]
    result = _run(repo, fake_codex, tmp_path, "m", rules)
    assert result.code == 0, result.err
    state = read_state(repo, "m")
    branch = state["branch"]
    t1 = state["tasks"]["T1"]["commit"]
    assert repo.git("merge-base", "--is-ancestor", t1, branch, check=False) == ""  # T1's work is on the branch
    assert repo.git("show", f"{branch}:a.txt") == "T1" and repo.git("show", f"{branch}:b.txt") == "T2"
    assert repo.git("rev-parse", "main") == main_before
    assert repo.git("tag", "-l") == ""
    assert repo.git("rev-parse", "-q", "--verify", "refs/stash", check=False) == ""
    first = _attempts(repo, "m", "T2")[0]
    assert first["failure"] == "guardrail", first
    worktree = Path(state["worktree"])
    assert (
        repo.path / ".git" / "worktrees" / worktree.name / "HEAD"
    ).read_text().strip() == f"ref: refs/heads/{branch}"
    kept = repo.git("for-each-ref", "--format=%(refname)", "refs/orch/m/quarantine/")
    if attack in ("make a tag", "stash", "move main", "symbolic-ref HEAD main"):
        assert kept, "the agent's version of the ref is kept"
    if attack == "stash":
        assert repo.git("show", "refs/orch/m/quarantine/T2/1/stash^3:s.txt") == "stashed"


def test_commits_an_agent_makes_on_its_own_branch_are_folded_into_codex_orchs(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    steps = [
        {"write": "a.txt", "content": "T1\n"},
        {"shell": "git add -A && git commit -qm 'agent commit'"},
        {"answer": answer("T1", ["a.txt"])},
    ]
    result = _run(repo, fake_codex, tmp_path, "o", [{"match": "job T1.", "turns": [steps]}], PLAN[:1])
    assert result.code == 0, result.err
    state = read_state(repo, "o")
    log = repo.git("log", "--format=%s", f"main..{state['branch']}").splitlines()
    assert log == ["T1 (implementer): T1"]  # one commit, codex-orch's, with its trailers
    assert "Orch-Task: T1" in repo.git("log", "-1", "--format=%B", state["branch"])
    assert _attempts(repo, "o", "T1")[0]["failure"] is None
    assert any("folded" in g for g in _attempts(repo, "o", "T1")[0]["guardrail"])


# --- no silent loss -----------------------------------------------------------------------------------
NESTED_COMMIT = "git -C sub add -A && git -C sub -c user.name=a -c user.email=a@example.com commit -qm nested"
HIDDEN = {
    "gitignore of *": ("printf '*\\n' > .gitignore && echo x > kept.txt", "ignored by a .gitignore"),
    "nested git init": (
        f"mkdir sub && git -C sub init -q && echo x > sub/f.txt && {NESTED_COMMIT}",
        "a nested git repository",
    ),
    "a fifo": ("echo x > made.txt && mkfifo pipe", "not a regular file"),
}


@pytest.mark.parametrize("case", sorted(HIDDEN))
@pytest.mark.parametrize("mode", ["warn", "fail"])
def test_work_a_commit_would_not_hold_is_reported(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, case: str, mode: str
) -> None:
    command, words = HIDDEN[case]
    repo.configure(guardrails={"refs": "all", "on_hidden_work": mode})
    rules = [{"match": "job T1.", "turns": [[{"shell": command}, {"answer": answer("T1", [])}]]}]
    result = _run(repo, fake_codex, tmp_path, "w", rules, PLAN[:1])
    first = _attempts(repo, "w", "T1")[0]
    assert any(words in h for h in first["hidden_work"]), first["hidden_work"]
    if mode == "warn":
        assert result.code == 0 and "work its commit would not hold" in result.err
    else:
        assert result.code == 1
        assert first["failure"] == "hidden_work" and words in first["failure_message"]


@pytest.mark.parametrize("hide", ["", " && printf 'sub/\\n' > .gitignore"])
def test_clean_never_says_kept_for_what_it_removed(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, hide: str
) -> None:
    rules = [
        {
            "match": "job T1.",
            "turns": [
                [
                    {"shell": f"mkdir sub && git -C sub init -q && echo x > sub/f.txt && {NESTED_COMMIT} {hide}"},
                    {"answer": answer("T1", [])},
                ]
            ],
        }
    ]
    assert _run(repo, fake_codex, tmp_path, "c", rules, PLAN[:1]).code == 0
    worktree = Path(read_state(repo, "c")["worktree"])
    result = run_cli(repo.path, "clean", "--run-id", "c", "--json")
    assert result.code == 0, result.err
    for item in json.loads(result.out)["items"]:
        if item["kind"] == "worktree":
            assert Path(item["name"]).exists() == (item["action"] == "keep"), item
    assert worktree.exists() and (worktree / "sub" / "f.txt").exists()  # the nested repo's files are kept
    assert stat.S_ISDIR((worktree / "sub" / ".git").stat().st_mode)
    if hide:  # a nested repository no status shows: kept, and said why
        assert "holds a nested git repository" in result.out


def test_what_an_agent_changed_before_a_crash_is_put_back_by_resume(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    import signal

    from conftest import start_cli, wait_for, wait_recorded

    marker = tmp_path / "tagged"
    moved = "$(git commit-tree -m moved HEAD^{tree})"
    attack = f"git tag crash-tag && git update-ref refs/heads/main {moved} && touch {marker} && sleep 600"
    fake_codex.script({"rules": [{"match": "job T1.", "turns": [[{"shell": attack}], _writes("T1", "a.txt")]}]})
    main_before = repo.git("rev-parse", "main")
    plan = write_plan(tmp_path / "plan.json", PLAN[:1])
    proc = start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "k", "--no-progress")
    wait_for(marker.exists, "the agent's attack")
    wait_recorded(repo, "k", "attempt.thread", proc=proc)  # resume is to continue this thread
    proc.send_signal(signal.SIGKILL)  # no check can run: codex-orch is gone
    proc.wait(timeout=30)
    assert repo.git("tag", "-l") == "crash-tag"
    resumed = run_cli(repo.path, "resume", "--run-id", "k", "--no-progress")
    assert resumed.code == 0, resumed.err
    assert repo.git("tag", "-l") == "" and repo.git("rev-parse", "main") == main_before
    assert "while the run was stopped" in resumed.err
    changes = read_state(repo, "k")["guardrail"]
    assert any("refs/tags/crash-tag" in c for c in changes) and any("refs/heads/main" in c for c in changes)
    assert repo.git("rev-parse", "refs/orch/k/quarantine/resume-1/tags/crash-tag") == repo.git("rev-parse", "HEAD")


# --- the environment: one rule for which GIT_* variables go on ----------------------------------------
def test_agents_and_validate_commands_get_the_git_variables_codex_orch_s_own_git_gets(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """Who commits and which config pass on; a GIT_DIR or GIT_INDEX_FILE of the caller never does (it
    would point the agent's git at another repository). Before, each had a keep-list of its own, and
    the agent and validate commands lost GIT_CONFIG_NOSYSTEM, which codex-orch's git kept."""
    agent_saw, validate_saw = tmp_path / "agent.env", tmp_path / "validate.env"
    dump = "env | grep '^GIT_' | cut -d= -f1 | sort > {}"
    rules = [{"match": "job T1.", "turns": [[{"shell": dump.format(agent_saw)}, {"answer": answer()}]]}]
    caller = {
        "GIT_DIR": str(tmp_path / "elsewhere"),
        "GIT_INDEX_FILE": str(tmp_path / "index"),
        "GIT_CONFIG_PARAMETERS": "'core.hooksPath'='/tmp'",
        "GIT_AUTHOR_NAME": "Someone",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    repo.configure(validate={"commands": [{"name": "env", "run": ["sh", "-c", dump.format(validate_saw)]}]})
    fake_codex.script({"rules": rules})
    plan = write_plan(tmp_path / "plan.json", PLAN[:1])
    ran = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "e", env=caller)
    assert ran.code == 0, ran.err
    assert run_cli(repo.path, "validate", "--run-id", "e", env=caller).code == 0
    passed_on = ["GIT_AUTHOR_NAME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"]
    assert agent_saw.read_text().split() == sorted([*passed_on, "GIT_CEILING_DIRECTORIES"])
    assert validate_saw.read_text().split() == passed_on
