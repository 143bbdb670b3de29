"""Tests written to kill mutants that survived `mutmut run` (docs/testing.md lists them): small, in-process
checks of the core's contracts, so that mutation testing can map each function to the tests that reach it."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from codex_orch.atomic import atomic_write
from codex_orch.engine.scheduler import ConcurrencyRules, Scheduler, globs_overlap
from codex_orch.plan import Task
from codex_orch.redaction import Redactor
from codex_orch.state import JOURNAL_NAME, SNAPSHOT_EVERY, STATE_NAME, RunStore, read_state


# --- the scheduler --------------------------------------------------------------------------------------
def task(
    task_id: str,
    *deps: str,
    paths: tuple[str, ...] | None = None,
    lock_reads: tuple[str, ...] = (),
    lock_writes: tuple[str, ...] = (),
) -> Task:
    return Task(task_id, "implementer", "", "", deps, paths=paths, lock_reads=lock_reads, lock_writes=lock_writes)


class Recorder:
    """run_one and on_blocked for a Scheduler: what ran, in which order, what was blocked and why, and which
    tasks were running at once (each task waits until `release` says so, or runs through)."""

    def __init__(self, results: dict[str, str] | None = None) -> None:
        self.results = results or {}
        self.statuses: dict[str, str] = {}  # the scheduler's, seen from inside run_one
        self.seen: list[str] = []  # each task's status as it runs
        self.order: list[str] = []
        self.blocked: list[tuple[str, str]] = []
        self.running: set[str] = set()
        self.together: set[frozenset[str]] = set()
        self.lock = threading.Lock()

    def run_one(self, t: Task) -> str:
        with self.lock:
            self.order.append(t.id)
            self.seen.append(self.statuses[t.id])
            self.running.add(t.id)
            if len(self.running) > 1:
                self.together.add(frozenset(self.running))
        with self.lock:
            self.running.discard(t.id)
        return self.results.get(t.id, "succeeded")

    def on_blocked(self, t: Task, cause: str) -> None:
        self.blocked.append((t.id, cause))


def schedule(
    tasks: list[Task],
    recorder: Recorder,
    workers: int = 1,
    fail_fast: bool = False,
    rules: ConcurrencyRules | None = None,
    statuses: dict[str, str] | None = None,
    follow_ups: Callable[[Task], list[Task]] | None = None,
) -> Scheduler:
    recorder.statuses = statuses if statuses is not None else {t.id: "pending" for t in tasks}
    fail_fast_arg: dict[str, Any] = {"fail_fast": True} if fail_fast else {}
    scheduler = Scheduler(
        tasks,
        recorder.statuses,
        recorder.run_one,
        recorder.on_blocked,
        rules or ConcurrencyRules("per-task"),
        workers,
        threading.Event(),
        **fail_fast_arg,  # the default is no fail-fast: the argument is left out unless asked for
        follow_ups=follow_ups,
    )
    scheduler.run()
    return scheduler


def test_tasks_run_in_plan_order_once_their_dependencies_succeeded() -> None:
    tasks = [task("T3", "T2"), task("T1"), task("T2", "T1"), task("T4")]
    recorder = Recorder()
    scheduler = schedule(tasks, recorder)
    assert recorder.order == ["T1", "T2", "T3", "T4"]  # the ready task first in the plan goes first
    assert recorder.seen == ["running"] * 4
    assert scheduler.statuses == dict.fromkeys(["T3", "T1", "T2", "T4"], "succeeded")
    assert recorder.blocked == [] and scheduler.failed_fast is False and not scheduler.cancel.is_set()


def test_a_failure_blocks_its_dependents_transitively_naming_the_cause() -> None:
    tasks = [task("T1"), task("T2", "T1"), task("T3", "T2"), task("T4", "T3", "T5"), task("T5")]
    recorder = Recorder({"T1": "failed"})
    scheduler = schedule(tasks, recorder)
    assert recorder.order == ["T1", "T5"]
    assert sorted(recorder.blocked) == [("T2", "T1"), ("T3", "T2"), ("T4", "T3")]
    assert scheduler.statuses == {"T1": "failed", "T2": "blocked", "T3": "blocked", "T4": "blocked", "T5": "succeeded"}
    assert not scheduler.failed_fast and not scheduler.cancel.is_set()


def test_fail_fast_starts_nothing_after_a_failure() -> None:
    tasks = [task("T1"), task("T2"), task("T3")]
    recorder = Recorder({"T1": "failed"})
    scheduler = schedule(tasks, recorder, fail_fast=True)
    assert recorder.order == ["T1"]
    assert scheduler.failed_fast and scheduler.cancel.is_set()
    assert scheduler.statuses == {"T1": "failed", "T2": "pending", "T3": "pending"}


def test_an_interrupted_task_stops_the_run_without_calling_it_fail_fast() -> None:
    tasks = [task("T1"), task("T2", "T1"), task("T3")]
    recorder = Recorder({"T1": "interrupted"})
    scheduler = schedule(tasks, recorder)
    assert recorder.order == ["T1"] and recorder.blocked == []
    assert scheduler.cancel.is_set() and not scheduler.failed_fast
    assert scheduler.statuses == {"T1": "interrupted", "T2": "pending", "T3": "pending"}


def test_a_resumed_run_skips_what_succeeded_or_was_blocked_and_blocks_below_what_failed() -> None:
    tasks = [task("T1"), task("T2", "T1"), task("T3"), task("T4", "T3"), task("T5"), task("T6", "T5")]
    statuses = {"T1": "succeeded", "T2": "interrupted", "T3": "failed", "T4": "pending", "T5": "blocked"}
    statuses["T6"] = "pending"
    recorder = Recorder()
    scheduler = schedule(tasks, recorder, statuses=statuses)
    assert recorder.order == ["T2", "T3"]
    assert recorder.blocked == [("T4", "T3"), ("T6", "T5")]
    assert scheduler.statuses == {
        "T1": "succeeded",
        "T2": "succeeded",
        "T3": "succeeded",
        "T4": "blocked",
        "T5": "blocked",
        "T6": "blocked",
    }


def test_follow_ups_join_when_their_proposer_succeeds() -> None:
    proposed = {"T1": [task("F1", "T1"), task("F2", "F1")], "F1": [task("F3", "T2")]}
    recorder = Recorder({"T2": "failed"})
    scheduler = schedule([task("T1"), task("T2")], recorder, follow_ups=lambda t: proposed.get(t.id, []))
    assert recorder.order == ["T1", "T2", "F1", "F2"]
    assert recorder.blocked == [("F3", "T2")]
    assert [t.id for t in scheduler.tasks] == ["T1", "T2", "F1", "F2", "F3"]
    assert scheduler.statuses["F3"] == "blocked" and scheduler.statuses["F2"] == "succeeded"


class Gate(Recorder):
    """The first `wave` tasks wait until all of them have started (or a safety timeout), so tasks that may
    run together are seen together; later ones run through."""

    def __init__(self, wave: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(wave)

    def run_one(self, t: Task) -> str:
        with self.lock:
            self.order.append(t.id)
            self.running.add(t.id)
            if len(self.running) > 1:
                self.together.add(frozenset(self.running))
            first_wave = len(self.order) <= self.barrier.parties
        if first_wave:
            try:
                self.barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
        with self.lock:
            self.running.discard(t.id)
        return "succeeded"


def test_independent_tasks_run_side_by_side_up_to_the_worker_count() -> None:
    recorder = Gate(2)
    schedule([task("T1"), task("T2"), task("T3"), task("T4")], recorder, workers=2)
    assert frozenset({"T1", "T2"}) in recorder.together
    assert all(len(group) <= 2 for group in recorder.together)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"lock_writes": ("db",)}, {"lock_writes": ("db",)}),
        ({"lock_writes": ("db",)}, {"lock_reads": ("db",)}),
        ({"lock_reads": ("db",)}, {"lock_writes": ("db",)}),
    ],
)
def test_a_write_lock_excludes_every_other_holder(
    first: dict[str, tuple[str, ...]], second: dict[str, tuple[str, ...]]
) -> None:
    a, b = task("A", **first), task("B", **second)
    rules = ConcurrencyRules("per-task")
    assert rules.conflict(b, [a]) == "lock 'db' is held by A"
    assert rules.conflict(a, [b]) == "lock 'db' is held by B"


def test_readers_of_one_lock_run_together() -> None:
    rules = ConcurrencyRules("per-task")
    assert rules.conflict(task("A", lock_reads=("db",)), [task("B", lock_reads=("db",))]) is None


def test_in_a_shared_worktree_a_task_without_paths_runs_alone() -> None:
    rules = ConcurrencyRules("shared")
    assert (
        rules.conflict(task("A"), [task("B", paths=("b/**",))])
        == "A declares no paths and must run alone in the shared worktree"
    )
    assert (
        rules.conflict(task("A", paths=("a/**",)), [task("B")])
        == "B declares no paths and must run alone in the shared worktree"
    )
    assert ConcurrencyRules("per-task").conflict(task("A"), [task("B")]) is None


def test_ignored_paths_do_not_count_and_allowed_ones_may_be_shared() -> None:
    a, b = task("A", paths=("CHANGELOG.md", "a/**")), task("B", paths=("CHANGELOG.md", "b/**"))
    assert ConcurrencyRules("shared", ignore=("CHANGELOG.md",)).conflict(a, [b]) is None
    assert ConcurrencyRules("shared", allow=("CHANGELOG.md",)).conflict(a, [b]) is None
    only_b_allowed = ConcurrencyRules("shared", allow=("b/**",))
    assert only_b_allowed.conflict(task("A", paths=("b/x",)), [task("B", paths=("b/**", "c/x"))]) is None
    assert only_b_allowed.conflict(task("A", paths=("c/**",)), [b, task("C", paths=("c/x",))]) == (
        "paths 'c/**' and 'c/x' of C overlap"
    )


def test_overlapping_tasks_in_a_shared_worktree_take_turns() -> None:
    recorder = Gate(2)
    tasks = [task("T1", paths=("src/**",)), task("T2", paths=("src/a.py",)), task("T3", paths=("docs/**",))]
    schedule(tasks, recorder, workers=3, rules=ConcurrencyRules("shared"))
    assert frozenset({"T1", "T3"}) in recorder.together
    assert not any({"T1", "T2"} <= group for group in recorder.together)
    assert recorder.order[:2] == ["T1", "T3"]


def test_blocking_reaches_every_dependent_once_and_never_one_that_succeeded() -> None:
    # T3's dependents are T5 then T4; T4 is blocked already (through T2) when T3's turn comes
    tasks = [task("T1"), task("T2", "T1"), task("T3", "T1"), task("T5", "T3"), task("T4", "T2", "T3")]
    statuses = dict.fromkeys(["T1", "T2", "T3", "T5", "T4"], "pending")
    recorder = Recorder({"T1": "failed"})
    scheduler = schedule(tasks, recorder, statuses=statuses)
    assert sorted(recorder.blocked) == [("T2", "T1"), ("T3", "T1"), ("T4", "T2"), ("T5", "T3")]
    assert {tid for tid, status in scheduler.statuses.items() if status == "blocked"} == {"T2", "T3", "T4", "T5"}


def test_a_task_that_succeeded_before_is_not_blocked_by_a_dependency_failing_now() -> None:
    recorder = Recorder({"T1": "failed"})
    scheduler = schedule([task("T1"), task("T2", "T1")], recorder, statuses={"T1": "pending", "T2": "succeeded"})
    assert recorder.blocked == [] and scheduler.statuses == {"T1": "failed", "T2": "succeeded"}


def test_a_cancelled_dependency_blocks_its_dependents() -> None:
    recorder = Recorder()
    scheduler = schedule([task("T1"), task("T2", "T1")], recorder, statuses={"T1": "cancelled", "T2": "pending"})
    assert recorder.blocked == [("T2", "T1")] and recorder.order == ["T1"]
    assert scheduler.statuses == {"T1": "succeeded", "T2": "blocked"}


def test_a_follow_up_never_started_stays_pending() -> None:
    recorder = Recorder({"T2": "failed"})
    scheduler = schedule(
        [task("T1"), task("T2")],
        recorder,
        fail_fast=True,
        follow_ups=lambda t: [task("F1", "T1")] if t.id == "T1" else [],
    )
    assert recorder.order == ["T1", "T2"]
    assert scheduler.statuses == {"T1": "succeeded", "T2": "failed", "F1": "pending"}


@pytest.mark.parametrize(("second", "recorded"), [("returns", "interrupted-late"), ("raises", "interrupted")])
def test_a_task_that_raises_stops_the_run_and_records_what_the_others_ended_with(second: str, recorded: str) -> None:
    """run_one raising (a bug, Ctrl-C) cancels the run; the tasks still running are waited for and their
    results recorded, or `interrupted` when they raise too."""
    cancel = threading.Event()

    def run_one(t: Task) -> str:
        if t.id == "T1":
            raise RuntimeError("boom")
        cancel.wait(timeout=30)  # until the scheduler has seen T1's exception
        if second == "raises":
            raise RuntimeError("me too")
        return "interrupted-late"

    statuses = {"T1": "pending", "T2": "pending", "T3": "pending"}
    scheduler = Scheduler(
        [task("T2"), task("T1"), task("T3")],
        statuses,
        run_one,
        lambda t, c: None,
        ConcurrencyRules("per-task"),
        2,
        cancel,
    )
    with pytest.raises(RuntimeError, match="boom"):
        scheduler.run()
    assert cancel.is_set()
    assert statuses == {"T1": "running", "T2": recorded, "T3": "pending"}


def test_without_a_shared_worktree_every_running_task_s_locks_are_checked() -> None:
    rules = ConcurrencyRules("per-task")
    assert rules.conflict(task("A", lock_writes=("db",)), [task("B"), task("C", lock_reads=("db",))]) == (
        "lock 'db' is held by C"
    )


def test_a_shared_path_is_allowed_only_when_both_sides_are_allowed() -> None:
    rules = ConcurrencyRules("shared", allow=("b/x",))
    assert (
        rules.conflict(task("A", paths=("b/x",)), [task("B", paths=("b/**",))]) == "paths 'b/x' and 'b/**' of B overlap"
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [("ab/", "a"), ("ab/", "abc"), ("docX", "doc/y"), ("docX", "docXY")],
)
def test_a_trailing_slash_or_letter_does_not_make_paths_overlap(a: str, b: str) -> None:
    """Only a trailing `/` is dropped before comparing (not whitespace, not a leading `/`, not other letters)."""
    assert (globs_overlap(a, b), globs_overlap(b, a)) == (False, False)


# --- the redactor ---------------------------------------------------------------------------------------
def test_a_secret_holding_another_is_replaced_whole() -> None:
    """Longest first: the inner secret must not be replaced inside the outer one."""
    redactor = Redactor({"OUTER_KEY": "abcdefgh12345", "INNER_KEY": "abcdefgh"})
    assert redactor.text("x abcdefgh12345 y abcdefgh") == "x [REDACTED:OUTER_KEY] y [REDACTED:INNER_KEY]"
    assert redactor.data(b"x abcdefgh12345 y") == b"x [REDACTED:OUTER_KEY] y"
    assert redactor.value({"abcdefgh": ["abcdefgh12345", 7]}) == {"[REDACTED:INNER_KEY]": ["[REDACTED:OUTER_KEY]", 7]}


def test_a_secret_of_punctuation_only_is_redacted() -> None:
    """A value with no letter or digit has no anchor to look for first: it is searched for everywhere."""
    redactor = Redactor({"ODD_TOKEN": "!@#$%^&*()"})
    assert redactor.text("a !@#$%^&*() b") == "a [REDACTED:ODD_TOKEN] b"
    assert redactor.data(b"a !@#$%^&*() b") == b"a [REDACTED:ODD_TOKEN] b"


def test_a_secret_with_a_slash_is_redacted_percent_encoded_with_its_slashes() -> None:
    redactor = Redactor({"PATH_SECRET": "abc/def ghi"})
    text = "u=abc%2Fdef%20ghi&v=abc/def%20ghi&w=abc%2Fdef+ghi"
    assert redactor.text(text) == "u=[REDACTED:PATH_SECRET]&v=[REDACTED:PATH_SECRET]&w=[REDACTED:PATH_SECRET]"


def test_a_stream_flushed_starts_again_empty() -> None:
    stream = Redactor({"SOME_TOKEN": "abcdefgh123"}).stream()
    assert stream.feed(b"x abcdefgh") + stream.flush() == b"x abcdefgh"
    assert stream.feed(b"123 y") + stream.flush() == b"123 y"


# --- the run's state on disk ----------------------------------------------------------------------------
TWO: list[dict[str, Any]] = [
    {"id": "T0001", "role": "implementer"},
    {"id": "T0002", "role": "reviewer", "blocked_by": ["T0001"]},
]


def test_the_journal_is_compact_numbered_and_timed_in_utc(tmp_path: Path) -> None:
    with RunStore.create(tmp_path, {"run_id": "j"}, TWO) as store:
        store.record("task.status", task="T0001", status="running")
    lines = (tmp_path / JOURNAL_NAME).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [1, 2]
    assert [r["type"] for r in records] == ["run.created", "task.status"]
    assert all(line == json.dumps(r, separators=(",", ":")) for line, r in zip(lines, records, strict=True))
    assert all(datetime.fromisoformat(r["ts"]).utcoffset() == timedelta(0) for r in records)
    assert records[1] == {"seq": 2, "ts": records[1]["ts"], "type": "task.status", "task": "T0001", "status": "running"}


def test_the_snapshot_is_indented_in_record_order_and_says_where_the_journal_was(tmp_path: Path) -> None:
    with RunStore.create(tmp_path, {"run_id": "s", "zeta": 1, "alpha": 2}, TWO) as store:
        store.record("task.status", task="T0002", status="blocked")
    text = (tmp_path / STATE_NAME).read_text()
    snapshot = json.loads(text)
    assert text == json.dumps(snapshot, indent=1) + "\n"
    assert list(snapshot)[:3] == ["seq", "run_id", "zeta"]
    assert snapshot["journal_offset"] == (tmp_path / JOURNAL_NAME).stat().st_size
    assert snapshot["seq"] == 2 and snapshot["tasks"]["T0002"]["status"] == "blocked"


def test_a_new_task_starts_pending_with_nothing_recorded(tmp_path: Path) -> None:
    with RunStore.create(tmp_path, {"run_id": "n"}, TWO) as store:
        nothing_yet = ("thread_id", "branch", "worktree", "base_commit", "commit", "head", "result", "error")
        no_times = ("started_at", "ended_at", "file_claims")
        empty_lists = ("attempts", "files_changed", "violations", "follow_ups")
        assert store.task("T0002") == {
            "id": "T0002",
            "role": "reviewer",
            "blocked_by": ["T0001"],
            "status": "pending",
            **dict.fromkeys(nothing_yet + no_times),
            **{key: [] for key in empty_lists},
        }
        assert store.get("task_order") == ["T0001", "T0002"] and store.get("status") == "running"
        view = store.view()
        view["tasks"]["T0001"]["status"] = "changed"  # a copy: the store is not changed through it
        assert store.task("T0001")["status"] == "pending" and store.get("nothing") is None


def test_a_snapshot_is_taken_every_256_records(tmp_path: Path) -> None:
    with RunStore.create(tmp_path, {"run_id": "e"}, TWO) as store:
        first = (tmp_path / STATE_NAME).read_text()
        for _ in range(SNAPSHOT_EVERY - 1):
            store.record("task.status", task="T0001", status="running")
        assert (tmp_path / STATE_NAME).read_text() == first
        store.record("task.status", task="T0001", status="running")
        assert json.loads((tmp_path / STATE_NAME).read_text())["seq"] == SNAPSHOT_EVERY + 1


def test_the_journal_is_a_plain_file_and_closing_twice_is_harmless(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    store = RunStore.create(tmp_path, {"run_id": "c"}, TWO)
    store.close()
    store.close()
    assert (tmp_path / JOURNAL_NAME).stat().st_mode & 0o777 == 0o644 & ~umask
    assert os.fstat(1) is not None  # stdout is still open


def test_reopening_a_run_cuts_a_torn_last_line_and_goes_on_after_it(tmp_path: Path) -> None:
    with RunStore.create(tmp_path, {"run_id": "o"}, TWO) as store:
        store.record("task.status", task="T0001", status="running")
    with open(tmp_path / JOURNAL_NAME, "ab") as fh:
        fh.write(b'{"seq":3,"ts":"x","type":"task.st')  # a crash in the middle of a write
    with RunStore.open(tmp_path) as store:
        assert store.get("seq") == 2
        store.record("task.status", task="T0001", status="succeeded")
    lines = (tmp_path / JOURNAL_NAME).read_bytes().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]
    assert read_state(tmp_path)["tasks"]["T0001"]["status"] == "succeeded"


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.mkdir()
    (target / "keep").write_text("a directory cannot be replaced by a file")
    with pytest.raises(OSError):
        atomic_write(target, b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.parametrize("bad", [float("nan"), "\ud800"], ids=["nan", "lone-surrogate"])
def test_a_record_that_could_not_be_read_back_is_refused_before_it_is_written(tmp_path: Path, bad: Any) -> None:
    with RunStore.create(tmp_path, {"run_id": "b"}, TWO) as store:
        size = (tmp_path / JOURNAL_NAME).stat().st_size
        with pytest.raises(ValueError):
            store.record("task.result", task="T0001", result={"value": bad})
    assert (tmp_path / JOURNAL_NAME).stat().st_size == size
