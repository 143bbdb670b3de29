"""Services a run needs while its agents work: a database, a dev server, an MCP server.

They start in order before the run's first task, each waited for until it is ready, and stop in
reverse order when the run ends, however it ends (success, failure, Ctrl-C, SIGTERM, SIGHUP, an
exception): each with its whole process group and whatever else it started (a daemon that left the
group: proc/reaper.py), INT -> TERM -> KILL. A service that cannot start, exits with an
error or is not ready in time fails the run before any agent starts; the run's tasks stay pending,
so `resume` tries again. Their starts and stops are recorded in the run's journal (`run.service`).
"""

from __future__ import annotations

import logging
import re
import shlex
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from codex_orch.config import Config, ReadyCheck
from codex_orch.engine.context import RunContext
from codex_orch.errors import EXIT_TASKS_FAILED, OrchError
from codex_orch.proc.background import Background, start_background
from codex_orch.proc.groups import reap_orphan
from codex_orch.proc.stream import ProcRequest
from codex_orch.redaction import Redactor
from codex_orch.state import now_iso

log = logging.getLogger(__name__)

CODEX_MEM_SCRIPT = "scripts/start_codex_mem.sh"
CODEX_MEM_LOG_DIR = ".codex-mem"
_POLL = 0.05
_EXIT_GRACE = 0.5  # after a service's group is gone: time for its last output to reach the log


class ServiceError(OrchError):
    """A service of the run could not be started or was not ready: the run fails (exit 1)."""

    exit_code = EXIT_TASKS_FAILED


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    ready: ReadyCheck
    ready_timeout: float
    log_path: Path


def planned_services(config: Config, root: Path, run_dir: Path) -> list[Service]:
    """The configured services; while `services` is not set, scripts/start_codex_mem.sh when the repository
    has it (`services: []` starts nothing)."""
    if config.services is not None:
        return [
            Service(
                s.name, s.argv, root / s.cwd, s.env, s.ready, s.ready_timeout, run_dir / "services" / f"{s.name}.log"
            )
            for s in config.services
        ]
    if (root / CODEX_MEM_SCRIPT).is_file():  # as the original codex-orch did, logs under .codex-mem/
        log_dir = root / CODEX_MEM_LOG_DIR
        return [
            Service(
                "codex-mem",
                ("bash", CODEX_MEM_SCRIPT),
                root,
                {"LOG_DIR_OVERRIDE": str(log_dir)},
                ReadyCheck(delay=1.0),
                30.0,
                log_dir / "codex-mem.log",
            )
        ]
    return []


@contextmanager
def services_running(ctx: RunContext) -> Iterator[None]:
    """Start the run's services (raising ServiceError when one fails) and stop them all on the way out.

    A cancel (Ctrl-C) while one is starting stops what was started and yields at once: the caller
    sees the cancel and starts no task."""
    started: list[tuple[Service, Background]] = []
    try:
        for service in planned_services(ctx.config, ctx.layout.root, ctx.run_dir):
            if ctx.cancel.is_set():
                break
            handle = _start(ctx, service)
            if handle is None:
                break
            started.append((service, handle))
        yield
    finally:
        for service, handle in reversed(started):
            try:
                _stop(ctx, service, handle, "stopped")
            except Exception:  # the others must be stopped all the same
                log.exception("stopping service %s (pid %d)", service.name, handle.pid)


def _log_line(service: Service, text: str) -> None:
    with open(service.log_path, "a", encoding="utf-8") as fh:
        fh.write(f"--- codex-orch {now_iso()}: {text}\n")


def _start(ctx: RunContext, service: Service) -> Background | None:
    """The service started and ready; None when a cancel came first. Raises ServiceError."""
    _reap_orphan(ctx, service.name)
    service.log_path.parent.mkdir(parents=True, exist_ok=True)
    _log_line(service, f"starting service {service.name}: {shlex.join(service.argv)} (in {service.cwd})")
    if not service.cwd.is_dir():
        raise _failed(ctx, service, f"cannot start: its cwd {service.cwd} is not a directory")
    matched = threading.Event()
    pattern = _pattern(service.ready.log)

    def on_line(line: bytes) -> None:
        if pattern is not None and pattern.search(line.decode("utf-8", "replace")):
            matched.set()

    request = ProcRequest(
        argv=service.argv,
        cwd=service.cwd,
        env={**ctx.agent_env, **service.env},
        stdout_path=service.log_path,
        stderr_path=service.log_path,
        stop_grace=ctx.config.limits.stop_grace,
        redactor=Redactor({**ctx.agent_env, **service.env}),
    )
    began = time.monotonic()
    try:
        handle = start_background(request, on_line)
    except OSError as exc:
        raise _failed(ctx, service, f"cannot start {service.argv[0]!r}: {exc.strerror or exc}") from None
    ctx.store.record(
        "run.service",
        name=service.name,
        status="started",
        pid=handle.pid,
        started=time.time(),
        log=str(service.log_path),
    )
    problem = _wait_ready(service, handle, matched, ctx.cancel)
    if problem is None:
        seconds = round(time.monotonic() - began, 3)
        ctx.store.record("run.service", name=service.name, status="ready", pid=handle.pid, seconds=seconds)
        ctx.notify("service", None, {"name": service.name, "status": "ready", "pid": handle.pid})
        _log_line(service, f"ready after {seconds:g} s (pid {handle.pid})")
        return handle
    if ctx.cancel.is_set():
        _stop(ctx, service, handle, "stopped")
        return None
    _stop(ctx, service, handle, "failed", problem)
    raise _error(service, problem, ctx.run_id)


def _wait_ready(service: Service, handle: Background, matched: threading.Event, cancel: threading.Event) -> str | None:
    """None once the service is ready; else why it is not (or 'cancelled')."""
    ready = service.ready
    began = time.monotonic()
    gone_at: float | None = None
    while True:
        if cancel.is_set():
            return "cancelled"
        elapsed = time.monotonic() - began
        if _is_ready(ready, handle, matched, elapsed):
            return None
        code = handle.poll()
        if code is not None and code != 0:
            return f"exited with {_exit_text(code)} before it was ready"
        if code == 0 and ready.log is not None and not handle.group_alive():
            gone_at = gone_at or time.monotonic()
            if time.monotonic() - gone_at > _EXIT_GRACE and not matched.is_set():
                return f"exited before a line of its output matched {ready.log!r}"
        if ready.delay is None and elapsed >= service.ready_timeout:
            return f"was not ready after {service.ready_timeout:g} s ({_waiting_for(ready)})"
        time.sleep(_POLL)


def _is_ready(ready: ReadyCheck, handle: Background, matched: threading.Event, elapsed: float) -> bool:
    """Whether the service shows it is ready: its port accepts, its log matched, or its delay is over."""
    if ready.tcp is not None:
        return _accepts(ready.host, ready.tcp)
    if ready.log is not None:
        return matched.is_set()
    if elapsed >= (ready.delay or 0.0):
        return handle.poll() in (None, 0)  # still running, or handed over to a background process
    return False


def _stop(ctx: RunContext, service: Service, handle: Background, status: str, message: str = "") -> None:
    code_before = handle.poll()
    steps = handle.stop()
    ctx.store.record(
        "run.service",
        name=service.name,
        status=status,
        pid=handle.pid,
        exit_code=code_before,
        stop_steps=list(steps),
        message=message,
    )
    if status == "stopped":
        ctx.notify("service", None, {"name": service.name, "status": "stopped", "pid": handle.pid})
    how = "; ".join(steps)
    if not steps and code_before is not None and status == "stopped":
        how = f"it had exited with {_exit_text(code_before)}"
    _log_line(service, f"{status}{': ' + message if message else ''}{' (' + how + ')' if how else ''}")


def _failed(ctx: RunContext, service: Service, problem: str) -> ServiceError:
    ctx.store.record("run.service", name=service.name, status="failed", pid=None, message=problem)
    _log_line(service, f"failed: {problem}")
    return _error(service, problem, ctx.run_id)


def _error(service: Service, problem: str, run_id: str) -> ServiceError:
    last = _last_line(service.log_path)
    detail = f" (its last output: {last!r})" if last else ""
    return ServiceError(
        f"service {service.name!r} {problem}, so no task was started. Its log: {service.log_path}{detail}.",
        f"Fix it (services in orchestrator.yaml), then `codex-orch resume --run-id {run_id}`.",
    )


def _reap_orphan(ctx: RunContext, name: str) -> None:
    """A service left running by a codex-orch that crashed (kill -9) is stopped before it starts again,
    only when its recorded pid still belongs to it."""
    previous = (ctx.store.get("services") or {}).get(name) or {}
    pid = int(previous.get("pid") or 0)
    if previous.get("status") in ("started", "ready") and pid:
        reap_orphan(pid, float(previous.get("started") or 0))


def _pattern(text: str | None) -> re.Pattern[str] | None:
    """A regular expression; text that is not a valid one is matched literally."""
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error:
        return re.compile(re.escape(text))


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _waiting_for(ready: ReadyCheck) -> str:
    if ready.tcp is not None:
        return f"nothing accepted a connection on {ready.host}:{ready.tcp}"
    return f"no line of its output matched {ready.log!r}"


def _exit_text(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"code {code}"


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [
                line
                for line in fh.read().decode("utf-8", "replace").splitlines()
                if line.strip() and not line.startswith("--- codex-orch ")
            ]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""
