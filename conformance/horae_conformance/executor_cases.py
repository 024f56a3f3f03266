"""Cases that call an executor: output, live output, 10 MiB of output, concurrency, cancellation.

They use the job configs only the plugin's author knows (see target.py): `echo` prints
`horae-conformance`, `sleep` runs at least 10 s unless cancelled, `flood` writes at least 10 MiB.
A case whose config is missing is skipped. Calls go through PluginProcess.execute, exactly as
the agent makes them, with live output through the go-plugin broker when a callback is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import grpc
import psutil

from horae.host.plugin_process import PluginProcess
from horae_conformance.context import RunContext
from horae_conformance.results import CaseFailed
from horae_sdk.proto.types.v1 import executor_pb2

MARKER = b"horae-conformance"
JOB_NAME = "horae-conformance"
CALL_TIMEOUT = 15.0
FLOOD_BYTES = 10 * 1024 * 1024
FLOOD_TIMEOUT = 60.0
CONCURRENT_CALLS = 16
# The sleep job runs this long before it is cancelled; then it has this long to be gone.
CANCEL_AFTER = 1.0
CANCEL_SECONDS = 2.0
MIB = 1024 * 1024


class LiveOutput:
    """The on_output callback: counts what arrives through the broker, keeps the first bytes."""

    KEEP_BYTES = 64 * 1024

    def __init__(self) -> None:
        self.updates = 0
        self.bytes = 0
        self.head = bytearray()
        self.first_update_at: float | None = None

    def __call__(self, chunk: bytes, is_stderr: bool) -> None:
        if self.first_update_at is None:
            self.first_update_at = time.monotonic()
        self.updates += 1
        self.bytes += len(chunk)
        if len(self.head) < self.KEEP_BYTES:
            self.head += chunk[: self.KEEP_BYTES - len(self.head)]


def request(config: dict[str, str]) -> executor_pb2.ExecuteRequest:
    return executor_pb2.ExecuteRequest(
        job_name=JOB_NAME,
        config=config,
        execution_id=f"conformance-{uuid.uuid4().hex[:12]}",
        slot_unix_ms=int(time.time() * 1000),
        attempt=1,
    )


def shown(data: bytes, limit: int = 80) -> str:
    return repr(data[:limit].decode(errors="replace") + ("…" if len(data) > limit else ""))


async def call(
    plugin: PluginProcess,
    config: dict[str, str],
    live: LiveOutput | None = None,
    timeout: float = CALL_TIMEOUT,
    what: str = "Execute",
) -> executor_pb2.ExecuteResponse:
    """One Execute call; CaseFailed (with the plugin's last stderr lines) when the RPC fails."""
    try:
        return await plugin.execute(request(config), live, timeout=timeout)
    except grpc.aio.AioRpcError as error:
        died = f"; the plugin exited with code {plugin.returncode}" if plugin.returncode is not None else ""
        tail = " | ".join(plugin.log.tail()[-3:])
        raise CaseFailed(
            f"{what} failed: {error.code().name}: {error.details()}{died}" + (f"; stderr: {tail}" if tail else "")
        ) from None


def check_echo(response: executor_pb2.ExecuteResponse, what: str = "the echo call") -> None:
    if response.error:
        raise CaseFailed(f"{what} failed: {response.error!r} (output {shown(response.output)})")
    if MARKER not in response.output:
        raise CaseFailed(f"{what} returned {shown(response.output)}, which does not contain {MARKER.decode()!r}")


async def execute_returns_output(ctx: RunContext) -> str:
    echo = await ctx.require_config("echo")
    plugin = await ctx.shared_plugin()
    # No callback: status_server stays 0, as from a host that does not want live output.
    response = await call(plugin, echo)
    check_echo(response)
    return f"output {shown(response.output.strip())}, exit code {response.exit_code}"


async def live_output(ctx: RunContext) -> str:
    """Output arrives while the call runs. A short output may come in the response alone (§3)."""
    flood = await ctx.require_config("flood")
    plugin = await ctx.shared_plugin()
    live = LiveOutput()
    response = await call(plugin, flood, live, timeout=FLOOD_TIMEOUT, what="the flood call")
    returned_at = time.monotonic()
    if response.error:
        raise CaseFailed(f"the flood call failed: {response.error!r}")
    if not live.updates or live.first_update_at is None:
        raise CaseFailed("no StatusHelper Update arrived through the broker (status_server was set)")
    if live.first_update_at >= returned_at:
        raise CaseFailed("Updates arrived only after the call returned: that is not a live view")
    early = returned_at - live.first_update_at
    return f"{live.updates} Update call(s), {live.bytes} bytes, the first {early:.2f}s before the response"


async def large_output(ctx: RunContext) -> str:
    flood = await ctx.require_config("flood")
    plugin = await ctx.shared_plugin()
    live = LiveOutput()
    started = time.monotonic()
    response = await call(plugin, flood, live, timeout=FLOOD_TIMEOUT, what="the flood call")
    seconds = time.monotonic() - started
    if plugin.returncode is not None:
        raise CaseFailed(f"the plugin exited with code {plugin.returncode} after the flood call")
    if not await plugin.health():
        raise CaseFailed("the plugin is no longer healthy after the flood call")
    if response.error:
        raise CaseFailed(f"the flood call failed: {response.error!r}")
    if live.bytes < FLOOD_BYTES:
        raise CaseFailed(
            f"only {live.bytes / MIB:.1f} MiB arrived through the broker in {live.updates} Update(s); "
            f"the flood config must write at least {FLOOD_BYTES // MIB} MiB"
        )
    return (
        f"{live.bytes / MIB:.1f} MiB in {live.updates} Updates in {seconds:.1f}s; "
        f"the response carried {len(response.output) // 1024} KiB"
    )


async def concurrent_calls(ctx: RunContext) -> str:
    echo = await ctx.require_config("echo")
    plugin = await ctx.shared_plugin()
    started = time.monotonic()
    calls = [call(plugin, echo, LiveOutput()) for _ in range(CONCURRENT_CALLS)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    problems = []
    for number, outcome in enumerate(outcomes, 1):
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            check_echo(outcome, f"call {number}")
        except CaseFailed as failure:
            problems.append(str(failure))
    if problems:
        raise CaseFailed(f"{len(problems)} of {CONCURRENT_CALLS} concurrent calls failed; {problems[0]}")
    return f"{CONCURRENT_CALLS} calls in {time.monotonic() - started:.2f}s"


async def cancel_ends_promptly(ctx: RunContext) -> str:
    sleep = await ctx.require_config("sleep")
    echo = await ctx.config("echo")
    plugin = await ctx.shared_plugin()
    before = _descendants(plugin.pid)
    task = asyncio.create_task(plugin.execute(request(sleep), LiveOutput()))
    await asyncio.wait([task], timeout=CANCEL_AFTER)
    if task.done():
        outcome = _describe_outcome(task)
        raise CaseFailed(f"the sleep call ended after {CANCEL_AFTER:g}s ({outcome}); it must run at least 10 s")
    job_processes = [p for key, p in _descendants(plugin.pid).items() if key not in before]
    task.cancel()
    cancelled = time.monotonic()
    await asyncio.wait([task], timeout=CANCEL_SECONDS)
    if not task.done():
        raise CaseFailed(f"the cancelled call did not end within {CANCEL_SECONDS:g}s")
    while any(_running(p) for p in job_processes) and time.monotonic() - cancelled < CANCEL_SECONDS:
        await asyncio.sleep(0.02)
    left = [p for p in job_processes if _running(p)]
    for process in left:
        ctx.own_pid(process)  # killed when the case ends
    if left:
        names = ", ".join(f"pid {p.pid} ({_cmdline(p)})" for p in left[:3])
        raise CaseFailed(
            f"{len(left)} process(es) the job started still run {CANCEL_SECONDS:g}s after the cancel: {names}"
        )
    if plugin.returncode is not None:
        raise CaseFailed(f"the plugin exited with code {plugin.returncode} when the call was cancelled")
    if echo is not None:
        check_echo(await call(plugin, echo, what="the echo call after the cancel"), "the echo call after the cancel")
        serving = "then served an echo call"
    elif await plugin.health():
        serving = "is still healthy (no echo config to call it with)"
    else:
        raise CaseFailed("the plugin is not healthy after the cancel")
    gone = f"its {len(job_processes)} job process(es) gone; " if job_processes else ""
    return f"cancelled after {CANCEL_AFTER:g}s; {gone}the plugin {serving}"


def _descendants(pid: int) -> dict[tuple[int, float], psutil.Process]:
    """The plugin's descendant processes, keyed by (pid, start time) so a reused pid is a new one."""
    found = {}
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                found[(child.pid, child.create_time())] = child
    return found


def _running(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False


def _cmdline(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())[:60] or process.name()
    return "?"


def _describe_outcome(task: asyncio.Task) -> str:
    error = task.exception()
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    if error is not None:
        return repr(error)
    response = task.result()
    return f"error {response.error!r}" if response.error else f"output {shown(response.output)}"
