"""HTTP API figures (issue 6): req/s of the job list and job reads at 32 connections, measured with
Debian's `wrk`, and the latency of a job create, on one `--dev` agent holding 10,000 jobs.

wrk is a C load generator: unlike a Python client it does not compete with the agent for the
machine's two cores as much, so the figure is the agent's. `apt-get install -y wrk` when missing.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from horae.table import format_table
from tests.bench.bench_scheduler import percentile
from tests.bench.http_load import run_load
from tests.integration.agent_process import AgentProcess

JOBS = 10_000
RESTORE_BATCH = 500
CONNECTIONS = 32
THREADS = 2
WRK_SECONDS = 10
WARMUP_SECONDS = 2
CREATES = 2_000
TARGET_RPS = 3_000
WRK_INSTALL = "apt-get install -y wrk"
LIST_PATH = "/v1/jobs?_start=0&_end=25"

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class WrkResult:
    requests_per_second: float
    latency_ms: dict[str, float] = field(default_factory=dict)  # "50%" -> ms
    requests: int = 0
    bad_responses: int = 0
    socket_errors: str = ""


def job(index: int) -> dict[str, Any]:
    # Fields a real job has (tags, metadata, a config), so a read serializes what an operator's would.
    return {
        "name": f"api-{index:05d}",
        "schedule": "@manually",
        "executor": "noop",
        "executor_config": {"text": "hello"},
        "tags": {"role": "web"},
        "metadata": {"team": f"t{index % 10}"},
        "owner": "bench",
    }


def millis(text: str) -> float:
    """wrk's duration ("812.00us", "1.20ms", "2.01s") in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """The figures of `wrk --latency` output; ValueError naming what is missing."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rate is None:
        raise ValueError(f"no Requests/sec in wrk's output:\n{output}")
    result = WrkResult(float(rate.group(1)))
    for share, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE):
        result.latency_ms[f"{share}%"] = millis(value)
    done = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    result.requests = int(done.group(1)) if done else 0
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result.bad_responses = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors:(.*)$", output, re.MULTILINE)
    result.socket_errors = errors.group(1).strip() if errors else ""
    return result


def wrk(url: str, seconds: int) -> WrkResult:
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    return parse_wrk(done.stdout)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def load_jobs(http: httpx.AsyncClient) -> float:
    """Restore JOBS jobs in batches; the seconds it took."""
    began = time.perf_counter()
    for first in range(0, JOBS, RESTORE_BATCH):
        batch = [job(i) for i in range(first, min(first + RESTORE_BATCH, JOBS))]
        response = await http.post("/v1/restore", json=batch)
        restored = response.json().get("restored", []) if response.status_code == 200 else []
        if len(restored) != len(batch):
            raise RuntimeError(f"restoring jobs {first}..: {response.status_code} {response.text[:300]}")
    elapsed = time.perf_counter() - began
    listing = await http.get(LIST_PATH)
    total = int(listing.headers.get("X-Total-Count", "0"))
    if listing.status_code != 200 or len(listing.json()) != 25 or total != JOBS:
        raise RuntimeError(f"after the restore GET {LIST_PATH}: {listing.status_code}, X-Total-Count {total}")
    return elapsed


def rate_rows(label: str, agent: AgentProcess, path: str) -> list[tuple]:
    process = psutil.Process(agent.process.pid)
    wrk(agent.url + path, WARMUP_SECONDS)
    before, load_before = cpu_seconds(process), os.getloadavg()[0]
    result = wrk(agent.url + path, WRK_SECONDS)
    used, load_after = cpu_seconds(process) - before, os.getloadavg()[0]
    per_request = used / max(result.requests, 1) * 1000
    note = (
        f"{result.requests:,} requests in {WRK_SECONDS} s, {result.bad_responses} non-2xx, "
        f"socket errors: {result.socket_errors or 'none'}; agent CPU {per_request:.2f} ms/request; "
        f"load average {load_before:.1f} -> {load_after:.1f}"
    )
    latency = ", ".join(f"p{share[:-1]} {ms:.1f} ms" for share, ms in result.latency_ms.items())
    return [
        (
            f"GET {label}, {CONNECTIONS} connections",
            f"{result.requests_per_second:,.0f} req/s",
            f"≥ {TARGET_RPS:,} req/s",
            note,
        ),
        (f"GET {label} latency", latency, "", "wrk --latency"),
    ]


async def create_rows(agent: AgentProcess) -> list[tuple]:
    """CREATES creates one after another on one keep-alive connection: the latency a user sees."""
    bodies = [("POST", "/v1/jobs", {**job(JOBS + i), "name": f"created-{i:05d}"}) for i in range(CREATES)]
    result = await run_load(agent.url, bodies, connections=1)
    latencies = result.latencies or [0.0]
    note = f"{result.count(201)}/{CREATES} created in {result.elapsed:.1f} s, sequential, {JOBS:,} jobs held"
    return [
        ("job create latency, p50", f"{statistics.median(latencies) * 1000:.2f} ms", "", note),
        ("job create latency, p99", f"{percentile(latencies, 0.99) * 1000:.2f} ms", "", ""),
        ("job create latency, max", f"{max(latencies) * 1000:.2f} ms", "", ""),
    ]


async def measure(agent: AgentProcess) -> list[tuple]:
    async with httpx.AsyncClient(base_url=agent.url, timeout=60.0) as http:
        loaded_in = await load_jobs(http)
    rows: list[tuple] = [(f"restore {JOBS:,} jobs ({RESTORE_BATCH} a request)", f"{loaded_in:.1f} s", "", "setup")]
    if shutil.which("wrk") is None:
        rows.append(("GET req/s", "not measured", f"≥ {TARGET_RPS:,} req/s", f"wrk is missing: {WRK_INSTALL}"))
    else:
        rows += await asyncio.to_thread(rate_rows, f"{LIST_PATH} ({JOBS:,} jobs)", agent, LIST_PATH)
        rows += await asyncio.to_thread(rate_rows, "/v1/jobs/{name}", agent, f"/v1/jobs/api-{JOBS // 2:05d}")
    rows += await create_rows(agent)
    return rows


async def run() -> None:
    with tempfile.TemporaryDirectory(prefix="hb-api-", dir="/tmp") as data_dir:
        agent = AgentProcess(Path(data_dir) / "node", node_name="bench-api")
        await asyncio.to_thread(agent.start)
        try:
            rows = await measure(agent)
        except BaseException:
            print(f"agent log tail:\n{agent.log_text(3000)}")
            raise
        finally:
            await asyncio.to_thread(agent.stop)
    cores = os.cpu_count()
    print(
        f"\nHTTP API, one --dev agent, {JOBS:,} jobs; wrk -t{THREADS} -c{CONNECTIONS} on the same {cores}-core machine"
    )
    print(format_table(("MEASURE", "RESULT", "TARGET", "NOTE"), rows))
