"""RFC 3339 times as Dkron writes them: `2024-05-01T10:00:00Z`, `2024-05-01T12:00:00.5+02:00`.

Python's `datetime.fromisoformat` accepts far more than RFC 3339 (dates alone, week dates, naive
times) and a naive time is ambiguous in a cluster whose nodes may sit in different zones, so horae
reads times with one strict pattern and refuses a time without `Z` or an offset. The offset the
user wrote is kept, so `starts_at` comes back the way it went in.
"""

from __future__ import annotations

import datetime
import re

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)
_UTC = datetime.UTC
# Go's zero time.Time: what Dkron writes for a time that was never set (e.g. `next`).
GO_ZERO_TIME = datetime.datetime(1, 1, 1, tzinfo=_UTC)
EXAMPLE = '"2024-05-01T10:00:00Z" or "2024-05-01T12:00:00+02:00"'


def parse_time(text: str) -> datetime.datetime | None:
    """An aware datetime from RFC 3339 text; None for Go's zero time. ValueError says what to write."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{_quote(text)} is not an RFC 3339 time: write it as {EXAMPLE}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = match.groups()
    if zulu is None and sign is None:
        raise ValueError(f'{_quote(text)} has no time zone: add "Z" for UTC or an offset such as "+02:00"')
    if zulu is not None:
        zone = _UTC
    else:
        offset = datetime.timedelta(hours=int(off_hours), minutes=int(off_minutes))
        if offset >= datetime.timedelta(hours=24):
            raise ValueError(f"{_quote(text)} has an offset out of range: offsets run from -23:59 to +23:59")
        zone = _UTC if not offset else datetime.timezone(-offset if sign == "-" else offset)
    # Go keeps nanoseconds; Python keeps microseconds, so extra digits are dropped.
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    try:
        moment = datetime.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=zone
        )
    except ValueError as error:
        raise ValueError(f"{_quote(text)} is not a real date and time ({error})") from None
    return None if moment == GO_ZERO_TIME else moment


def format_time(moment: datetime.datetime | None) -> str | None:
    """RFC 3339 text as Go's RFC3339Nano writes it (no trailing zeros in the fraction); None stays None."""
    if moment is None:
        return None
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError(f"cannot write a naive datetime as RFC 3339 (no zone): {moment!r}")
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def format_ms(unix_ms: int | float | None) -> str | None:
    """`format_time` of an instant given in Unix milliseconds (how the state machine keeps times)."""
    if unix_ms is None:
        return None
    return format_time(datetime.datetime.fromtimestamp(unix_ms / 1000, datetime.UTC))


def require_aware(moment: datetime.datetime, what: str) -> None:
    """Refuse a naive datetime handed in by code: its instant depends on the machine's zone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (e.g. datetime.now(datetime.UTC)), got {moment!r}")


def _quote(text: str) -> str:
    shown = text if len(text) <= 60 else text[:57] + "..."
    return '"' + shown.replace('"', '\\"') + '"'
