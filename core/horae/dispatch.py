"""What happens when a job fires: intent, execution, processors, result, retries, dependents.

The leader's Scheduler calls `Dispatcher.fire(job, slot)`. The dispatcher commits the job's next
fire time and the execution's intent through Raft in one entry (the state machine refuses a
second intent for the same slot), waits for the slot, runs the executor through the plugin
host, runs the job's processors in order, and commits the result. Manual runs, retries and
dependent jobs take the same path with their own slot.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from horae.cluster.raft import CommandOutcomeUnknown, NotLeader, RaftNode
from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState
from horae.host.supervisor import PluginCallError, PluginHost, PluginUnavailable
from horae.logs import fields
from horae.model import execution_group, execution_id, format_ms
from horae.running import RunningExecution, RunningExecutions
from horae.schedule_book import ScheduleBook
from horae_sdk.proto.horae.plugin.v1 import processor_pb2

log = logging.getLogger("horae.dispatch")
UNIX_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

MAX_RETRY_BACKOFF_SECONDS = 3600.0


def command(op: str, **payload: Any) -> dict[str, Any]:
    return {"v": COMMAND_FORMAT_VERSION, "op": op, **payload}


def group_of_slot(slot_ms: int) -> int:
    """Dkron's group (the slot in Unix nanoseconds) for a slot given in Unix milliseconds."""
    return execution_group(UNIX_EPOCH + datetime.timedelta(milliseconds=slot_ms))


@dataclass(frozen=True)
class Launch:
    job_name: str
    slot_ms: int
    attempt: int
    kind: str  # scheduled | manual | retry | dependent | catchup


class Dispatcher:
    def __init__(
        self,
        raft: RaftNode,
        state: ClusterState,
        host: PluginHost,
        schedules: ScheduleBook,
        running: RunningExecutions,
        node_name: str,
        reschedule: Callable[[str, int | None], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._raft = raft
        self._state = state
        self._host = host
        self._schedules = schedules
        self._running = running
        self._node_name = node_name
        self._reschedule = reschedule
        self._clock = clock
        self._tasks: set[asyncio.Task] = set()

    # -- entry points --------------------------------------------------------------------------
    async def fire(self, job_name: str, slot_ms: int) -> None:
        """A scheduled slot is due (called `lead` before it): commit next fire + intent, then run."""
        job = self._state.jobs.get(job_name)
        if job is None:
            return
        next_ms = self._schedules.next_fire_ms(job, slot_ms)
        launch = Launch(job_name, slot_ms, 1, "scheduled")
        skip = self._skip_reason(job, slot_ms)
        # forward=False: a server that is no longer the leader must not have its fires committed by the new one.
        submissions = [self._raft.submit(command("set_next_fire", job=job_name, next_fire_ms=next_ms), forward=False)]
        if skip is None:
            submissions.append(self._raft.submit(command("intent", intent=self._intent(launch)), forward=False))
        results = await asyncio.gather(*submissions, return_exceptions=True)
        self._reschedule(job_name, next_ms)
        if skip is not None:
            log.info("slot skipped", extra=fields(job=job_name, slot=format_ms(slot_ms), reason=skip))
            return
        if not self._accepted(results[1], launch):
            return
        try:
            await self._sleep_until(slot_ms)
        except asyncio.CancelledError:
            await self._close_intent(results[1].value, "not started: the agent stopped before the slot")
            raise
        await self._run(job_name, launch)

    async def catch_up(self, job_name: str, slot_ms: int) -> None:
        """Run one missed slot now; the intent dedupes it like any scheduled slot."""
        job = self._state.jobs.get(job_name)
        if job is None:
            return
        launch = Launch(job_name, slot_ms, 1, "scheduled")
        result = await asyncio.gather(
            self._raft.submit(command("intent", intent=self._intent(launch)), forward=False), return_exceptions=True
        )
        if self._accepted(result[0], launch):
            self._spawn(self._run(job_name, launch))

    async def fail_orphaned_intents(self) -> int:
        """Close intents of executions that no longer run here (the node stopped while they ran).

        Without this a `concurrency: forbid` job would wait forever for a run that is gone (Dkron #1939).
        """
        orphans = [
            intent
            for intent in list(self._state.intents.values())
            if intent.get("node") == self._node_name and self._running.get(intent["job"], intent["id"]) is None
        ]
        for intent in orphans:
            await self._close_intent(
                intent,
                "the node stopped while this execution ran; its outcome is unknown",
                format_ms(intent["slot_ms"]),
            )
        return len(orphans)

    async def _close_intent(self, intent: dict[str, Any], reason: str, started_at: str | None = None) -> None:
        """Record a failed result for an intent whose execution will not report, so it never blocks its job."""
        now_ms = int(self._clock() * 1000)
        execution = {
            "id": intent["id"],
            "job_name": intent["job"],
            "group": intent["group"],
            "attempt": intent["attempt"],
            "node_name": self._node_name,
            "slot": format_ms(intent["slot_ms"]),
            "started_at": started_at,
            "finished_at": format_ms(now_ms),
            "success": False,
            "output": reason,
            "error": reason,
            "exit_code": -1,
            "cpu_seconds": 0.0,
            "max_rss_bytes": 0,
        }
        try:
            await self._raft.submit(command("result", execution=execution, finished_at_ms=now_ms), timeout=2.0)
        except (CommandOutcomeUnknown, NotLeader) as error:
            log.error("result not recorded", extra=fields(job=intent["job"], execution=intent["id"], error=error))
            return
        log.warning(reason, extra=fields(job=intent["job"], execution=intent["id"]))

    async def run_now(self, job_name: str, kind: str = "manual") -> str:
        """Start a run outside the schedule (`/run`, a dependent job); returns its execution id."""
        slot_ms = int(self._clock() * 1000)
        launch = Launch(job_name, slot_ms, 1, kind)
        job = self._state.jobs.get(job_name)
        if job is None:
            raise LookupError(f"job {job_name!r} does not exist")
        if job.get("concurrency") == "forbid" and self._running_for(job_name):
            raise RuntimeError(f"job {job_name!r} is running and its concurrency is forbid")
        result = await self._raft.submit(command("intent", intent=self._intent(launch)))
        if not result.ok:
            raise RuntimeError(result.reason)
        self._spawn(self._run(job_name, launch))
        return result.value["id"]

    # -- the pipeline --------------------------------------------------------------------------
    async def _run(self, job_name: str, launch: Launch) -> None:
        job = self._state.jobs.get(job_name)
        if job is None:
            return
        group = group_of_slot(launch.slot_ms)
        running = RunningExecution(
            execution_id(group, self._node_name, launch.attempt),
            job_name,
            self._node_name,
            group,
            launch.attempt,
            launch.slot_ms,
        )
        running.task = asyncio.current_task()
        self._running.add(running)
        log.debug("execution started", extra=fields(job=job_name, execution=running.execution_id, kind=launch.kind))
        try:
            outcome_fields = await self._execute(job, running)
        except asyncio.CancelledError:
            outcome_fields = {
                "success": False,
                "output": running.output_tail().decode(errors="replace")
                + f"\n{running.stop_reason or 'execution cancelled'}",
                "exit_code": -1,
                "error": running.stop_reason or "execution cancelled",
            }
        finally:
            self._running.remove(job_name, running.execution_id)
        finished = self._clock()
        execution = {
            "id": running.execution_id,
            "job_name": job_name,
            "group": group,
            "attempt": launch.attempt,
            "node_name": self._node_name,
            "slot": format_ms(launch.slot_ms),
            "started_at": format_ms(running.started_at * 1000),
            "finished_at": format_ms(finished * 1000),
            "cpu_seconds": 0.0,
            "max_rss_bytes": 0,
            **outcome_fields,
        }
        execution = await self._process(job, execution)
        # One line per execution at info level: at hundreds of executions a second, a second line costs.
        log.info(
            "execution finished",
            extra=fields(
                job=job_name,
                execution=running.execution_id,
                kind=launch.kind,
                success=execution["success"],
                slot=execution["slot"],
                started_at=execution["started_at"],
                duration_ms=round((finished - running.started_at) * 1000),
            ),
        )
        try:
            await self._raft.submit(
                command("result", execution=execution, finished_at_ms=int(finished * 1000), unplanned=False)
            )
        except (CommandOutcomeUnknown, NotLeader) as error:
            log.error("result not recorded", extra=fields(job=job_name, execution=running.execution_id, error=error))
        await self._after(job, launch, execution["success"])

    async def _execute(self, job: dict[str, Any], running: RunningExecution) -> dict[str, Any]:
        timeout = self._schedules.timeout_seconds(job)
        outcome = await self._host.execute(
            job.get("executor") or "",
            job["name"],
            {k: str(v) for k, v in (job.get("executor_config") or {}).items()},
            execution_id=running.execution_id,
            slot_unix_ms=running.slot_ms,
            attempt=running.attempt,
            on_output=running.add_output,
            timeout=timeout,
            on_started=running.mark_started,
        )
        output = outcome.output.decode(errors="replace")
        if outcome.error and outcome.error not in output:
            output = f"{output}{'' if not output or output.endswith(chr(10)) else chr(10)}{outcome.error}"
        return {
            "success": outcome.success,
            "output": output,
            "exit_code": outcome.exit_code,
            "cpu_seconds": outcome.cpu_seconds,
            "max_rss_bytes": outcome.max_rss_bytes,
            "error": outcome.error,
        }

    async def _process(self, job: dict[str, Any], execution: dict[str, Any]) -> dict[str, Any]:
        """Run the job's processors in the order its `processors` object lists them."""
        for name, config in (job.get("processors") or {}).items():
            message = _to_processor_execution(execution)
            try:
                processed = await self._host.process(name, message, {k: str(v) for k, v in (config or {}).items()})
            except (PluginUnavailable, PluginCallError) as error:
                log.error("processor failed", extra=fields(job=job["name"], execution=execution["id"], error=error))
                continue
            execution = {**execution, "output": processed.output.decode(errors="replace")}
        return execution

    async def _after(self, job: dict[str, Any], launch: Launch, success: bool) -> None:
        name = job["name"]
        if not success and launch.attempt <= int(job.get("retries") or 0):
            backoff = float(job.get("retry_backoff") or 0) * (2 ** (launch.attempt - 1))
            retry = Launch(name, launch.slot_ms, launch.attempt + 1, "retry")
            await asyncio.sleep(min(backoff, MAX_RETRY_BACKOFF_SECONDS))
            try:
                result = await self._raft.submit(command("intent", intent=self._intent(retry)), forward=False)
            except (CommandOutcomeUnknown, NotLeader) as error:
                result = error
            if self._accepted(result, retry):
                await self._run(name, retry)
            return
        if not success:
            return
        for child in list(self._state.jobs.get(name, {}).get("dependent_jobs") or []):
            try:
                await self.run_now(child, kind="dependent")
            except (LookupError, RuntimeError) as error:
                log.warning("dependent job not started", extra=fields(job=child, parent=name, error=error))
        if job.get("ephemeral"):
            await self._raft.submit(command("delete_job", name=name))
            self._reschedule(name, None)

    # -- helpers -------------------------------------------------------------------------------
    def _intent(self, launch: Launch) -> dict[str, Any]:
        group = group_of_slot(launch.slot_ms)
        return {
            "id": execution_id(group, self._node_name, launch.attempt),
            "job": launch.job_name,
            "slot_ms": launch.slot_ms,
            "group": group,
            "attempt": launch.attempt,
            "kind": launch.kind,
            "node": self._node_name,
        }

    def _skip_reason(self, job: dict[str, Any], slot_ms: int) -> str | None:
        if job.get("disabled"):
            return "job is disabled"
        if self._state.paused:
            return "scheduling is paused"
        if not self._schedules.in_window(job, slot_ms):
            return "outside starts_at/expires_at"
        if job.get("concurrency") == "forbid" and self._running_for(job["name"]):
            return "previous execution still running and concurrency is forbid"
        return None

    def _running_for(self, job_name: str) -> bool:
        return any(intent["job"] == job_name for intent in self._state.intents.values())

    def _accepted(self, result: Any, launch: Launch) -> bool:
        if isinstance(result, BaseException):
            log.error("intent not committed", extra=fields(job=launch.job_name, slot_ms=launch.slot_ms, error=result))
            return False
        if not result.ok:
            log.info("intent refused", extra=fields(job=launch.job_name, slot_ms=launch.slot_ms, reason=result.reason))
            return False
        return True

    async def _sleep_until(self, moment_ms: int) -> None:
        delay = moment_ms / 1000 - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, grace: float, launches: Iterable[asyncio.Task] = ()) -> None:
        """Let running executions finish within `grace` seconds, then cancel them and every launch.

        A launch still waiting for its slot records a failed result rather than leaving an intent
        open, and every result is submitted before this returns (Raft is stopped after it).
        """
        running = [r.task for r in self._running if r.task is not None]
        if running:
            await asyncio.wait(running, timeout=grace)
        rest = [task for task in {*running, *launches, *self._tasks} if not task.done()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)


def _to_processor_execution(execution: dict[str, Any]) -> processor_pb2.Execution:
    message = processor_pb2.Execution(
        job_name=execution["job_name"],
        success=execution["success"],
        output=execution["output"].encode(),
        node_name=execution["node_name"],
        group=execution["group"],
        attempt=execution["attempt"],
        id=execution["id"],
        exit_code=execution.get("exit_code") or 0,
    )
    for field_name in ("started_at", "finished_at"):
        if execution.get(field_name):
            getattr(message, field_name).FromJsonString(execution[field_name])
    return message
