"""Runs one execution on this node: the executor plugin, then the job's processors, in order.

The leader runs the executions it targets at itself through it, and a worker those the leader
sends it. While it runs, the execution is in RunningExecutions (for /v1/busy, live output, stop).
The returned record is what the `result` command commits; submitting it is the caller's business.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from horae.host.supervisor import PluginCallError, PluginHost, PluginUnavailable
from horae.logs import fields
from horae.model import format_ms
from horae.running import RunningExecution, RunningExecutions
from horae.schedule_book import ScheduleBook
from horae_sdk.proto.horae.plugin.v1 import processor_pb2

log = logging.getLogger("horae.runner")

OutputListener = Callable[[bytes, bool], None]


@dataclass(frozen=True)
class ExecutionOrder:
    """One execution to run: its committed intent and the job as it was when the intent was made."""

    job: dict[str, Any]
    execution_id: str
    group: int
    attempt: int
    slot_ms: int
    kind: str


class ExecutionRunner:
    def __init__(
        self,
        host: PluginHost,
        schedules: ScheduleBook,
        running: RunningExecutions,
        node_name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._schedules = schedules
        self._running = running
        self._node_name = node_name
        self._clock = clock

    async def run(
        self,
        order: ExecutionOrder,
        on_output: OutputListener | None = None,
        on_started: Callable[[float], None] | None = None,
    ) -> tuple[dict[str, Any], int]:
        """Run it; returns the execution record and its finish time in Unix ms. Cancelling stops it."""
        job = order.job
        running = RunningExecution(
            order.execution_id, job["name"], self._node_name, order.group, order.attempt, order.slot_ms
        )
        running.task = asyncio.current_task()
        self._running.add(running)

        def output(chunk: bytes, stderr: bool = False) -> None:
            running.add_output(chunk, stderr)
            if on_output is not None:
                on_output(chunk, stderr)

        def started() -> None:
            running.mark_started()
            if on_started is not None:
                on_started(running.started_at)

        log.debug("execution started", extra=fields(job=job["name"], execution=order.execution_id, kind=order.kind))
        try:
            outcome_fields = await self._execute(job, running, output, started)
        except asyncio.CancelledError:
            reason = running.stop_reason or "execution cancelled"
            outcome_fields = {
                "success": False,
                "output": running.output_tail().decode(errors="replace") + f"\n{reason}",
                "exit_code": -1,
                "error": reason,
            }
        finally:
            self._running.remove(job["name"], order.execution_id)
        finished = self._clock()
        execution = {
            "id": order.execution_id,
            "job_name": job["name"],
            "group": order.group,
            "attempt": order.attempt,
            "node_name": self._node_name,
            "slot": format_ms(order.slot_ms),
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
                job=job["name"],
                execution=order.execution_id,
                kind=order.kind,
                success=execution["success"],
                slot=execution["slot"],
                started_at=execution["started_at"],
                duration_ms=round((finished - running.started_at) * 1000),
            ),
        )
        return execution, int(finished * 1000)

    async def _execute(
        self, job: dict[str, Any], running: RunningExecution, on_output: OutputListener, on_started: Callable[[], None]
    ) -> dict[str, Any]:
        timeout = self._schedules.timeout_seconds(job)
        outcome = await self._host.execute(
            job.get("executor") or "",
            job["name"],
            {k: str(v) for k, v in (job.get("executor_config") or {}).items()},
            execution_id=running.execution_id,
            slot_unix_ms=running.slot_ms,
            attempt=running.attempt,
            on_output=on_output,
            timeout=timeout,
            on_started=on_started,
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
