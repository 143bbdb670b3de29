"""Tests written to kill mutants that survived `mutmut run` (docs/testing.md lists them): small, in-process
checks of the core's contracts, so that mutation testing can map each function to the tests that reach it."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from codex_orch import faults
from codex_orch.atomic import atomic_write, atomic_write_json
from codex_orch.engine.scheduler import ConcurrencyRules, Scheduler, globs_overlap
from codex_orch.errors import InputError, InputProblems
from codex_orch.plan import Task
from codex_orch.redaction import Redactor
from codex_orch.state import (
    JOURNAL_NAME,
    SNAPSHOT_EVERY,
    STATE_NAME,
    RunStore,
    journal_records,
    read_state,
    workspace_mode,
)


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


@pytest.mark.parametrize(
    ("tasks", "reopened", "every"),
    [(2, False, SNAPSHOT_EVERY), (2, True, SNAPSHOT_EVERY), (40, False, 8 * 40)],
    ids=["new", "reopened", "40-tasks"],
)
def test_a_snapshot_is_taken_every_256_records_or_8_per_task(
    tmp_path: Path, tasks: int, reopened: bool, every: int
) -> None:
    specs = [{"id": f"T{i:04d}", "role": "implementer"} for i in range(1, tasks + 1)]
    store = RunStore.create(tmp_path, {"run_id": "e"}, specs)
    if reopened:  # the count starts again with the store, from the snapshot its close took
        store.close()
        store = RunStore.open(tmp_path)
    with store:
        first = (tmp_path / STATE_NAME).read_text()
        for _ in range(every - 1):
            store.record("task.status", task="T0001", status="running")
        assert (tmp_path / STATE_NAME).read_text() == first
        store.record("task.status", task="T0001", status="running")
        assert json.loads((tmp_path / STATE_NAME).read_text())["seq"] == every + 1


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


def test_reading_a_run_catches_the_snapshot_up_from_the_journal(tmp_path: Path) -> None:
    """The state is the snapshot plus the journal after its offset; without the snapshot (removed, or
    never written) it is the whole journal folded; reopening after a crash goes on after the last record."""
    with RunStore.create(tmp_path, {"run_id": "r"}, TWO) as store:
        at_creation = (tmp_path / STATE_NAME).read_bytes()
        store.record("task.status", task="T0001", status="running")
        store.record("run.guardrail", changes=["a"])
        expected = store.view()
    size = (tmp_path / JOURNAL_NAME).stat().st_size
    assert read_state(tmp_path, with_offset=True) == (expected, size)
    (tmp_path / STATE_NAME).write_bytes(at_creation)  # a crash after the records, before their snapshot
    assert read_state(tmp_path, with_offset=True) == (expected, size)
    (tmp_path / STATE_NAME).unlink()
    assert read_state(tmp_path, with_offset=True) == (expected, size)
    with RunStore.open(tmp_path) as store:
        store.record("task.status", task="T0001", status="succeeded")
        expected = store.view()
    assert [rec["seq"] for rec, _ in journal_records(tmp_path)] == [1, 2, 3, 4]
    assert read_state(tmp_path) == expected


def test_a_snapshot_without_its_journal_offset_skips_the_records_it_holds(tmp_path: Path) -> None:
    """A state.json that does not say where the journal was is caught up from the journal's start: the
    records it holds already (seq up to its own) are not folded twice."""

    def without_offset() -> bytes:
        snapshot = json.loads((tmp_path / STATE_NAME).read_text())
        del snapshot["journal_offset"]
        return json.dumps(snapshot).encode()

    with RunStore.create(tmp_path, {"run_id": "w"}, TWO) as store:
        store.record("run.guardrail", changes=["a"])  # folded twice, it would read ["a", "a", "b"]
        store.snapshot()
        behind = without_offset()
        store.record("run.guardrail", changes=["b"])
        store.record("task.status", task="T0002", status="blocked")
        expected = store.view()
    size = (tmp_path / JOURNAL_NAME).stat().st_size
    for snapshot in (without_offset(), behind):
        (tmp_path / STATE_NAME).write_bytes(snapshot)
        assert read_state(tmp_path, with_offset=True) == (expected, size)
    assert expected["guardrail"] == ["a", "b"]


def test_the_journal_s_records_come_with_the_offset_past_each(tmp_path: Path) -> None:
    assert list(journal_records(tmp_path)) == []
    with RunStore.create(tmp_path, {"run_id": "o"}, TWO) as store:
        store.record("task.status", task="T0001", status="running")
        store.record("task.status", task="T0002", status="blocked")
    lines = (tmp_path / JOURNAL_NAME).read_bytes().splitlines(keepends=True)
    ends = [sum(len(line) for line in lines[: i + 1]) for i in range(len(lines))]
    with open(tmp_path / JOURNAL_NAME, "ab") as fh:
        fh.write(b'{"seq":4}')  # a torn last line is not a record
    assert [(rec["seq"], end) for rec, end in journal_records(tmp_path)] == [(1, ends[0]), (2, ends[1]), (3, ends[2])]
    assert [(rec["seq"], end) for rec, end in journal_records(tmp_path, ends[1])] == [(3, ends[2])]


NEWER = "It was written by a newer codex-orch: upgrade codex-orch to read it."
REBUILD = "; it can be rebuilt from the journal by removing it"


@pytest.mark.parametrize(
    ("state", "message", "hint"),
    [
        (
            b"{",
            "{state}: unreadable state (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
            None,
        ),
        (
            b"\xff",
            "{state}: unreadable state ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)",
            None,
        ),
        (b'{"seq": 0}', "{state}: schema_version None is not supported (this codex-orch reads 1)", None),
        (b'{"schema_version": true}', "{state}: schema_version True is not supported (this codex-orch reads 1)", None),
        (b'{"schema_version": "1"}', "{state}: schema_version '1' is not supported (this codex-orch reads 1)", None),
        (b'{"schema_version": 0}', "{state}: schema_version 0 is not supported (this codex-orch reads 1)", None),
        (b'{"schema_version": 2}', "{state}: schema_version 2 is not supported (this codex-orch reads 1)", NEWER),
        (None, "{run}: no such run (no state.json nor journal.jsonl)", None),
        (b"", "{run}: the journal holds no run", None),
    ],
    ids=["not-json", "not-utf8", "no-version", "true", "string", "older", "newer", "no-run", "empty-journal"],
)
def test_a_state_that_cannot_be_read_says_why(
    tmp_path: Path, state: bytes | None, message: str, hint: str | None
) -> None:
    if state == b"":
        (tmp_path / JOURNAL_NAME).write_bytes(b"")
    elif state is not None:
        (tmp_path / STATE_NAME).write_bytes(state)
    with pytest.raises(InputError) as caught:
        read_state(tmp_path)
    expected = message.format(state=tmp_path / STATE_NAME, run=tmp_path) + (REBUILD if "unreadable" in message else "")
    assert (caught.value.message, caught.value.hint) == (expected, hint)


def test_a_state_that_breaks_its_schema_is_refused_naming_state_json(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, {"run_id": "x"}, TWO)
    store.record("run.status", status="bogus")
    with pytest.raises(InputProblems) as caught:
        store.snapshot()
    assert caught.value.message.startswith(f"{tmp_path / STATE_NAME}: status: ")
    assert json.loads((tmp_path / STATE_NAME).read_text())["status"] == "running"
    store.record("run.status", status="failed")
    store.close()


def test_task_fields_copies_the_fields_asked_of_the_tasks_asked(tmp_path: Path) -> None:
    with RunStore.create(tmp_path, {"run_id": "f"}, TWO) as store:
        store.record("task.status", task="T0002", status="blocked")
        assert store.task_fields("status", "blocked_by", "nothing") == {
            "T0001": {"status": "pending", "blocked_by": [], "nothing": None},
            "T0002": {"status": "blocked", "blocked_by": ["T0001"], "nothing": None},
        }
        chosen = store.task_fields("blocked_by", ids=["T0002"])
        assert chosen == {"T0002": {"blocked_by": ["T0001"]}}
        chosen["T0002"]["blocked_by"].append("T0009")  # a copy: the store is not changed through it
        assert store.task("T0002")["blocked_by"] == ["T0001"]


@pytest.mark.parametrize(
    ("state", "mode"),
    [
        ({"workspace_mode": "landing", "single_workspace": False}, "landing"),
        ({"workspace_mode": "per-task", "single_workspace": True}, "per-task"),
        ({"single_workspace": True}, "shared"),
        ({"workspace_mode": None, "single_workspace": True}, "shared"),
        ({"single_workspace": False}, "per-task"),
        ({}, "per-task"),
    ],
)
def test_the_workspace_mode_of_runs_old_and_new(state: dict[str, Any], mode: str) -> None:
    assert workspace_mode(state) == mode


@pytest.mark.parametrize("how", ["create", "open"])
def test_a_reopened_store_redacts_what_it_records_too(tmp_path: Path, how: str) -> None:
    redactor = Redactor({"API_TOKEN": "sekrit-0123456789"})
    store = RunStore.create(tmp_path, {"run_id": "s"}, TWO, redactor if how == "create" else None)
    if how == "open":
        store.close()
        store = RunStore.open(tmp_path, redactor)
    with store:
        store.record("task.result", task="T0001", result={"summary": "used sekrit-0123456789"})
    journal = (tmp_path / JOURNAL_NAME).read_text()
    assert "sekrit" not in journal and '"summary":"used [REDACTED:API_TOKEN]"' in journal


@pytest.mark.parametrize(
    ("point", "kinds"), [("before", ["run.created"]), ("after", ["run.created", "run.workspace_ready"])]
)
def test_a_fault_at_a_journal_point_fails_the_record_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, kinds: list[str]
) -> None:
    """CODEX_ORCH_FAULT_AT=journal:before:KIND:error fails a record as a full disk would, before its line is
    written; journal:after:KIND:error after it (the drills crash codex-orch at these points)."""
    monkeypatch.setattr(faults, "_seen", {})
    with RunStore.create(tmp_path, {"run_id": "p"}, TWO) as store:
        monkeypatch.setenv(faults.FAULT_ENV, f"journal:{point}:run.workspace_ready:error")
        with pytest.raises(OSError) as caught:
            store.record("run.workspace_ready")
        monkeypatch.delenv(faults.FAULT_ENV)
    assert caught.value.errno == errno.ENOSPC
    assert [rec["type"] for rec, _ in journal_records(tmp_path)] == kinds


def test_a_journal_write_cut_short_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write may write less than it was given (a signal, a quota): the rest of the line follows, once."""
    store = RunStore.create(tmp_path, {"run_id": "w"}, TWO)
    journal = os.stat(tmp_path / JOURNAL_NAME)
    real_write, calls = os.write, []

    def write_at_most_16_bytes(fd: int, data: bytes) -> int:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (journal.st_dev, journal.st_ino):
            return real_write(fd, data)
        calls.append(len(data))
        assert len(calls) < 100, "the record is written over and over"
        return real_write(fd, bytes(data[:16]))

    monkeypatch.setattr(os, "write", write_at_most_16_bytes)
    with store:
        store.record("task.result", task="T0001", result={"summary": "a line longer than sixteen bytes"})
        expected = store.view()
    monkeypatch.undo()
    assert len(calls) > 2 and [rec["seq"] for rec, _ in journal_records(tmp_path)] == [1, 2]
    assert read_state(tmp_path) == expected


def test_a_journal_opened_as_descriptor_0_is_closed_with_a_last_snapshot(tmp_path: Path) -> None:
    """codex-orch started with its stdin closed opens the journal as file descriptor 0."""
    stdin = os.dup(0)
    try:
        os.close(0)
        store = RunStore.create(tmp_path, {"run_id": "z"}, TWO)
        store.record("task.status", task="T0001", status="running")
        store.close()
        with pytest.raises(OSError):
            os.fstat(0)
    finally:
        os.dup2(stdin, 0)
        os.close(stdin)
    assert json.loads((tmp_path / STATE_NAME).read_text())["seq"] == 2


def test_an_atomic_write_makes_its_temporary_file_hidden_beside_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside the target, so the rename stays on one file system whatever TMPDIR says (here: nowhere);
    hidden and named after it, so a file a crash leaves is never taken for a state."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    real_replace, renamed = os.replace, []

    def replace(src: str, dst: Path) -> None:
        renamed.append(Path(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    atomic_write_json(tmp_path / STATE_NAME, {"b": 1, "a": [2]})
    monkeypatch.undo()
    assert [(p.parent, re.fullmatch(r"\.state\.json\.\w+\.tmp", p.name) is not None) for p in renamed] == [
        (tmp_path, True)
    ]
    assert (tmp_path / STATE_NAME).read_text() == '{\n "b": 1,\n "a": [\n  2\n ]\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == [STATE_NAME]


def test_a_record_that_cannot_be_written_is_in_neither_the_journal_nor_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at the first record (the run's creation) and at a later one: the error is the disk's,
    and the journal and the state are what they were before the record."""
    monkeypatch.setattr(faults, "_seen", {})
    monkeypatch.setenv(faults.FAULT_ENV, "journal:before:run.created:error")
    fds = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError) as first:
        RunStore.create(tmp_path, {"run_id": "f"}, TWO)
    assert first.value.errno == errno.ENOSPC
    assert (tmp_path / "journal.jsonl").read_bytes() == b"" and not (tmp_path / "state.json").exists()
    assert sorted(os.listdir("/proc/self/fd")) == fds  # the journal's descriptor is not left open

    monkeypatch.setenv(faults.FAULT_ENV, "journal:before:task.status:error")
    (tmp_path / "later").mkdir()
    with RunStore.create(tmp_path / "later", {"run_id": "l"}, TWO) as later:
        before, journal = later.view(), (tmp_path / "later" / "journal.jsonl").read_bytes()
        with pytest.raises(OSError):
            later.record("task.status", task="T0001", status="running")
        assert later.view() == before and (tmp_path / "later" / "journal.jsonl").read_bytes() == journal
        later.record("task.status", task="T0001", status="running")  # the disk has room again
        assert later.task("T0001")["status"] == "running"
