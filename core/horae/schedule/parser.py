"""`parse_schedule`: schedule text plus a job's timezone and name to a `Schedule`, checked up front.

Everything that can be wrong with a schedule is found here, when the job is saved, so the
leader never meets a schedule it cannot compute. Errors name the problem and what is accepted.
"""

from __future__ import annotations

import difflib
import zoneinfo

from horae.schedule.base import ACCEPTED_FORMS, Schedule, ScheduleError
from horae.schedule.cron import CronFields, CronSchedule
from horae.schedule.simple import AtSchedule, EverySchedule, ManualSchedule, parse_at_ms, parse_interval_ms
from horae.schedule.zones import WallClock, load_zone

# Descriptors as the 6-field expressions they stand for (robfig/cron's, plus Dkron's @minutely).
DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
    "@minutely": "0 * * * * *",
}
_WITH_ARGUMENT = ("@every", "@at")
_KNOWN = (*DESCRIPTORS, *_WITH_ARGUMENT, "@manually")
_ZONE_PREFIXES = ("TZ=", "CRON_TZ=")


def parse_schedule(spec: str, timezone: str = "", job_name: str = "") -> Schedule:
    """Parse and validate a schedule; ScheduleError (a ValueError) says what is wrong and what is accepted.

    `timezone` is an IANA zone name; empty means UTC. A `TZ=Zone` or `CRON_TZ=Zone` prefix on the
    schedule overrides it. `job_name` feeds `~` in cron fields and the `@every` offset.
    """
    if not isinstance(spec, str):
        raise ScheduleError(f'a schedule must be text, such as "@daily" or "0 30 9 * * *"; got {spec!r}')
    zone = load_zone(timezone)  # its error names the timezone field, not the schedule
    try:
        text = spec.strip()
        if not text:
            raise ScheduleError(f"empty schedule: expected {ACCEPTED_FORMS}")
        if text.startswith(_ZONE_PREFIXES):
            zone, text = _split_zone_prefix(text)
        clock = WallClock(zone)
        if text.startswith("@"):
            return _parse_descriptor(spec, text, zone.key, clock, job_name)
        return CronSchedule(spec, zone.key, _cron_fields(text, job_name), clock)
    except ScheduleError as error:
        raise ScheduleError(f'schedule "{spec}": {error}') from None


def _split_zone_prefix(text: str) -> tuple[zoneinfo.ZoneInfo, str]:
    """`TZ=Zone rest` → (Zone, rest)."""
    prefix, *rest = text.split(None, 1)
    zone_name = prefix.partition("=")[2]
    if not zone_name:
        raise ScheduleError(f'"{prefix}" needs a zone name, as in "TZ=Europe/Berlin 0 0 9 * * *"')
    if not rest:
        raise ScheduleError(f'nothing follows "{prefix}": expected {ACCEPTED_FORMS}')
    return load_zone(zone_name), rest[0]


def _cron_fields(text: str, job_name: str) -> CronFields:
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(f"expected {ACCEPTED_FORMS}; got {len(fields)} field{'s' if len(fields) > 1 else ''}")
    if len(fields) == 5:
        fields.insert(0, "0")  # crontab's five fields fire on the minute
    return CronFields(fields, job_name)


def _parse_descriptor(spec: str, text: str, zone_name: str, clock: WallClock, job_name: str) -> Schedule:
    word, _, argument = text.partition(" ")
    word, argument = word.lower(), argument.strip()
    if word not in _KNOWN:
        close = difflib.get_close_matches(word, _KNOWN, n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        raise ScheduleError(f'unknown descriptor "{word}": {hint}expected one of {", ".join(_KNOWN)}')
    if word == "@every":
        return EverySchedule(spec, zone_name, parse_interval_ms(argument), job_name)
    if word == "@at":
        return AtSchedule(spec, zone_name, parse_at_ms(argument, clock))
    if argument:
        raise ScheduleError(f'"{word}" takes nothing after it; got "{argument}"')
    if word == "@manually":
        return ManualSchedule(spec, zone_name)
    fields = CronFields(DESCRIPTORS[word].split(), job_name)
    return CronSchedule(spec, zone_name, fields, clock, label=word)
