"""What a server does while it leads: fill the scheduler from the state, catch up, keep it in step.

The heap is built from the next fire times stored with the jobs, so a new leader schedules
without computing a single cron expression. Slots missed while no one led (or the agent was
down) run once each when they fall within the job's `catchup` window, oldest first; older ones
are skipped and counted in the job's `missed_count`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from horae.cluster.links import NodeLinks
from horae.cluster.raft import CommandOutcomeUnknown, NotLeader, RaftNode
from horae.cluster.state import ClusterState, Command, CommandResult
from horae.dispatch import Dispatcher, command
from horae.logs import fields
from horae.model import format_ms
from horae.schedule_book import ScheduleBook
from horae.scheduler import Scheduler

log = logging.getLogger("horae.leader")

# Enumerating missed slots stops here: a per-second job down for a week is not replayed slot by slot.
MAX_MISSED_SLOTS_EXAMINED = 10_000
# A stored next fire time this far in the past was missed (it runs only within the job's `catchup`
# window); anything later is merely due now and runs at once. 2 s covers a leader failover (p99
# ~1.5 s) and a quick restart, so those skip no slot even with the default window of 0.
CATCHUP_THRESHOLD_MS = 2000


class Leadership:
    def __init__(
        self,
        raft: RaftNode,
        state: ClusterState,
        schedules: ScheduleBook,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._raft = raft
        self._state = state
        self._schedules = schedules
        self._clock = clock
        self.dispatcher: Dispatcher | None = None
        self.links: NodeLinks | None = None
        self.scheduler = Scheduler(self._fire, clock=clock)
        self._catchup_task: asyncio.Task | None = None

    @property
    def leading(self) -> bool:
        return self.scheduler.running

    def attach(self, dispatcher: Dispatcher, links: NodeLinks | None = None) -> None:
        self.dispatcher = dispatcher
        self.links = links

    def _fire(self, job_name: str, slot_ms: int):
        assert self.dispatcher is not None
        return self.dispatcher.fire(job_name, slot_ms)

    # -- leadership changes (on the loop) --------------------------------------------------------
    def gained(self) -> None:
        if self.scheduler.running:
            return
        now_ms = int(self._clock() * 1000)
        missed: list[tuple[str, int]] = []
        for name, runtime in self._state.runtime.items():
            if runtime.next_fire_ms is None:
                continue
            if runtime.next_fire_ms < now_ms - CATCHUP_THRESHOLD_MS:
                missed.append((name, runtime.next_fire_ms))
            else:
                self.scheduler.set(name, runtime.next_fire_ms)
        self.scheduler.start()
        if self.links is not None:
            self.links.start()
        log.info("leading: scheduler started", extra=fields(jobs=len(self.scheduler), behind=len(missed)))
        self._catchup_task = asyncio.create_task(self._recover(missed, now_ms))

    async def _recover(self, missed: list[tuple[str, int]], now_ms: int) -> None:
        assert self.dispatcher is not None
        await self.dispatcher.fail_orphaned_intents()
        if missed:
            await self._catch_up(missed, now_ms)

    async def lost(self) -> None:
        if self._catchup_task is not None:
            self._catchup_task.cancel()
        await self.scheduler.stop()
        if self.links is not None:
            await self.links.stop()
        log.info("no longer leading: scheduler stopped")

    async def _catch_up(self, missed: list[tuple[str, int]], now_ms: int) -> None:
        assert self.dispatcher is not None
        for name, first_missed_ms in missed:
            job = self._state.jobs.get(name)
            if job is None:
                continue
            window_start = now_ms - int(self._schedules.catchup_seconds(job) * 1000)
            slots_to_run, skipped = [], 0
            slot: int | None = first_missed_ms
            examined = 0
            while slot is not None and slot < now_ms and examined < MAX_MISSED_SLOTS_EXAMINED:
                if slot >= window_start:
                    slots_to_run.append(slot)
                else:
                    skipped += 1
                slot = self._schedules.next_fire_ms(job, slot)
                examined += 1
            while slot is not None and slot < now_ms:  # beyond the examined cap: jump ahead
                slot = self._schedules.next_fire_ms(job, now_ms - 1)
            # Missed slots first, oldest first: the state machine accepts a job's scheduled slots only
            # in increasing order, so the job goes back into the heap only after they are committed.
            # A slot at or before the job's last claimed slot already ran (a leader that died while catching up
            # had committed it but not the job's next fire time): skipped here without a Raft round trip each.
            runtime = self._state.runtime.get(name)
            claimed = runtime.last_scheduled_slot_ms if runtime is not None else None
            for missed_slot in slots_to_run:
                if claimed is not None and missed_slot <= claimed:
                    continue
                log.info("catching up", extra=fields(job=name, slot=format_ms(missed_slot)))
                await self.dispatcher.catch_up(name, missed_slot)
            if skipped:
                log.info("missed slots skipped", extra=fields(job=name, skipped=skipped))
            # forward=False: a server that lost the leadership mid catch-up must not move the new leader's jobs.
            try:
                await self._raft.submit(
                    command("set_next_fire", job=name, next_fire_ms=slot, missed=skipped), forward=False
                )
            except NotLeader as error:
                log.warning("catch-up stopped", extra=fields(job=name, error=error))
                return
            except CommandOutcomeUnknown as error:  # still leading: schedule it; the next fire commits its time
                log.warning("next fire time not confirmed", extra=fields(job=name, error=error))
            self.scheduler.set(name, slot)

    # -- state changes (the Raft thread hands them here) ---------------------------------------
    def applied(self, applied: Command, result: CommandResult) -> None:
        if not self.scheduler.running or not result.ok:
            return
        op = applied["op"]
        if op == "put_job":
            name = applied["job"]["name"]
            runtime = self._state.runtime.get(name)
            self.scheduler.set(name, runtime.next_fire_ms if runtime else None)
        elif op == "delete_job":
            self._schedules.forget(applied["name"])
            self.scheduler.remove(applied["name"])


def state_listener(loop: asyncio.AbstractEventLoop, leadership: Leadership) -> Callable[[Command, Any], None]:
    """A ClusterState listener that forwards applied commands from the Raft thread to the loop."""

    def listener(applied: Command, result: CommandResult) -> None:
        if applied["op"] in ("put_job", "delete_job"):
            loop.call_soon_threadsafe(leadership.applied, applied, result)

    return listener
