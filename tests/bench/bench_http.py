"""http executor figures: executions/s and per-execution latency through PluginHost.execute.

The peer is a minimal keep-alive HTTP/1.1 responder in a process of its own (so that it does not
share the benchmark's GIL), answering every request with a short fixed body; what is measured is
the agent side: the gRPC call, the plugin's pooled client, and the request on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil

from horae.host.supervisor import PluginHost
from horae.table import format_table
from horae_sdk.spec import PluginSpec
from tests.bench.bench_plugin_host import NOOP, percentile

HTTP = PluginSpec("executor", "http", [sys.executable, "-m", "horae_plugins.http"], source="horae")
WARMUP = 200
SERIAL_CALLS = 1000
CONCURRENT_CALLS = 4000
IN_FLIGHT = 32

# Answers each request on a connection in turn; reads the request head and its Content-Length body.
RESPONDER = r"""
import asyncio, socket, sys

BODY = b"ok\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n" + BODY

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":", 1)[1]))
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = await asyncio.start_server(serve, sock=sock, backlog=512)
    print(sock.getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


@contextlib.contextmanager
def plugin_cpu(pid: int) -> Iterator[list[float]]:
    """CPU seconds (user + system) process `pid` used in the block, in the yielded list once it ends."""
    used: list[float] = []
    before = psutil.Process(pid).cpu_times()
    yield used
    after = psutil.Process(pid).cpu_times()
    used.append(after.user + after.system - before.user - before.system)


async def measure(host: PluginHost, name: str, config: dict[str, str], calls: int, in_flight: int):
    """(executions/s, latencies in seconds) for `calls` executions, `in_flight` at a time."""
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            outcome = await host.execute(name, "bench", config)
            latencies.append(time.perf_counter() - started)
            if not outcome.success:
                raise RuntimeError(f"{name} failed: {outcome.error}")

    began = time.perf_counter()
    await asyncio.gather(*(worker(calls // in_flight) for _ in range(in_flight)))
    return len(latencies) / (time.perf_counter() - began), latencies


async def run() -> None:
    responder = subprocess.Popen([sys.executable, "-c", RESPONDER], stdout=subprocess.PIPE, text=True)
    try:
        assert responder.stdout is not None
        port = int(responder.stdout.readline())
        config = {"method": "GET", "url": f"http://127.0.0.1:{port}/health", "expectCode": "200"}
        rows = []
        async with PluginHost([HTTP, NOOP]) as host:
            pids = {status.name: status.pid for status in host.statuses()}
            await measure(host, "http", config, WARMUP, 1)
            await measure(host, "noop", {}, WARMUP, 1)
            for in_flight, calls in ((1, SERIAL_CALLS), (IN_FLIGHT, CONCURRENT_CALLS)):
                with plugin_cpu(pids["http"]) as http_cpu:
                    rate, latencies = await measure(host, "http", config, calls, in_flight)
                with plugin_cpu(pids["noop"]) as noop_cpu:
                    noop_rate, _ = await measure(host, "noop", {}, calls, in_flight)
                rows += [
                    (f"http GET, {in_flight} in flight", f"{rate:,.0f} executions/s", f"{calls} executions"),
                    (f"http GET, {in_flight} in flight, p50", f"{statistics.median(latencies) * 1000:.2f} ms", ""),
                    (f"http GET, {in_flight} in flight, p99", f"{percentile(latencies, 0.99) * 1000:.2f} ms", ""),
                    (f"http plugin CPU/execution, {in_flight} in flight", f"{http_cpu[0] / calls * 1000:.2f} ms", ""),
                    (f"noop, {in_flight} in flight (reference)", f"{noop_rate:,.0f} executions/s", ""),
                    (f"noop plugin CPU/execution, {in_flight} in flight", f"{noop_cpu[0] / calls * 1000:.2f} ms", ""),
                ]
    finally:
        responder.kill()
        responder.wait()
    print("\nhttp executor (keep-alive, local responder)")
    print(format_table(("MEASURE", "RESULT", "NOTE"), rows))
