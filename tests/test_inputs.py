"""Special inputs: plan, spec and config are regular files; YAML aliases are bounded; numbers are finite.

Each case is an error naming the file (and the place), exit 2, nothing written, and never a hang: the
per-test timeouts below are what fails a test that would wait on a FIFO or walk a billion laughs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import FakeCodex, Repo, run_cli

from codex_orch.config import load_config
from codex_orch.errors import InputError
from codex_orch.layout import Layout

GOOD_PLAN = {
    "goal": "g",
    "assumptions": [],
    "tasks": [{"role": "implementer", "prompt": "p", "acceptance": "a", "blocked_by": []}],
}


def nothing_written(repo: Repo) -> bool:
    return not (repo.path / ".orchestrator" / "runs").exists() and repo.branches() == ["main"]


# --- regular files only --------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("which", ["plan", "spec"])
def test_a_fifo_nobody_writes_to_is_refused_at_once(repo: Repo, fake_codex: FakeCodex, which: str) -> None:
    fifo = repo.path / "input.fifo"
    os.mkfifo(fifo)
    plan = repo.path / "plan.json"
    plan.write_text(json.dumps(GOOD_PLAN))
    args = (
        ["--plan-file", "input.fifo"] if which == "plan" else ["--plan-file", "plan.json", "--spec-file", "input.fifo"]
    )
    result = run_cli(repo.path, "run", *args)
    assert result.code == 2
    assert result.err.strip() == "codex-orch: error: input.fifo: is a FIFO (named pipe), not a regular file"
    assert nothing_written(repo) and fake_codex.calls() == []


@pytest.mark.timeout(30)
def test_a_fifo_as_the_config_is_refused_not_taken_for_no_config(repo: Repo, tmp_path: Path) -> None:
    (repo.path / ".orchestrator").mkdir()
    os.mkfifo(repo.path / ".orchestrator" / "orchestrator.yaml")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(GOOD_PLAN))
    result = run_cli(repo.path, "plan", "--check", str(plan))
    assert result.code == 2
    assert result.err.strip() == (
        "codex-orch: error: .orchestrator/orchestrator.yaml: is a FIFO (named pipe), not a regular file"
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("path", "kind"), [("/dev/stdin", "a character device"), ("/dev/zero", "a character device")])
def test_devices_and_dev_stdin_are_refused(repo: Repo, fake_codex: FakeCodex, path: str, kind: str) -> None:
    # run_cli gives the child /dev/null as stdin: /dev/stdin is then a character device
    result = run_cli(repo.path, "run", "--plan-file", path)
    assert result.code == 2
    assert result.err.strip() == f"codex-orch: error: {path}: is {kind}, not a regular file"
    spec = run_cli(repo.path, "plan", "--check", "plan.json", "--spec-file", path)
    assert f"error: {path}: is {kind}, not a regular file" in spec.out.splitlines()
    assert nothing_written(repo)


# --- YAML aliases --------------------------------------------------------------------------------------


def laughs(indent: str = "") -> str:
    """Ten levels of nine aliases to the level below: 9**9 strings standing for about 3.5 GB."""
    lines = [f'{indent}lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{indent}l{i}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(9)]
    return "\n".join(lines) + "\n"


BILLION_LAUGHS = laughs()


def write_config(repo: Repo, text: str) -> None:
    path = repo.path / ".orchestrator" / "orchestrator.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "text",
    [
        BILLION_LAUGHS,  # unknown keys, each holding up to a billion values
        "codex:\n  config:\n" + laughs("    "),  # a free-form key (written out as TOML for codex)
        "codex:\n  config:\n" + laughs("    ") + "concurrency:\n  allow: *j\n",  # and a checked one
    ],
    ids=["top level", "under a free-form key", "under a checked key"],
)
def test_a_billion_laughs_config_is_an_error(repo: Repo, text: str) -> None:
    write_config(repo, text)
    with pytest.raises(InputError) as info:
        load_config(Layout(repo.path))
    assert str(info.value).startswith(
        ".orchestrator/orchestrator.yaml: its YAML aliases expand to more than 4,194,304 characters of values"
    ), str(info.value)


@pytest.mark.timeout(30)
def test_a_billion_laughs_config_stops_run_with_one_line(repo: Repo, tmp_path: Path) -> None:
    write_config(repo, "codex:\n  config:\n" + laughs("    ") + "limits:\n  retries: *j\n")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(GOOD_PLAN))
    result = run_cli(repo.path, "run", "--plan-file", str(plan))
    assert result.code == 2
    assert result.err.startswith(
        "codex-orch: error: .orchestrator/orchestrator.yaml: its YAML aliases expand to more than"
    )
    assert len(result.err.strip().splitlines()) == 1 and nothing_written(repo)


def test_ordinary_aliases_still_work(repo: Repo) -> None:
    write_config(
        repo,
        "services:\n"
        "  - &svc {name: db, command: [sleep, '1000'], ready: {delay: 0.1}}\n"
        "  - {<<: *svc, name: cache}\n"
        "concurrency:\n  allow: &globs [docs/**, '*.md']\n  ignore: *globs\n",
    )
    config = load_config(Layout(repo.path))
    assert [s.name for s in config.services or ()] == ["db", "cache"]
    assert config.concurrency_ignore == ("docs/**", "*.md")


def test_a_recursive_alias_is_an_error(repo: Repo) -> None:
    write_config(repo, "concurrency:\n  allow: &a [x, *a]\n")
    with pytest.raises(InputError, match=r"orchestrator.yaml: invalid YAML: an alias refers to a value that holds it"):
        load_config(Layout(repo.path))


# --- numbers: finite, and positive where a limit --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "place", "message"),
    [
        ("limits:\n  timeout: .nan\n", "limits.timeout", "nan is not a finite number"),
        ("limits:\n  idle_timeout: .inf\n", "limits.idle_timeout", "inf is not a finite number"),
        ("limits:\n  stop_grace: -.inf\n", "limits.stop_grace", "-inf is not a finite number"),
        ("limits:\n  timeout: -5\n", "limits.timeout", "-5 is less than or equal to the minimum of 0"),
        (
            "limits:\n  timeout: 1.0e+12\n",
            "limits.timeout",
            "1000000000000.0 is greater than the maximum of 1000000000.0",
        ),
        ("limits:\n  retries: -1\n", "limits.retries", "-1 is less than the minimum of 0"),
        ("roles:\n  implementer:\n    timeout: .nan\n", "roles.implementer.timeout", "nan is not a finite number"),
        ("validate:\n  timeout: .inf\n", "validate.timeout", "inf is not a finite number"),
        (
            "validate:\n  commands:\n    - {name: t, run: 'true', timeout: .nan}\n",
            "validate.commands[0].timeout",
            "nan is not a finite number",
        ),
        (
            "services:\n  - {name: db, command: 'true', ready_timeout: .nan}\n",
            "services[0].ready_timeout",
            "nan is not a finite number",
        ),
        (
            "services:\n  - {name: db, command: 'true', ready: {delay: .inf}}\n",
            "services[0].ready.delay",
            "inf is not a finite number",
        ),
        ("codex:\n  config:\n    x: .nan\n", "codex.config.x", "nan is not a finite number"),
    ],
)
def test_nan_infinite_and_negative_numbers_in_the_config_are_refused(
    repo: Repo, text: str, place: str, message: str
) -> None:
    write_config(repo, text)
    with pytest.raises(InputError) as info:
        load_config(Layout(repo.path))
    assert str(info.value) == f".orchestrator/orchestrator.yaml: {place}: {message}"


def test_every_config_problem_is_listed(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    write_config(repo, "limits:\n  timeout: .nan\n  retries: two\nlimit: {}\n")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(GOOD_PLAN))
    result = run_cli(repo.path, "run", "--plan-file", str(plan))
    assert result.code == 2
    assert result.err.splitlines() == [
        "codex-orch: error: 3 problems:",
        "  .orchestrator/orchestrator.yaml: (top level): unknown key 'limit'; did you mean 'limits'?",
        "  .orchestrator/orchestrator.yaml: limits.retries: 'two' is not of type 'integer'",
        "  .orchestrator/orchestrator.yaml: limits.timeout: nan is not a finite number",
    ]
    assert nothing_written(repo)
