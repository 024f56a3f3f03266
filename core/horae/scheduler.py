"""The leader's timer: one heap of next fire times and one run loop (Nomad's periodic dispatcher).

The heap is indexed by job name, so adding, moving and removing a job cost O(log n) and the
loop never scans all jobs. The scheduler knows nothing about cron: whoever it launches (the
dispatcher) computes the job's following fire time and hands it back with `set`. A fire is
handed over `lead_seconds` before its slot, so that its intent can be committed through Raft
and the execution start on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from horae.logs import fields

log = logging.getLogger("horae.scheduler")

DEFAULT_LEAD_SECONDS = 0.25
# Never sleep longer than this, so a wrong clock step or a lost wakeup heals by itself.
MAX_SLEEP_SECONDS = 1.0

Launch = Callable[[str, int], Awaitable[None] | None]


class FireHeap:
    """A binary min-heap of (fire time in ms, job name) with a position index per name."""

    def __init__(self) -> None:
        self._entries: list[tuple[int, str]] = []
        self._positions: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._positions

    def peek(self) -> tuple[int, str] | None:
        return self._entries[0] if self._entries else None

    def get(self, name: str) -> int | None:
        position = self._positions.get(name)
        return None if position is None else self._entries[position][0]

    def set(self, name: str, fire_ms: int) -> None:
        position = self._positions.get(name)
        if position is None:
            self._entries.append((fire_ms, name))
            self._positions[name] = len(self._entries) - 1
            self._sift_up(len(self._entries) - 1)
            return
        old = self._entries[position][0]
        self._entries[position] = (fire_ms, name)
        if fire_ms < old:
            self._sift_up(position)
        else:
            self._sift_down(position)

    def remove(self, name: str) -> None:
        position = self._positions.pop(name, None)
        if position is None:
            return
        last = self._entries.pop()
        if position < len(self._entries):
            self._entries[position] = last
            self._positions[last[1]] = position
            self._sift_up(position)
            self._sift_down(self._positions[last[1]])

    def pop(self) -> tuple[int, str]:
        first = self._entries[0]
        self.remove(first[1])
        return first

    def _swap(self, i: int, j: int) -> None:
        entries = self._entries
        entries[i], entries[j] = entries[j], entries[i]
        self._positions[entries[i][1]] = i
        self._positions[entries[j][1]] = j

    def _sift_up(self, position: int) -> None:
        while position > 0:
            parent = (position - 1) // 2
            if self._entries[position] >= self._entries[parent]:
                return
            self._swap(position, parent)
            position = parent

    def _sift_down(self, position: int) -> None:
        size = len(self._entries)
        while True:
            smallest = position
            for child in (2 * position + 1, 2 * position + 2):
                if child < size and self._entries[child] < self._entries[smallest]:
                    smallest = child
            if smallest == position:
                return
            self._swap(position, smallest)
            position = smallest


class Scheduler:
    """Hands each job to `launch(job_name, slot_ms)` when its fire time comes (minus the lead)."""

    def __init__(
        self, launch: Launch, lead_seconds: float = DEFAULT_LEAD_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self._launch = launch
        self._lead_ms = int(lead_seconds * 1000)
        self._clock = clock
        self._heap = FireHeap()
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._launches: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def next_fire_ms(self, name: str) -> int | None:
        return self._heap.get(name)

    def set(self, name: str, fire_ms: int | None) -> None:
        """Schedule (or move) a job; None removes it (no further fire)."""
        if fire_ms is None:
            self._heap.remove(name)
        else:
            self._heap.set(name, fire_ms)
        self._changed.set()

    def remove(self, name: str) -> None:
        self.set(name, None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="horae-scheduler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def pending_launches(self) -> list[asyncio.Task]:
        """Launches handed out and not finished (a fire waiting for its slot, or running)."""
        return [task for task in self._launches if not task.done()]

    @property
    def running(self) -> bool:
        return self._task is not None

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            first = self._heap.peek()
            now_ms = int(self._clock() * 1000)
            if first is None:
                await self._changed.wait()
                continue
            fire_ms, name = first
            wait = (fire_ms - self._lead_ms - now_ms) / 1000
            if wait > 0:
                # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that comes as the event is
                # set, and a stopped scheduler would go on firing.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(wait, MAX_SLEEP_SECONDS)):
                        await self._changed.wait()
                continue
            # The launcher sets the following fire time; until then the job is out of the heap.
            self._heap.remove(name)
            self._fire(name, fire_ms)

    def _fire(self, name: str, fire_ms: int) -> None:
        try:
            result = self._launch(name, fire_ms)
        except Exception:
            log.exception("launching a job failed", extra=fields(job=name, slot_ms=fire_ms))
            return
        if asyncio.iscoroutine(result):
            task = asyncio.create_task(result)
            self._launches.add(task)
            task.add_done_callback(self._launches.discard)
