"""codex-orch ends its process without interpreter teardown, and loses nothing by it (real child processes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import FakeCodex, Repo, answer, release, run_cli, write_plan

from codex_orch import __version__

# Output to a pipe stays in Python's buffer until exit, as for a user (this machine sets PYTHONUNBUFFERED).
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=BUFFERED)


def test_exit_handlers_run_buffered_output_is_flushed_and_the_code_is_kept() -> None:
    result = child(
        "import atexit, sys\n"
        "from codex_orch.__main__ import exit_now\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "print('buffered', end=' ')\n"
        "sys.stderr.write('to stderr')\n"
        "exit_now(3)\n"
    )
    assert result.returncode == 3
    assert result.stdout == "buffered handler ran\n"
    assert result.stderr == "to stderr"


def test_a_thread_still_running_is_waited_for(tmp_path: Path) -> None:
    """The thread finishes its work only once the interpreter is shutting down (the main thread is no
    longer alive): an exit that did not wait for it would never let it write."""
    marker = tmp_path / "written-by-thread"
    result = child(
        "import threading, time\n"
        "from pathlib import Path\n"
        "from codex_orch.__main__ import exit_now\n"
        "def work():\n"
        "    while threading.main_thread().is_alive():\n"
        "        time.sleep(0.01)\n"
        f"    Path({str(marker)!r}).write_text('done')\n"
        "threading.Thread(target=work).start()\n"
        "exit_now(5)\n"
    )
    assert result.returncode == 5
    assert marker.read_text() == "done"


def test_a_reader_that_went_away_gives_the_status_python_gives(tmp_path: Path) -> None:
    """The child prints, then waits until the test has closed its end of the pipe before it exits."""
    gate = tmp_path / "reader-gone"
    code = (
        "import os, sys, time\nfrom codex_orch.__main__ import exit_now\nprint('x' * 100)\n"
        "while not os.path.exists(sys.argv[1]):\n    time.sleep(0.01)\nexit_now(0)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(gate)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=BUFFERED
    )
    assert proc.stdout is not None
    proc.stdout.close()  # like `codex-orch report | head -0`
    release(gate)
    assert proc.wait(timeout=30) == 120


def test_the_command_line_output_and_exit_codes_survive(repo: Repo) -> None:
    bad = run_cli(repo.path, "run", "--plan-file", str(repo.path / "missing.json"))
    assert bad.code == 2 and bad.err.startswith("codex-orch: error:") and bad.err.endswith("\n")
    version = run_cli(repo.path, "--version")
    assert version.code == 0 and version.out.startswith("codex-orch, version ")


def test_an_unexpected_error_is_one_line_and_a_crash_log_with_versions_in_the_state_folder(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    """A full disk when the run's last record is written is no OrchError: the one line names the log,
    which is in the user's state folder (not a new file in the system temp dir) and says what a bug
    report needs."""
    fake_codex.script({"default": [[{"answer": answer()}]]})
    plan = write_plan(tmp_path / "plan.json", [{"role": "implementer", "prompt": "p", "acceptance": ""}])
    state = tmp_path / "state"
    env = {"CODEX_ORCH_FAULT_AT": "journal:before:run.status:error", "XDG_STATE_HOME": str(state)}
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "boom", "--no-progress", env=env)
    assert result.code == 3, result.err
    [log] = (state / "codex-orch").iterdir()
    assert result.err.splitlines()[-1] == (
        f"codex-orch: internal error: OSError: [Errno 28] No space left on device (details for a bug report in {log})"
    )
    text = log.read_text()
    assert re.fullmatch(r"crash-\d{8}T\d{6}Z-\d+\.log", log.name)
    assert f"codex-orch version: {__version__}\n" in text and "\ngit --version: git version " in text
    assert f"\nsys.version: {sys.version.splitlines()[0]}" in text and "\nclick: " in text
    assert f"\ncommand: codex-orch run --plan-file {plan} --run-id boom --no-progress\n" in text
    assert "Traceback (most recent call last):" in text and text.rstrip().endswith("No space left on device\n```")
