"""The dashboard's API over a real run and a real `codex-orch dashboard`: read-only views, 403 on actions
without the token, the event stream, the pages shipped as package data, a task's gates and the job queue."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

from conftest import FakeCodex, Repo, answer, job, read_state, run_cli, run_plan, start_cli, wait_for, write_plan
from dashboard_helpers import dashboard, gated_run

XSS = "<img src=x onerror=alert(1)>"


def small_run(repo: Repo, fake: FakeCodex, tmp_path: Path) -> None:
    rules = [
        {
            "match": "job A.",
            "turns": [
                [{"shell": "echo built"}, {"write": "a.txt", "content": "alpha\n"}, {"answer": answer(XSS, ["a.txt"])}]
            ],
        },
        {"match": "job B.", "turns": [[{"shell": "echo nope; exit 4"}, {"fail": "model exploded"}]]},
        {"match": "job C.", "turns": [[{"answer": answer("c")}]]},
    ]
    run_plan(repo, fake, tmp_path, "web", [job("A"), job("B"), job("C", blocked_by=("A",))], rules, expect=1)


def test_the_api_reads_runs_and_tasks_and_refuses_actions_without_the_token(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    small_run(repo, fake_codex, tmp_path)
    main_before = repo.git("rev-parse", "main")
    with dashboard(repo.path) as web:
        code, runs = web.get("/api/runs")
        assert code == 200 and [r["run_id"] for r in runs["runs"]] == ["web"]
        assert runs["runs"][0]["done"] == 3 and runs["runs"][0]["status"] == "partial"

        code, run = web.get("/api/runs/web")
        assert code == 200
        assert {t["id"]: (t["status"], t["depth"]) for t in run["tasks"]} == {
            "A": ("succeeded", 0),
            "B": ("failed", 0),
            "C": ("succeeded", 1),
        }
        assert run["tasks"][0]["summary"] == XSS  # data, as the agent wrote it: the page sets it as text

        code, task = web.get("/api/runs/web/tasks/A")
        assert code == 200
        kinds = [(e["kind"], e["text"]) for e in task["attempts"][0]["events"]]
        assert ("command", "/bin/bash -lc 'echo built'") in kinds
        assert task["attempts"][0]["validation"] == "valid\n"
        assert task["diff"]["commit"] == task["commit"] and "+alpha" in task["diff"]["patch"]
        code, failed = web.get("/api/runs/web/tasks/B")
        commands = [e for e in failed["attempts"][0]["events"] if e["kind"] == "command"]
        assert commands[0]["exit_code"] == 4 and failed["diff"] is None

        assert web.get("/api/runs/nope")[0] == 404
        assert web.get("/api/runs/web/tasks/Z9")[0] == 404
        assert web.get("/api/runs/..%2F..%2Fetc")[0] == 404

        # actions: refused without the token, with a wrong one, with another scheme; nothing moved
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {web.token}"}):
            code, body = web.request("POST", "/api/runs/web/merge", headers)
            assert code == 403 and "token" in body["error"], (headers, body)
        assert web.request("POST", "/api/runs/web/cancel")[0] == 403
        assert web.request("POST", "/api/runs/web/resume")[0] == 403
        assert repo.git("rev-parse", "main") == main_before
        # with it, merge does what `codex-orch merge` does; cancel of a run nobody drives is a conflict
        code, merged = web.request("POST", "/api/runs/web/merge", {"Authorization": f"Bearer {web.token}"})
        assert code == 200 and merged["old"] == main_before and repo.git("rev-parse", "main") == merged["new"]
        code, body = web.request("POST", "/api/runs/web/cancel", {"Authorization": f"Bearer {web.token}"})
        assert code == 409 and "not being driven" in body["error"]

        # the run's stream starts with every task's state
        with urllib.request.urlopen(web.url + "/api/runs/web/stream", timeout=30) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert stream.readline() == b"event: hello\n"
            hello = json.loads(stream.readline().removeprefix(b"data: "))
        assert {t["id"]: t["status"] for t in hello["tasks"]} == {"A": "succeeded", "B": "failed", "C": "succeeded"}

        # a page elsewhere whose name was re-pointed at 127.0.0.1 (DNS rebinding) is not answered
        code, body = web.request("GET", "/api/runs", {"Host": f"evil.example:{web.url.rsplit(':', 1)[1]}"})
        assert code == 400 and "Invalid host header" in body

        # the pages are served from the package, with a policy that forbids inline script
        with urllib.request.urlopen(web.url + "/runs/web", timeout=30) as page:
            assert b'<script type="module" src="/static/run.js">' in page.read()
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert (repo.path / ".orchestrator" / "dashboard.token").stat().st_mode & 0o777 == 0o600


def test_a_port_in_use_is_one_line_and_exit_2(repo: Repo, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli(repo.path, "dashboard", "--port", str(port))
    assert result.code == 2 and result.out == ""
    assert result.err.strip().splitlines() == [
        f"codex-orch: error: --port: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_cancel_stops_the_driving_process_and_resume_finishes_the_run(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    fake_codex.script(
        {
            "default": [
                [
                    {"shell": f"while [ ! -e {gate} ]; do sleep 0.05; done"},
                    {"write": "held.txt", "content": "held\n"},
                    {"answer": answer("held", ["held.txt"])},
                ]
            ]
        }
    )
    plan = write_plan(tmp_path / "plan.json", [job("H")])
    run = start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "act", "--no-progress")
    try:
        journal = repo.path / ".orchestrator" / "runs" / "act" / "journal.jsonl"
        wait_for(lambda: journal.is_file() and b'"attempt.pid"' in journal.read_bytes(), "the agent to start")
        with dashboard(repo.path) as web:
            bearer = {"Authorization": f"Bearer {web.token}"}
            assert web.request("POST", "/api/runs/act/resume", bearer)[0] == 409  # it is being driven
            code, body = web.request("POST", "/api/runs/act/cancel", bearer)
            assert code == 200 and body["signalled"] == run.pid
            assert run.wait(timeout=60) == 130  # as on Ctrl-C: stopped in order, resumable
            assert read_state(repo, "act")["status"] == "interrupted"

            gate.touch()
            code, body = web.request("POST", "/api/runs/act/resume", bearer)
            assert code == 200
            wait_for(lambda: read_state(repo, "act")["status"] == "succeeded", "the resumed run to finish", 90)
            assert "held" in repo.git("show", f"{read_state(repo, 'act')['branch']}:held.txt")
    finally:
        gate.touch()
        if run.poll() is None:
            run.kill()
            run.wait()


# --- the job service's queue and a task's gates ----------------------------------------------------------


def test_a_task_shows_its_setup_its_gate_runs_and_the_failed_gates_output(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path
) -> None:
    state = gated_run(repo, fake_codex, tmp_path, "gated")
    assert state["tasks"]["A"]["status"] == "succeeded"
    with dashboard(repo.path) as web:
        code, task = web.get("/api/runs/gated/tasks/A")
    assert code == 200 and task["fix_rounds"] == 1
    failed, passed = task["gates"]
    assert (failed["name"], failed["n"], failed["ok"], failed["exit_code"]) == ("check", 1, False, 3)
    assert (passed["name"], passed["n"], passed["ok"], passed["exit_code"]) == ("check", 2, True, 0)
    assert failed["tail"] == f"collected 1 item\n{XSS}\nFAILED: no ok.txt"  # data: the page sets it as text
    assert passed["tail"] is None and failed["log"].endswith("/attempt-1/gates/check.log")
    assert task["setup"]["ok"] is True and task["setup"]["tail"] is None and task["setup"]["log"]


def test_the_job_queue_is_listed_read_only_and_its_changes_are_streamed(repo: Repo) -> None:
    from codex_orch.service.store import JobStore

    database = repo.path / ".orchestrator" / "service" / "jobs.db"
    with dashboard(repo.path) as web:
        assert web.get("/api/jobs") == (200, {"jobs": None, "error": None})  # no queue: no jobs, no error
        assert not database.exists() and not database.parent.exists()  # and none was made
        database.parent.mkdir(parents=True)
        database.write_bytes(b"not a database, " * 64)
        code, broken = web.get("/api/jobs")
        assert code == 200 and broken["jobs"] is None and broken["error"].endswith("jobs.db: file is not a database")
        database.unlink()

        store = JobStore(database)
        try:
            store.add({"prompt": "Add a   --verbose flag\nto the CLI"}, "job", "feature/verbose")
            plan = {"goal": "Two things", "tasks": [{"id": "a"}, {"id": "b"}]}
            waiting = store.add({"plan": plan}, "job", None)["id"]
            claimed = store.claim("w1", 60)
            assert claimed is not None and claimed["id"] == 1
            code, listed = web.get("/api/jobs")
            assert code == 200 and listed["error"] is None
            assert [(j["id"], j["status"], j["kind"], j["head"], j["branch"], j["run_id"]) for j in listed["jobs"]] == [
                (2, "pending", "plan (2 tasks)", "Two things", None, "job-2"),
                (1, "running", "task", "Add a --verbose flag to the CLI", "feature/verbose", "job-1"),
            ]
            with urllib.request.urlopen(web.url + "/api/stream/runs", timeout=30) as stream:
                assert stream.readline() == b"event: jobs\n"
                first = json.loads(stream.readline().removeprefix(b"data: "))
                assert [j["status"] for j in first["jobs"]] == ["pending", "running"]
                assert store.cancel(waiting) == "pending"
                stream.readline()  # the blank line that ends an event
                assert stream.readline() == b"event: jobs\n"
                changed = json.loads(stream.readline().removeprefix(b"data: "))
            assert [j["status"] for j in changed["jobs"]] == ["cancelled", "running"]
            assert changed["jobs"][0]["finished_at"] is not None
            assert store.finish(1, "w1", "awaiting_input", {"question": "Which flag name?"})
            asked = web.get("/api/jobs")[1]["jobs"][1]
            assert (asked["status"], asked["question"], asked["finished_at"]) == (
                "awaiting_input",
                "Which flag name?",
                None,
            )
        finally:
            store.close()
