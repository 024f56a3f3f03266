"""Time zones for schedules: loading them with helpful errors, and horae's daylight-saving policy.

Cron schedules are written in wall-clock time, but the scheduler needs instants. Twice a year
some zones break the one-to-one mapping between the two, and this module decides what happens:

* A wall time that does not exist (the clock springs forward over it) fires once, at the first
  valid instant after the gap: 02:30 in America/New_York on 2026-03-08 fires at 03:00 EDT.
* A wall time that occurs twice (the clock falls back) fires once, at its first occurrence:
  01:30 in America/New_York on 2026-11-01 fires at 01:30 EDT, not again at 01:30 EST.

The policy is per wall time, so a frequent schedule such as `0 */15 * * * *` fires at 01:00,
01:15, 01:30 and 01:45 EDT and then at 02:00 EST: nothing during the repeated hour. A job that
must tick at a steady rate through the change should use `@every` (or the UTC zone) instead.

The resulting mapping from wall time to instant never goes backwards, which is what lets the
cron search walk wall time forwards and still return the earliest instant strictly after `after`.
"""

from __future__ import annotations

import calendar
import datetime
import difflib
import functools
import zoneinfo

from horae.schedule.base import UTC, ScheduleError

# A wall-clock time as plain integers: (year, month, day, hour, minute, second).
Wall = tuple[int, int, int, int, int, int]

ZONE_EXAMPLE = 'an IANA zone name such as "Europe/Berlin", "America/New_York" or "UTC"'


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone called `name` ("" means UTC); ScheduleError naming it and suggesting a close match."""
    if not name:
        return zoneinfo.ZoneInfo("UTC")
    try:
        return zoneinfo.ZoneInfo(name)  # cached by zoneinfo after the first load
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    message = f'unknown time zone "{name}": use {ZONE_EXAMPLE}'
    close = difflib.get_close_matches(name, _zone_names(), n=1)
    if close:
        message += f'; did you mean "{close[0]}"?'
    raise ScheduleError(message)


@functools.cache
def _zone_names() -> list[str]:
    # Reading every zone name is slow, so it only happens when a name is wrong.
    return sorted(zoneinfo.available_timezones())


class WallClock:
    """Converts between instants (Unix seconds) and wall times in one zone, under the DST policy."""

    def __init__(self, zone: zoneinfo.ZoneInfo) -> None:
        self.zone = zone
        # UTC has no transitions: plain arithmetic is exact and several times faster.
        self._is_utc = zone.key == "UTC"

    def first_wall_after(self, after_s: int) -> Wall:
        """The earliest wall time whose instant, under the policy, is strictly after `after_s`.

        Every later wall time maps to an instant after `after_s` as well (the mapping never goes
        backwards), so the cron search can start here and take the first match it finds.
        """
        if self._is_utc:
            return _utc_wall(after_s + 1)
        local = datetime.datetime.fromtimestamp(after_s, self.zone)
        if local.fold and local.utcoffset() != local.replace(fold=0).utcoffset():
            # `after` is in the second pass of a repeated hour. Every wall time up to the end of
            # that hour already fired (or would have) at its first occurrence, before `after`.
            return self._end_of_repeat(after_s, local)
        return _naive_wall(local + datetime.timedelta(seconds=1))

    def instant(self, wall: Wall) -> int:
        """The Unix second at which `wall` fires: the first occurrence, or the end of a gap."""
        if self._is_utc:
            return calendar.timegm(wall)
        local = datetime.datetime(*wall, tzinfo=self.zone)
        first_offset = local.utcoffset()
        second_offset = local.replace(fold=1).utcoffset()
        naive_seconds = calendar.timegm(wall)
        if first_offset == second_offset or first_offset > second_offset:
            # An ordinary time, or a repeated one whose first occurrence has the larger offset.
            return naive_seconds - int(first_offset.total_seconds())
        # A skipped time: the clock jumped from before it to after it at one instant, which lies
        # between the two readings of this wall time.
        earliest = naive_seconds - int(second_offset.total_seconds())
        latest = naive_seconds - int(first_offset.total_seconds())
        return self._transition_between(earliest, latest, second_offset)

    def _end_of_repeat(self, after_s: int, local: datetime.datetime) -> Wall:
        earlier_offset = local.replace(fold=0).utcoffset()
        later_offset = local.utcoffset()
        overlap = int((earlier_offset - later_offset).total_seconds())
        # The clock fell back at some instant in (after - overlap, after]; the repeat ends when
        # wall time reaches the reading it had just before falling back.
        change = self._transition_between(after_s - overlap, after_s, later_offset)
        return _utc_wall(change + int(earlier_offset.total_seconds()))

    def _transition_between(self, earliest: int, latest: int, new_offset: datetime.timedelta) -> int:
        """The first second in [earliest, latest] that already uses `new_offset` (binary search)."""
        while earliest < latest:
            middle = (earliest + latest) // 2
            if datetime.datetime.fromtimestamp(middle, self.zone).utcoffset() == new_offset:
                latest = middle
            else:
                earliest = middle + 1
        return latest


def _utc_wall(seconds: int) -> Wall:
    moment = datetime.datetime.fromtimestamp(seconds, UTC)
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def _naive_wall(moment: datetime.datetime) -> Wall:
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
