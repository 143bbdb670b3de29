"""The job service's queue and workers: jobs run as runs to a commit on their branch, continue on the same
thread, wait for input, push, cancel; claims are atomic and leased; bad jobs are refused before a write."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCodex, Repo, answer, git, read_state, run_cli, start_cli, wait_for

from codex_orch.service.jobs import JobService
from codex_orch.service.store import JobStore, db_path
from codex_orch.service.worker import WorkerPool, WorkerSettings


def _script(fake: FakeCodex, turns: list[list[dict[str, Any]]], match: str | None = None) -> None:
    rule = {"turns": turns} if match is None else {"match": match, "turns": turns}
    fake.script({"rules": [rule]})


def _write(rel: str, text: str, summary: str = "done", status: str = "done") -> list[dict[str, Any]]:
    return [{"write": rel, "content": text}, {"answer": answer(summary, [rel], status=status)}]


@pytest.fixture
def pool(repo: Repo) -> Iterator[WorkerPool]:
    workers = WorkerPool(repo.path, 1, WorkerSettings(lease=5, stop_grace=5)).start()
    yield workers
    workers.stop()


def _service(repo: Repo) -> JobService:
    return JobService(repo.path)


def _wait_status(repo: Repo, job_id: int, *statuses: str) -> dict[str, Any]:
    service = _service(repo)
    try:
        wait_for(lambda: service.show(job_id)["status"] in statuses, f"job {job_id} {statuses}", timeout=90)
        return service.show(job_id)
    finally:
        service.close()


def test_a_job_runs_as_a_run_to_a_commit_on_its_branch_and_continues_on_its_thread(
    repo: Repo, fake_codex: FakeCodex, pool: WorkerPool
) -> None:
    _script(fake_codex, [_write("hello.txt", "hi\n", "wrote hello"), _write("bye.txt", "bye\n", "wrote bye")])
    service = _service(repo)
    job = service.add({"prompt": "write hello", "branch": "feat/hello"})
    assert job["status"] == "pending"
    done = _wait_status(repo, job["id"], "done", "failed")
    assert done["status"] == "done", done
    assert git(repo.path, "show", "feat/hello:hello.txt") == "hi"
    assert done["commit"] == git(repo.path, "rev-parse", "feat/hello")
    state = read_state(repo, done["run_id"])  # a job is a run: status, report, merge, clean work on it
    assert state["tasks"]["task"]["status"] == "succeeded"

    service.continue_job(job["id"], "now write bye")
    again = _wait_status(repo, job["id"], "done", "failed")
    assert again["status"] == "done", again
    assert git(repo.path, "show", "feat/hello:bye.txt") == "bye"
    assert git(repo.path, "rev-parse", "feat/hello~1") == done["commit"]  # on top of the first commit
    calls = fake_codex.calls()
    first_thread = read_state(repo, done["run_id"])["tasks"]["task"]["thread_id"]
    assert first_thread in calls[-1]["argv"]  # `codex exec resume THREAD`: the same agent thread
    assert "resume" in calls[-1]["argv"]
    service.close()


def test_a_blocked_answer_awaits_input_and_continue_answers_it(
    repo: Repo, fake_codex: FakeCodex, pool: WorkerPool
) -> None:
    question = [{"answer": answer("Which greeting: hi or hello?", status="blocked")}]
    _script(fake_codex, [question, _write("greeting.txt", "hello\n", "wrote it")])
    service = _service(repo)
    job = service.add({"prompt": "write a greeting"})
    waiting = _wait_status(repo, job["id"], "awaiting_input", "done", "failed")
    assert waiting["status"] == "awaiting_input", waiting
    assert waiting["question"] == "Which greeting: hi or hello?"
    with pytest.raises(Exception, match="never deleted"):
        service.delete(job["id"])
    service.continue_job(job["id"], "hello")
    done = _wait_status(repo, job["id"], "done", "failed")
    assert done["status"] == "done", done
    assert git(repo.path, "show", f"{done['branch']}:greeting.txt") == "hello"
    state = read_state(repo, done["run_id"])
    assert len(state["tasks"]["task"]["attempts"]) == 1  # not run again: its thread went on in the follow-up
    assert state["tasks"]["followup-1"]["status"] == "succeeded"
    service.close()


def test_push_always_pushes_the_branch_to_origin(
    repo: Repo, fake_codex: FakeCodex, pool: WorkerPool, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    repo.git("remote", "add", "origin", str(remote))
    _script(fake_codex, [_write("a.txt", "a\n")])
    service = _service(repo)
    job = service.add({"prompt": "write a", "feature_id": "f1", "push": "always"})
    done = _wait_status(repo, job["id"], "done", "failed")
    assert done["status"] == "done", done
    assert done["result"]["pushed"] is True
    assert git(remote, "rev-parse", "refs/heads/feature/f1") == done["commit"]
    service.close()


def test_cancel_stops_a_running_job_and_delete_refuses_it_while_it_runs(
    repo: Repo, fake_codex: FakeCodex, pool: WorkerPool
) -> None:
    _script(fake_codex, [[{"hang": True}]])
    service = _service(repo)
    job = service.add({"prompt": "hang"})
    _wait_status(repo, job["id"], "running")
    wait_for(lambda: len(fake_codex.calls()) == 1, "the agent started")
    with pytest.raises(Exception, match="never deleted"):
        service.delete(job["id"])
    service.cancel(job["id"])
    cancelled = _wait_status(repo, job["id"], "cancelled", "failed", "done")
    assert cancelled["status"] == "cancelled", cancelled
    assert read_state(repo, job["run_id"])["tasks"]["task"]["status"] == "interrupted"  # resumable
    assert service.delete(job["id"])["deleted"] == job["id"]
    assert service.list_jobs() == []
    service.close()


def test_claims_are_atomic_under_concurrent_workers(repo: Repo) -> None:
    path = db_path(repo.path / ".orchestrator")
    store = JobStore(path)
    for i in range(200):
        store.add({"prompt": f"job {i}"}, "job", None)
    claimed: list[int] = []
    guard = threading.Lock()

    def claim(name: str) -> None:
        mine = JobStore(path)
        while (job := mine.claim(name, 60)) is not None:
            with guard:
                claimed.append(job["id"])
        mine.close()

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(1, 201))  # every job once, none twice
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.integrity() == "ok"
    store.close()


def test_an_expired_lease_is_claimed_again_and_one_branch_runs_one_job_at_a_time(repo: Repo) -> None:
    store = JobStore(db_path(repo.path / ".orchestrator"))
    first = store.add({"prompt": "one"}, "job", "feat/x")
    second = store.add({"prompt": "two"}, "job", "feat/x")
    other = store.add({"prompt": "three"}, "job", "feat/y")
    claimed = store.claim("w1", 60)
    assert claimed is not None and claimed["id"] == first["id"]
    assert (store.claim("w2", 60) or {}).get("id") == other["id"]  # feat/x is busy: its second job waits
    assert store.claim("w2", 60) is None
    assert store.renew(first["id"], "w1", -1) == (True, False)  # the lease of w1 runs out (as if killed)
    again = store.claim("w3", 60)
    assert again is not None and again["id"] == first["id"] and again["claims"] == 2
    assert store.renew(first["id"], "w1", 60) == (False, False)  # w1 lost it
    assert store.finish(first["id"], "w3", "done", {})
    assert (store.claim("w3", 60) or {}).get("id") == second["id"]
    store.close()


def test_a_bad_job_is_refused_in_one_line_and_nothing_is_queued(repo: Repo, fake_codex: FakeCodex) -> None:
    bad = run_cli(repo.path, "jobs", "add", "do it", "--branch", "bad..name")
    assert bad.code == 2
    assert bad.err.strip().splitlines() == ["codex-orch: error: job.branch: 'bad..name' is not a valid branch name"]
    plan = repo.path.parent / "plan.json"
    plan.write_text(json.dumps({"goal": "g", "assumptions": [], "tasks": [{"role": "nobody", "prompt": "p"}]}))
    bad_plan = run_cli(repo.path, "jobs", "add", "--plan-file", str(plan))
    assert bad_plan.code == 2 and "job.plan: tasks[0].role" in bad_plan.err
    listed = run_cli(repo.path, "jobs", "list", "--json")
    assert json.loads(listed.out)["jobs"] == []


def test_the_worker_command_runs_a_queued_job(repo: Repo, fake_codex: FakeCodex) -> None:
    _script(fake_codex, [_write("w.txt", "w\n")])
    added = run_cli(repo.path, "jobs", "add", "write w", "--json")
    assert added.code == 0, added.err
    job = json.loads(added.out)
    worker = start_cli(repo.path, "worker", "--count", "1")
    try:
        done = _wait_status(repo, job["id"], "done", "failed")
    finally:
        worker.terminate()
        worker.wait(30)
    assert done["status"] == "done", done
    assert git(repo.path, "show", f"{done['branch']}:w.txt") == "w"
    shown = json.loads(run_cli(repo.path, "jobs", "show", str(job["id"]), "--json").out)
    assert shown["kind"] == "job" and shown["commit"] == done["commit"]


def test_a_write_is_seen_by_other_processes_while_this_one_opens_more_connections(repo: Repo) -> None:
    """A second JobStore in a process must not drop the first one's SQLite locks (closing any descriptor
    of the file drops them all): another process closing its connection would then delete the WAL the
    first one still writes into, and nobody else would ever see those writes."""
    import subprocess
    import sys

    path = db_path(repo.path / ".orchestrator")
    first = JobStore(path)
    second = JobStore(path)  # the serve opens one per thread and per request
    read = "from codex_orch.service.store import JobStore; import sys, pathlib; s = JobStore(pathlib.Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", read + "; s.close()", str(path)], check=True)
    job = first.add({"prompt": "seen?"}, "job", None)
    seen = subprocess.run(
        [sys.executable, "-c", read + "; print(s.get(int(sys.argv[2]))['status'])", str(path), str(job["id"])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert seen.stdout.strip() == "pending"
    assert (path.parent / "jobs.db-wal").exists()
    second.close()
    first.close()


def test_jobs_on_one_branch_run_one_after_another_each_from_the_last_ones_tip(
    repo: Repo, fake_codex: FakeCodex, pool: WorkerPool
) -> None:
    fake_codex.script({"default": [[{"shell": "echo $RANDOM$RANDOM > job-$$.txt"}, {"answer": answer("did it")}]]})
    service = _service(repo)
    first = service.add({"prompt": "first", "branch": "feat/chain"})
    second = service.add({"prompt": "second", "branch": "feat/chain"})
    done = [_wait_status(repo, job["id"], "done", "failed") for job in (first, second)]
    assert [d["status"] for d in done] == ["done", "done"], done
    assert git(repo.path, "rev-list", "--count", "main..feat/chain") == "2"  # run --base-ref feat/chain
    assert git(repo.path, "rev-parse", "feat/chain~1") == done[0]["commit"]
    service.close()
