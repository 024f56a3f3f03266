"""Executions per minute over the last hour, as a small inline SVG bar chart drawn on the server.

Only jobs whose last success or error falls within the hour can have executions in it, so only their
stored histories are read (in a thread: sqlite).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from horae_web.ui.rendering import parse_time

if TYPE_CHECKING:
    from horae.service import HoraeService

MINUTES = 60
# The dashboard stays cheap with many jobs: at most this many recently active jobs are counted.
MAX_JOBS = 500
WIDTH, HEIGHT = 600, 80


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    count: int
    failed: int
    minutes_ago: int


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    total: int
    failed: int
    peak: int
    width: int = WIDTH
    height: int = HEIGHT
    bar_width: float = WIDTH / MINUTES - 1
    jobs_capped: bool = False


def recently_active(service: HoraeService, since_ms: int) -> list[str]:
    names = []
    for name, runtime in list(service.state.runtime.items()):
        last = max(runtime.last_success_ms or 0, runtime.last_error_ms or 0)
        if last >= since_ms:
            names.append(name)
    return names


def _finished_times(service: HoraeService, names: list[str]) -> list[tuple[float, bool]]:
    found = []
    for name in names:
        for execution in service.store.executions(name):
            finished = parse_time(execution.get("finished_at"))
            if finished is not None:
                found.append((finished.timestamp(), bool(execution.get("success"))))
    return found


async def executions_per_minute(service: HoraeService, now: float | None = None) -> Chart:
    now = time.time() if now is None else now
    since = now - MINUTES * 60
    names = recently_active(service, int(since * 1000))
    capped = len(names) > MAX_JOBS
    times = await asyncio.to_thread(_finished_times, service, names[:MAX_JOBS])
    counts = [0] * MINUTES
    failures = [0] * MINUTES
    for moment, success in times:
        if since <= moment <= now:
            slot = min(MINUTES - 1, int((moment - since) // 60))
            counts[slot] += 1
            failures[slot] += 0 if success else 1
    return draw(counts, failures, capped)


def draw(counts: list[int], failures: list[int], capped: bool = False) -> Chart:
    peak = max(counts) if counts else 0
    step = WIDTH / MINUTES
    bars = []
    for index, (count, failed) in enumerate(zip(counts, failures, strict=True)):
        height = 0.0 if peak == 0 else (HEIGHT - 2) * count / peak
        bars.append(Bar(index * step, HEIGHT - height, height, count, failed, MINUTES - 1 - index))
    return Chart(bars, sum(counts), sum(failures), peak, jobs_capped=capped)


def job_counts(service: HoraeService) -> dict[str, Any]:
    """Jobs by status ("" = never ran), and how many are disabled."""
    by_status: dict[str, int] = {}
    disabled = 0
    runtimes = service.state.runtime
    for name, job in list(service.state.jobs.items()):
        runtime = runtimes.get(name)
        status = (runtime.status if runtime is not None else "") or "untriggered"
        by_status[status] = by_status.get(status, 0) + 1
        disabled += 1 if job.get("disabled") else 0
    return {"by_status": dict(sorted(by_status.items())), "disabled": disabled, "total": len(service.state.jobs)}
