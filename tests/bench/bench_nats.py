"""nats executor figures: executions/s and latency through PluginHost.execute against the local NATS server.

A real subscriber counts the messages: a run only counts when every published message arrived.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid

import nats

from horae.host.supervisor import PluginHost
from horae.table import format_table
from horae_sdk.spec import PluginSpec
from tests.brokers import require_nats

NATS_EXECUTOR = PluginSpec("executor", "nats", [sys.executable, "-m", "horae_plugins.nats"], source="horae")
WARM_UP_CALLS = 200
SERIAL_CALLS = 2000
CONCURRENT_CALLS = 8000
IN_FLIGHT = 32


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Counter:
    """A subscriber on the benchmark's subject that counts what arrives."""

    def __init__(self) -> None:
        self.count = 0

    async def received(self, _message) -> None:
        self.count += 1

    async def wait_for(self, expected: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.count < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.count == expected


async def run_calls(host: PluginHost, config: dict[str, str], calls: int, in_flight: int) -> tuple[float, list[float]]:
    """(executions per second, latencies) of `calls` executions, `in_flight` at a time."""
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            outcome = await host.execute("nats", "bench", config)
            latencies.append(time.perf_counter() - started)
            if not outcome.success:
                raise RuntimeError(f"nats execution failed: {outcome.error}")

    began = time.perf_counter()
    await asyncio.gather(*(worker(calls // in_flight) for _ in range(in_flight)))
    return len(latencies) / (time.perf_counter() - began), latencies


async def run() -> None:
    url = require_nats()
    subject = f"horae.bench.{uuid.uuid4().hex[:12]}"
    config = {"url": url, "subject": subject, "message": '{"job": "bench", "payload": "' + "x" * 64 + '"}'}
    counter = Counter()
    subscriber = await nats.connect(url)
    await subscriber.subscribe(subject, cb=counter.received)
    await subscriber.flush()
    rows = []
    try:
        async with PluginHost([NATS_EXECUTOR]) as host:
            await run_calls(host, config, WARM_UP_CALLS, 1)  # the connection, channels and threads warm up
            expected = WARM_UP_CALLS
            ms = 1000.0
            for calls, in_flight in ((SERIAL_CALLS, 1), (CONCURRENT_CALLS, IN_FLIGHT)):
                rate, latencies = await run_calls(host, config, calls, in_flight)
                expected += calls
                arrived = await counter.wait_for(expected)
                note = f"{calls} calls; " + ("all arrived" if arrived else f"ONLY {counter.count}/{expected} arrived")
                rows += [
                    (f"nats Execute, {in_flight} in flight", f"{rate:,.0f} executions/s", note),
                    (f"nats Execute, {in_flight} in flight, p50", f"{statistics.median(latencies) * ms:.3f} ms", ""),
                    (f"nats Execute, {in_flight} in flight, p99", f"{percentile(latencies, 0.99) * ms:.3f} ms", ""),
                ]
    finally:
        await subscriber.close()
    print("\nnats executor (publish + PONG per execution, one shared connection)")
    print(format_table(("MEASURE", "RESULT", "NOTE"), rows))
