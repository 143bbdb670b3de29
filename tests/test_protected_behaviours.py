"""Behaviours a mutation spot-check found unprotected (issue 19, section 2): each test here fails when its
behaviour is broken the way the surviving mutant broke it (named in the test's docstring), and passes as the
code is. docs/testing.md says how mutation testing is run and what it found."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCodex, Repo, answer, git, read_state, run_cli, write_plan

from codex_orch.engine.scheduler import ConcurrencyRules, globs_overlap
from codex_orch.plan import Task
from codex_orch.proc.stream import ProcRequest, run_streaming
from codex_orch.redaction import Redactor, encoded_forms
from codex_orch.state import STATE_NAME, RunStore
from codex_orch.state import read_state as read_run_state

ONE_TASK = [{"role": "implementer", "prompt": "the task", "acceptance": "", "blocked_by": [], "paths": ["src/**"]}]


def run_one_task(repo: Repo, tmp_path: Path, run_id: str, env: dict[str, str] | None = None) -> Any:
    plan = write_plan(tmp_path / "plan.json", ONE_TASK)
    return run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", run_id, "--no-progress", env=env)


# --- agent output resets the idle clock -------------------------------------------------------------
def test_an_agent_that_talks_steadily_is_not_stopped_as_idle(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """Mutant: proc/stream.py no longer resets the idle clock when a line was progress. The agent talks for
    about three idle periods (a reasoning event every 0.05 s) and must finish; the mutant stops it `idle`."""
    talk = {"loop": [{"reasoning": "still working"}, {"sleep": 0.05}], "times": 60}
    fake_codex.script({"default": [[talk, {"write": "src/done.txt", "content": "x"}, {"answer": answer("talked")}]]})
    repo.configure(limits={"timeout": 60, "idle_timeout": 1, "stop_grace": 0.5})
    result = run_one_task(repo, tmp_path, "talk")
    task = read_state(repo, "talk")["tasks"]["T0001"]
    assert (result.code, task["status"], task["error"]) == (0, "succeeded", None), result.err
    assert task["attempts"][-1]["stop_steps"] == []
    assert len(fake_codex.calls()) == 1


# --- path overlap is judged both ways ---------------------------------------------------------------
OVERLAPPING = [
    ("src/a/**", "src/a/x.py"),
    ("src/**", "src/a/x.py"),
    ("src/a/", "src/a/x.py"),
    ("src/a", "src/a/b/c.py"),
    ("src/*.py", "src/x.py"),
    ("src/a/**", "src/a/b/**"),
    ("*.md", "docs/x.md"),
    ("docs/x.md", "docs/x.md"),
]
APART = [
    ("src/a/**", "src/b/x.py"),
    ("src/a/x.py", "src/a/y.py"),
    ("src/a", "src/ab"),
    ("src/a/**", "src/ab/x.py"),
    ("docs/x.md", "src/**"),
]


@pytest.mark.parametrize(("a", "b"), OVERLAPPING)
def test_overlapping_paths_are_judged_overlapping_in_both_orders(a: str, b: str) -> None:
    """Mutant: globs_overlap made one-directional (`src/a/**` against `src/a/x.py` seen one way only)."""
    assert (globs_overlap(a, b), globs_overlap(b, a)) == (True, True)


@pytest.mark.parametrize(("a", "b"), APART)
def test_paths_apart_are_judged_apart_in_both_orders(a: str, b: str) -> None:
    assert (globs_overlap(a, b), globs_overlap(b, a)) == (False, False)


def _task(task_id: str, *paths: str) -> Task:
    return Task(id=task_id, role="implementer", prompt="", acceptance="", paths=paths)


@pytest.mark.parametrize(("a", "b"), OVERLAPPING[:4])
def test_a_task_never_starts_beside_one_whose_paths_overlap_whichever_runs_first(a: str, b: str) -> None:
    """Mutant: ConcurrencyRules.conflict checking the pair one way: the narrow task would start beside the
    broad one when the broad one was running first (or the other way round)."""
    rules = ConcurrencyRules("shared")
    broad, narrow = _task("A", a), _task("B", b)
    assert rules.conflict(narrow, [broad]) == f"paths {b!r} and {a!r} of A overlap"
    assert rules.conflict(broad, [narrow]) == f"paths {a!r} and {b!r} of B overlap"
    assert rules.conflict(_task("C", "elsewhere/**"), [broad, narrow]) is None


# --- a secret split across output chunks --------------------------------------------------------------
SECRET = 'pa"ss\\wörd-9f8e7d6c5b'  # quotes, a backslash and a non-ASCII letter: every encoding changes it
URL = "postgres://app:s3cr3t%2Fpw@db.internal:5432/app"


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor({"DRILL_API_KEY": SECRET, "DATABASE_URL": URL})


def _stream(redactor: Redactor, pieces: list[bytes]) -> bytes:
    stream = redactor.stream()
    return b"".join(stream.feed(piece) for piece in pieces) + stream.flush()


def test_a_stream_cut_anywhere_reads_exactly_as_the_whole_text_redacted(redactor: Redactor) -> None:
    """Mutants: the stream redactor holding nothing back (a secret split across two chunks leaks), holding
    back too much or too little, or losing or repeating what it held. For every form of a secret and every
    cut, the stream's output is byte for byte what the whole text gives redacted at once."""
    for value in (SECRET, "s3cr3t%2Fpw", "s3cr3t/pw"):
        for form in sorted(encoded_forms(value)):
            payload = f"before {form} after\n".encode()
            whole = redactor.data(payload)
            assert form.encode() not in whole and whole.count(b"[REDACTED:") == 1, form
            for cut in range(1, len(payload)):
                assert _stream(redactor, [payload[:cut], payload[cut:]]) == whole, (form, cut)
            assert _stream(redactor, [payload[i : i + 1] for i in range(len(payload))]) == whole, form


def test_a_credential_url_cut_anywhere_leaks_no_secret(redactor: Redactor) -> None:
    """The URL holds its password, itself a secret: when a chunk ends just past the password, the password
    is replaced before the whole URL can be seen, and the user and host stay readable (the whole text
    hides the whole URL). No form of any secret is ever written, and nothing around it is lost."""
    secrets = [form.encode() for form, _ in redactor.secrets]
    for form in sorted(encoded_forms(URL)):
        payload = f"before {form} after\n".encode()
        for cut in range(1, len(payload)):
            out = _stream(redactor, [payload[:cut], payload[cut:]])
            assert [s for s in secrets if s in out] == [], (form, cut)
            assert out.startswith(b"before ") and out.endswith(b" after\n") and b"[REDACTED:DATABASE_URL]" in out


def test_a_stream_without_secrets_is_passed_through_as_it_comes() -> None:
    stream = Redactor({"HOME": "/home/someone"}).stream()
    assert (stream.feed(b"ab"), stream.feed(b"cd"), stream.flush()) == (b"ab", b"cd", b"")


def test_long_text_is_not_held_back_longer_than_the_longest_secret(redactor: Redactor) -> None:
    stream = redactor.stream()
    text = b"x" * 1000
    out = stream.feed(text)
    assert out == text[: len(out)] and len(text) - len(out) == redactor.longest - 1
    assert out + stream.flush() == text


def test_a_secret_a_child_writes_in_two_pieces_never_reaches_its_output_file(
    redactor: Redactor, tmp_path: Path
) -> None:
    """The same through run_streaming and a real child: it writes the first half of each form, waits until
    the line callback has seen its "ready" line (so the halves arrive in two reads), then the rest."""
    gate = tmp_path / "gate"
    forms = sorted(encoded_forms(SECRET) | encoded_forms(URL))
    child = (
        "import json, os, sys, time\n"
        "forms = json.loads(sys.argv[1])\n"
        "for i, form in enumerate(forms):\n"
        "    half = len(form) // 2\n"
        "    sys.stdout.write(f'ready {i}\\n' + form[:half]); sys.stdout.flush()\n"
        "    while not os.path.exists(sys.argv[2] + str(i)):\n"
        "        time.sleep(0.005)\n"
        "    sys.stdout.write(form[half:] + '\\n'); sys.stdout.flush()\n"
    )

    def on_line(line: bytes) -> None:
        if line.startswith(b"ready "):
            Path(f"{gate}{line.split()[1].decode()}").touch()

    request = ProcRequest(
        argv=(sys.executable, "-c", child, json.dumps(forms), str(gate)),
        cwd=tmp_path,
        env=dict(os.environ),
        stdout_path=tmp_path / "out.log",
        stderr_path=tmp_path / "err.log",
        timeout=60,
        redactor=redactor,
    )
    outcome = run_streaming(request, on_line)
    assert outcome.returncode == 0, outcome.stderr_tail
    written = (tmp_path / "out.log").read_bytes()
    assert [form for form in forms if form.encode() in written] == []
    assert written.count(b"[REDACTED:") == len(forms)


# --- the snapshot is replaced atomically ----------------------------------------------------------------
SNAPSHOT_WRITER = """
import resource, signal, sys
from pathlib import Path
from codex_orch.state import RunStore

store = RunStore.open(Path(sys.argv[1]))
store.record("task.status", task="T0001", status="running")
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; a real crash is what we want
store.snapshot()
print("the snapshot was written whole")
"""


def test_a_snapshot_write_that_dies_half_way_leaves_the_previous_state_readable(tmp_path: Path) -> None:
    """Mutant: atomic.py's atomic_write writing the snapshot in place instead of temp file + fsync + rename.
    A child codex-orch process records a transition, then dies (SIGXFSZ, its file size limit) half-way
    through writing the next snapshot: the state must still read, the transition included."""
    tasks = [{"id": f"T{i:04d}", "role": "implementer"} for i in range(1, 301)]
    with RunStore.create(tmp_path, {"run_id": "crash"}, tasks):
        pass
    before = (tmp_path / STATE_NAME).read_bytes()
    limit = len(before) // 2
    child = subprocess.run(
        [sys.executable, "-c", SNAPSHOT_WRITER, str(tmp_path), str(limit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGXFSZ, child.stdout + child.stderr
    state = read_run_state(tmp_path)
    assert len(state["tasks"]) == 300
    assert state["tasks"]["T0001"]["status"] == "running"
    assert state["tasks"]["T0002"]["status"] == "pending"
    assert (tmp_path / STATE_NAME).read_bytes() == before


# --- resume adopts the commit made before the crash -----------------------------------------------------
DECIDED = answer("did it", files=["src/a.txt"], decisions=[{"decision": "keep it small", "rationale": "tests"}])


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-task"])
def test_resume_adopts_the_commit_a_crash_left_unrecorded(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, shared: bool
) -> None:
    """Mutant: resume no longer looking for the task's commit (workspace.find_commit, executor's recovering
    path). codex-orch is killed right after the task's commit and before the journal says so; resume must
    record that commit, not make a second one (the decisions entry would be appended twice) nor ask the
    agent again."""
    repo.configure(workspace="shared" if shared else "per-task")
    fake_codex.script({"default": [[{"write": "src/a.txt", "content": "a\n"}, {"answer": DECIDED}]]})
    crashed = run_one_task(repo, tmp_path, "adopt", env={"CODEX_ORCH_FAULT_AT": "journal:before:task.committed"})
    assert crashed.code == -signal.SIGKILL, crashed.err
    branch = read_state(repo, "adopt")["tasks"]["T0001"]["branch"]
    made = git(repo.path, "log", "--format=%H", "--grep=Orch-Task: T0001", branch).split()
    assert len(made) == 1 and read_state(repo, "adopt")["tasks"]["T0001"]["commit"] is None

    resumed = run_cli(repo.path, "resume", "--run-id", "adopt", "--no-progress")
    assert resumed.code == 0, resumed.err
    task = read_state(repo, "adopt")["tasks"]["T0001"]
    assert (task["status"], task["commit"], task["files_changed"]) == (
        "succeeded",
        made[0],
        ["docs/ai/decisions.md", "src/a.txt"],
    )
    assert git(repo.path, "log", "--format=%H", "--grep=Orch-Task: T0001", branch).split() == made
    decisions = git(repo.path, "show", f"{branch}:docs/ai/decisions.md")
    assert decisions.count("keep it small") == 1
    assert len(fake_codex.calls()) == 1


# --- a state from a newer codex-orch is refused ---------------------------------------------------------
@pytest.mark.parametrize("version", [2, "1", True, None])
def test_a_state_of_another_schema_version_is_refused_naming_it(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, version: Any
) -> None:
    """Mutant: read_state no longer checking schema_version. A state.json written by a newer codex-orch
    (or damaged) must be refused with one line naming the file and the version, exit 2, nothing written."""
    fake_codex.script({"default": [[{"write": "src/a.txt", "content": "a"}, {"answer": answer()}]]})
    assert run_one_task(repo, tmp_path, "old").code == 0
    run_dir = repo.path / ".orchestrator" / "runs" / "old"
    state = json.loads((run_dir / STATE_NAME).read_text())
    state["schema_version"] = version
    (run_dir / STATE_NAME).write_text(json.dumps(state))
    journal = (run_dir / "journal.jsonl").read_bytes()
    for command in (("status", "--run-id", "old"), ("resume", "--run-id", "old", "--no-progress")):
        result = run_cli(repo.path, *command)
        lines = result.err.strip().splitlines()
        assert result.code == 2 and len(lines) == 1, result.err
        assert f"{run_dir / STATE_NAME}: schema_version {version!r} is not supported" in lines[0]
    assert "written by a newer codex-orch" in lines[0] if version == 2 else "newer" not in lines[0]
    assert (run_dir / "journal.jsonl").read_bytes() == journal
    assert len(fake_codex.calls()) == 1
