"""The command line as a new user meets it: listing runs, defaults, --json, --help, hints, warnings."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FakeCodex, Repo, answer, read_state, run_cli, start_cli, wait_for, write_plan

from codex_orch.errors import OrchError

ONE = [{"id": "T1", "role": "implementer", "prompt": "job T1.", "acceptance": "", "blocked_by": []}]
COMMANDS = [
    "init",
    "run",
    "task",
    "plan",
    "resume",
    "cancel",
    "runs",
    "status",
    "report",
    "logs",
    "timeline",
    "dashboard",
    "merge",
    "clean",
    "prune",
    "validate",
    "worker",
]
COMMANDS += ["serve", "mcp", "jobs"]  # the job service (docs/service.md)


def _run(repo: Repo, fake: FakeCodex, tmp_path: Path, run_id: str, script: dict[str, Any] | None = None) -> Any:
    fake.script(
        script
        or {"default": [[{"write": f"{run_id}.txt", "content": "x\n"}, {"answer": answer("ok", [f"{run_id}.txt"])}]]}
    )
    return run_cli(
        repo.path, "run", "--plan-file", str(write_plan(tmp_path / f"{run_id}.json", ONE)), "--run-id", run_id
    )


def _printed_command(stderr: str, prefix: str) -> list[str]:
    """The command after `prefix` on a line of stderr, split as a shell would (without what follows it)."""
    for line in stderr.splitlines():
        if line.startswith(prefix):
            return shlex.split(line[len(prefix) :].split("   ")[0])
    raise AssertionError(f"no line starting {prefix!r} in:\n{stderr}")


def _follow(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command exactly as codex-orch printed it."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_runs_lists_every_run_and_status_and_report_default_to_the_latest(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    assert run_cli(repo.path, "runs").out.startswith("no runs yet")
    assert _run(repo, fake_codex, tmp_path, "first").code == 0
    assert _run(repo, fake_codex, tmp_path, "second").code == 0

    listed = run_cli(repo.path, "runs")
    assert listed.code == 0, listed.err
    assert listed.out.index("first") < listed.out.index("second")
    assert "1/1 succeeded" in listed.out and "workspace-shared" in listed.out
    data = json.loads(run_cli(repo.path, "runs", "--json").out)
    assert data["kind"] == "runs" and data["json_version"] == 1
    assert [(r["run_id"], r["status"], r["tasks"], r["succeeded"]) for r in data["runs"]] == [
        ("first", "succeeded", 1, 1),
        ("second", "succeeded", 1, 1),
    ]
    assert data["runs"][0]["branch"] == read_state(repo, "first")["branch"]

    status = run_cli(repo.path, "status", "--json")
    assert json.loads(status.out)["run_id"] == "second" and "(the latest run: second)" in status.err
    report = run_cli(repo.path, "report", "--json")
    assert json.loads(report.out)["run_id"] == "second"


@pytest.mark.parametrize("command", ["merge", "clean"])
def test_commands_that_destroy_never_guess_the_run(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, command: str
) -> None:
    assert _run(repo, fake_codex, tmp_path, "r").code == 0
    result = run_cli(repo.path, command)
    assert result.code == 2 and "Missing option '--run-id'" in result.err


def test_every_command_that_reads_or_plans_speaks_json_with_a_version(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    assert _run(repo, fake_codex, tmp_path, "r").code == 0
    repo.configure(validate={"commands": [{"name": "ok", "run": "true"}]})
    plan = write_plan(tmp_path / "p.json", ONE)
    outputs = {
        "runs": run_cli(repo.path, "runs", "--json"),
        "plan-check": run_cli(repo.path, "plan", "--check", str(plan), "--json"),
        "prune": run_cli(repo.path, "prune", "--older-than", "0", "--json"),
        "clean": run_cli(repo.path, "clean", "--run-id", "r", "--dry-run", "--json"),
        "validate": run_cli(repo.path, "validate", "--run-id", "r", "--json"),
    }
    for kind, result in outputs.items():
        assert result.code == 0, (kind, result.err)
        data = json.loads(result.out)
        assert (data["kind"], data["json_version"]) == (kind, 1)
    assert json.loads(outputs["plan-check"].out)["tasks"] == 1
    assert [r["run_id"] for r in json.loads(outputs["prune"].out)["runs"]] == ["r"]
    assert json.loads(outputs["prune"].out)["dry_run"] is True
    clean = json.loads(outputs["clean"].out)
    assert clean["dry_run"] is True and {i["kind"] for i in clean["items"]} == {"worktree", "branch"}
    assert json.loads(outputs["validate"].out)["ok"] is True
    # the dry runs changed nothing: the worktree and the branch are still there
    assert Path(read_state(repo, "r")["worktree"]).is_dir()
    assert read_state(repo, "r")["branch"] in repo.branches()
    for reader in ("status", "report"):
        assert json.loads(run_cli(repo.path, reader, "--json").out)["report_version"] == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples_and_exit_codes(repo: Repo, command: str) -> None:
    result = run_cli(repo.path, command, "--help")
    assert result.code == 0
    examples = result.out.split("Examples:")[1].split("Exit codes:")[0]
    assert f"codex-orch {command}" in examples
    codes = result.out.split("Exit codes:")[1]
    assert re.search(r"^\s+0\s+\S", codes, re.M) and re.search(r"^\s+2\s+\S", codes, re.M)


def test_top_level_summaries_are_not_cut_off(repo: Repo) -> None:
    result = run_cli(repo.path, "--help", env={"COLUMNS": "80"})
    listing = result.out.split("Commands:")[1]
    assert sorted(line.split()[0] for line in listing.strip().splitlines()) == sorted(COMMANDS)
    assert "..." not in listing


def test_ctrl_c_says_what_it_stopped_and_the_printed_resume_command_finishes_the_run(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    fake_codex.script(
        {
            "default": [
                [
                    {"shell": f"touch {started}; while [ ! -f {gate} ]; do sleep 0.02; done"},
                    {"answer": answer()},
                ]
            ]
        }
    )
    plan = write_plan(tmp_path / "plan.json", ONE)
    proc = start_cli(
        repo.path, "run", "--plan-file", str(plan), "--run-id", "c", "--no-progress", stderr=subprocess.PIPE, text=True
    )
    wait_for(started.exists, "the agent to start")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "codex-orch: interrupted: stopped T1; 0 task(s) not started; the state is saved." in err
    gate.touch()
    resumed = _follow(_printed_command(err, "continue with: "), repo.path)
    assert resumed.returncode == 0, resumed.stderr
    assert read_state(repo, "c")["tasks"]["T1"]["status"] == "succeeded"


def test_run_init_and_merge_print_a_next_command_that_works_as_printed(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    init = run_cli(repo.path, "init")
    assert "plan --check plan.json" in init.err
    result = _run(repo, fake_codex, tmp_path, "n")
    assert result.code == 0
    merged = _follow(_printed_command(result.err, "next: "), repo.path)
    assert merged.returncode == 0, merged.stderr
    assert (repo.path / "n.txt").read_text() == "x\n"  # the run's work is in the checkout now
    cleaned = _follow(_printed_command(merged.stderr, "next: "), repo.path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert not Path(read_state(repo, "n")["worktree"]).exists()


def test_a_failed_run_points_at_the_report_and_resume(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    result = _run(repo, fake_codex, tmp_path, "f", {"default": [[{"answer": answer(status="failed")}]]})
    assert result.code == 1
    report = _follow(_printed_command(result.err, "next: "), repo.path)
    assert report.returncode == 0 and "agent_reported" in report.stdout
    assert _printed_command(result.err, "then: ")[-3:] == ["resume", "--run-id", "f"]


def test_printed_commands_name_this_codex_orch_when_it_is_not_on_path(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    result = _run(repo, fake_codex, tmp_path, "p")
    argv = _printed_command(result.err, "next: ")
    assert argv[:3] == [sys.executable, "-m", "codex_orch"]  # how the tests start it: python -m codex_orch


def test_init_force_keeps_a_copy_of_a_customised_config(repo: Repo) -> None:
    assert run_cli(repo.path, "init").code == 0
    config = repo.path / ".orchestrator" / "orchestrator.yaml"
    custom = config.read_text().replace("max_workers: 4", "max_workers: 3")
    config.write_text(custom)
    result = run_cli(repo.path, "init", "--force")
    assert result.code == 0
    saved = re.search(r"your version is kept in (\.orchestrator/orchestrator\.yaml\.bak-\S+)\)", result.out)
    assert saved, result.out
    assert (repo.path / saved.group(1)).read_text() == custom
    assert "max_workers: 4" in config.read_text()
    again = run_cli(repo.path, "init", "--force")  # nothing customised any more: nothing backed up
    assert "kept in" not in again.out


def test_errors_and_hints_read_as_two_sentences(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    assert str(OrchError("already exists", "Use --force.")) == "already exists. Use --force."
    assert str(OrchError("what now?", "Ask.")) == "what now? Ask."
    assert _run(repo, fake_codex, tmp_path, "twice").code == 0
    again = _run(repo, fake_codex, tmp_path, "twice")
    assert again.code == 2
    assert "run 'twice' already exists. Use `codex-orch resume --run-id twice`." in again.err


@pytest.mark.parametrize(
    "argv", [["runs"], ["status"], ["report"], ["clean", "--run-id", "r"], ["prune"], ["validate"]]
)
def test_every_command_refuses_an_invalid_config(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, argv: list[str]
) -> None:
    assert _run(repo, fake_codex, tmp_path, "r").code == 0
    config = repo.path / ".orchestrator" / "orchestrator.yaml"
    data = yaml.safe_load(config.read_text())
    data["limits"]["max_wrokers"] = 2
    config.write_text(yaml.safe_dump(data))
    result = run_cli(repo.path, *argv)
    assert result.code == 2, result.out
    assert "orchestrator.yaml: limits: unknown key 'max_wrokers'" in result.err


def test_a_dirty_checkout_is_said_not_to_be_part_of_the_run(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    plan = write_plan(repo.path / "plan.json", ONE)  # the plan itself, uncommitted, is not worth a warning
    fake_codex.script({"default": [[{"answer": answer()}]]})
    clean = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "clean", "--no-progress")
    assert clean.code == 0 and "uncommitted" not in clean.err
    repo.write("README.md", "edited\n")
    repo.write("notes.txt", "new\n")
    with open(repo.path / ".gitignore", "a") as fh:
        fh.write("node_modules/\n")  # a change of the user's own, beside the lines codex-orch added
    dirty = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "dirty", "--no-progress")
    assert dirty.code == 0
    warning = next(line for line in dirty.err.splitlines() if "uncommitted" in line)
    assert "warning: 3 uncommitted change(s)" in warning and "README.md" in warning and "notes.txt" in warning
    assert ".gitignore" in warning
    assert "plan.json" not in warning


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        (["a.txt", "b.txt"], "its answer lists files its commit does not hold: b.txt"),
        ([], "its answer lists no files, but its commit changes some"),
        (["a.txt", "./docs/"], None),
    ],
)
def test_an_answer_that_does_not_match_its_commit_is_flagged(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, listed: list[str], expected: str | None
) -> None:
    steps = [
        {"write": "a.txt", "content": "a\n"},
        {"write": "docs/x.md", "content": "x\n"},
        {"answer": answer("did it", listed)},
    ]
    result = _run(repo, fake_codex, tmp_path, "m", {"default": [steps]})
    assert result.code == 0
    status = run_cli(repo.path, "status", "--run-id", "m").out
    report = run_cli(repo.path, "report", "--run-id", "m")
    task = json.loads(run_cli(repo.path, "status", "--run-id", "m", "--json").out)["tasks"][0]
    if expected is None:
        assert task["file_claims"] is None and "flagged" not in status and "Flagged" not in report.out
        return
    assert f"flagged: {expected}" in status.replace("\n", " ") or "flagged:" in status
    assert f"**Flagged:** {expected}" in report.out
    assert task["file_claims"]["listed_none"] is (listed == [])


def test_init_ignores_codex_mem_logs(repo: Repo) -> None:
    assert run_cli(repo.path, "init").code == 0
    assert ".codex-mem/" in (repo.path / ".gitignore").read_text().splitlines()
    (repo.path / ".codex-mem").mkdir()
    (repo.path / ".codex-mem" / "codex-mem.log").write_text("log\n")
    assert ".codex-mem" not in repo.git("status", "--porcelain", "--untracked-files=all")


def test_an_empty_services_list_really_starts_no_codex_mem(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    repo.write("scripts/start_codex_mem.sh", "exec sleep 1000\n")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "codex-mem script")
    repo.configure(services=[])
    assert _run(repo, fake_codex, tmp_path, "s").code == 0
    assert "services" not in read_state(repo, "s")
    assert not (repo.path / ".codex-mem").exists()
