"""Job schedules: when a job fires, Dkron-compatible, with a stated time-zone and DST policy.

    schedule = parse_schedule("0 30 9 * * MON-FRI", timezone="Europe/Berlin", job_name="report")
    schedule.next_fire_time(now)        # aware UTC datetime strictly after `now`, or None
    schedule.next_fire_ms(now_ms)       # the same in Unix milliseconds, for the leader's heap
    schedule.preview(now, 5)            # the next five fire times

Accepted schedules (Dkron's; `fields.py` has the cron field grammar):

* 6-field cron with seconds first, as Dkron: `0 30 9 * * MON-FRI`; 5-field crontab too (seconds = 0).
* `@yearly @annually @monthly @weekly @daily @midnight @hourly @minutely`.
* `@every <Go duration>` (at least 1s), `@at <RFC 3339 time>`, `@manually`.
* `~` in a cron field: a value hashed from the job name, as Dkron (see `fields.py`).
* A `TZ=Zone ` or `CRON_TZ=Zone ` prefix, which overrides the job's `timezone`.

Where horae differs from Dkron, on purpose:

* An empty `timezone` means UTC. Dkron uses the server's local time, which changes when
  leadership moves to a server in another zone; UTC is the same on every leader.
* `timezone` applies to every kind of schedule, descriptors included: `@daily` in Europe/Berlin
  fires at Berlin midnight. Dkron ignores the timezone for `@` schedules (its issue #1031).
* Daylight saving: a skipped wall time fires once at the first instant after the gap, and a
  repeated wall time fires once, at its first occurrence (see `zones.py`). Dkron's documentation
  says jobs in a spring-forward gap do not run at all.
* `@every` slots are aligned to the Unix epoch plus a per-job offset, so every leader computes
  the same ones; Dkron counts from when the leader loaded the job. Sub-second intervals such as
  `@every 1.5s` are kept (Dkron truncates to whole seconds).
* `~/step` means every `step` starting at the hashed value mod `step` (Dkron's text substitution
  fires only from the hashed value up to the end of the range).
* Day-of-week 7 means Sunday and 5-field expressions are accepted; Dkron rejects both.
"""

from horae.schedule.base import (
    KIND_AT,
    KIND_CRON,
    KIND_EVERY,
    KIND_MANUAL,
    Schedule,
    ScheduleError,
)
from horae.schedule.parser import parse_schedule

__all__ = [
    "KIND_AT",
    "KIND_CRON",
    "KIND_EVERY",
    "KIND_MANUAL",
    "Schedule",
    "ScheduleError",
    "parse_schedule",
]
