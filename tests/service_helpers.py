"""What the job service's tests share: a real `codex-orch serve` child, its URL and token, HTTP calls."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import FakeCodex, Repo, answer, start_cli, wait_for


def script_jobs(fake: FakeCodex) -> None:
    """Prompts with HANG-FOREVER hang; any other job writes a file of its own, and a continue writes more.txt."""
    first = [{"shell": "echo $RANDOM > job-$$-$RANDOM.txt"}, {"answer": answer("did it")}]
    more = [{"write": "more.txt", "content": "more\n"}, {"answer": answer("did more", ["more.txt"])}]
    fake.script({"rules": [{"match": "HANG-FOREVER", "turns": [[{"hang": True}]]}], "default": [first, more]})


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    token: str
    root: Path

    def call(self, method: str, path: str, body: Any = None, token: str | None = "") -> tuple[int, Any]:
        """An HTTP request; the service's token unless `token` says otherwise (None: no header)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        given = self.token if token == "" else token
        if given is not None:
            request.add_header("Authorization", f"Bearer {given}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def job(self, job_id: int) -> dict[str, Any]:
        status, value = self.call("GET", f"/api/jobs/{job_id}")
        assert status == 200, value
        return dict(value)

    def wait_job(self, job_id: int, *statuses: str) -> dict[str, Any]:
        wait_for(lambda: self.job(job_id)["status"] in statuses, f"job {job_id} in {statuses}", timeout=90)
        return self.job(job_id)


def service_info(root: Path) -> dict[str, Any] | None:
    from codex_orch.service.server import running_service

    return running_service(root)


@contextmanager
def serving(repo: Repo, *args: str) -> Iterator[Served]:
    """`codex-orch serve --port 0` in the repo, until the block ends (then SIGTERM, as systemd stops it)."""
    repo.configure(guardrails={"refs": "run"})  # jobs run at once: each run guards only its own refs
    log = (repo.path.parent / "serve.log").open("a")
    proc = start_cli(repo.path, "serve", "--port", "0", "--lease", "5", *args, stderr=log, stdout=log, text=True)
    try:
        wait_for(lambda: (service_info(repo.path) or {}).get("url") is not None or proc.poll() is not None, "serve up")
        assert proc.poll() is None, (repo.path.parent / "serve.log").read_text()
        info = service_info(repo.path) or {}
        token = (repo.path / ".orchestrator" / "serve.token").read_text().strip()
        yield Served(proc, str(info["url"]), token, repo.path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
