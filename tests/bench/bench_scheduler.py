"""Scheduler figures on one real `horae agent --dev` (noop executor): burst, steady lateness, throughput, creates, RSS.

Measured, not asserted. Lateness is `started_at - slot` of stored executions (both RFC 3339, ms).
The burst is 1,000 jobs on the cron `*/10 * * * * *`: all due at the same instant. `@every` jobs
get a per-job millisecond offset from their name, so the 500 `@every 1s` jobs of the steady case
are spread over the second (500 fires/s).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import psutil

from horae.table import format_table
from tests.bench.http_load import LoadResult, run_load
from tests.integration.agent_process import AgentProcess

BURST_JOBS = 1000
BURST_INTERVAL_MS = 10_000
STEADY_JOBS = 500
HEADROOM_JOBS = 1000  # beyond the target, to show where the ceiling is
STEADY_WINDOW_S = 10
CREATE_JOBS = 2000
IN_FLIGHT = 32
TEXT = "bench output " * 4  # stored as each execution's output
PHASE_TIMEOUT_S = 60.0


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ms_of(value: str) -> int:
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1000)


def job(name: str, schedule: str) -> dict[str, Any]:
    return {"name": name, "schedule": schedule, "executor": "noop", "executor_config": {"text": TEXT}}


async def bounded(items: Iterable[Any], action: Callable[[Any], Awaitable[Any]], limit: int = IN_FLIGHT) -> list:
    """`action(item)` for every item, at most `limit` at once; results in item order."""
    gate = asyncio.Semaphore(limit)

    async def one(item: Any) -> Any:
        async with gate:
            return await action(item)

    return await asyncio.gather(*(one(item) for item in items))


async def create_all(base_url: str, jobs: list[dict[str, Any]], strict: bool = True) -> LoadResult:
    """POST every job over `IN_FLIGHT` connections; `strict` raises unless every one was created (setup)."""
    result = await run_load(base_url, [("POST", "/v1/jobs", body) for body in jobs], IN_FLIGHT)
    if strict and result.count(201) != len(jobs):
        raise RuntimeError(f"creating {len(jobs)} jobs: statuses {result.statuses}, errors {result.errors[:3]}")
    return result


async def delete_all(base_url: str, names: list[str]) -> None:
    result = await run_load(base_url, [("DELETE", f"/v1/jobs/{name}", None) for name in names], IN_FLIGHT)
    if result.count(200) + result.count(404) != len(names):
        raise RuntimeError(f"deleting {len(names)} jobs: statuses {result.statuses}, errors {result.errors[:3]}")


async def executions_of(http: httpx.AsyncClient, names: list[str]) -> list[dict[str, Any]]:
    async def fetch(name: str) -> list[dict[str, Any]]:
        response = await http.get(f"/v1/jobs/{name}/executions", params={"output_size_limit": 0})
        response.raise_for_status()
        return response.json()

    return [execution for batch in await bounded(names, fetch) for execution in batch]


async def sleep_until(moment_ms: int) -> None:
    await asyncio.sleep(max(0.0, moment_ms / 1000 - time.time()))


def lateness_ms(executions: list[dict[str, Any]]) -> list[float]:
    return [ms_of(e["started_at"]) - ms_of(e["slot"]) for e in executions if e.get("started_at") and e.get("slot")]


async def burst(http: httpx.AsyncClient) -> dict[str, Any]:
    names = [f"burst-{i}" for i in range(BURST_JOBS)]
    await create_all(str(http.base_url), [job(name, f"*/{BURST_INTERVAL_MS // 1000} * * * * *") for name in names])
    # The first slot at least 2 s away, so every job is in the schedule before it.
    now_ms = int(time.time() * 1000) + 2000
    slot_ms = (now_ms // BURST_INTERVAL_MS + 1) * BURST_INTERVAL_MS
    await sleep_until(slot_ms + 1500)
    deadline = slot_ms + BURST_INTERVAL_MS - 1500
    while True:
        found = [e for e in await executions_of(http, names) if e.get("slot") and ms_of(e["slot"]) == slot_ms]
        done = [e for e in found if e.get("finished_at")]
        if len(done) >= len(names) or time.time() * 1000 > deadline:
            break
        await asyncio.sleep(0.5)
    late = lateness_ms(found)
    finished_ms = [ms_of(e["finished_at"]) - slot_ms for e in done]
    await delete_all(str(http.base_url), names)
    return {"late": late, "count": len(found), "done": len(done), "last_finished": max(finished_ms, default=0.0)}


async def steady(
    http: httpx.AsyncClient, jobs: int = STEADY_JOBS, prefix: str = "steady"
) -> tuple[dict[str, Any], list[str]]:
    """`jobs` jobs `@every 1s`; lateness and throughput over a `STEADY_WINDOW_S` window."""
    names = [f"{prefix}-{i}" for i in range(jobs)]
    await create_all(str(http.base_url), [job(name, "@every 1s") for name in names])
    window_start = (int(time.time()) + 3) * 1000  # a couple of rounds to warm up first
    window_end = window_start + STEADY_WINDOW_S * 1000
    await sleep_until(window_end + 2000)
    executions = await executions_of(http, names)
    in_window = [e for e in executions if e.get("slot") and window_start <= ms_of(e["slot"]) < window_end]
    finished = [e for e in executions if e.get("finished_at") and window_start <= ms_of(e["finished_at"]) < window_end]
    failed = sum(1 for e in in_window if e.get("finished_at") and not e.get("success"))
    return {
        "late": lateness_ms(in_window),
        "count": len(in_window),
        "expected": jobs * STEADY_WINDOW_S,
        "failed": failed,
        "rate": len(finished) / STEADY_WINDOW_S,
    }, names


def rss_mib(process: psutil.Process) -> float:
    return process.memory_info().rss / (1024 * 1024)


def memory(pid: int) -> tuple[float, list[tuple[str, float]]]:
    agent = psutil.Process(pid)
    children = []
    for child in agent.children(recursive=True):
        try:
            label = " ".join(part for part in child.cmdline() if part.startswith("horae_") or "plugin" in part)
            children.append((label or child.name(), rss_mib(child)))
        except psutil.NoSuchProcess:
            continue
    return rss_mib(agent), children


def stats_rows(label: str, late: list[float], target_p99: str, target_max: str, note: str) -> list[tuple]:
    if not late:
        return [(f"{label} lateness", "no executions", target_max or target_p99, note)]
    return [
        (f"{label} lateness, p50", f"{statistics.median(late):.0f} ms", "", note),
        (f"{label} lateness, p99", f"{percentile(late, 0.99):.0f} ms", target_p99, ""),
        (f"{label} lateness, max", f"{max(late):.0f} ms", target_max, ""),
    ]


def create_rows(label: str, result: LoadResult, wanted: int) -> list[tuple]:
    created = result.count(201)
    latencies = result.latencies or [0.0]
    note = f"{created}/{wanted} created in {result.elapsed:.1f} s; {wanted - created} failed, {label}"
    return [
        (f"job creates, {IN_FLIGHT} connections, {label}", f"{created / result.elapsed:,.0f} /s", "≥ 500 /s", note),
        (f"job create latency, {label}, p50", f"{statistics.median(latencies) * 1000:.1f} ms", "", ""),
        (f"job create latency, {label}, p99", f"{percentile(latencies, 0.99) * 1000:.1f} ms", "", ""),
    ]


async def measure(agent: AgentProcess) -> list[tuple]:
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=agent.url, timeout=30.0, limits=limits) as http:
        # Creates: @manually, so they add jobs without adding fires. First alone, then under the steady load.
        quiet = await asyncio.wait_for(
            create_all(agent.url, [job(f"create-{i}", "@manually") for i in range(CREATE_JOBS)], strict=False),
            PHASE_TIMEOUT_S,
        )
        b = await asyncio.wait_for(burst(http), PHASE_TIMEOUT_S)
        s, steady_names = await asyncio.wait_for(steady(http), PHASE_TIMEOUT_S)
        loaded = await asyncio.wait_for(
            create_all(agent.url, [job(f"loaded-{i}", "@manually") for i in range(CREATE_JOBS)], strict=False),
            PHASE_TIMEOUT_S,
        )
        await asyncio.sleep(1.0)
        agent_rss, children = memory(agent.process.pid)
        # Stop the 500/s load before the agent stops; if that fails, stopping the agent ends it anyway.
        with contextlib.suppress(RuntimeError, httpx.HTTPError, TimeoutError):
            await asyncio.wait_for(delete_all(agent.url, steady_names), PHASE_TIMEOUT_S)
        headroom, headroom_names = await asyncio.wait_for(steady(http, HEADROOM_JOBS, "headroom"), PHASE_TIMEOUT_S)
        with contextlib.suppress(RuntimeError, httpx.HTTPError, TimeoutError):
            await asyncio.wait_for(delete_all(agent.url, headroom_names), PHASE_TIMEOUT_S)

    rows: list[tuple] = [
        ("burst, slots that started", f"{b['count']:,} / {BURST_JOBS:,}", f"{BURST_JOBS:,}", "one slot"),
    ]
    rows += stats_rows(
        f"burst, {BURST_JOBS} x */10 * * * * *, one slot",
        b["late"],
        "",
        "≤ 1,000 ms",
        f"{b['count']}/{BURST_JOBS} started, {b['done']} finished",
    )
    rows.append(("burst, time until the last one started", f"{max(b['late'], default=0):.0f} ms", "≤ 1 s", ""))
    rows.append(("burst, time until the last one finished", f"{b['last_finished']:.0f} ms", "", ""))
    rows.append(
        (
            "steady, slots that started",
            f"{s['count']:,} / {s['expected']:,}",
            f"{s['expected']:,}",
            f"{STEADY_WINDOW_S} s",
        )
    )
    rows += stats_rows(
        f"steady, {STEADY_JOBS} x @every 1s",
        s["late"],
        "≤ 20 ms",
        "",
        f"{s['count']}/{s['expected']} slots in {STEADY_WINDOW_S} s; spread over the second",
    )
    rows.append(
        (
            "sustained executions finished (output stored)",
            f"{s['rate']:,.0f} /s",
            "≥ 500 /s",
            f"{STEADY_JOBS} jobs at 1/s is the ceiling; {s['failed']} failed",
        )
    )
    rows.append(
        (
            f"headroom, {HEADROOM_JOBS} x @every 1s: executions finished",
            f"{headroom['rate']:,.0f} /s",
            "",
            f"{headroom['count']}/{headroom['expected']} slots started; {headroom['failed']} failed",
        )
    )
    rows += stats_rows(f"headroom, {HEADROOM_JOBS} x @every 1s", headroom["late"], "", "", "")
    rows += create_rows("no other load", quiet, CREATE_JOBS)
    rows += create_rows(f"{STEADY_JOBS} x @every 1s running", loaded, CREATE_JOBS)
    rows.append(("RSS of the agent", f"{agent_rss:.1f} MiB", "", f"{STEADY_JOBS + 2 * CREATE_JOBS} jobs loaded"))
    for label, value in children:
        rows.append((f"RSS of plugin {label}", f"{value:.1f} MiB", "", ""))
    return rows


async def run() -> None:
    with tempfile.TemporaryDirectory(prefix="hb-sched-", dir="/tmp") as data_dir:
        agent = AgentProcess(Path(data_dir) / "node", node_name="bench-node")
        await asyncio.to_thread(agent.start)
        try:
            rows = await measure(agent)
        except BaseException:
            print(f"agent log tail:\n{agent.log_text(3000)}")
            raise
        finally:
            await asyncio.to_thread(agent.stop)
    print(f"\nscheduler, one --dev agent, noop executor (data dir in {tempfile.gettempdir()})")
    print(format_table(("MEASURE", "RESULT", "TARGET", "NOTE"), rows))
