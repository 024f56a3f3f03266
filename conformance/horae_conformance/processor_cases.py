"""Cases that call a processor: Process returns the execution it was given, also 16 at once.

A processor may replace the output, so only the identity is checked: the returned execution
keeps the id and job name it was sent. The processor's config comes from `--process-config`
(or the spec, or Describe's `process` entry) and is empty otherwise.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid

import grpc

from horae.host.plugin_process import PluginProcess
from horae_conformance.context import RunContext
from horae_conformance.results import CaseFailed
from horae_sdk.proto.horae.plugin.v1 import processor_pb2

JOB_NAME = "horae-conformance"
CALL_TIMEOUT = 15.0
CONCURRENT_CALLS = 16


def execution(number: int = 1) -> processor_pb2.Execution:
    finished = datetime.datetime.now(datetime.UTC)
    message = processor_pb2.Execution(
        job_name=JOB_NAME,
        success=True,
        output=f"horae-conformance output {number}\n".encode(),
        node_name="horae-conformance",
        group=time.time_ns(),
        attempt=1,
        id=f"conformance-{uuid.uuid4().hex[:12]}",
        exit_code=0,
    )
    message.started_at.FromDatetime(finished - datetime.timedelta(seconds=1))
    message.finished_at.FromDatetime(finished)
    return message


async def _process(plugin: PluginProcess, config: dict[str, str], number: int = 1) -> str:
    """One Process call; returns the output it came back with, CaseFailed when it is not the same execution."""
    sent = execution(number)
    try:
        response = await plugin.process_execution(
            processor_pb2.ProcessRequest(execution=sent, config=config), timeout=CALL_TIMEOUT
        )
    except grpc.aio.AioRpcError as error:
        tail = " | ".join(plugin.log.tail()[-3:])
        raise CaseFailed(
            f"Process failed: {error.code().name}: {error.details()}" + (f"; stderr: {tail}" if tail else "")
        ) from None
    if not response.HasField("execution"):
        raise CaseFailed("Process answered without an execution")
    got = response.execution
    if (got.id, got.job_name) != (sent.id, sent.job_name):
        raise CaseFailed(
            f"Process returned execution {got.id!r} of job {got.job_name!r}; sent {sent.id!r} of job {sent.job_name!r}"
        )
    return got.output.decode(errors="replace")


async def process_returns_execution(ctx: RunContext) -> str:
    config = await ctx.config("process") or {}
    plugin = await ctx.shared_plugin()
    output = await _process(plugin, config)
    return f"same id and job name back; output {output.strip()[:60]!r}"


async def concurrent_process(ctx: RunContext) -> str:
    config = await ctx.config("process") or {}
    plugin = await ctx.shared_plugin()
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(_process(plugin, config, number) for number in range(CONCURRENT_CALLS)), return_exceptions=True
    )
    problems = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if problems:
        raise CaseFailed(f"{len(problems)} of {CONCURRENT_CALLS} concurrent calls failed; {problems[0]}")
    return f"{CONCURRENT_CALLS} calls in {time.monotonic() - started:.2f}s"
