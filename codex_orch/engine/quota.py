"""Pauses on a provider's quota: a `rate_limited` attempt stops dispatch to its agent until the reset.

When an attempt fails as `rate_limited` and `agents.fallback` names no agent this task has not tried
(fallback comes first: another provider may have quota now), the agent is paused: until the reset its
message names, else for an exponential backoff with jitter (5 s, 10 s, 20 s, … at most 15 min, by
the task's rate-limited attempts in a row). No task starts on that agent while it is paused (the
scheduler asks `paused`); the attempt that met the limit waits, then goes on on its thread, and that
retry does not count against `limits.transient_retries`. A task waits at most `limits.max_quota_wait`
seconds in all (0: no pauses); past it the failure takes its usual course.

What the real agents say (codex 0.169.0, run here against the loopback server): a plain 429 "exceeded
retry limit, last status: 429 Too Many Requests" (its Retry-After header is not shown: backoff); a
usage limit "You've hit your usage limit. … try again at 9:31 PM." (local time, to the minute: the reset
falls within that minute), "Try again at Nov 27th, 2026 10:30 PM.", or "Try again later.". Others say
"try again in 20s", "Retry-After: 3", "resets at 2026-11-25T21:31:00Z".
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from codex_orch.state import RunStore

BACKOFF_BASE = 5.0
BACKOFF_MAX = 900.0
MINUTE = 60.0

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600}
_IN = re.compile(
    r"(?:try again|retry|resets?|available again)\s+(?:in|after)\s+((?:\d+(?:\.\d+)?\s*[a-z]+[\s,]*(?:and\s+)?)+)",
    re.I,
)
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)", re.I)
_RETRY_AFTER = re.compile(r"retry-after\W{1,3}(\d+(?:\.\d+)?)\b", re.I)
_ISO = re.compile(
    r"(?:try again|resets?|retry)\s+(?:at|after)\s+"
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)",
    re.I,
)
_CLOCK = re.compile(
    r"try again at\s+(?:(?P<month>[A-Z][a-z]{2})\w*\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})\s+)?"
    r"(?P<hour>\d{1,2}):(?P<minute>\d\d)(?::(?P<second>\d\d))?\s*(?P<ampm>[AP]M)?",
    re.I,
)


@dataclass(frozen=True)
class Reset:
    """When the provider says the quota is back: `at` (epoch seconds), `precision` seconds after it at most."""

    at: float
    precision: float = 0.0


def reset_of(message: str, now: float | None = None) -> Reset | None:
    """The reset time a rate-limit message names, or None when it names none."""
    now = time.time() if now is None else now
    if match := _RETRY_AFTER.search(message):
        return Reset(now + float(match.group(1)))
    if match := _IN.search(message):
        seconds = 0.0
        for amount, unit in _AMOUNT.findall(match.group(1)):
            factor = _UNITS.get(unit.lower().rstrip("s") or "s", _UNITS.get(unit.lower()))
            if factor is None:
                return None
            seconds += float(amount) * factor
        return Reset(now + seconds)
    if match := _ISO.search(message):
        try:
            moment = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        except ValueError:
            return None
        return Reset(moment.timestamp() if moment.tzinfo else moment.astimezone().timestamp())
    if match := _CLOCK.search(message):
        return _clock_reset(match, now)
    return None


def _clock_reset(match: re.Match[str], now: float) -> Reset | None:
    """A local wall-clock time ("9:31 PM", "Nov 27th, 2026 10:30 PM"): the next such moment (a time
    shown without seconds is the minute the reset falls in)."""
    hour, minute = int(match["hour"]), int(match["minute"])
    if match["ampm"]:
        hour = hour % 12 + (12 if match["ampm"].upper() == "PM" else 0)
    second = int(match["second"]) if match["second"] else 0
    precision = 0.0 if match["second"] else MINUTE
    current = datetime.fromtimestamp(now)
    try:
        if match["year"]:
            day = datetime.strptime(f"{match['month'][:3]} {match['day']} {match['year']}", "%b %d %Y")
            moment = day.replace(hour=hour, minute=minute, second=second)
        else:
            moment = current.replace(hour=hour, minute=minute, second=second, microsecond=0)
            if moment.timestamp() + precision <= now:  # past: that time tomorrow
                moment += timedelta(days=1)
    except ValueError:
        return None
    return Reset(moment.timestamp(), precision)


def backoff(failures_in_a_row: int, jitter: Callable[[], float] = random.random) -> float:
    """5 s, 10 s, 20 s, … at most 15 min, each plus up to a quarter more at random."""
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, failures_in_a_row - 1))
    return delay * (1 + 0.25 * jitter())


def pause_seconds(message: str, failures_in_a_row: int, now: float) -> float:
    """How long to wait before trying the agent again."""
    reset = reset_of(message, now)
    if reset is None:
        return backoff(failures_in_a_row)
    if reset.precision and reset.at <= now:  # the reset falls in the minute shown, which has begun
        return min(backoff(failures_in_a_row) / 2.5, reset.at + reset.precision - now)
    return max(0.0, reset.at - now) + 0.5


class QuotaPauses:
    """Per agent: paused until when, and why. Shared by the scheduler and every task's executor."""

    def __init__(self, store: RunStore, max_wait: float, cancel: threading.Event, notify: Callable[[str], None]):
        self.store = store
        self.max_wait = max_wait
        self.cancel = cancel
        self.notify = notify
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}
        self._waited: dict[str, float] = {}  # by task

    def paused(self, agent: str) -> bool:
        with self._lock:
            return self._until.get(agent, 0.0) > time.time()

    def wait(self, agent: str, task_id: str, message: str) -> bool:
        """Pause the agent after this task's rate-limited attempt and wait for the reset; False when the
        task may wait no longer (limits.max_quota_wait)."""
        attempts = self.store.task(task_id)["attempts"]
        in_a_row = 0
        for attempt in reversed(attempts):
            if attempt.get("failure") != "rate_limited":
                break
            in_a_row += 1
        now = time.time()
        delay = pause_seconds(message, in_a_row, now)
        with self._lock:
            until = max(self._until.get(agent, 0.0), now + delay)
            if self._waited.get(task_id, 0.0) + (until - now) > self.max_wait:
                return False
            self._waited[task_id] = self._waited.get(task_id, 0.0) + (until - now)
            fresh = self._until.get(agent, 0.0) < until
            self._until[agent] = until
        if fresh:
            shown = datetime.fromtimestamp(until).strftime("%H:%M:%S")
            reason = message.strip().splitlines()[0][:200] if message.strip() else "rate limited"
            self.store.record(
                "run.paused",
                agent=agent,
                until=datetime.fromtimestamp(until).astimezone().isoformat(),
                reason=reason,
                task=task_id,
            )
            self.notify(f"{agent} paused until {shown} ({reason})")
        self.cancel.wait(max(0.0, until - time.time()))
        with self._lock:
            ended = self._until.get(agent, 0.0) <= time.time() or self.cancel.is_set()
            if ended:
                self._until.pop(agent, None)
        if ended and agent in (self.store.get("paused") or {}):
            self.store.record("run.unpaused", agent=agent)
        return True
