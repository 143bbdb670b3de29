"""Reliability drills: crash codex-orch anywhere, misbehaving agents, hostile input.

    .venv/bin/python tests/drills.py            # the CI size: a few crash trials, every fault, every input
    .venv/bin/python tests/drills.py --long     # 50 crash trials (docs/reliability.md has its figures)

Every drill runs codex-orch as a real child process on a real temporary git repository, with the fake
codex (tests/fake_codex) as the agent, and checks outcomes on disk, in git and in /proc. tests/test_drills.py
runs the same drills under pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FAKE = TESTS / "fake_codex" / "codex"
sys.path.insert(0, str(ROOT))

from conftest import alive, answer, git, marked, whole_lines  # noqa: E402

from codex_orch.fold import apply  # noqa: E402
from codex_orch.git.environment import without_git_vars  # noqa: E402
from codex_orch.state import STATE_SCHEMA, read_state  # noqa: E402


def env() -> dict[str, str]:
    """The drills' codex-orch: none of the caller's GIT_* variables that codex-orch would not pass on
    either, and none of its CODEX_* or FAKE_CODEX* settings."""
    return {k: v for k, v in without_git_vars(os.environ).items() if not k.startswith(("CODEX_", "FAKE_CODEX"))}


@dataclass
class Sandbox:
    """A temporary git repository wired to the fake codex."""

    base: Path
    repo: Path = field(init=False)

    def __post_init__(self) -> None:
        self.repo = self.base / "repo"
        self.repo.mkdir(parents=True)
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "config", "user.name", "Drill")
        git(self.repo, "config", "user.email", "drill@example.com")
        (self.repo / "README.md").write_text("drill\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "initial")
        self.configure({})

    @property
    def log(self) -> Path:
        return self.base / "calls.jsonl"

    def configure(self, script: dict[str, Any], **overrides: Any) -> None:
        (self.base / "script.json").write_text(json.dumps(script))
        config: dict[str, Any] = {
            "codex": {
                "command": [sys.executable, str(FAKE)],
                "env": {
                    "FAKE_CODEX_SCRIPT": str(self.base / "script.json"),
                    "FAKE_CODEX_LOG": str(self.log),
                    "CODEX_HOME": str(self.base / "codex-home"),
                    "FAKE_CODEX_CHILD_PIDS": str(self.base / "children.txt"),
                },
            },
            "limits": {"timeout": 60, "idle_timeout": 20, "stop_grace": 0.5},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key].update(value)
            else:
                config[key] = value
        target = self.repo / ".orchestrator" / "orchestrator.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config))

    def cli(
        self, *args: str, timeout: float = 120, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "codex_orch", *args],
            cwd=self.repo,
            env={**env(), **(extra_env or {})},
            timeout=timeout,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "codex_orch", *args],
            cwd=self.repo,
            env=env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def agent_pids(self) -> list[int]:
        pids = [json.loads(line)["pid"] for line in whole_lines(self.log.read_text())] if self.log.exists() else []
        return pids + marked(self.base / "children.txt")


def wait_gone(pids: list[int], seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def journal_fold(run_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = {"seq": 0}
    with open(run_dir / "journal.jsonl", "rb") as fh:
        for line in fh:
            if line.endswith(b"\n"):
                apply(state, json.loads(line))
    return state


# --- crash drill ----------------------------------------------------------------------------------
@dataclass
class TrialResult:
    name: str
    kills: int
    problems: list[str]


def crash_plan(rng: random.Random, tasks: int) -> list[dict[str, Any]]:
    plan = []
    for i in range(tasks):
        deps = sorted({f"T{rng.randrange(i) + 1:04d}" for _ in range(rng.randrange(3))}) if i else []
        plan.append(
            {
                "id": f"T{i + 1:04d}",
                "role": "implementer",
                "prompt": f"drill task {i + 1}.",
                "acceptance": "",
                "blocked_by": deps,
                "paths": [f"t{i + 1}/**"],
            }
        )
    return plan


def crash_script(tasks: int, rng: random.Random) -> dict[str, Any]:
    rules = []
    for i in range(1, tasks + 1):
        turn = [
            {"write": f"t{i}/a.txt", "content": f"{i}\n"},
            {"sleep": round(rng.uniform(0.05, 0.4), 2)},
            {"shell": f"echo more >> t{i}/a.txt"},
            {"answer": answer(f"task {i}")},
        ]
        rules.append({"match": f"drill task {i}.", "turns": [turn]})
    return {"rules": rules}


def crash_trial(base: Path, seed: int, single: bool | str, workers: int, tasks: int = 5) -> TrialResult:
    mode = single if isinstance(single, str) else ("shared" if single else "per-task")
    rng = random.Random(seed)
    name = f"seed {seed}, {mode} worktrees, {workers} worker(s)"
    box = Sandbox(base)
    box.configure(crash_script(tasks, rng), workspace=mode)
    plan_path = base / "plan.json"
    plan_path.write_text(json.dumps({"goal": "drill", "assumptions": [], "tasks": crash_plan(rng, tasks)}))
    problems: list[str] = []
    kills = 0
    command = [
        "run",
        "--plan-file",
        str(plan_path),
        "--run-id",
        "drill",
        "--max-workers",
        str(workers),
        "--no-progress",
    ]
    for _round in range(4):  # kill -9 at a random moment, up to 3 times, then let it finish
        proc = box.popen(*command)
        if _round < 3:
            time.sleep(rng.uniform(0.05, 1.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        code = proc.wait(timeout=120)
        run_dir = box.repo / ".orchestrator" / "runs" / "drill"
        if not (run_dir / "journal.jsonl").exists():
            # killed before the run existed: nothing ran; a careful user starts it again
            if run_dir.exists():
                import shutil

                shutil.rmtree(run_dir)
            continue
        command = ["resume", "--run-id", "drill", "--max-workers", str(workers), "--no-progress"]
        if code == 0 and _round >= 1:
            break
    else:
        result = box.cli(*command)
        if result.returncode != 0:
            problems.append(f"final resume exited {result.returncode}: {result.stderr.strip()[-300:]}")
    if not problems:
        problems += check_run(box, tasks, mode)
    left = wait_gone(box.agent_pids())
    if left:
        problems.append(f"agent processes still alive: {left}")
    return TrialResult(name, kills, problems)


# Every journal record a run writes, in the order a task meets them; a crash right before and right after
# each (codex-orch's faults.py hook, SIGKILL) must leave a run that `resume` finishes exactly once.
JOURNAL_RECORDS = (
    "run.workspace_ready",
    "task.status",
    "task.workspace",
    "attempt.started",
    "attempt.pid",
    "attempt.thread",
    "attempt.finished",
    "task.result",
    "task.committed",
    "run.status",
)


def crash_points(mode: str) -> list[str]:
    """Every deterministic crash point of a run: before and after each journal record (the first time;
    a task's result and commit also the second time, when the first task's are already in)."""
    points = []
    for record in JOURNAL_RECORDS:
        if record == "run.workspace_ready" and mode == "per-task":
            continue  # per-task worktrees are recorded with their task
        for when in ("before", "after"):
            points.append(f"journal:{when}:{record}")
            if record in ("task.result", "task.committed"):
                points.append(f"journal:{when}:{record}#2")
    if mode == "landing":  # after its commit, a task of a landing run lands it on the run branch
        points += ["journal:before:task.landed", "journal:after:task.landed", "journal:before:task.landed#2"]
    return points


def crash_point_trial(base: Path, point: str, mode: str, tasks: int = 3) -> TrialResult:
    """Kill codex-orch exactly at `point` (asserting it died there), then resume: every task must end
    succeeded with exactly one commit, and no agent may be asked again for a task whose answer was in."""
    name = f"{point}, {mode} worktrees"
    box = Sandbox(base)
    box.configure(crash_script(tasks, random.Random(7)), workspace=mode)
    plan_path = base / "plan.json"
    plan = [{**t, "blocked_by": [f"T{i:04d}"] if i else []} for i, t in enumerate(crash_plan(random.Random(7), tasks))]
    plan_path.write_text(json.dumps({"goal": "drill", "assumptions": [], "tasks": plan}))
    crashed = box.cli(
        "run",
        "--plan-file",
        str(plan_path),
        "--run-id",
        "drill",
        "--no-progress",
        extra_env={"CODEX_ORCH_FAULT_AT": point},
    )
    if crashed.returncode != -signal.SIGKILL:
        return TrialResult(name, 0, [f"no crash at {point}: exit {crashed.returncode} {crashed.stderr.strip()[-200:]}"])
    run_dir = box.repo / ".orchestrator" / "runs" / "drill"
    before = read_state(run_dir)["tasks"]
    answered = {tid for tid, task in before.items() if task.get("result") is not None}
    threads = {before[tid]["thread_id"] for tid in answered}
    prompts = {f"drill task {int(tid[1:])}." for tid in answered}
    calls_before = len(box.log.read_text().splitlines()) if box.log.exists() else 0
    resumed = box.cli("resume", "--run-id", "drill", "--no-progress")
    problems = (
        [] if resumed.returncode == 0 else [f"resume exited {resumed.returncode}: {resumed.stderr.strip()[-300:]}"]
    )
    if not problems:
        problems += check_run(box, tasks, mode)
    calls = [json.loads(line) for line in box.log.read_text().splitlines()[calls_before:]] if box.log.exists() else []
    asked_again = sorted(
        {str(c.get("thread_id")) for c in calls if c.get("thread_id") in threads or str(c.get("prompt")) in prompts}
    )
    if asked_again:
        problems.append(f"agents asked again for tasks whose answer was in: {asked_again}")
    left = wait_gone(box.agent_pids())
    if left:
        problems.append(f"agent processes still alive: {left}")
    return TrialResult(name, 1, problems)


def check_run(box: Sandbox, tasks: int, mode: str) -> list[str]:
    from jsonschema import Draft202012Validator

    problems = []
    run_dir = box.repo / ".orchestrator" / "runs" / "drill"
    state = read_state(run_dir)
    snapshot = json.loads((run_dir / "state.json").read_text())
    errors = list(Draft202012Validator(STATE_SCHEMA).iter_errors(snapshot))
    if errors:
        problems.append(f"state.json invalid: {errors[0].message}")
    fold = journal_fold(run_dir)
    if fold["tasks"] != state["tasks"] or fold["status"] != state["status"]:
        problems.append("the journal's fold differs from state.json + journal")
    statuses = {t["id"]: t["status"] for t in state["tasks"].values()}
    if set(statuses.values()) != {"succeeded"}:
        problems.append(f"not all succeeded: {statuses}")
    per_task: dict[str, set[str]] = {}
    where = ["main.." + state["branch"]] if mode == "landing" else ["--all"]  # landing: the run branch has them all
    for line in git(box.repo, "log", *where, "--format=%H %(trailers:key=Orch-Task,valueonly,separator=)").splitlines():
        sha, _, task = line.partition(" ")
        if task:
            per_task.setdefault(task.strip(), set()).add(sha)
    wrong = {t: len(s) for t, s in per_task.items() if len(s) != 1}
    missing = [f"T{i:04d}" for i in range(1, tasks + 1) if f"T{i:04d}" not in per_task]
    if wrong or missing:
        problems.append(f"commits per task: wrong {wrong}, missing {missing}")
    expected_branches = {t["branch"] for t in state["tasks"].values()} if mode != "shared" else set()
    expected_branches |= {state["branch"]} if mode != "per-task" else set()
    branches = set(git(box.repo, "branch", "--format=%(refname:short)").split()) - {"main"}
    if branches != expected_branches:
        problems.append(
            f"branches: orphan {sorted(branches - expected_branches)}, missing {sorted(expected_branches - branches)}"
        )
    worktrees = {
        line.split(" ", 1)[1]
        for line in git(box.repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    } - {str(box.repo)}
    # a landing run removes each landed task's worktree (its work is on the run branch)
    kept = [t for t in state["tasks"].values() if mode == "per-task" or t["status"] != "succeeded"]
    expected_trees = {state["worktree"]} if mode == "shared" else {t["worktree"] for t in kept}
    if worktrees != expected_trees:
        problems.append(f"worktrees: orphan {sorted(worktrees - expected_trees)}")
    for task in kept if mode != "shared" else ():
        tree = Path(task["worktree"])
        dirty = git(tree, "status", "--porcelain")
        if dirty and mode != "shared":
            problems.append(f"{task['id']}: worktree left dirty: {dirty[:200]}")
    if mode == "shared" and git(Path(state["worktree"]), "status", "--porcelain"):
        problems.append("shared worktree left dirty")
    return problems


# --- agent fault matrix ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    name: str
    turns: list[list[dict[str, Any]]]
    expect: str  # the task's final status, or the failure kind
    limits: dict[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], str | None] | None = None
    stops: tuple[str, ...] = ()  # the signals codex-orch sent the last attempt's agent, in order


def _garbage_counted(task: dict[str, Any]) -> str | None:
    return None if task["attempts"][-1]["garbage_lines"] >= 1 else "garbage line not counted"


FAULTS = [
    Fault("crash at start", [[{"exit": 1}]], "crashed"),
    Fault(
        "crash mid-stream (SIGSEGV)",
        [[{"write": "x.txt", "content": "x"}, {"reasoning": "hm"}, {"kill_self": "SEGV"}]],
        "crashed",
    ),
    Fault("exit 0 with no answer", [[{"reasoning": "thinking"}]], "empty_answer"),
    Fault("invalid JSON, always", [[{"answer": "here you go: {not json"}]], "not_json"),
    Fault("schema-invalid, always", [[{"answer": {"status": "done"}}]], "schema_invalid"),
    Fault("endless stream", [[{"flood": 100 * 1024**3}]], "timeout", {"timeout": 3}, stops=("SIGINT",)),
    Fault("silent hang", [[{"reasoning": "x"}, {"hang": True}]], "idle", {"idle_timeout": 1}, stops=("SIGINT",)),
    Fault(
        "ignores SIGTERM and hangs",
        [[{"ignore_signals": True}, {"spawn_child": True}, {"hang": True}]],
        "idle",
        {"idle_timeout": 1},
        stops=("SIGINT", "SIGTERM", "SIGKILL"),
    ),
    Fault(
        "turn failed: rate limit",
        [[{"fail": "exceeded retry limit, last status: 429 Too Many Requests"}]],
        "rate_limited",
        {"max_quota_wait": 0},  # a failure, not a pause (tests/test_quota.py has the pauses)
    ),
    Fault("turn failed: auth", [[{"fail": "unexpected status 401 Unauthorized: Missing bearer"}]], "auth"),
    Fault("turn failed: anything else", [[{"fail": "the model refused"}]], "turn_failed"),
    Fault("answers that it failed", [[{"answer": answer("could not", status="failed")}]], "agent_reported"),
    Fault(
        "turn failed: stream cut",
        [[{"fail": "stream disconnected before completion: stream closed before response.completed"}]],
        "transport",
    ),
    Fault(
        "writes outside its worktree",
        [[{"write_outside": "{outside}/stray.txt", "content": "x"}, {"answer": answer("wrote outside")}]],
        "succeeded",
    ),
    Fault(
        "non-UTF-8 bytes in events",
        [[{"raw_b64": "/w==/v8="}, {"answer": answer("ok")}]],
        "succeeded",
        check=_garbage_counted,
    ),
    Fault(
        "garbage lines in events",
        [[{"raw": "not json at all"}, {"raw": "[1, 2"}, {"answer": answer("ok")}]],
        "succeeded",
        check=_garbage_counted,
    ),
    Fault(
        "a single 50 MB line",
        [[{"big_line": 50 * 1024 * 1024}, {"answer": answer("ok")}]],
        "succeeded",
        check=_garbage_counted,
    ),
    Fault("answer, then exit 1", [[{"answer": answer("ok")}, {"exit": 1}]], "crashed"),
    Fault("unknown thread on resume", [[{"answer": {"status": "done"}}], [{"exit": 1}]], "crashed", {"retries": 1}),
    Fault("answer nested 100k deep, always", [[{"answer": "[" * 100_000 + "]" * 100_000}]], "answer_unsafe"),
    Fault(
        "usage of 1e400",
        [[{"answer": answer("ok")}, {"raw": '{"type":"turn.completed","usage":{"input_tokens":1e400}}'}, {"exit": 0}]],
        "protocol",
    ),
    Fault(
        "endless reconnect notices",
        [[{"loop": [{"error_event": "Reconnecting... waiting for network (Connection failed)"}, {"sleep": 0.05}]}]],
        "transport",
        stops=("SIGINT",),
    ),
]


@dataclass
class FaultResult:
    name: str
    expected: str
    got: str
    seconds: float  # shown by the runner; no drill passes or fails on it (timing belongs in bench/)
    problems: list[str]


def fault_drill(base: Path, fault: Fault) -> FaultResult:
    box = Sandbox(base)
    outside = base / "outside"
    outside.mkdir()
    turns = json.loads(json.dumps(fault.turns).replace("{outside}", str(outside)))
    limits = {"timeout": 20, "idle_timeout": 10, "stop_grace": 0.5, "retries": 2, **fault.limits}
    box.configure({"default": turns}, limits=limits)
    plan = base / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "goal": "fault",
                "assumptions": [],
                "tasks": [{"role": "implementer", "prompt": "fault drill", "acceptance": ""}],
            }
        )
    )
    box.cli("init")  # so that the run itself adds nothing to the checkout (.gitignore)
    checkout_before = git(box.repo, "status", "--porcelain", "--untracked-files=all")
    start = time.monotonic()
    result = box.cli("run", "--plan-file", str(plan), "--run-id", "fault", "--no-progress")
    seconds = time.monotonic() - start
    problems: list[str] = []
    state = read_state(box.repo / ".orchestrator" / "runs" / "fault")
    task = state["tasks"]["T0001"]
    got = task["status"] if task["status"] == "succeeded" else (task.get("error") or {}).get("kind", task["status"])
    if got != fault.expect:
        problems.append(f"expected {fault.expect}, got {got}: {(task.get('error') or {}).get('message', '')[:200]}")
    if result.returncode != (0 if fault.expect == "succeeded" else 1):
        problems.append(f"exit code {result.returncode}")
    sent = [step.split()[1] for step in task["attempts"][-1]["stop_steps"] if step.startswith("sent ")]
    if tuple(sent) != fault.stops:
        problems.append(f"codex-orch sent {sent or 'no signal'}, expected {list(fault.stops) or 'none'}")
    left = wait_gone(box.agent_pids())
    if left:
        problems.append(f"agent processes still alive: {left}")
    if journal_fold(box.repo / ".orchestrator" / "runs" / "fault")["tasks"] != state["tasks"]:
        problems.append("journal and state disagree")
    if fault.check is not None:
        extra = fault.check(task)
        if extra:
            problems.append(extra)
    if fault.name == "writes outside its worktree":
        committed = git(box.repo, "log", "--all", "--name-only", "--format=")
        if "stray.txt" in committed:
            problems.append("a file written outside the worktree was committed")
        if git(box.repo, "status", "--porcelain", "--untracked-files=all") != checkout_before:
            problems.append("the user's checkout changed")
    return FaultResult(fault.name, fault.expect, got, seconds, problems)


# --- hostile input --------------------------------------------------------------------------------
GOOD = {"role": "implementer", "prompt": "p", "acceptance": "a", "blocked_by": []}


def _plan(*tasks: dict[str, Any]) -> str:
    return json.dumps({"goal": "g", "assumptions": [], "tasks": list(tasks)})


@dataclass(frozen=True)
class BadInput:
    name: str
    files: Mapping[str, str | bytes]  # relative path -> content (a config under .orchestrator/)
    args: tuple[str, ...]
    place: str  # what the one-line error must contain


def _bad_inputs() -> list[BadInput]:
    run = ("run", "--plan-file", "plan.json")
    cfg = ".orchestrator/orchestrator.yaml"
    good_plan = {"plan.json": _plan(GOOD)}
    return [
        BadInput(
            "plan: cycle",
            {"plan.json": _plan(dict(GOOD, id="A", blocked_by=["B"]), dict(GOOD, id="B", blocked_by=["A"]))},
            run,
            "plan.json: tasks[0].blocked_by: dependency cycle A -> B -> A",
        ),
        BadInput(
            "plan: self-dependency",
            {"plan.json": _plan(dict(GOOD, id="A", blocked_by=["A"]))},
            run,
            "plan.json: tasks[0].blocked_by[0]",
        ),
        BadInput(
            "plan: unknown dependency",
            {"plan.json": _plan(dict(GOOD, blocked_by=["T9"]))},
            run,
            "plan.json: tasks[0].blocked_by[0]: unknown task 'T9'",
        ),
        BadInput(
            "plan: duplicate ids",
            {"plan.json": _plan(dict(GOOD, id="X"), dict(GOOD, id="X"))},
            run,
            "plan.json: tasks[1].id: duplicate id",
        ),
        BadInput(
            "plan: unknown role",
            {"plan.json": _plan(dict(GOOD, role="wizard"))},
            run,
            "plan.json: tasks[0].role: unknown role 'wizard'",
        ),
        BadInput("plan: role of wrong type", {"plan.json": _plan(dict(GOOD, role=7))}, run, "plan.json: tasks[0].role"),
        BadInput(
            "plan: prompt missing",
            {"plan.json": _plan({"role": "implementer"})},
            run,
            "plan.json: tasks[0].prompt: a required property is missing",
        ),
        BadInput(
            "plan: tasks not a list",
            {"plan.json": json.dumps({"goal": "g", "assumptions": [], "tasks": {"a": 1}})},
            run,
            "plan.json: tasks:",
        ),
        BadInput("plan: top level is a list", {"plan.json": "[]"}, run, "plan.json: (top level)"),
        BadInput(
            "plan: invalid JSON",
            {"plan.json": '{"goal": "g", "assumptions": [], "tasks": [}'},
            run,
            "plan.json: line 1",
        ),
        BadInput("plan: empty file", {"plan.json": ""}, run, "plan.json: line 1, column 1: invalid JSON"),
        BadInput("plan: not UTF-8", {"plan.json": b'{"goal": "\xff\xfe"}'}, run, "plan.json: not UTF-8"),
        BadInput(
            "plan: no tasks",
            {"plan.json": json.dumps({"goal": "g", "assumptions": [], "tasks": []})},
            run,
            "plan.json: tasks: the plan has no tasks",
        ),
        BadInput(
            "plan: id with path traversal",
            {"plan.json": _plan(dict(GOOD, id="../../x"))},
            run,
            "plan.json: tasks[0].id: '../../x'",
        ),
        BadInput("plan: id with a slash", {"plan.json": _plan(dict(GOOD, id="a/b"))}, run, "plan.json: tasks[0].id"),
        BadInput(
            "plan: branch-name injection id",
            {"plan.json": _plan(dict(GOOD, id="x;rm -rf ~"))},
            run,
            "plan.json: tasks[0].id",
        ),
        BadInput("plan: id like an option", {"plan.json": _plan(dict(GOOD, id="-rf"))}, run, "plan.json: tasks[0].id"),
        BadInput(
            "plan: id ending .lock", {"plan.json": _plan(dict(GOOD, id="HEAD.lock"))}, run, "plan.json: tasks[0].id"
        ),
        BadInput(
            "plan: misspelt task key",
            {"plan.json": _plan({"role": "implementer", "promt": "p"})},
            run,
            "plan.json: tasks[0]: unknown key 'promt'; did you mean 'prompt'?",
        ),
        BadInput(
            "plan: misspelt top-level key",
            {"plan.json": json.dumps({"gaol": "g", "assumptions": [], "tasks": [GOOD]})},
            run,
            "plan.json: (top level): unknown key 'gaol'; did you mean 'goal'?",
        ),
        BadInput(
            "plan: NaN timeout", {"plan.json": _plan(dict(GOOD, timeout=float("nan")))}, run, "tasks[0].timeout: nan"
        ),
        BadInput(
            "plan: negative timeout", {"plan.json": _plan(dict(GOOD, timeout=-1))}, run, "plan.json: tasks[0].timeout"
        ),
        BadInput(
            "plan: huge file",
            {"plan.json": '{"goal": "' + "x" * (60 * 1024 * 1024) + '", "assumptions": [], "tasks": []}'},
            run,
            "plan.json: too large",
        ),
        BadInput("plan: missing file", {}, run, "plan.json: no such file"),
        BadInput("plan: a directory", {"plan.json/keep": ""}, run, "plan.json: is a directory"),
        BadInput(
            "spec: binary",
            {**good_plan, "spec.bin": b"\x89PNG\r\n\x1a\n\x00"},
            (*run, "--spec-file", "spec.bin"),
            "spec.bin: not a text file",
        ),
        BadInput(
            "spec: latin-1",
            {**good_plan, "spec.txt": "café".encode("latin-1")},
            (*run, "--spec-file", "spec.txt"),
            "spec.txt: not UTF-8 text",
        ),
        BadInput("spec: missing", good_plan, (*run, "--spec-file", "nope.md"), "nope.md: no such file"),
        BadInput(
            "spec: huge",
            {**good_plan, "spec.md": "y" * (11 * 1024 * 1024)},
            (*run, "--spec-file", "spec.md"),
            "spec.md: too large",
        ),
        BadInput(
            "config: wrong type",
            {**good_plan, cfg: "limits:\n  retries: two\n"},
            run,
            "orchestrator.yaml: limits.retries",
        ),
        BadInput(
            "config: unknown key",
            {**good_plan, cfg: "limitz: {}\n"},
            run,
            "orchestrator.yaml: (top level): unknown key",
        ),
        BadInput("config: invalid YAML", {**good_plan, cfg: "limits: [1\n"}, run, "orchestrator.yaml: line 2"),
        BadInput("config: not a mapping", {**good_plan, cfg: "- 1\n"}, run, "orchestrator.yaml: (top level)"),
        BadInput(
            "config: bad sandbox",
            {**good_plan, cfg: "roles:\n  implementer:\n    sandbox: yolo\n"},
            run,
            "orchestrator.yaml: roles.implementer.sandbox",
        ),
        BadInput(
            "config: zero workers",
            {**good_plan, cfg: "limits:\n  max_workers: 0\n"},
            run,
            "orchestrator.yaml: limits.max_workers",
        ),
        BadInput(
            "config: unknown branch placeholder",
            {**good_plan, cfg: "git:\n  shared_branch_template: 'o/{who}'\n"},
            run,
            "orchestrator.yaml: git branch template",
        ),
        BadInput(
            "config: branch template makes a bad ref",
            {**good_plan, cfg: "git:\n  shared_branch_template: 'o/../{run_id}'\n"},
            run,
            "branch name 'o/../",
        ),
        BadInput(
            "config: alias to an unknown role",
            {**good_plan, cfg: "role_aliases:\n  dev: wizard\n"},
            run,
            "orchestrator.yaml: role_aliases.dev",
        ),
        BadInput("config: not UTF-8", {**good_plan, cfg: b"limits: \xff\n"}, run, "orchestrator.yaml: not UTF-8"),
        BadInput(
            "config: unknown base ref",
            {**good_plan, cfg: "git:\n  base_ref: no-such-branch\n"},
            run,
            "'no-such-branch' is not a commit",
        ),
        BadInput("args: run id with traversal", good_plan, (*run, "--run-id", "../x"), "--run-id: '../x'"),
        BadInput("args: run id with a space", good_plan, (*run, "--run-id", "a b"), "--run-id: 'a b'"),
        BadInput("args: zero workers", good_plan, (*run, "--max-workers", "0"), "--max-workers"),
        BadInput("args: missing --plan-file", {}, ("run",), "Missing option '--plan-file'"),
        BadInput("args: unknown command", {}, ("fly",), "No such command 'fly'"),
        BadInput("args: resume of no run", {}, ("resume", "--run-id", "nope"), "--run-id: no run 'nope'"),
        BadInput("args: status of no run", {}, ("status", "--run-id", "nope"), "--run-id: no run 'nope'"),
    ]


BAD_INPUTS = _bad_inputs()


@dataclass
class InputResult:
    name: str
    code: int
    line: str
    problems: list[str]


def bad_input_drill(base: Path, case: BadInput) -> InputResult:
    box = Sandbox(base)
    for rel, content in case.files.items():
        target = box.repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    before_branches = git(box.repo, "branch", "--format=%(refname)")
    before_trees = git(box.repo, "worktree", "list", "--porcelain")
    result = box.cli(*case.args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    problems = []
    if result.returncode != 2:
        problems.append(f"exit {result.returncode}")
    message = lines[-1] if lines else ""
    if case.place not in result.stderr:
        problems.append(f"error does not name {case.place!r}: {result.stderr.strip()[:300]!r}")
    click_usage = case.name.startswith("args: ") and (
        "Missing option" in case.place or "No such command" in case.place or "--max-workers" in case.place
    )
    # one error: one line, or "N problems:" followed by one indented line per problem
    reports = [line for line in lines if not line.startswith("  ")]
    if not click_usage and len(reports) != 1:
        problems.append(f"{len(reports)} error lines on stderr, not one")
    runs = box.repo / ".orchestrator" / "runs"
    if runs.is_dir() and any(runs.iterdir()):
        problems.append(f"a run folder was left: {[p.name for p in runs.iterdir()]}")
    if git(box.repo, "branch", "--format=%(refname)") != before_branches:
        problems.append("branches changed")
    if git(box.repo, "worktree", "list", "--porcelain") != before_trees:
        problems.append("worktrees changed")
    if box.log.exists():
        problems.append("an agent was started")
    return InputResult(case.name, result.returncode, message, problems)


# --- the runner -----------------------------------------------------------------------------------
def show(kind: str, problems: list[str], what: str) -> bool:
    """Print one drill's line; whether it failed."""
    print(
        f"{kind:<6} {'FAIL' if problems else 'ok  '} {what}" + (f" — {'; '.join(problems)}" if problems else ""),
        flush=True,
    )
    return bool(problems)


def run_crash_trials(base: Path, trials: int, seed: int) -> tuple[int, int]:
    """Random kill -9, then resume (the long drill): failures and kills."""
    failures = kills = 0
    for i in range(trials):
        mode, workers = [
            ("shared", 1),
            ("per-task", 1),
            ("landing", 3),
            ("shared", 3),
            ("per-task", 3),
            ("landing", 1),
        ][i % 6]
        trial = crash_trial(base / f"crash{i}", seed + i, mode, workers)
        kills += trial.kills
        failures += show("crash", trial.problems, f"{trial.name}: {trial.kills} kill -9")
    return failures, kills


def run_crash_points(base: Path) -> tuple[int, int]:
    """A crash at every journal step, in each workspace mode: failures and points."""
    failures = points = 0
    for mode in ("shared", "per-task", "landing"):
        for point in crash_points(mode):
            trial = crash_point_trial(base / f"point{points}", point, mode)
            points += 1
            failures += show("point", trial.problems, trial.name)
    return failures, points


def run_faults(base: Path) -> int:
    failures = 0
    for i, fault in enumerate(FAULTS):
        outcome = fault_drill(base / f"fault{i}", fault)
        failures += show("fault", outcome.problems, f"{outcome.name}: {outcome.got} in {outcome.seconds:.1f} s")
    return failures


def run_bad_inputs(base: Path) -> int:
    failures = 0
    for i, case in enumerate(BAD_INPUTS):
        outcome = bad_input_drill(base / f"input{i}", case)
        failures += show("input", outcome.problems, f"{case.name}: exit {outcome.code}: {outcome.line[:110]}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long", action="store_true", help="50 crash trials instead of 4")
    parser.add_argument("--trials", type=int, help="crash trials (overrides --long)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-points", action="store_true", help="skip the crash at every journal step")
    args = parser.parse_args()
    trials = args.trials or (50 if args.long else 4)
    with tempfile.TemporaryDirectory(prefix="codex-orch-drills-") as tmp:
        base = Path(tmp)
        crash_failures, kills = run_crash_trials(base, trials, args.seed)
        point_failures, points = (0, 0) if args.no_points else run_crash_points(base)
        fault_failures = run_faults(base)
        input_failures = run_bad_inputs(base)
    total = crash_failures + point_failures + fault_failures + input_failures
    print(f"\ncrash trials: {trials} ({kills} kill -9), failures: {crash_failures}")
    print(f"crash points: {points}, failures: {point_failures}")
    print(f"agent faults: {len(FAULTS)}, failures: {fault_failures}")
    print(f"bad inputs: {len(BAD_INPUTS)}, failures: {input_failures}")
    print(f"drills: {trials + points + len(FAULTS) + len(BAD_INPUTS) - total} passed, {total} failed")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
