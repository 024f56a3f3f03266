"""Parsed schedules per job, cached, and the job-level rules around them (window, timeout).

Parsing a cron expression costs far more than asking it for the next time, so each job's
Schedule is parsed once per (schedule, timezone) and reused for every fire.
"""

from __future__ import annotations

import datetime
from typing import Any

from horae.durations import parse_duration
from horae.schedule import Schedule, parse_schedule


def parse_time_ms(value: str | None) -> int | None:
    if not value:
        return None
    return int(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


class ScheduleBook:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[str, str], Schedule]] = {}

    def schedule(self, job: dict[str, Any]) -> Schedule:
        key = (job.get("schedule") or "", job.get("timezone") or "")
        cached = self._cache.get(job["name"])
        if cached is not None and cached[0] == key:
            return cached[1]
        schedule = parse_schedule(key[0], key[1], job["name"])
        self._cache[job["name"]] = (key, schedule)
        return schedule

    def forget(self, job_name: str) -> None:
        self._cache.pop(job_name, None)

    def next_fire_ms(self, job: dict[str, Any], after_ms: int) -> int | None:
        """The job's first fire time strictly after `after_ms` within its window, or None."""
        starts = parse_time_ms(job.get("starts_at"))
        if starts is not None and after_ms < starts - 1:
            after_ms = starts - 1
        fire_ms = self.schedule(job).next_fire_ms(after_ms)
        if fire_ms is None:
            return None
        expires = parse_time_ms(job.get("expires_at"))
        if expires is not None and fire_ms > expires:
            return None
        return fire_ms

    def in_window(self, job: dict[str, Any], slot_ms: int) -> bool:
        starts = parse_time_ms(job.get("starts_at"))
        expires = parse_time_ms(job.get("expires_at"))
        return (starts is None or slot_ms >= starts) and (expires is None or slot_ms <= expires)

    @staticmethod
    def timeout_seconds(job: dict[str, Any]) -> float | None:
        timeout = job.get("timeout")
        return parse_duration(timeout) if timeout else None

    @staticmethod
    def catchup_seconds(job: dict[str, Any]) -> float:
        catchup = job.get("catchup")
        return parse_duration(catchup) if catchup else 0.0
