"""What every parsed schedule offers, and the error a bad one raises.

Schedules compute in whole milliseconds since the Unix epoch: the leader's fire heap and the
replicated state store times that way, and integers keep "strictly after" exact. A fire time is
always a whole millisecond, so a caller that feeds a fire time back as `after` never gets the
same slot again. The datetime methods are thin, exact conversions around the millisecond ones.
"""

from __future__ import annotations

import datetime
from abc import ABC, abstractmethod

UTC = datetime.UTC
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = datetime.timedelta(milliseconds=1)

# `Schedule.kind` values.
KIND_CRON = "cron"  # 5- or 6-field cron, and the @yearly ... @minutely descriptors
KIND_EVERY = "every"  # @every <duration>
KIND_AT = "at"  # @at <RFC 3339 time>
KIND_MANUAL = "manually"  # @manually

ACCEPTED_FORMS = (
    "6 fields (seconds minutes hours day-of-month month day-of-week), 5 fields (the same without seconds), "
    "a descriptor like @daily, @every <duration>, @at <RFC 3339 time> or @manually"
)


class ScheduleError(ValueError):
    """A schedule or its time zone cannot be used; the message says what is wrong and what is accepted."""


class Schedule(ABC):
    """A parsed schedule: when a job fires.

    `spec` is the text as written, `timezone` the IANA zone it is evaluated in ("UTC" for an empty
    timezone), `kind` one of the KIND_* names, and `description` a short human explanation.
    """

    kind: str

    def __init__(self, spec: str, timezone: str, description: str) -> None:
        self.spec = spec
        self.timezone = timezone
        self.description = description

    @abstractmethod
    def next_fire_ms(self, after_ms: int) -> int | None:
        """The first fire time strictly after `after_ms` (Unix milliseconds), or None if there is none."""

    def next_fire_time(self, after: datetime.datetime) -> datetime.datetime | None:
        """The first fire time strictly after the aware datetime `after`, in UTC, or None if there is none."""
        fire_ms = self.next_fire_ms(to_ms(after))
        return None if fire_ms is None else from_ms(fire_ms)

    def preview(self, after: datetime.datetime, count: int) -> list[datetime.datetime]:
        """Up to `count` fire times after `after`, in order (fewer when the schedule ends)."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        times: list[datetime.datetime] = []
        cursor = to_ms(after)
        while len(times) < count:
            fire_ms = self.next_fire_ms(cursor)
            if fire_ms is None:
                break
            times.append(from_ms(fire_ms))
            cursor = fire_ms
        return times

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec!r} in {self.timezone}>"


def to_ms(moment: datetime.datetime) -> int:
    """Whole Unix milliseconds at or before an aware datetime (exact: no float rounding)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"schedules need timezone-aware datetimes, got naive {moment.isoformat()}")
    return (moment - EPOCH) // _ONE_MS


def from_ms(milliseconds: int) -> datetime.datetime:
    """The aware UTC datetime at whole Unix milliseconds."""
    return EPOCH + datetime.timedelta(milliseconds=milliseconds)
