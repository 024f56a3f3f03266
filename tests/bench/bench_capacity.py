"""Capacity figures on one real `horae agent --dev` (noop executor): a 100,000-job restart, and RSS with stored history.

Measured, not asserted.

Restart: 100,000 `@every 1h` jobs are loaded through `POST /v1/restore` (chunks of 5,000, two in flight),
the agent is stopped (SIGTERM) and started again on the same data dir, so it restores its state from the
Raft journal/snapshot. From `time.time()` just before the second process starts, the agent's own log
timestamps (logfmt `time=`, ms, UTC) give: "agent started", "leading: scheduler started" (state loaded,
leading) and the first execution after it (first fire: the earliest `started_at` of the first
"execution finished" lines, or "execution started" where that is logged at info level). `@every` jobs
get a per-job millisecond offset, so 1h spreads them evenly, ~28 due per second: the next fire is a
few ms away and the agent is not busy firing while it loads. Slots missed while the agent was down are caught up or
skipped per the job's catchup window; a catch-up counts as a fire (the row notes its kind).

History: 10,000 `@manually` jobs are restored, the agent is stopped, and 1,000,000 executions (100 per job,
~50-byte output) are written offline with the agent's own `ExecutionStore`. The agent is started again and
`GET /v1/jobs/{name}/executions` is read for 1,000 jobs (each must return 100), `GET /v1/jobs` once; then
the agent's RSS (psutil) and the size of `horae.db` (+ WAL) on disk.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from horae.model import format_ms
from horae.store import ExecutionStore
from horae.table import format_table
from tests.bench.bench_scheduler import TEXT, bounded, memory, ms_of, percentile
from tests.integration.agent_process import AgentProcess

NODE = "bench-node"
FIRE_JOBS = 100_000
FIRE_SCHEDULE = "@every 1h"
HISTORY_JOBS = 10_000
EXECUTIONS_PER_JOB = 100
CHUNK = 5_000
CHUNKS_IN_FLIGHT = 2
SAMPLE_JOBS = 1_000
READS_IN_FLIGHT = 8
JOBS_PER_FLUSH = 100
EVENT_TIMEOUT_S = 180.0
HTTP_TIMEOUT_S = 600.0

LINE = re.compile(r'^time=(\S+) .*?\bmsg=("(?:[^"\\]|\\.)*"|\S+)(.*)$')


def noop_job(name: str, schedule: str) -> dict[str, Any]:
    return {"name": name, "schedule": schedule, "executor": "noop", "executor_config": {"text": "x"}}


def log_events(path: Path, offset: int) -> list[tuple[float, str, str]]:
    """(unix seconds, message, the rest of the line) of every logfmt line after byte `offset` of the log."""
    with open(path, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    events = []
    for line in text.splitlines():
        match = LINE.match(line)
        if match is None:
            continue
        stamp, message, rest = match.groups()
        events.append((ms_of(stamp) / 1000, json.loads(message) if message.startswith('"') else message, rest))
    return events


async def wait_for_events(agent: AgentProcess, offset: int, wanted: list[str]) -> dict[str, tuple[float, str]]:
    """The first of each `wanted` message in order (each after the previous one), polling the log."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        found: dict[str, tuple[float, str]] = {}
        remaining = list(wanted)
        for moment, message, rest in log_events(agent.log_path, offset):
            if remaining and message == remaining[0]:
                found[message] = (moment, rest)
                remaining.pop(0)
        if not remaining:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"log lines {remaining} not seen within {EVENT_TIMEOUT_S:g} s")
        await asyncio.sleep(0.05)


async def first_fire(agent: AgentProcess, offset: int) -> tuple[float, str]:
    """When the first execution after "leading: scheduler started" started, and its kind.

    "execution started" is a debug line now: the info line "execution finished" carries `started_at`.
    The earliest start among the lines logged within a second of the first one is taken.
    """

    def fires() -> list[tuple[float, str]]:
        found, leading = [], False
        for moment, message, rest in log_events(agent.log_path, offset):
            leading = leading or message == "leading: scheduler started"
            if leading and message in ("execution started", "execution finished"):
                started = re.search(r"\bstarted_at=(\S+)", rest)
                kind = re.search(r"\bkind=(\S+)", rest)
                found.append((ms_of(started.group(1)) / 1000 if started else moment, kind.group(1) if kind else "?"))
        return found

    await wait_for_events(agent, offset, ["leading: scheduler started"])
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while not fires():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no execution logged within {EVENT_TIMEOUT_S:g} s of leading")
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    return min(fires())


async def restore(http: httpx.AsyncClient, jobs: list[dict[str, Any]]) -> float:
    """POST /v1/restore in chunks of `CHUNK`, `CHUNKS_IN_FLIGHT` at once; returns the elapsed seconds."""

    async def post(chunk: list[dict[str, Any]]) -> None:
        response = await http.post("/v1/restore", json=chunk)
        if response.status_code != 200 or len(response.json()["restored"]) != len(chunk):
            raise RuntimeError(f"restore: {response.status_code} {response.text[:300]}")

    chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    began = time.perf_counter()
    await bounded(chunks, post, CHUNKS_IN_FLIGHT)
    return time.perf_counter() - began


async def restart(root: Path) -> list[tuple]:
    agent = AgentProcess(root / "restart", node_name=NODE)
    await asyncio.to_thread(agent.start)
    try:
        async with httpx.AsyncClient(base_url=agent.url, timeout=HTTP_TIMEOUT_S) as http:
            load_s = await restore(http, [noop_job(f"fire-{i}", FIRE_SCHEDULE) for i in range(FIRE_JOBS)])
        loaded_rss, _ = memory(agent.process.pid)
    finally:
        await asyncio.to_thread(agent.stop)
    journal_mib = sum(p.stat().st_size for p in (agent.data_dir / "raft").rglob("*") if p.is_file()) / 2**20

    offset = agent.log_path.stat().st_size
    began = time.time()
    await asyncio.to_thread(agent.start, EVENT_TIMEOUT_S)
    try:
        events = await wait_for_events(agent, offset, ["agent started", "leading: scheduler started"])
        fired_at, kind = await first_fire(agent, offset)
        await asyncio.sleep(2.0)
        restarted_rss, _ = memory(agent.process.pid)
    finally:
        stopping = time.perf_counter()
        await asyncio.to_thread(agent.stop)
        stop_s = time.perf_counter() - stopping

    started_at = events["agent started"][0]
    loaded_at, leading_fields = events["leading: scheduler started"]
    behind = re.search(r"\bbehind=(\S+)", leading_fields)
    jobs = f"{FIRE_JOBS:,} x {FIRE_SCHEDULE}"
    return [
        (f"restore {jobs}", f"{FIRE_JOBS / load_s:,.0f} jobs/s", "", f"{load_s:.1f} s, chunks of {CHUNK:,}"),
        ("restart: process start -> agent started", f"{(started_at - began) * 1000:,.0f} ms", "", ""),
        (
            "restart: process start -> state loaded, leading",
            f"{(loaded_at - began) * 1000:,.0f} ms",
            "",
            f"journal {journal_mib:.0f} MiB; {behind.group(1) if behind else '?'} behind",
        ),
        (
            "restart: state loaded -> first fire",
            f"{(fired_at - loaded_at) * 1000:,.0f} ms",
            "≤ 2,000 ms",
            f"kind={kind}",
        ),
        ("restart: process start -> first fire", f"{(fired_at - began) * 1000:,.0f} ms", "", ""),
        (f"RSS of the agent, {FIRE_JOBS:,} jobs, after the load", f"{loaded_rss:.1f} MiB", "", ""),
        (
            f"RSS of the agent, {FIRE_JOBS:,} jobs, after restart",
            f"{restarted_rss:.1f} MiB",
            "",
            "2 s after the first fire",
        ),
        ("restart: stop (SIGTERM -> exit)", f"{stop_s * 1000:,.0f} ms", "", ""),
    ]


def write_history(data_dir: Path, names: list[str]) -> float:
    """`EXECUTIONS_PER_JOB` finished executions per job through `ExecutionStore`; returns the elapsed seconds."""
    began = time.perf_counter()
    store = ExecutionStore(str(data_dir / "horae.db"), max_executions=EXECUTIONS_PER_JOB)
    flush = getattr(store, "flush", None)
    first_ms = (int(time.time()) - EXECUTIONS_PER_JOB * 60 - 3600) * 1000
    for count, name in enumerate(names, 1):
        for k in range(EXECUTIONS_PER_JOB):
            slot_ms = first_ms + k * 60_000
            group = slot_ms * 1_000_000
            store.put_execution(
                {
                    "id": f"{group}-{NODE}-1",
                    "job_name": name,
                    "group": group,
                    "attempt": 1,
                    "node_name": NODE,
                    "slot": format_ms(slot_ms),
                    "started_at": format_ms(slot_ms + 5),
                    "finished_at": format_ms(slot_ms + 10),
                    "success": True,
                    "output": TEXT,
                    "exit_code": 0,
                    "cpu_seconds": 0.0,
                    "max_rss_bytes": 0,
                }
            )
        if flush is not None and count % JOBS_PER_FLUSH == 0:
            flush()
    if flush is not None:
        flush()
    store.close()
    return time.perf_counter() - began


async def history(root: Path) -> list[tuple]:
    agent = AgentProcess(root / "history", node_name=NODE)
    names = [f"hist-{i}" for i in range(HISTORY_JOBS)]
    await asyncio.to_thread(agent.start)
    try:
        async with httpx.AsyncClient(base_url=agent.url, timeout=HTTP_TIMEOUT_S) as http:
            await restore(http, [noop_job(name, "@manually") for name in names])
    finally:
        await asyncio.to_thread(agent.stop)

    write_s = await asyncio.to_thread(write_history, agent.data_dir, names)
    db_mib = sum(p.stat().st_size for p in agent.data_dir.glob("horae.db*")) / 2**20

    await asyncio.to_thread(agent.start, EVENT_TIMEOUT_S)
    try:
        started_rss, _ = memory(agent.process.pid)
        latencies: list[float] = []
        short: list[str] = []
        limits = httpx.Limits(max_connections=READS_IN_FLIGHT)
        async with httpx.AsyncClient(base_url=agent.url, timeout=HTTP_TIMEOUT_S, limits=limits) as http:

            async def read(name: str) -> None:
                began = time.perf_counter()
                response = await http.get(f"/v1/jobs/{name}/executions")
                latencies.append(time.perf_counter() - began)
                response.raise_for_status()
                if len(response.json()) != EXECUTIONS_PER_JOB:
                    short.append(f"{name}: {len(response.json())}")

            step = HISTORY_JOBS // SAMPLE_JOBS
            await bounded(names[::step][:SAMPLE_JOBS], read, READS_IN_FLIGHT)
            began = time.perf_counter()
            listed = len((await http.get("/v1/jobs")).json())
            list_s = time.perf_counter() - began
        agent_rss, _ = memory(agent.process.pid)
        peak = psutil.Process(agent.process.pid).memory_info()
    finally:
        await asyncio.to_thread(agent.stop)

    ms = 1000.0
    puts = HISTORY_JOBS * EXECUTIONS_PER_JOB
    history_label = f"{HISTORY_JOBS:,} jobs + {puts:,} executions"
    return [
        (
            f"write {puts:,} executions offline",
            f"{puts / write_s:,.0f} /s",
            "",
            f"{write_s:.0f} s through ExecutionStore.put_execution",
        ),
        ("horae.db on disk (+ WAL)", f"{db_mib:.0f} MiB", "", f"{HISTORY_JOBS:,} jobs x {EXECUTIONS_PER_JOB}"),
        (f"RSS of the agent, {history_label}, started", f"{started_rss:.1f} MiB", "", ""),
        (
            f"executions read, {READS_IN_FLIGHT} in flight, p50",
            f"{statistics.median(latencies) * ms:.1f} ms",
            "",
            f"{SAMPLE_JOBS - len(short):,}/{SAMPLE_JOBS:,} returned {EXECUTIONS_PER_JOB}"
            + (f" ({short[0]})" if short else ""),
        ),
        (f"executions read, {READS_IN_FLIGHT} in flight, p99", f"{percentile(latencies, 0.99) * ms:.1f} ms", "", ""),
        ("GET /v1/jobs", f"{list_s * ms:,.0f} ms", "", f"{listed:,} jobs"),
        (
            f"RSS of the agent, {history_label}, after reads",
            f"{agent_rss:.1f} MiB",
            "≤ 250 MiB",
            f"VMS {peak.vms / 2**20:,.0f} MiB",
        ),
    ]


async def run() -> None:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hb-capacity-", dir="/tmp") as data_dir:
        root = Path(data_dir)
        try:
            rows = await restart(root)
            rows += await history(root)
        except BaseException:
            for log in root.glob("*/agent.log"):
                print(f"{log} tail:\n{log.read_text(errors='replace')[-3000:]}")
            raise
    print(f"\ncapacity, one --dev agent, noop executor ({time.perf_counter() - began:.0f} s in all)")
    print(format_table(("MEASURE", "RESULT", "TARGET", "NOTE"), rows))
