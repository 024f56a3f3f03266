"""The suites and the loop that runs them: one case at a time, each under a deadline.

A hung plugin fails the case it hangs rather than the run, and whatever a case started is
killed when it ends, whichever way it ends (RunContext.release_case). Order matters only for
speed: cases that share the plugin process run between those that start their own.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc

from horae.host.launcher import PluginStartError
from horae_conformance import executor_cases, handshake_cases, lifecycle_cases, processor_cases
from horae_conformance.context import RunContext
from horae_conformance.results import CaseFailed, CaseResult, CaseSkipped, Status
from horae_conformance.target import Target

log = logging.getLogger("horae_conformance")

CLEANUP_SECONDS = 10.0


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[RunContext], Awaitable[str | None]]
    # Seconds the case may take beyond the handshake timeout (every case may start a plugin).
    budget: float = 20.0


STARTUP_CASES = [
    Case("refuses to run without the magic cookie", handshake_cases.refuses_without_cookie),
    Case("handshake line is well-formed", handshake_cases.handshake_well_formed),
    Case("no stdout output before the handshake", handshake_cases.no_stdout_noise),
    Case("version negotiation: accepts 1", handshake_cases.accepts_version_1),
    Case("version negotiation: refuses versions it lacks", handshake_cases.refuses_unoffered_versions),
    Case("health check answers SERVING", lifecycle_cases.health_serving),
]
EXECUTOR_CASES = [
    Case("Execute returns the output", executor_cases.execute_returns_output),
    Case("live output arrives through the broker", executor_cases.live_output),
    Case("10 MiB of output neither crashes nor blocks", executor_cases.large_output, executor_cases.FLOOD_TIMEOUT + 20),
    Case("16 concurrent calls", executor_cases.concurrent_calls, executor_cases.CALL_TIMEOUT + 20),
    Case("a cancelled call ends, the plugin keeps serving", executor_cases.cancel_ends_promptly),
]
PROCESSOR_CASES = [
    Case("Process returns the execution", processor_cases.process_returns_execution),
    Case("16 concurrent Process calls", processor_cases.concurrent_process, processor_cases.CALL_TIMEOUT + 20),
]
ENDING_CASES = [
    Case("Shutdown exits within 2 s", lifecycle_cases.shutdown_exits),
    Case("exits when the host dies (launcher)", lifecycle_cases.exits_when_host_dies, 30.0),
    Case("exits by itself when its parent dies", lifecycle_cases.exits_when_parent_dies, 30.0),
]


def suite(kind: str, only: Sequence[str] = ()) -> list[Case]:
    """The cases for an executor or a processor, in the order they run; `only` keeps the cases
    whose name contains one of its strings (any case)."""
    middle = EXECUTOR_CASES if kind == "executor" else PROCESSOR_CASES
    cases = [*STARTUP_CASES, *middle, *ENDING_CASES]
    wanted = [text.lower() for text in only]
    return [case for case in cases if not wanted or any(text in case.name.lower() for text in wanted)]


async def run_suite(
    target: Target,
    *,
    handshake_timeout: float = 10.0,
    strict: bool = False,
    only: Sequence[str] = (),
) -> list[CaseResult]:
    """Run every case of the target's kind; every process started is gone when this returns."""
    # Short: unix socket paths are limited to 107 bytes.
    socket_dir = tempfile.mkdtemp(prefix="hc-")
    ctx = RunContext(target, socket_dir, handshake_timeout, strict)
    results = []
    try:
        for case in suite(target.spec.kind, only):
            results.append(await run_case(ctx, case))
    finally:
        await asyncio.wait_for(ctx.close(), CLEANUP_SECONDS)
        shutil.rmtree(socket_dir, ignore_errors=True)
    return results


async def run_case(ctx: RunContext, case: Case) -> CaseResult:
    deadline = ctx.handshake_timeout + case.budget
    started = time.monotonic()
    status, reason = Status.FAILED, ""
    try:
        async with asyncio.timeout(deadline) as timer:
            note = await case.run(ctx)
        status, reason = Status.PASSED, note or ""
    except CaseFailed as failure:
        reason = str(failure)
    except CaseSkipped as skip:
        status, reason = Status.SKIPPED, str(skip)
    except PluginStartError as error:
        reason = str(error)
    except TimeoutError:
        expired = timer.expired()
        reason = f"did not finish within {deadline:g}s: the plugin hangs" if expired else "a wait timed out"
    except grpc.aio.AioRpcError as error:
        reason = f"unexpected RPC failure: {error.code().name}: {error.details()}"
    except Exception as error:  # a surprise in one case must not stop the run nor leak its processes
        log.debug("case %r raised", case.name, exc_info=True)
        reason = f"the case raised {type(error).__name__}: {error}"
    finally:
        try:
            await asyncio.wait_for(ctx.release_case(), CLEANUP_SECONDS)
        except TimeoutError:
            log.error("stopping the processes of case %r took more than %gs", case.name, CLEANUP_SECONDS)
    if status == Status.FAILED:
        # Whatever state the failure left the shared plugin in, the next case starts afresh.
        await ctx.discard_shared()
    return CaseResult(case.name, status, " ".join(reason.split()), time.monotonic() - started)
