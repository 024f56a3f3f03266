"""Cases about a plugin's life: health, a graceful Shutdown, and not outliving its host.

"Exits when the host dies" is checked twice, with a stand-in host (host_helper.py) that is
SIGKILLed: once started through horae's launcher (setpriv --pdeathsig: the guarantee every plugin
gets, whatever its language), once started plainly, so only the plugin's own parent watch can
end it. The horae SDK watches its parent; plugins built on go-plugin do not (PLUGIN_PROTOCOL.md
§6) and rely on the launcher, so the plain variant only warns (reported as skipped) unless the
run is `--strict`, as horae's own plugins are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from horae.host.launcher import SETPRIV
from horae_conformance.context import RunContext
from horae_conformance.host_helper import spec_to_json
from horae_conformance.results import CaseFailed, CaseSkipped
from horae_sdk.proto.plugin import grpc_controller_pb2

SHUTDOWN_SECONDS = 2.0
HOST_DEATH_SECONDS = 5.0
SETTLE_SECONDS = 0.2
POLL_SECONDS = 0.02
# The stand-in host imports grpc and horae before it starts the plugin.
HELPER_START_SECONDS = 10.0


async def health_serving(ctx: RunContext) -> str:
    plugin = await ctx.shared_plugin()
    stub = health_pb2_grpc.HealthStub(plugin.channel)
    try:
        response = await stub.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5.0)
    except grpc.aio.AioRpcError as error:
        raise CaseFailed(f"grpc.health.v1.Health/Check failed: {error.code().name}: {error.details()}") from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        raise CaseFailed(f'Check(service="plugin") answered {status}')
    return f'Check(service="plugin") answered {status}'


async def shutdown_exits(ctx: RunContext) -> str:
    plugin = await ctx.launch()
    shutdown = plugin.channel.unary_unary(
        "/plugin.GRPCController/Shutdown",
        request_serializer=grpc_controller_pb2.Empty.SerializeToString,
        response_deserializer=grpc_controller_pb2.Empty.FromString,
    )
    started = time.monotonic()
    answer = "answered"
    try:
        await shutdown(grpc_controller_pb2.Empty(), timeout=SHUTDOWN_SECONDS)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise CaseFailed("does not serve plugin.GRPCController/Shutdown") from None
        # Go plugins often stop mid-call: UNAVAILABLE (or a cut connection) is success too.
        answer = f"answered {error.code().name}"
    remaining = max(SHUTDOWN_SECONDS - (time.monotonic() - started), 0.0)
    try:
        code = await asyncio.wait_for(plugin.wait(), remaining)
    except TimeoutError:
        raise CaseFailed(f"Shutdown {answer}, but the plugin still runs {SHUTDOWN_SECONDS:g}s later") from None
    return f"Shutdown {answer}; exited with code {code} after {time.monotonic() - started:.2f}s"


async def exits_when_host_dies(ctx: RunContext) -> str:
    return await _host_death(ctx, "launcher")


async def exits_when_parent_dies(ctx: RunContext) -> str:
    try:
        return await _host_death(ctx, "plain")
    except CaseFailed as failure:
        if ctx.strict or "still runs" not in str(failure):
            raise
        raise CaseSkipped(
            f"warning: {failure}; horae's launcher still ends it (setpriv --pdeathsig), but under a host "
            "without one it would be orphaned"
        ) from None


async def _host_death(ctx: RunContext, mode: str) -> str:
    helper_argv = [sys.executable, "-m", "horae_conformance.host_helper", mode, ctx.socket_dir]
    helper_argv += [str(ctx.handshake_timeout), spec_to_json(ctx.spec)]
    if SETPRIV:  # the stand-in host must not outlive the runner either
        helper_argv = [SETPRIV, "--pdeathsig", "KILL", "--", *helper_argv]
    # Its stderr goes to a file: a pipe nobody reads could fill up and stall it.
    with tempfile.TemporaryFile(dir=ctx.socket_dir) as errors:
        helper = await asyncio.create_subprocess_exec(
            *helper_argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
            start_new_session=True,
        )
        ctx.own_helper(helper)
        plugin: psutil.Process | None = None
        text = ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ctx.handshake_timeout + HELPER_START_SECONDS):
                while text != "ready" and not text.startswith("error"):
                    text = (await helper.stdout.readline()).decode(errors="replace").strip()
                    if not text:
                        break
                    if text.startswith("pid "):
                        with contextlib.suppress(psutil.Error, ValueError):
                            plugin = psutil.Process(int(text.split()[1]))
                            ctx.own_pid(plugin)  # killed when the case ends, whatever happens
        if text != "ready" or plugin is None:
            errors.seek(0)
            said = " | ".join(errors.read().decode(errors="replace").strip().splitlines()[-3:])
            raise CaseFailed(f"the stand-in host could not start the plugin: {text or said or 'no answer'}")
    # Let the plugin settle first: this checks a host dying while the plugin serves, not in the
    # instant after its handshake line.
    await asyncio.sleep(SETTLE_SECONDS)
    helper.kill()
    await helper.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < HOST_DEATH_SECONDS:
        if not _running(plugin):
            return f"gone {time.monotonic() - killed:.2f}s after its host was SIGKILLed"
        await asyncio.sleep(POLL_SECONDS)
    how = "through the launcher" if mode == "launcher" else "plainly, without setpriv"
    raise CaseFailed(f"started {how}, it still runs {HOST_DEATH_SECONDS:g}s after its host was SIGKILLed")


def _running(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False
