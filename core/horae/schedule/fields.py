"""Cron fields: the text of one field ("*/15", "MON-FRI", "1,15", "~") to the set of values it allows.

The grammar is robfig/cron v3's, which Dkron uses: `*` or `?` (any value), a number or name,
`a-b` ranges, `/step` after any of those (`N/step` means from N to the field's maximum), and
comma-separated lists of them. Month and weekday names are the English three-letter ones, in any
case. Two additions: day-of-week 7 means Sunday, as in crontab, and ranges must not wrap.

`~` is Dkron's load-spreading value: each `~` stands for a number derived from the job name, so
jobs with the same schedule spread over the hour (or day...) but each keeps its own stable slot.
Dkron sums the Unicode code points of the name and reduces the sum by field: seconds and minutes
mod 60, hours mod 24, day-of-month mod 28 plus 1, month mod 12 plus 1, day-of-week mod 7; horae
does exactly the same, so a job moved from Dkron keeps its slot. One difference: Dkron replaces
the text, so `~/15` with a hash of 37 becomes `37/15`, which fires at :37 and :52 only. horae
reads `~/15` as "every 15, starting at the hash mod 15" (:07, :22, :37, :52), which is what
Dkron's documentation promises and still includes every time Dkron fires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from horae.schedule.base import ScheduleError

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class FieldKind:
    """One cron field position: its name, bounds, names and how `~` reduces the name hash."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] means low + i
    hash_modulus: int = 60
    hash_base: int = 0

    def hashed(self, name_hash: int) -> int:
        return name_hash % self.hash_modulus + self.hash_base


SECONDS = FieldKind("seconds", 0, 59)
MINUTES = FieldKind("minutes", 0, 59)
HOURS = FieldKind("hours", 0, 23, hash_modulus=24)
DAY_OF_MONTH = FieldKind("day-of-month", 1, 31, hash_modulus=28, hash_base=1)
MONTH = FieldKind("month", 1, 12, MONTH_NAMES, hash_modulus=12, hash_base=1)
# Sunday is 0, and 7 too (crontab's spelling); both map to 0.
DAY_OF_WEEK = FieldKind("day-of-week", 0, 7, WEEKDAY_NAMES, hash_modulus=7)

FIELD_KINDS = (SECONDS, MINUTES, HOURS, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)


@dataclass(frozen=True)
class ParsedField:
    """The values a field allows, and whether it was written as "any" (`*` or `?`).

    Whether day-of-month and day-of-week were "any" decides how they combine (see `CronFields`).
    As in robfig/cron, a stepped star such as `*/2` is not "any".
    """

    values: frozenset[int]
    is_any: bool


def name_hash(job_name: str) -> int:
    """Dkron's hash for `~`: the sum of the name's Unicode code points."""
    return sum(ord(character) for character in job_name)


def parse_field(text: str, kind: FieldKind, job_name: str) -> ParsedField:
    """The values `text` allows in a field of `kind`; ScheduleError naming the field on any problem."""
    values: set[int] = set()
    is_any = False
    for item in text.split(","):
        item_values, item_is_any = _parse_item(item, text, kind, job_name)
        values |= item_values
        is_any = is_any or item_is_any
    if kind is DAY_OF_WEEK and 7 in values:
        values = (values - {7}) | {0}
    return ParsedField(frozenset(values), is_any)


def _parse_item(item: str, field_text: str, kind: FieldKind, job_name: str) -> tuple[set[int], bool]:
    def problem(detail: str) -> ScheduleError:
        return ScheduleError(f'{kind.name} field "{field_text}": {detail}; {_accepted(kind)}')

    if not item:
        raise problem("empty list item")
    range_text, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit():
            raise problem(f'the step after "/" must be a whole number, got "{step_text}"')
        step = int(step_text)
        if step == 0:
            raise problem('the step after "/" must be at least 1')
    is_any = False
    if range_text in ("*", "?"):
        low, high = kind.low, highest_value(kind)
        is_any = step == 1  # robfig/cron: a stepped star no longer means "any"
    elif range_text == "~":
        hashed = kind.hashed(name_hash(job_name))
        if not slash:
            return {hashed}, False
        # Every `step`, phased by the hash: see the module docstring for how this differs from Dkron.
        low, high = kind.low + (hashed - kind.low) % step, highest_value(kind)
    elif "~" in range_text:
        raise problem('"~" stands alone or as "~/step"; it cannot be part of a range')
    else:
        low_text, dash, high_text = range_text.partition("-")
        low = _value(low_text, kind, problem)
        if dash:
            high = _value(high_text, kind, problem)
            if low > high:
                raise problem(f"the range {range_text} runs backwards; ranges do not wrap around, use a list")
        else:
            # "N/step" means from N to the maximum, as in robfig/cron; a bare "N" is just N.
            high = highest_value(kind) if slash else low
    return set(range(low, high + 1, step)), is_any


def _value(text: str, kind: FieldKind, problem: Callable[[str], ScheduleError]) -> int:
    lowered = text.lower()
    if lowered in kind.names:
        return kind.low + kind.names.index(lowered)
    if not text.isdigit():
        if text.upper() in ("L", "W") or "#" in text or text.upper().endswith(("L", "W")):
            raise problem("L, W and # are not supported (Dkron does not support them either)")
        raise problem(f'"{text}" is not a number{" or a name" if kind.names else ""}')
    value = int(text)
    if not kind.low <= value <= kind.high:
        raise problem(f"{value} is out of range")
    return value


def highest_value(kind: FieldKind) -> int:
    """The largest value `*` covers: 7 is only an alias for Sunday, so day-of-week stops at 6."""
    return 6 if kind is DAY_OF_WEEK else kind.high


def _accepted(kind: FieldKind) -> str:
    span = f"{kind.low}-{kind.high}"
    if kind is MONTH:
        span += " or JAN-DEC"
    elif kind is DAY_OF_WEEK:
        span += " (0 and 7 are Sunday) or SUN-SAT"
    return f"{kind.name} takes {span}, with * ? , - / and ~"
