"""The job queue under load (issue 16): enqueuer processes and worker processes on one SQLite queue.

Part 1, the queue alone: E processes enqueue N jobs each while W worker processes claim them and mark
them done at once (an "instant agent": no run is started). Prints claims/s and the enqueue -> claim
latency (p50, p99) and checks that every job was claimed exactly once.

Part 2, end to end: J jobs through `codex-orch serve`'s worker pool, each a real run of the instant
bench agent (bench/agents/instant_codex.sh) to a commit: jobs/s, and one commit per job.

    .venv/bin/python bench/service_load.py [--enqueuers 4] [--jobs 250] [--workers 4] [--runs 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import configure_instant, git, scratch_repo
from codex_orch.service.store import JobStore, db_path


def _enqueue(path: str, count: int, start: multiprocessing.synchronize.Event, pause: float) -> None:  # type: ignore[name-defined]
    store = JobStore(Path(path))
    start.wait()
    for i in range(count):
        store.add({"prompt": f"job {i}"}, "job", None)
        if pause:
            time.sleep(pause)
    store.close()


def _work(
    path: str, name: str, total: int, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue
) -> None:  # type: ignore[name-defined]
    store = JobStore(Path(path))
    start.wait()
    latencies, claimed, idle_since = [], [], None
    while True:
        job = store.claim(name, 60)
        if job is None:
            done = store.db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'done'").fetchall()[0][0]
            if done >= total:
                break
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 30:
                break
            time.sleep(0.001)
            continue
        idle_since = None
        latencies.append(job["claimed_at"] - job["enqueued_at"])
        claimed.append(job["id"])
        store.finish(job["id"], name, "done", {})
    out.put((claimed, latencies))
    store.close()


def queue_only(enqueuers: int, jobs: int, workers: int, pause: float = 0) -> None:
    repo = scratch_repo()
    path = str(db_path(repo / ".orchestrator"))
    JobStore(Path(path)).close()
    total = enqueuers * jobs
    start = multiprocessing.Event()
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.Process(target=_enqueue, args=(path, jobs, start, pause)) for _ in range(enqueuers)]
    procs += [multiprocessing.Process(target=_work, args=(path, f"w{i}", total, start, out)) for i in range(workers)]
    for p in procs:
        p.start()
    time.sleep(1)  # every process has opened the queue
    began = time.monotonic()
    start.set()
    results = [out.get() for _ in range(workers)]
    elapsed = time.monotonic() - began
    for p in procs:
        p.join()
    claimed = [i for ids, _ in results for i in ids]
    latencies = sorted(x * 1000 for _, lat in results for x in lat)
    store = JobStore(Path(path))
    paced = f", each enqueuer pausing {pause * 1000:.0f} ms between jobs (workers idle)" if pause else ""
    print(f"queue: {enqueuers} enqueuers x {jobs} jobs, {workers} workers, instant agent{paced}")
    print(f"  claimed {len(claimed)} of {total}; distinct {len(set(claimed))}; integrity {store.integrity()}")
    print(f"  {len(claimed) / elapsed:.0f} claims/s ({elapsed:.2f} s from the first enqueue to the last finish)")
    print(
        f"  enqueue -> claim: p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms, max {latencies[-1]:.1f} ms"
    )
    store.close()


def end_to_end(runs: int, workers: int) -> None:
    from codex_orch.service.jobs import JobService
    from codex_orch.service.worker import WorkerPool, WorkerSettings

    repo = scratch_repo()
    configure_instant(repo, workspace="shared")
    service = JobService(repo)
    began = time.monotonic()
    ids = [service.add({"prompt": f"job {i}. write the result"})["id"] for i in range(runs)]
    pool = WorkerPool(repo, workers, WorkerSettings(lease=30)).start()
    while any(service.show(i)["status"] not in ("done", "failed") for i in ids):
        time.sleep(0.1)
    elapsed = time.monotonic() - began
    pool.stop()
    views = [service.show(i) for i in ids]
    commits = [git(repo, "rev-list", "--count", f"main..{v['branch']}") for v in views if v["status"] == "done"]
    print(f"end to end: {runs} jobs, {workers} workers, each a run of the instant bench agent")
    print(f"  done {sum(v['status'] == 'done' for v in views)}, commits per job {sorted(set(commits))}")
    print(f"  {runs / elapsed:.2f} jobs/s ({elapsed:.1f} s)")
    service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enqueuers", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=250)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    queue_only(args.enqueuers, args.jobs, args.workers)  # a burst: the latency is mostly the backlog
    queue_only(args.enqueuers, 50, args.workers, pause=0.05)  # idle workers waiting for jobs
    if args.runs:
        end_to_end(args.runs, args.workers)


if __name__ == "__main__":
    main()
