"""A small HTTP/1.1 load generator for the benchmarks: keep-alive connections over asyncio streams.

httpx spends ~2.5 ms of client CPU per request, so a Python benchmark driven by it measures the
client (~400 req/s here), not the agent. This sends pre-encoded requests and reads responses by
Content-Length, which costs a fraction of that. Only what the agent's answers need is handled.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


def request_bytes(method: str, host: str, path: str, body: Any = None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(payload)}\r\n"
    if payload:
        head += "Content-Type: application/json\r\n"
    return head.encode() + b"\r\n" + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length) if length else b""


async def run_load(base_url: str, requests: Iterable[tuple[str, str, Any]], connections: int = 32) -> LoadResult:
    """Send every (method, path, json body or None) over `connections` keep-alive connections."""
    parts = urlsplit(base_url)
    host_header = parts.netloc
    encoded = [request_bytes(method, host_header, path, body) for method, path, body in requests]
    result = LoadResult()
    position = 0

    async def connection() -> None:
        nonlocal position
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while position < len(encoded):
                data = encoded[position]
                position += 1
                started = time.perf_counter()
                writer.write(data)
                try:
                    status, _ = await _read_response(reader)
                except (ConnectionError, asyncio.IncompleteReadError, ValueError) as error:
                    result.errors.append(repr(error))
                    return
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    result.elapsed = time.perf_counter() - began
    return result
