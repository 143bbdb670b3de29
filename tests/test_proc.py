"""The subprocess call site against real misbehaving children."""

from __future__ import annotations

import io
import json
import os
import re
import selectors
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import alive, wait_for

from codex_orch.proc.groups import group_members
from codex_orch.proc.stream import MAX_LINE, STDERR_TAIL, ProcOutcome, ProcRequest, StreamTee, pump, run_streaming
from codex_orch.redaction import Redactor


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
    with pytest.raises(ValueError, match=r"^argv must not be empty$"):
        ProcRequest(argv=(), cwd=tmp_path, env={}, stdout_path=tmp_path / "o", stderr_path=tmp_path / "e")


# --- written to kill mutants of proc/stream.py (docs/testing.md, "Mutation testing") -------------------
GATE = "import os, sys, time\ndef gate(name):\n    while not os.path.exists(name):\n        time.sleep(0.005)\n"


def test_lines_are_cut_at_each_newline_whatever_the_chunks(tmp_path: Path) -> None:
    """Blank lines are not handed on; a line of MAX_LINE bytes is, a longer one is counted instead; a line
    spanning chunks is whole, and a chunk that starts with its newline ends the line before it."""
    code = GATE + (
        f"out = sys.stdout.buffer\nout.write(b'a\\n\\n' + b'x' * {MAX_LINE} + b'\\n' + b'y' * {MAX_LINE + 1}"
        f" + b'\\n' + b'z' * {MAX_LINE + 5} + b'\\nsync\\n'); out.flush(); gate('gate0')\n"
        "out.write(b'b\\nfirst'); out.flush(); gate('gate1')\n"  # `first` is read alone: the pipe was empty
        "out.write(b'\\nsecond\\n\\ntail'); out.flush()\n"
    )
    lines: list[tuple[int, bytes]] = []

    def on_line(line: bytes) -> None:
        lines.append((len(line), line[:6]))
        if line in (b"sync", b"b"):
            (tmp_path / ("gate0" if line == b"sync" else "gate1")).touch()

    outcome = run_streaming(request(tmp_path, code, timeout=100), on_line)
    assert lines == [
        (1, b"a"),
        (MAX_LINE, b"xxxxxx"),
        (4, b"sync"),
        (1, b"b"),
        (5, b"first"),
        (6, b"second"),
        (4, b"tail"),
    ]
    assert (outcome.returncode, outcome.oversized_lines, outcome.stopped) == (0, 2, False)
    assert outcome.started <= outcome.ended


def test_stderr_goes_redacted_to_its_file_and_its_last_16_kib_to_the_outcome(tmp_path: Path) -> None:
    """The tail is the stream's last 16 KiB (here after two reads: 40,000 bytes, then a few), decoded
    leniently; the file gets all of it, redacted, stdout's and stderr's alike."""
    secret = "sekrit-0123456789"
    raw = f"{secret} ".encode() + bytes(range(48, 58)) * 4000 + b"\xff END"
    code = GATE + (
        f"err = sys.stderr.buffer\nerr.write({raw[:-5]!r}); err.flush()\n"
        "print('ready 1', flush=True); gate('gate1')\n"  # once `ready 1` is read, so are the 40,000 bytes
        f"print('ready 2 {secret}', flush=True); gate('gate2')\n"
        "err.write(b'\\xff END'); err.flush(); sys.exit(3)\n"
    )
    redactor = Redactor({"SOME_TOKEN": secret})

    def on_line(line: bytes) -> None:
        (tmp_path / f"gate{line.split()[1].decode()}").touch()

    outcome = run_streaming(request(tmp_path, code, timeout=100, redactor=redactor), on_line)
    assert outcome.returncode == 3
    assert outcome.stderr_tail == raw[-16 * 1024 :].decode("utf-8", "replace")
    assert (tmp_path / "err.log").read_bytes() == redactor.data(raw)
    assert (tmp_path / "out.jsonl").read_bytes() == b"ready 1\nready 2 [REDACTED:SOME_TOKEN]\n"


def test_each_stdout_line_gets_its_arrival_time_and_is_on_disk_when_handed_on(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def on_line(line: bytes) -> None:
        seen.append((tmp_path / "out.jsonl").read_bytes())

    code = "import sys\nprint('a'); print('b', flush=True)\nsys.stdout.write('c\\nd')"
    outcome = run_streaming(request(tmp_path, code, times_path=tmp_path / "times.log"), on_line)
    assert outcome.returncode == 0 and seen[0].startswith(b"a\n") and seen[-1] == b"a\nb\nc\nd"
    stamps = (tmp_path / "times.log").read_text().splitlines()
    assert len(stamps) == 3 and all(re.fullmatch(r"\d+\.\d{3}", s) for s in stamps)
    assert stamps == sorted(stamps, key=float)


def test_the_child_runs_where_and_with_what_it_was_given(tmp_path: Path) -> None:
    """Its cwd and env (no more: not the caller's HOME), /dev/null on stdin, a session of its own, and no
    descriptor of the caller's, even one the caller could pass on."""
    (tmp_path / "work").mkdir()
    code = (
        "import json, os, sys\n"
        "try:\n    os.fstat(int(sys.argv[1])); inherited = True\nexcept OSError:\n    inherited = False\n"
        "print(json.dumps([os.getcwd(), os.environ.get('ORCH_VAR'), 'HOME' in os.environ, 'CODEX_ORCH_UNIT' in"
        " os.environ, os.path.samestat(os.fstat(0), os.stat(os.devnull)), os.getsid(0) == os.getpid(), inherited]))\n"
    )
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    lines: list[bytes] = []
    try:
        req = ProcRequest(
            argv=(sys.executable, "-c", code, str(write_end)),
            cwd=tmp_path / "work",
            env={"PATH": os.environ["PATH"], "ORCH_VAR": "given"},
            stdout_path=tmp_path / "logs" / "T0001" / "out.jsonl",  # its folders are made
            stderr_path=tmp_path / "logs" / "T0001" / "err.log",
            timeout=100,
        )
        outcome = run_streaming(req, lines.append)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert outcome.returncode == 0, outcome.stderr_tail
    assert json.loads(lines[0]) == [str(tmp_path / "work"), "given", False, True, True, True, False]


def test_a_child_that_closes_its_output_and_hangs_is_stopped_at_its_limit(tmp_path: Path) -> None:
    code = "import os, time\nos.close(1); os.close(2)\ntime.sleep(1000)"
    outcome = run_streaming(request(tmp_path, code, idle_timeout=1.0, stop_grace=1.0), lambda line: None)
    assert outcome.idle_out and outcome.stop_steps[0] == f"sent SIGINT to process group {outcome.pid}"


def test_a_silent_child_is_stopped_at_the_wall_clock_limit(tmp_path: Path) -> None:
    outcome = run_streaming(request(tmp_path, "import time; time.sleep(1000)", timeout=1.0), lambda line: None)
    assert outcome.timed_out and not outcome.idle_out and outcome.signal == 2


def test_output_after_the_leader_ended_is_read_and_a_cancel_then_changes_nothing(tmp_path: Path) -> None:
    """`last` is read after the leader is known to have ended (the callback waits for its exit); the cancel
    its line sets comes too late to call the child cancelled."""
    code = GATE + "print('first', flush=True); gate('gate')\nprint('last', flush=True)\n"
    cancel, started, lines = threading.Event(), list[int](), list[bytes]()

    def on_line(line: bytes) -> None:
        lines.append(line)
        if line == b"first":
            (tmp_path / "gate").touch()
            os.waitid(os.P_PID, started[0], os.WEXITED | os.WNOWAIT)  # it has ended (it is not reaped)
        else:
            cancel.set()

    outcome = run_streaming(request(tmp_path, code, timeout=100), on_line, cancel, on_start=started.append)
    assert lines == [b"first", b"last"] and started == [outcome.pid]
    assert (outcome.returncode, outcome.cancelled, outcome.stop_steps) == (0, False, ())


def test_a_pipe_held_outside_the_child_s_tree_is_let_go_once_the_child_ended(tmp_path: Path) -> None:
    """Here the test itself holds the child's stdout: reading stops a moment after the child ended."""
    held: list[int] = []

    def on_start(pid: int) -> None:
        held.append(os.open(f"/proc/{pid}/fd/1", os.O_WRONLY))
        (tmp_path / "gate").touch()

    lines: list[bytes] = []
    try:
        code = GATE + "gate('gate')\nprint('bye')\n"
        outcome = run_streaming(request(tmp_path, code, timeout=100), lines.append, on_start=on_start)
    finally:
        for fd in held:
            os.close(fd)
    assert (outcome.returncode, lines, outcome.timed_out) == (0, [b"bye"], False)


def test_a_failing_on_start_still_stops_the_child_politely(tmp_path: Path) -> None:
    """INT first (the child's handler notes it and carries on), then TERM after the grace."""
    code = GATE + "import signal\nsignal.signal(signal.SIGINT, lambda *a: open('got-int', 'w').close())\n"
    code += "open('ready', 'w').close()\ntime.sleep(1000)\n"
    started: list[int] = []

    def on_start(pid: int) -> None:
        started.append(pid)
        wait_for((tmp_path / "ready").exists, "the child's SIGINT handler")
        raise RuntimeError("on_start failed")

    with pytest.raises(RuntimeError, match="on_start failed"):
        run_streaming(request(tmp_path, code, stop_grace=0.5), lambda line: None, on_start=on_start)
    assert (tmp_path / "got-int").exists() and not alive(started[0])


def test_a_missing_program_is_a_spawn_error_said_in_its_stderr_file(tmp_path: Path) -> None:
    program = str(tmp_path / "nope")
    req = ProcRequest(
        argv=(program,),
        cwd=tmp_path,
        env={},
        stdout_path=tmp_path / "o",
        stderr_path=tmp_path / "e",
        times_path=tmp_path / "t",
    )
    outcome = run_streaming(req, lambda line: None)
    message = f"cannot start {program!r}: No such file or directory"
    assert outcome == ProcOutcome(None, None, outcome.started, outcome.ended, spawn_error=message)
    assert outcome.started <= outcome.ended and (tmp_path / "e").read_text() == message + "\n"


def test_a_run_leaves_no_descriptor_open(tmp_path: Path) -> None:
    before = sorted(os.listdir("/proc/self/fd"))
    code = "import sys; sys.stdin.read(); print('x')"
    run_streaming(request(tmp_path, code, stdin_data=b"in", times_path=tmp_path / "t"), lambda line: None)
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_pump_reads_every_pipe_that_has_data_and_lets_go_of_a_closed_one() -> None:
    (r1, w1), (r2, w2) = os.pipe(), os.pipe()
    lines: list[bytes] = []
    tees = {r1: StreamTee(r1, io.BytesIO(), lines.append, None), r2: StreamTee(r2, io.BytesIO(), lines.append, None)}
    with selectors.DefaultSelector() as selector:
        for fd in tees:
            selector.register(fd, selectors.EVENT_READ)
        os.close(w1)  # ready first: its end of file
        os.write(w2, b"x\n")
        assert pump(selector, tees, 5) == {r2} and lines == [b"x"]
        assert list(selector.get_map()) == [r2]
    for fd in (r1, r2, w2):
        os.close(fd)


def test_a_chatty_stderr_holds_at_most_twice_its_tail_in_memory() -> None:
    """stderr is kept only for its last 16 KiB; what is held is cut back whenever it passes twice that."""
    tee = StreamTee(0, io.BytesIO(), None, None)
    held = []
    for i in range(40):
        tee.feed(bytes([65 + i % 26]) * 3000)
        held.append(len(tee.tail))
    assert max(held) <= 2 * STDERR_TAIL and held[-1] >= STDERR_TAIL
    assert bytes(tee.tail[-STDERR_TAIL:]) == b"".join(bytes([65 + i % 26]) * 3000 for i in range(40))[-STDERR_TAIL:]
