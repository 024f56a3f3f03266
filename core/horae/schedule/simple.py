"""The schedules that are not cron: `@every <duration>`, `@at <time>` and `@manually`.

`@every d` fires on a fixed grid: the Unix epoch plus a per-job offset plus whole multiples of d.
Dkron (robfig/cron) instead counts d from whenever the leader added the job, so its slots move
each time leadership moves or the job is saved; on a grid, every leader computes the same slots
and a new leader neither double-fires nor skips. The offset spreads jobs with the same interval:
it is SHA-256 of the job name, as a number, modulo d in milliseconds, so it is stable across
processes and releases (unlike Python's `hash()`) and 500 jobs `@every 1s` fire spread over the
second rather than all at its start.
An interval is a span of real time, so the timezone never moves `@every` slots.

`@at` fires once at an RFC 3339 time; one written without an offset is read in the job's zone,
under the same DST policy as cron. Past `@at` times and `@manually` never fire on their own.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import re

from horae.durations import format_duration_ns, parse_duration_ns
from horae.schedule.base import KIND_AT, KIND_EVERY, KIND_MANUAL, Schedule, ScheduleError, from_ms
from horae.schedule.zones import WallClock

MIN_INTERVAL_MS = 1000

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<hours>\d{2}):(?P<minutes>\d{2}))?"
)
AT_EXAMPLE = '"@at 2026-05-01T10:00:00Z" (or with an offset such as +02:00, or none for the job\'s time zone)'


class EverySchedule(Schedule):
    """Fires every `interval_ms`, on slots aligned to the Unix epoch plus an offset from the job name."""

    kind = KIND_EVERY

    def __init__(self, spec: str, timezone: str, interval_ms: int, job_name: str) -> None:
        self.interval_ms = interval_ms
        self.offset_ms = every_offset_ms(job_name, interval_ms)
        interval = format_duration_ns(interval_ms * 1_000_000)
        offset = format_duration_ns(self.offset_ms * 1_000_000)
        description = f"every {interval}, {offset} after each multiple of {interval} since the Unix epoch"
        super().__init__(spec, timezone, description)

    def next_fire_ms(self, after_ms: int) -> int | None:
        slots_passed = (after_ms - self.offset_ms) // self.interval_ms
        return self.offset_ms + (slots_passed + 1) * self.interval_ms


class AtSchedule(Schedule):
    """Fires once, at `at_ms`."""

    kind = KIND_AT

    def __init__(self, spec: str, timezone: str, at_ms: int) -> None:
        self.at_ms = at_ms
        shown = from_ms(at_ms).isoformat().replace("+00:00", "Z")
        super().__init__(spec, timezone, f"once at {shown}")

    def next_fire_ms(self, after_ms: int) -> int | None:
        return self.at_ms if self.at_ms > after_ms else None


class ManualSchedule(Schedule):
    """Never fires on its own: the job runs only when someone runs it."""

    kind = KIND_MANUAL

    def __init__(self, spec: str, timezone: str) -> None:
        super().__init__(spec, timezone, "only when run by hand")

    def next_fire_ms(self, after_ms: int) -> int | None:
        return None


def every_offset_ms(job_name: str, interval_ms: int) -> int:
    """The job's phase within an `@every` interval: stable, and different for different names."""
    digest = hashlib.sha256(job_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % interval_ms


def parse_interval_ms(text: str) -> int:
    """The `@every` interval in milliseconds: a Go duration of at least 1s, in whole milliseconds."""
    if not text:
        raise ScheduleError('@every needs a duration, as in "@every 30s" or "@every 1h30m"')
    try:
        nanoseconds = parse_duration_ns(text)
    except ValueError as error:
        raise ScheduleError(f"@every: {error}") from None
    if nanoseconds < MIN_INTERVAL_MS * 1_000_000:
        raise ScheduleError(f'@every "{text}" is too short: the interval must be at least 1s')
    if nanoseconds % 1_000_000:
        raise ScheduleError(f'@every "{text}": the interval must be a whole number of milliseconds')
    return nanoseconds // 1_000_000


def parse_at_ms(text: str, clock: WallClock) -> int:
    """The `@at` time in Unix milliseconds (a finer fraction is dropped: the scheduler counts ms)."""
    match = _RFC3339.fullmatch(text)
    if not match:
        raise ScheduleError(f'@at needs an RFC 3339 time such as {AT_EXAMPLE}; got "{text}"')
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    milliseconds = int((match.group(7) or "0")[:3].ljust(3, "0"))
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError as error:
        raise ScheduleError(f'@at "{text}" is not a real time ({error})') from None
    wall = (year, month, day, hour, minute, second)
    if match.group("utc"):
        seconds = calendar.timegm(wall)
    elif match.group("sign"):
        offset = int(match.group("hours")) * 3600 + int(match.group("minutes")) * 60
        if int(match.group("hours")) > 23 or int(match.group("minutes")) > 59:
            raise ScheduleError(f'@at "{text}": the UTC offset must be between -23:59 and +23:59')
        seconds = calendar.timegm(wall) - (offset if match.group("sign") == "+" else -offset)
    else:
        seconds = clock.instant(wall)  # the job's zone, with the DST policy
    return seconds * 1000 + milliseconds
