"""Plugin host figures (issue 2): cold start, no-op Execute round trip, live output, idle RSS."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time

import psutil

from horae.host.launcher import launch_plugin
from horae.host.supervisor import PluginHost
from horae.table import format_table
from horae_sdk.spec import PluginSpec

NOOP = PluginSpec("executor", "noop", [sys.executable, "-m", "horae_plugins.noop"], source="horae")
SHELL = PluginSpec("executor", "shell", [sys.executable, "-m", "horae_plugins.shell"], source="horae")
STREAM = PluginSpec("executor", "stream", [sys.executable, "-m", "tests.bench.stream_plugin"], source="bench")
COLD_STARTS = 20
SERIAL_CALLS = 3000
CONCURRENT_CALLS = 8000
IN_FLIGHT = 16
STREAM_MIB = 512


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def cold_start() -> list[float]:
    times = []
    with tempfile.TemporaryDirectory(prefix="hb-", dir="/tmp") as socket_dir:
        for _ in range(COLD_STARTS):
            started = time.perf_counter()
            plugin = await launch_plugin(NOOP, socket_dir=socket_dir)
            times.append(time.perf_counter() - started)
            await plugin.stop()
    return times


async def execute_round_trips(host: PluginHost) -> tuple[list[float], float, list[float], float]:
    for _ in range(300):  # warm up channels and thread pools
        await host.execute("noop", "bench", {})
    serial = []
    began = time.perf_counter()
    for _ in range(SERIAL_CALLS):
        started = time.perf_counter()
        await host.execute("noop", "bench", {})
        serial.append(time.perf_counter() - started)
    serial_rate = SERIAL_CALLS / (time.perf_counter() - began)

    concurrent: list[float] = []

    async def worker(calls: int) -> None:
        for _ in range(calls):
            started = time.perf_counter()
            await host.execute("noop", "bench", {})
            concurrent.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker(CONCURRENT_CALLS // IN_FLIGHT) for _ in range(IN_FLIGHT)))
    concurrent_rate = CONCURRENT_CALLS / (time.perf_counter() - began)
    return serial, serial_rate, concurrent, concurrent_rate


async def live_output(host: PluginHost, name: str, config: dict[str, str]) -> tuple[float, int]:
    received = 0

    def count(chunk: bytes, stderr: bool) -> None:
        nonlocal received
        received += len(chunk)

    began = time.perf_counter()
    outcome = await host.execute(name, "bench", config, on_output=count)
    elapsed = time.perf_counter() - began
    if not outcome.success:
        raise RuntimeError(f"{name} failed: {outcome.error}")
    return received / (1024 * 1024) / elapsed, received


async def run() -> None:
    starts = await cold_start()
    async with PluginHost([NOOP, SHELL, STREAM]) as host:
        noop_pid = next(s.pid for s in host.statuses() if s.name == "noop")
        serial, serial_rate, concurrent, concurrent_rate = await execute_round_trips(host)
        sdk_rate, sdk_bytes = await live_output(host, "stream", {"mib": str(STREAM_MIB)})
        shell_rate, shell_bytes = await live_output(
            host, "shell", {"command": f"head -c {STREAM_MIB}M /dev/zero", "shell": "true"}
        )
        await asyncio.sleep(1.0)  # idle: let the plugin settle before reading its memory
        rss = psutil.Process(noop_pid).memory_info().rss / (1024 * 1024)

    ms = 1000.0
    rows = [
        ("cold start to healthy, p50", f"{statistics.median(starts) * ms:.1f} ms", "≤ 150 ms", f"{COLD_STARTS} starts"),
        ("cold start to healthy, p99", f"{percentile(starts, 0.99) * ms:.1f} ms", "", ""),
        ("no-op Execute, 1 in flight, p50", f"{statistics.median(serial) * ms:.3f} ms", "≤ 1.5 ms", ""),
        ("no-op Execute, 1 in flight, p99", f"{percentile(serial, 0.99) * ms:.3f} ms", "", ""),
        ("no-op Execute, 1 in flight", f"{serial_rate:,.0f} calls/s", "", f"{SERIAL_CALLS} calls"),
        (f"no-op Execute, {IN_FLIGHT} in flight", f"{concurrent_rate:,.0f} calls/s", "≥ 1,500 calls/s", ""),
        (f"no-op Execute, {IN_FLIGHT} in flight, p50", f"{statistics.median(concurrent) * ms:.3f} ms", "", ""),
        (f"no-op Execute, {IN_FLIGHT} in flight, p99", f"{percentile(concurrent, 0.99) * ms:.3f} ms", "", ""),
        ("live output, SDK executor (1 MiB writes)", f"{sdk_rate:,.0f} MiB/s", "≥ 100 MiB/s", f"{sdk_bytes >> 20} MiB"),
        ("live output, shell executor", f"{shell_rate:,.0f} MiB/s", "≥ 100 MiB/s", f"{shell_bytes >> 20} MiB"),
        ("RSS of one idle Python plugin (noop)", f"{rss:.1f} MiB", "", ""),
    ]
    print("\nplugin host (issue 2)")
    print(format_table(("MEASURE", "RESULT", "TARGET", "NOTE"), rows))
