"""The subprocess call site against real misbehaving children."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import alive

from codex_orch.proc.groups import group_members
from codex_orch.proc.stream import MAX_LINE, ProcRequest, run_streaming


def request(tmp_path: Path, code: str, **kw: object) -> ProcRequest:
    return ProcRequest(
        argv=(sys.executable, "-c", code),
        cwd=tmp_path,
        env=dict(os.environ),
        stdout_path=tmp_path / "out.jsonl",
        stderr_path=tmp_path / "err.log",
        **kw,  # type: ignore[arg-type]
    )


SPAWN_GRANDCHILD = (
    "import subprocess, sys, os;"
    "p = subprocess.Popen(['sleep', '1000'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
    "open(sys.argv[1] if len(sys.argv) > 1 else 'child.pid', 'w').write(str(p.pid));"
)


def test_lines_reach_the_callback_and_every_byte_reaches_the_file(tmp_path: Path) -> None:
    lines: list[bytes] = []
    outcome = run_streaming(
        request(tmp_path, "import sys\nfor i in range(1000): print('{\"n\": %d}' % i)\nsys.stdout.write('tail')"),
        lines.append,
    )
    assert outcome.returncode == 0 and not outcome.stopped
    assert len(lines) == 1001 and lines[0] == b'{"n": 0}' and lines[-1] == b"tail"
    assert (tmp_path / "out.jsonl").read_bytes().count(b"\n") == 1000


def test_prompt_goes_to_stdin_and_stdin_is_closed(tmp_path: Path) -> None:
    lines: list[bytes] = []
    outcome = run_streaming(
        request(tmp_path, "import sys; print(len(sys.stdin.read()))", stdin_data=b"x" * 3_000_000), lines.append
    )
    assert outcome.returncode == 0 and lines == [b"3000000"]


def test_idle_timeout_stops_a_hanging_child_and_its_group(tmp_path: Path) -> None:
    code = SPAWN_GRANDCHILD + "print('started', flush=True); import time; time.sleep(1000)"
    lines: list[bytes] = []
    outcome = run_streaming(request(tmp_path, code, idle_timeout=2.0, stop_grace=1.0), lines.append)
    assert outcome.idle_out and not outcome.timed_out
    assert lines == [b"started"]  # the line reset the idle clock; the silence after it ended the child
    assert outcome.stop_steps[0] == f"sent SIGINT to process group {outcome.pid}"
    assert outcome.signal == 2  # INT was enough for python's default handler
    grandchild = int((tmp_path / "child.pid").read_text())
    assert not alive(grandchild)
    assert group_members(outcome.pid or 0) == []


def test_the_wall_clock_limit_stops_a_child_that_talks(tmp_path: Path) -> None:
    code = "import time\nwhile True:\n    print('busy', flush=True)\n    time.sleep(0.05)\n"
    outcome = run_streaming(request(tmp_path, code, timeout=1.0, idle_timeout=30, stop_grace=1.0), lambda line: None)
    assert outcome.timed_out and not outcome.idle_out
    assert outcome.stop_steps[0] == f"sent SIGINT to process group {outcome.pid}" and outcome.signal == 2


def cancel_on(cancel: threading.Event, ready: bytes = b"ready") -> Callable[[bytes], None]:
    """A line callback that sets `cancel` when the child says it is ready (its handlers are in place)."""

    def on_line(line: bytes) -> None:
        if line == ready:
            cancel.set()

    return on_line


def test_a_child_ignoring_int_and_term_is_killed(tmp_path: Path) -> None:
    code = (
        "import signal, time, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        + SPAWN_GRANDCHILD.replace(";", "\n")
        + "\nprint('ready', flush=True)\ntime.sleep(1000)\n"
    )
    cancel = threading.Event()
    outcome = run_streaming(request(tmp_path, code, stop_grace=0.5), cancel_on(cancel), cancel)
    assert outcome.cancelled
    assert outcome.signal == 9
    assert [s.split()[1] for s in outcome.stop_steps[:3]] == ["SIGINT", "SIGTERM", "SIGKILL"]
    assert not alive(int((tmp_path / "child.pid").read_text()))
    assert group_members(outcome.pid or 0) == []


def test_leftover_processes_are_killed_when_the_leader_exits(tmp_path: Path) -> None:
    outcome = run_streaming(request(tmp_path, SPAWN_GRANDCHILD + "print('bye')"), lambda line: None)
    assert outcome.returncode == 0
    assert "killed leftover processes of the group" in outcome.stop_steps
    assert not alive(int((tmp_path / "child.pid").read_text()))


def test_cancel_event_stops_the_child(tmp_path: Path) -> None:
    cancel = threading.Event()
    code = "import time; print('ready', flush=True); time.sleep(1000)"
    outcome = run_streaming(request(tmp_path, code, stop_grace=1), cancel_on(cancel), cancel)
    assert outcome.cancelled and outcome.signal == 2
    assert outcome.stop_steps[0] == f"sent SIGINT to process group {outcome.pid}"


def test_an_oversized_line_is_kept_on_disk_but_not_in_memory(tmp_path: Path) -> None:
    big = MAX_LINE + 10
    code = f"import sys; sys.stdout.write('a' * {big} + '\\n' + 'after\\n')"
    lines: list[bytes] = []
    outcome = run_streaming(request(tmp_path, code), lines.append)
    assert outcome.oversized_lines == 1 and lines == [b"after"]
    assert (tmp_path / "out.jsonl").stat().st_size == big + 7


def test_a_missing_program_is_a_spawn_error(tmp_path: Path) -> None:
    req = ProcRequest(
        argv=(str(tmp_path / "nope"),), cwd=tmp_path, env={}, stdout_path=tmp_path / "o", stderr_path=tmp_path / "e"
    )
    outcome = run_streaming(req, lambda line: None)
    assert outcome.spawn_error and "cannot start" in outcome.spawn_error and outcome.pid is None


def test_stderr_tail_is_kept(tmp_path: Path) -> None:
    outcome = run_streaming(
        request(tmp_path, "import sys; sys.stderr.write('x' * 100000 + 'END'); sys.exit(3)"), lambda line: None
    )
    assert outcome.returncode == 3 and outcome.stderr_tail.endswith("END") and len(outcome.stderr_tail) <= 16 * 1024
    assert (tmp_path / "err.log").stat().st_size == 100003


def test_empty_argv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ProcRequest(argv=(), cwd=tmp_path, env={}, stdout_path=tmp_path / "o", stderr_path=tmp_path / "e")
