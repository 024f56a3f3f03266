"""Cron schedules: the next wall-clock time matching six fields, turned into an instant.

The leader computes a job's next fire time each time it fires, so this is on the hot path. The
search works on plain integers: each field's allowed values become a lookup table answering "the
smallest allowed value at or above v", and the search walks from the most significant field
down, resetting the smaller fields whenever a larger one moves (robfig/cron's approach, with
table lookups instead of stepping one unit at a time). A typical schedule needs a handful of
steps, well under a millisecond; the slow paths (gaps and repeats at DST changes) are rare.

Day-of-month and day-of-week combine as in robfig/cron and Vixie cron: when both are restricted
a day matching either fires; when either is "any" (`*` or `?`), both must match.
"""

from __future__ import annotations

import calendar
import datetime

from horae.schedule.base import KIND_CRON, Schedule, ScheduleError
from horae.schedule.fields import (
    FIELD_KINDS,
    HOURS,
    MINUTES,
    MONTH,
    SECONDS,
    FieldKind,
    ParsedField,
    highest_value,
    parse_field,
)
from horae.schedule.zones import Wall, WallClock

# A day-of-month that exists in some year of every month (February counts 29).
_LONGEST_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# February 29th can be 8 years away (2096 → 2104); anything further never comes.
_YEARS_TO_SEARCH = 9
_LAST_YEAR = 9999


class CronFields:
    """The six parsed fields of a cron expression, as lookup tables for the search."""

    def __init__(self, fields: list[str], job_name: str) -> None:
        parsed = [parse_field(text, kind, job_name) for text, kind in zip(fields, FIELD_KINDS, strict=True)]
        seconds, minutes, hours, days, months, weekdays = parsed
        self.next_second = _next_table(seconds, SECONDS.high)
        self.next_minute = _next_table(minutes, MINUTES.high)
        self.next_hour = _next_table(hours, HOURS.high)
        self.next_month = _next_table(months, MONTH.high)
        self.days = [day in days.values for day in range(32)]
        self.weekdays = [weekday in weekdays.values for weekday in range(7)]
        # Both restricted: a day matching either fires. Otherwise both must match.
        self.either_day = not days.is_any and not weekdays.is_any
        self._check_can_fire(days, weekdays, months)
        # The expression with `~` resolved, in 6-field form, for display.
        self.resolved = " ".join(_render(field, kind) for field, kind in zip(parsed, FIELD_KINDS, strict=True))

    def _check_can_fire(self, days: ParsedField, weekdays: ParsedField, months: ParsedField) -> None:
        """Refuse up front a day-of-month that no allowed month has, such as February 30th."""
        if days.is_any or not weekdays.is_any:
            return  # any day, or a weekday can match on its own
        first_day = min(days.values)
        if any(first_day <= _LONGEST_MONTH[month] for month in months.values):
            return
        month_names = ", ".join(calendar.month_name[month] for month in sorted(months.values))
        raise ScheduleError(f"never fires: day {first_day} does not occur in {month_names}")

    def day_matches(self, year: int, month: int, day: int) -> bool:
        weekday = (datetime.date(year, month, day).weekday() + 1) % 7  # cron counts from Sunday = 0
        if self.either_day:
            return self.days[day] or self.weekdays[weekday]
        return self.days[day] and self.weekdays[weekday]

    def first_match_from(self, start: Wall) -> Wall | None:
        """The earliest wall time at or after `start` matching every field, or None within 9 years."""
        year, month, day, hour, minute, second = start
        last_year = min(year + _YEARS_TO_SEARCH, _LAST_YEAR)
        while year <= last_year:
            found_month = self.next_month[month]
            if found_month < 0:
                year, month, day, hour, minute, second = year + 1, 1, 1, 0, 0, 0
                continue
            if found_month != month:
                month, day, hour, minute, second = found_month, 1, 0, 0, 0
            found_day = self._next_day(year, month, day)
            if found_day < 0:
                month, day, hour, minute, second = month + 1, 1, 0, 0, 0
                continue
            if found_day != day:
                day, hour, minute, second = found_day, 0, 0, 0
            found_hour = self.next_hour[hour]
            if found_hour < 0:
                day, hour, minute, second = day + 1, 0, 0, 0
                continue
            if found_hour != hour:
                hour, minute, second = found_hour, 0, 0
            found_minute = self.next_minute[minute]
            if found_minute < 0:
                hour, minute, second = hour + 1, 0, 0
                continue
            if found_minute != minute:
                minute, second = found_minute, 0
            found_second = self.next_second[second]
            if found_second < 0:
                minute, second = minute + 1, 0
                continue
            return (year, month, day, hour, minute, found_second)
        return None

    def _next_day(self, year: int, month: int, day: int) -> int:
        last = calendar.monthrange(year, month)[1]
        while day <= last:
            if self.day_matches(year, month, day):
                return day
            day += 1
        return -1


class CronSchedule(Schedule):
    """A cron expression evaluated in wall-clock time of one zone, under horae's DST policy."""

    kind = KIND_CRON

    def __init__(self, spec: str, timezone: str, fields: CronFields, clock: WallClock, label: str = "") -> None:
        shown = f"{label} ({fields.resolved})" if label else fields.resolved
        super().__init__(spec, timezone, f"cron {shown} in {timezone}")
        self.fields = fields
        self.clock = clock
        # The expression in 6-field form with `~` resolved: what the schedule really is.
        self.expression = fields.resolved

    def next_fire_ms(self, after_ms: int) -> int | None:
        # Cron fires on whole seconds: strictly after `after_ms` means after its whole second.
        start = self.clock.first_wall_after(after_ms // 1000)
        wall = self.fields.first_match_from(start)
        if wall is None:
            return None
        return self.clock.instant(wall) * 1000


def _next_table(field: ParsedField, high: int) -> list[int]:
    """table[v] = the smallest allowed value >= v, or -1; one slot past `high` so carries index safely."""
    table = [-1] * (high + 2)
    following = -1
    for value in range(high, -1, -1):
        if value in field.values:
            following = value
        table[value] = following
    return table


def _render(field: ParsedField, kind: FieldKind) -> str:
    """A compact text for a parsed field: "*", a single value, or a comma list with runs as ranges."""
    values = sorted(field.values)
    if field.is_any or values == list(range(kind.low, highest_value(kind) + 1)):
        return "*"
    parts: list[str] = []
    run_start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(run_start) if run_start == previous else f"{run_start}-{previous}")
        if value is not None:
            run_start = previous = value
    return ",".join(parts)
