"""Services around a run: ready before the first task, gone after the run however it ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    FakeCodex,
    Repo,
    alive,
    answer,
    read_state,
    release,
    run_cli,
    start_cli,
    wait_for,
    wait_marked,
    write_plan,
)

from codex_orch.config import load_config
from codex_orch.errors import InputError
from codex_orch.layout import Layout
from codex_orch.proc.background import start_background
from codex_orch.proc.stream import ProcRequest

ONE_TASK = [{"role": "implementer", "prompt": "use the service", "acceptance": "", "blocked_by": []}]

# A TCP server that takes `delay` seconds to start listening; it writes its pid first.
SERVER = textwrap.dedent(
    """
    import os, socket, sys, time
    port, pid_file, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    with open(pid_file, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(delay)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    print(f"listening on {port}", flush=True)
    while True:
        conn, _ = server.accept()
        conn.close()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def connect_step(port: int, marker: Path) -> dict[str, Any]:
    """A step of the fake agent: it connects to the port and, only if that worked, leaves a marker."""
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2).close()"
    return {"shell": f'{sys.executable} -c "{code}" && echo connected > {marker}'}


def tcp_service(tmp_path: Path, port: int, delay: float = 0.3, **extra: Any) -> tuple[dict[str, Any], Path]:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    pid_file = tmp_path / "server.pid"
    service = {
        "name": "web",
        "command": [sys.executable, str(script), str(port), str(pid_file), str(delay)],
        "ready": {"tcp": port},
        "ready_timeout": 10,
        **extra,
    }
    return service, pid_file


def test_a_tcp_service_is_ready_before_the_first_task_and_gone_after_the_run(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    port = free_port()
    service, pid_file = tcp_service(tmp_path, port)
    repo.configure(services=[service])
    marker = tmp_path / "connected.txt"
    fake_codex.script({"default": [[connect_step(port, marker), {"answer": answer("used it")}]]})
    result = run_cli(
        repo.path, "run", "--plan-file", str(write_plan(tmp_path / "plan.json", ONE_TASK)), "--run-id", "s1"
    )
    assert result.code == 0, result.err
    assert marker.read_text() == "connected\n"  # the agent reached the server: it was listening already
    assert refuses(port) and not alive(int(pid_file.read_text()))
    log = repo.path / ".orchestrator/runs/s1/services/web.log"
    assert f"listening on {port}" in log.read_text()
    services = read_state(repo, "s1")["services"]
    assert services["web"]["status"] == "stopped" and services["web"]["stop_steps"][0].startswith("sent SIGINT")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_its_services(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, sig: signal.Signals
) -> None:
    port = free_port()
    service, pid_file = tcp_service(tmp_path, port, delay=0)
    repo.configure(services=[service])
    started = tmp_path / "agent.pid"
    fake_codex.script({"default": [[{"marker": str(started)}, {"hang": True}]]})
    plan = write_plan(tmp_path / "plan.json", ONE_TASK)
    with (
        open(tmp_path / "out.txt", "w") as out,
        start_cli(
            repo.path,
            "run",
            "--plan-file",
            str(plan),
            "--run-id",
            "int",
            "--no-progress",
            stdout=out,
            stderr=subprocess.STDOUT,
        ) as orch,
    ):
        wait_marked(started, proc=orch)
        assert not refuses(port)  # the service runs while the agent works
        orch.send_signal(sig)
        code = orch.wait(timeout=60)
    assert code == 130, (tmp_path / "out.txt").read_text()
    assert refuses(port) and not alive(int(pid_file.read_text()))
    assert not alive(int(started.read_text()))
    state = read_state(repo, "int")
    assert state["status"] == "interrupted" and state["services"]["web"]["status"] == "stopped"


def test_a_service_orphaned_by_kill_9_is_stopped_when_the_run_resumes(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    port = free_port()
    service, pid_file = tcp_service(tmp_path, port, delay=0)
    repo.configure(services=[service])
    started = tmp_path / "agent.pid"
    fake_codex.script({"default": [[{"marker": str(started)}, {"hang": True}]]})
    plan = write_plan(tmp_path / "plan.json", ONE_TASK)
    with start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "k9", "--no-progress") as orch:
        wait_marked(started, proc=orch)
        orch.kill()
    first = int(pid_file.read_text())
    assert alive(first) and not refuses(port)  # kill -9 left the service behind

    fake_codex.script({"default": [[{"answer": answer()}]]})
    resumed = run_cli(repo.path, "resume", "--run-id", "k9")
    assert resumed.code == 0, resumed.err
    assert not alive(first) and not alive(int(pid_file.read_text())) and refuses(port)


def test_a_service_that_never_becomes_ready_fails_the_run_before_any_agent(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    port = free_port()
    service, pid_file = tcp_service(tmp_path, port, delay=60, ready_timeout=1)
    repo.configure(services=[service])
    marker = tmp_path / "agent.pid"
    fake_codex.script({"default": [[{"marker": str(marker)}, {"answer": answer()}]]})
    plan = write_plan(tmp_path / "plan.json", ONE_TASK)
    result = run_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "nr")
    assert result.code == 1
    log = repo.path / ".orchestrator/runs/nr/services/web.log"
    assert f"service 'web' was not ready after 1 s (nothing accepted a connection on 127.0.0.1:{port})" in result.err
    assert f"Its log: {log}" in result.err and "codex-orch resume --run-id nr" in result.err
    assert fake_codex.calls() == [] and not marker.exists()
    assert not alive(int(pid_file.read_text()))  # the service that was not ready is stopped too
    state = read_state(repo, "nr")
    assert state["status"] == "failed" and state["tasks"]["T0001"]["status"] == "pending"
    assert state["services"]["web"]["status"] == "failed"

    # Fixed, the run resumes: the service starts again and the task runs.
    repo.configure(services=[{**service, "command": [*service["command"][:-1], "0"]}])
    resumed = run_cli(repo.path, "resume", "--run-id", "nr")
    assert resumed.code == 0, resumed.err
    assert read_state(repo, "nr")["tasks"]["T0001"]["status"] == "succeeded" and marker.exists()
    assert refuses(port)


def test_a_service_that_exits_early_fails_at_once_with_its_last_output(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    code = "import sys; print('port already in use', flush=True); sys.exit(3)"
    repo.configure(services=[{"name": "db", "command": [sys.executable, "-c", code], "ready": {"tcp": free_port()}}])
    result = run_cli(repo.path, "run", "--plan-file", str(write_plan(tmp_path / "plan.json", ONE_TASK)))
    assert result.code == 1
    assert "service 'db' exited with code 3 before it was ready" in result.err
    assert "(its last output: 'port already in use')." in result.err
    assert fake_codex.calls() == []


def test_a_log_ready_service_with_a_string_command_and_env(repo: Repo, fake_codex: FakeCodex, tmp_path: Path) -> None:
    """The service is held at a gate before it says it is ready: no agent starts until the test lets it."""
    script = tmp_path / "svc.py"
    up, started, gate = tmp_path / "up.txt", tmp_path / "svc.started", tmp_path / "svc.go"
    script.write_text(
        f"import os, time\nopen({str(started)!r}, 'w').write(f'{{os.getpid()}}\\n')\n"
        f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.01)\n"
        "open(os.environ['UP_FILE'], 'w').write('up')\n"
        "print('server: ready to serve', flush=True)\ntime.sleep(60)\n"
    )
    service = {
        "name": "logged",
        "command": f"{sys.executable} {script}",
        "env": {"UP_FILE": str(up)},
        "ready": {"log": "ready to (serve|go)"},
    }
    repo.configure(services=[service])
    marker = tmp_path / "saw-it.txt"
    fake_codex.script({"default": [[{"shell": f"cat {up} > {marker}"}, {"answer": answer()}]]})
    plan = write_plan(tmp_path / "plan.json", ONE_TASK)
    with start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "l", "--no-progress") as orch:
        try:
            wait_marked(started, proc=orch)
            assert fake_codex.calls() == [] and orch.poll() is None  # the service is not ready: no agent
        finally:
            release(gate)
        assert orch.wait(timeout=120) == 0
    assert marker.read_text() == "up"
    assert "server: ready to serve" in (repo.path / ".orchestrator/runs/l/services/logged.log").read_text()


def test_codex_mem_is_started_when_the_repository_has_its_script(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    repo.write(
        "scripts/start_codex_mem.sh",
        'echo $$ > "$LOG_DIR_OVERRIDE/test.pid"\necho "codex-mem logs in $LOG_DIR_OVERRIDE"\nexec sleep 1000\n',
    )
    pid_file = repo.path / ".codex-mem" / "test.pid"
    marker = tmp_path / "alive.txt"
    fake_codex.script(
        {"default": [[{"shell": f"kill -0 $(cat {pid_file}) && echo alive > {marker}"}, {"answer": answer()}]]}
    )
    result = run_cli(
        repo.path, "run", "--plan-file", str(write_plan(tmp_path / "plan.json", ONE_TASK)), "--run-id", "m"
    )
    assert result.code == 0, result.err
    assert marker.read_text() == "alive\n"  # it ran while the agent worked
    assert not alive(int(pid_file.read_text()))  # and is gone after the run
    log = (repo.path / ".codex-mem" / "codex-mem.log").read_text()
    assert f"codex-mem logs in {repo.path / '.codex-mem'}" in log
    assert read_state(repo, "m")["services"]["codex-mem"]["status"] == "stopped"


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ({"name": "x", "command": "a", "ready": {"tcp": "80"}}, "services[0].ready: {'tcp': '80'} is not valid"),
        ({"name": "x", "command": "a", "ready": {"tcp": 80, "log": "y"}}, "services[0].ready:"),
        ({"name": "x", "command": "a", "restart": True}, "services[0]: unknown key 'restart'"),
        ({"name": "x y", "command": "a"}, "services[0].name: 'x y' does not match"),
        ({"name": "x", "command": "a", "cwd": "/abs"}, "services[0].cwd: '/abs' must be relative"),
        ({"name": "x", "command": "'unclosed"}, "services[0].command: cannot split"),
    ],
)
def test_services_config_errors_name_the_file_and_key(repo: Repo, service: dict[str, Any], expected: str) -> None:
    repo.configure(services=[service])
    with pytest.raises(InputError) as caught:
        load_config(Layout(repo.path))
    assert str(caught.value).startswith(".orchestrator/orchestrator.yaml: ") and expected in str(caught.value)


def test_duplicate_service_names_are_refused(repo: Repo) -> None:
    repo.configure(services=[{"name": "a", "command": "x"}, {"name": "a", "command": ["y", "z"]}])
    with pytest.raises(InputError, match=r"services\[1\]\.name: duplicate service 'a' \(also services\[0\]\)"):
        load_config(Layout(repo.path))


def test_a_background_child_ignoring_signals_is_killed_with_its_group(tmp_path: Path) -> None:
    children = tmp_path / "children.txt"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"child = subprocess.Popen(['sleep', '1000']); open({str(children)!r}, 'w').write(str(child.pid))\n"
        "print('up', flush=True)\ntime.sleep(1000)\n"
    )
    log = tmp_path / "bg.log"
    request = ProcRequest((sys.executable, "-c", code), tmp_path, dict(os.environ), log, log, stop_grace=0.2)
    lines: list[bytes] = []
    handle = start_background(request, lines.append)
    wait_for(lambda: lines, "the child's first line")
    assert lines == [b"up"] and handle.poll() is None
    steps = handle.stop()
    assert [s.split()[1] for s in steps] == ["SIGINT", "SIGTERM", "SIGKILL"]
    assert handle.poll() == -signal.SIGKILL and not alive(int(children.read_text()))
    assert log.read_text() == "up\n"
