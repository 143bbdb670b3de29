"""The dashboard in headless chromium: how long a state change on disk takes to reach the page, and how
long a 1,000-task run page takes to become interactive.

    .venv/bin/python bench/dashboard.py [--changes 200] [--tasks 1000] [--loads 5]

Both use a synthetic run written with the run store itself (no agents): `latency` records one
`task.status` per change, alternating two statuses on one node of a 20-task run, and the page notes
(a MutationObserver, epoch milliseconds) when that node's status changed; the same machine's clock
stamps both ends. `interactive` opens the run page of a plan of TASKS tasks in ~20 layers (mixed roles,
1-3 dependencies each) and reads when the page had drawn its graph and table and bound its controls
(`body[data-ready-at]`, ms since navigation started), then times one search. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import _common
import uvicorn
from playwright.sync_api import sync_playwright

from codex_orch.state import RunStore
from codex_orch.testing.synthetic_run import synthetic_run
from codex_orch.web.app import create_app


def serve(root: Path) -> tuple[uvicorn.Server, str]:
    server = uvicorn.Server(uvicorn.Config(create_app(root), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


WATCH = """(id) => {
  window.changes = [];
  const node = document.querySelector(`svg [data-task="${id}"]`);
  new MutationObserver(() => window.changes.push(performance.timeOrigin + performance.now()))
    .observe(node, { attributes: true, attributeFilter: ["data-status"] });
}"""


def latency(page, url: str, store: RunStore, changes: int) -> list[float]:
    page.goto(f"{url}/runs/lat")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#live[data-state=open]")
    time.sleep(0.3)
    page.evaluate(WATCH, "T0001")
    out = []
    for i in range(changes):
        status = "running" if i % 2 == 0 else "pending"
        before = time.time() * 1000
        store.record("task.status", task="T0001", status=status)
        page.wait_for_function("n => window.changes.length >= n", arg=i + 1, polling="raf")
        out.append(page.evaluate("i => window.changes[i]", i) - before)
        time.sleep(0.02)
    return out


def interactive(page, url: str, loads: int) -> tuple[list[float], list[float]]:
    ready, search = [], []
    for _ in range(loads):
        page.goto(f"{url}/runs/big")
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)
        ready.append(float(page.get_attribute("body", "data-ready-at") or "nan"))
        start = time.perf_counter()
        page.fill("#search", "T0500")
        page.wait_for_selector("#search-info:has-text('1 match')")
        search.append((time.perf_counter() - start) * 1000)
    return ready, search


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    root = _common.scratch_repo()
    small = synthetic_run(root, "lat", 20, 4)
    synthetic_run(root, "big", args.tasks, 20).close()
    server, url = serve(root)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # for polling waits
            lat = latency(page, url, small, args.changes)
            ready, search = interactive(page, url, args.loads)
            browser.close()
    finally:
        small.close()
        server.should_exit = True
    print(
        f"state change on disk -> page ({args.changes} changes): "
        f"p50 {statistics.median(lat):.0f} ms, p95 {pct(lat, 95):.0f} ms, max {max(lat):.0f} ms"
    )
    print(
        f"{args.tasks}-task run page interactive ({args.loads} loads): "
        f"median {statistics.median(ready):.0f} ms, max {max(ready):.0f} ms; "
        f"search: median {statistics.median(search):.0f} ms"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
