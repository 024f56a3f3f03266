"""Executions running on this node right now: their live output and a handle to stop them.

`/v1/busy` lists them, the UI streams their output, and a stop request cancels their task
(which cancels the plugin call, which makes the plugin stop the work).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from horae.cluster.state import execution_key

LIVE_TAIL_BYTES = 256 * 1024


@dataclass
class RunningExecution:
    execution_id: str
    job_name: str
    node_name: str
    group: int
    attempt: int
    slot_ms: int
    started_at: float = field(default_factory=time.time)
    task: asyncio.Task | None = None
    bytes_seen: int = 0
    stop_reason: str = ""
    _tail: bytearray = field(default_factory=bytearray)
    _listeners: set[asyncio.Queue] = field(default_factory=set)

    def add_output(self, chunk: bytes, stderr: bool = False) -> None:
        self.bytes_seen += len(chunk)
        self._tail += chunk
        if len(self._tail) > 2 * LIVE_TAIL_BYTES:
            del self._tail[:-LIVE_TAIL_BYTES]
        for queue in self._listeners:
            if queue.qsize() < 1000:  # a slow reader loses chunks, never stalls the execution
                queue.put_nowait(chunk)

    def mark_started(self) -> None:
        """The executor call went out: `started_at` is when the plugin was asked, not when it was queued."""
        self.started_at = time.time()

    def output_tail(self) -> bytes:
        return bytes(self._tail[-LIVE_TAIL_BYTES:])

    def listen(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue) -> None:
        self._listeners.discard(queue)

    def close(self) -> None:
        for queue in self._listeners:
            queue.put_nowait(None)


# The reason an execution stopped through the API carries (its `error`): such a run is not retried.
STOP_REASON = "stopped by request"


class RunningExecutions:
    def __init__(self) -> None:
        # Keyed by execution_key(job, id): execution ids are unique per job only.
        self._by_id: dict[str, RunningExecution] = {}

    def __iter__(self) -> Iterator[RunningExecution]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, running: RunningExecution) -> None:
        self._by_id[execution_key(running.job_name, running.execution_id)] = running

    def remove(self, job_name: str, execution_id: str) -> None:
        running = self._by_id.pop(execution_key(job_name, execution_id), None)
        if running is not None:
            running.close()

    def get(self, job_name: str, execution_id: str) -> RunningExecution | None:
        return self._by_id.get(execution_key(job_name, execution_id))

    def for_job(self, job_name: str) -> list[RunningExecution]:
        return [r for r in self._by_id.values() if r.job_name == job_name]

    def stop(self, job_name: str, execution_id: str, reason: str = STOP_REASON) -> bool:
        running = self.get(job_name, execution_id)
        if running is None or running.task is None or running.task.done():
            return False
        running.stop_reason = reason
        running.task.cancel()
        return True

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "id": r.execution_id,
                "job_name": r.job_name,
                "node_name": r.node_name,
                "group": r.group,
                "attempt": r.attempt,
                "started_at_ms": int(r.started_at * 1000),
                "output_bytes": r.bytes_seen,
            }
            for r in self._by_id.values()
        ]
