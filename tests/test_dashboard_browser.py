"""The dashboard in a real browser: Debian's chromium driven by Playwright (no browser download).

A run of six held fake agents is watched live (no reload), a task page shows its commands and diff,
agent text never becomes markup, and an action with a wrong token is refused; the job service's queue
is listed and followed live; a task's gate runs show with a failed one's output. Screenshots go to each
test's tmp dir.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeCodex, Repo, answer, job, run_plan, start_cli, wait_for, write_plan, writer
from dashboard_helpers import dashboard, gated_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
XSS = "<img src=x onerror=alert(1)>"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # The pages' CSP (tested in test_dashboard.py) forbids eval, which Playwright's polling waits use; it
    # is bypassed here, which also makes the XSS test prove that textContent, not the CSP, is the guard.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    yield tab
    context.close()


def held(task_id: str, gate: Path) -> dict[str, Any]:
    """Task `task_id` runs a command, waits for `gate`, writes its file and answers."""
    return {
        "match": f"job {task_id}.",
        "turns": [
            [
                {"shell": f"echo building {task_id}"},
                {"shell": f"while [ ! -e {gate} ]; do sleep 0.05; done"},
                {"write": f"{task_id}.txt", "content": f"made by {task_id}\n"},
                {"answer": answer(f"task {task_id} done", [f"{task_id}.txt"])},
            ]
        ],
    }


def test_the_run_page_follows_a_live_run_and_the_task_page_shows_commands_and_diff(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, page: Any
) -> None:
    gates = {t: tmp_path / f"gate-{t}" for t in "ABCDEF"}
    fake_codex.script({"rules": [held(t, gate) for t, gate in gates.items()]})
    tasks = [
        job("A"),
        job("B"),
        job("C", blocked_by=("A",)),
        job("D", blocked_by=("A", "B")),
        job("E", blocked_by=("C",)),
        job("F", blocked_by=("D", "E")),
    ]
    plan = write_plan(tmp_path / "plan.json", tasks)
    run = start_cli(repo.path, "run", "--plan-file", str(plan), "--run-id", "live", "--no-progress")
    try:
        wait_for((repo.path / ".orchestrator/runs/live/journal.jsonl").is_file, "the run to start")
        with dashboard(repo.path) as web:
            page.goto(f"{web.url}/runs/live")
            page.wait_for_selector("body[data-ready=true]")
            page.evaluate("window.sameDocument = true")  # gone if the page were ever reloaded
            assert page.locator("[data-task]").count() >= 6
            for task_id in "ABCDEF":
                node = f'svg [data-task="{task_id}"]'
                page.wait_for_selector(f'{node}[data-status="running"]')
                if task_id == "A":
                    page.screenshot(path=str(tmp_path / "run-page-running.png"))
                gates[task_id].touch()
                page.wait_for_selector(f'{node}[data-status="succeeded"]')
                assert page.locator(f'#tasks tr[data-task="{task_id}"][data-status="succeeded"]').count() == 1
            page.wait_for_function("() => document.querySelector('#status .badge')?.textContent === 'succeeded'")
            assert page.evaluate("window.sameDocument") is True
            page.screenshot(path=str(tmp_path / "run-page.png"), full_page=True)

            page.click('svg [data-task="D"]')
            page.wait_for_selector("body[data-ready=true][data-status=succeeded]")
            commands = page.locator('.events tr[data-kind="command"]').all_inner_texts()
            assert any("echo building D" in text and "(exit 0)" in text for text in commands), commands
            assert "+made by D" in page.inner_text("#patch")
            assert page.inner_text("#summary") == "task D done"
            page.screenshot(path=str(tmp_path / "task-page.png"), full_page=True)
        assert run.wait(timeout=60) == 0
    finally:
        for gate in gates.values():
            gate.touch()
        if run.poll() is None:
            run.kill()
            run.wait()


def test_agent_text_stays_text_and_actions_need_the_token(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, page: Any
) -> None:
    rules = [{"match": "job X.", "turns": [[{"shell": f"echo '{XSS}'"}, {"answer": answer(XSS)}]]}]
    run_plan(repo, fake_codex, tmp_path, "xss", [job("X")], rules)
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.type)
        dialog.accept("not-the-token")

    page.on("dialog", on_dialog)
    with dashboard(repo.path) as web:
        page.goto(f"{web.url}/runs/xss")
        page.wait_for_selector("body[data-ready=true]")
        assert page.inner_text('#tasks tr[data-task="X"] td:last-child') == XSS
        page.goto(f"{web.url}/runs/xss/tasks/X")
        page.wait_for_selector("body[data-ready=true]")
        assert page.inner_text("#summary") == XSS
        assert XSS in page.inner_text(".events")
        assert page.locator("img").count() == 0 and dialogs == []  # no element made, no script ran
        page.screenshot(path=str(tmp_path / "xss-task-page.png"), full_page=True)

        page.goto(f"{web.url}/runs/xss")
        page.wait_for_selector("body[data-ready=true]")
        main_before = repo.git("rev-parse", "main")
        page.click("#merge")  # asks for the token (a prompt), gets a wrong one
        page.wait_for_selector("#message[data-kind=error]")
        assert dialogs == ["prompt"]
        assert "needs the token" in page.inner_text("#message")
        assert repo.git("rev-parse", "main") == main_before
        status = page.evaluate("fetch('/api/runs/xss/cancel', {method: 'POST'}).then(r => r.status)")
        assert status == 403


def test_a_thousand_task_plan_opens_grouped_and_search_zoom_and_keyboard_reach_any_task(
    repo: Repo, tmp_path: Path, page: Any
) -> None:
    from codex_orch.testing.synthetic_run import synthetic_run

    store = synthetic_run(repo.path, "big", 1000, 20)
    try:
        with dashboard(repo.path) as web:
            page.goto(f"{web.url}/runs/big")
            page.wait_for_selector("body[data-ready=true]")
            groups = page.locator("svg .group").count()
            summaries, nodes = page.locator("svg .node.summary").count(), page.locator("svg a.node").count()
            assert 60 <= groups <= 100 and summaries >= 60 and nodes < 100  # big groups start collapsed
            assert page.locator("#tasks tbody tr[data-task]").count() == 200
            assert "and 800 more" in page.inner_text("#tasks tbody")

            # search: the match's group opens, the node is highlighted, Enter focuses it
            page.fill("#search", "T0500")
            page.wait_for_selector('svg a.node.match[data-task="T0500"]')
            page.press("#search", "Enter")
            assert page.evaluate("document.activeElement.dataset.task") == "T0500"
            page.wait_for_selector('#tasks tbody tr[data-task="T0500"]')
            assert page.locator("#tasks tbody tr[data-task]").count() == 1

            # the live state reaches a node that is shown, and a collapsed group's counts
            group = page.get_attribute("svg g.summary", "data-group")
            hidden = next(t["id"] for t in web.get("/api/runs/big")[1]["tasks"] if f"{t['depth']}|{t['role']}" == group)
            store.record("task.status", task="T0500", status="running")
            store.record("task.status", task=hidden, status="running")
            page.wait_for_selector('svg a.node[data-task="T0500"][data-status="running"]')
            page.wait_for_function(
                "g => /1 running/.test(document.querySelector(`svg g.summary[data-group='${g}'] text`).textContent)",
                arg=group,
            )

            # zoom changes the view; a group title toggles with the keyboard
            before = page.get_attribute("#graph", "viewBox")
            page.click("#zoom-in")
            assert page.get_attribute("#graph", "viewBox") != before
            page.focus("svg .group[aria-expanded=false]")
            page.keyboard.press("Enter")
            assert page.evaluate("document.activeElement.getAttribute('aria-expanded')") == "true"
            page.screenshot(path=str(tmp_path / "thousand-tasks.png"))
    finally:
        store.close()


def test_the_runs_page_lists_the_job_queue_and_follows_a_job_live(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, page: Any
) -> None:
    from codex_orch.service.store import JobStore

    run_plan(
        repo, fake_codex, tmp_path, "job-1", [job("J")], [writer("J", "j.txt")]
    )  # job 1's run, as a worker names it
    with dashboard(repo.path) as web:
        page.goto(web.url)
        page.wait_for_selector("body[data-jobs=ready]")
        assert page.locator("#jobs-section").is_hidden()  # no queue in this repository: no jobs section

        store = JobStore(repo.path / ".orchestrator" / "service" / "jobs.db")
        try:
            store.add({"prompt": f"Say {XSS} twice"}, "job", "feature/say")
            store.add({"prompt": "Then the docs"}, "job", None)
            assert store.claim("w1", 60) is not None  # job 1 runs, job 2 waits
            page.goto(web.url)
            page.wait_for_selector('#jobs tr[data-job="1"][data-status="running"]')
            page.evaluate("window.sameDocument = true")  # gone if the page were ever reloaded
            assert page.locator('#jobs tr[data-job="2"][data-status="pending"]').count() == 1
            assert XSS in page.inner_text('#jobs tr[data-job="1"] td.what') and page.locator("img").count() == 0
            assert page.get_attribute('#jobs tr[data-job="1"] td:last-child a', "href") == "/runs/job-1"
            assert page.inner_text('#jobs tr[data-job="1"] td:nth-child(7)') == "1 / 1"  # from its run
            assert page.locator('#jobs tr[data-job="2"] td:last-child a').count() == 0  # no run yet: no link

            assert store.finish(1, "w1", "done", {"commit": "0" * 40})
            page.wait_for_selector('#jobs tr[data-job="1"][data-status="done"]')
            assert page.inner_text('#jobs tr[data-job="1"] .badge') == "done"
            assert page.locator('#jobs tr[data-job="2"][data-status="pending"]').count() == 1
            assert page.evaluate("window.sameDocument") is True
            page.screenshot(path=str(tmp_path / "jobs.png"), full_page=True)
        finally:
            store.close()


def test_the_task_page_shows_each_gate_run_and_the_failed_gates_output_as_text(
    repo: Repo, fake_codex: FakeCodex, tmp_path: Path, page: Any
) -> None:
    gated_run(repo, fake_codex, tmp_path, "gated")
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    with dashboard(repo.path) as web:
        page.goto(f"{web.url}/runs/gated/tasks/A")
        page.wait_for_selector("body[data-ready=true][data-status=succeeded]")
        failed, passed = (
            '.checks tr[data-gate="check"][data-attempt="1"]',
            '.checks tr[data-gate="check"][data-attempt="2"]',
        )
        assert page.get_attribute(failed, "data-ok") == "false" and page.inner_text(f"{failed} td.outcome") == "exit 3"
        assert page.get_attribute(passed, "data-ok") == "true" and page.inner_text(f"{passed} td.outcome") == "passed"
        assert page.inner_text('.checks tr[data-check="setup"] td:nth-child(3)') == "ok"
        assert "Fix rounds: 1" in page.inner_text("#fix-rounds")
        tails = page.locator("details.tail pre").all_inner_texts()
        assert tails == [f"collected 1 item\n{XSS}\nFAILED: no ok.txt"]  # only the failed run's, as text
        assert page.locator("img").count() == 0 and dialogs == []
        page.screenshot(path=str(tmp_path / "gates.png"), full_page=True)
