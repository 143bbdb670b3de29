"""Crash drill of the job service: `serve` killed with -9 at random moments while it works through a
load; after each restart every job ends done exactly once (one commit on its branch), `git fsck` is
clean and the database passes `PRAGMA integrity_check`. CI runs two kills over four jobs; `-m slow`
the issue's twenty over fifty."""

from __future__ import annotations

import random
import signal
import subprocess

import pytest
from conftest import FakeCodex, Repo, answer, git, start_cli, wait_for
from service_helpers import service_info

from codex_orch.service.jobs import JobService
from codex_orch.service.store import JobStore, db_path


def _drill(repo: Repo, fake: FakeCodex, jobs: int, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    repo.configure(guardrails={"refs": "run"})  # jobs run at once: each run guards only its own refs
    step = [{"shell": "sleep 0.3; echo $RANDOM$RANDOM > job-$$.txt"}, {"answer": answer("did it")}]
    fake.script({"default": [step]})
    service = JobService(repo.path)
    ids = [service.add({"prompt": f"job {i}", "branch": f"drill/{i}"})["id"] for i in range(jobs)]
    log = (repo.path.parent / "serve.log").open("a")
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = start_cli(repo.path, "serve", "--port", "0", "--workers", "2", "--lease", "2", stdout=log, stderr=log)
        started.append(proc)
        wait_for(lambda: (service_info(repo.path) or {}).get("pid") == proc.pid, "serve up", timeout=60)
        return proc

    try:
        for _ in range(kills):
            before = sum(service.show(i)["status"] == "done" for i in ids)
            if before == jobs:
                break
            proc = start()

            def under_way(b: int = before) -> bool:
                return sum(service.show(i)["status"] in ("running", "done") for i in ids) > b

            wait_for(
                under_way,
                "work under way",
                timeout=60,
            )
            proc_wait = rng.uniform(0.0, 2.0)
            try:
                proc.wait(proc_wait)
            except subprocess.TimeoutExpired:
                pass
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        proc = start()
        wait_for(lambda: all(service.show(i)["status"] in ("done", "failed") for i in ids), "all jobs", timeout=600)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        for running in started:
            if running.poll() is None:
                running.kill()
                running.wait(30)
        log.close()
    views = [service.show(i) for i in ids]
    service.close()
    assert [v["status"] for v in views] == ["done"] * jobs, [v for v in views if v["status"] != "done"]
    assert [git(repo.path, "rev-list", "--count", f"main..drill/{i}") for i in range(jobs)] == ["1"] * jobs
    assert git(repo.path, "fsck", "--no-progress", "--no-dangling") == ""
    store = JobStore(db_path(repo.path / ".orchestrator"))
    assert store.integrity() == "ok"
    store.close()


def test_serve_killed_twice_during_a_load_loses_nothing(repo: Repo, fake_codex: FakeCodex) -> None:
    _drill(repo, fake_codex, jobs=4, kills=2, seed=16)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_serve_killed_twenty_times_during_fifty_jobs_loses_nothing(repo: Repo, fake_codex: FakeCodex) -> None:
    _drill(repo, fake_codex, jobs=50, kills=20, seed=1616)
