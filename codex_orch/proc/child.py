"""A codex-orch child of the job service: each job's run is driven by its own `python -m codex_orch run`
(or `resume`), so an agent or engine failure ends that process, never the service.

The child leads its own session and process group (a signal to the service's terminal does not reach
it), its output goes to a log file, and it is killed (SIGKILL) when the thread of the service that
started it dies (prctl PR_SET_PDEATHSIG, which the child sets itself first thing: no preexec_fn in a
threaded parent). So a service killed by -9 leaves no driver behind holding the run's lock, and a
restarted service resumes the run at once. What the child started (the agents) is its own business:
the engine reaps it, and a resume stops the agents of a killed driver.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
PARENT_VAR = "CODEX_ORCH_DIE_WITH"  # the pid of the service that started this codex-orch


def die_with_parent_if_asked() -> None:
    """In a child `start_child` started (codex-orch's entry calls it first): be killed with SIGKILL when
    the thread that started it dies, and exit at once if that happened already."""
    expected = os.environ.pop(PARENT_VAR, None)
    if not expected:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if str(os.getppid()) != expected:  # the service died before prctl took effect
        os._exit(137)


def start_child(
    argv: Sequence[str], cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start codex-orch (`argv`) in its own session, stdin closed, stdout and stderr appended to `log`."""
    if not argv:
        raise ValueError("empty argv")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**(os.environ if env is None else env), PARENT_VAR: str(os.getpid())},
            start_new_session=True,
        )


def stop_child(proc: subprocess.Popen[bytes], grace: float) -> int:
    """An orderly stop: SIGTERM to the child (the engine records its tasks interrupted and exits 130),
    SIGKILL to its group after `grace` seconds. Its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return proc.wait()


def start_detached(argv: Sequence[str], cwd: Path, log: Path) -> int:
    """Start a daemon (the job service that `codex-orch mcp` starts when none runs): its own session, stdin
    closed, output appended to `log`; it outlives its starter. Its pid."""
    if not argv:
        raise ValueError("empty argv")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return proc.pid
