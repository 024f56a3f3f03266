"""Start a plugin program and complete the go-plugin handshake (PLUGIN_PROTOCOL.md §1, §6).

The child runs under `setpriv --pdeathsig KILL` in its own process group, so it dies with the
agent even on SIGKILL. Call `launch_plugin` from the event loop's thread: the parent-death
signal follows the thread that spawned the child, and the loop's thread lives as long as the agent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from horae.host.plugin_log import PluginLog, pump_stderr
from horae.host.plugin_process import PluginProcess, TlsMaterial, kill_group
from horae_sdk import handshake
from horae_sdk.spec import PluginSpec

log = logging.getLogger("horae.host.launcher")

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_PORT_RANGE = ("10000", "25000")
MAX_HANDSHAKE_BYTES = 64 * 1024
STREAM_LIMIT = 1024 * 1024
SETPRIV = shutil.which("setpriv") or ""


class PluginStartError(RuntimeError):
    """The plugin could not be started; the message names it and says what happened."""


def plugin_environment(
    spec: PluginSpec, versions: Iterable[int], socket_dir: str, client_cert_pem: bytes | None
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(spec.env)
    for key in handshake.COOKIES:
        env.pop(key, None)
    # Dkron's own executor binaries check Dkron's cookie; every other plugin gets horae's.
    if os.path.basename(spec.argv[0]).startswith("dkron-"):
        env[handshake.DKRON_COOKIE_KEY] = handshake.DKRON_COOKIE_VALUE
    else:
        env[handshake.HORAE_COOKIE_KEY] = handshake.HORAE_COOKIE_VALUE
    env[handshake.PROTOCOL_VERSIONS_KEY] = ",".join(str(v) for v in versions)
    env[handshake.UNIX_SOCKET_DIR_KEY] = socket_dir
    env.setdefault(handshake.MIN_PORT_KEY, DEFAULT_PORT_RANGE[0])
    env.setdefault(handshake.MAX_PORT_KEY, DEFAULT_PORT_RANGE[1])
    env.pop(handshake.CLIENT_CERT_KEY, None)
    if client_cert_pem:
        env[handshake.CLIENT_CERT_KEY] = client_cert_pem.decode()
    return env


def plugin_command(spec: PluginSpec) -> list[str]:
    if not SETPRIV:
        return list(spec.argv)
    return [SETPRIV, "--pdeathsig", "KILL", "--", *spec.argv]


async def spawn_plugin(spec: PluginSpec, env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start the plugin's program in its own session, stdin empty, stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        *plugin_command(spec),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
        limit=STREAM_LIMIT,
    )


async def launch_plugin(
    spec: PluginSpec,
    *,
    socket_dir: str,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    versions: Iterable[int] = (handshake.APP_PROTOCOL_VERSION,),
    mtls: bool = False,
) -> PluginProcess:
    """Start `spec`, read its handshake, connect and health-check it; PluginStartError otherwise."""
    versions = tuple(versions)
    label = f"{spec.kind} {spec.name!r}"
    tls = TlsMaterial.generate() if mtls else None
    env = plugin_environment(spec, versions, socket_dir, tls.own.cert_pem if tls else None)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + handshake_timeout
    try:
        process = await spawn_plugin(spec, env)
    except OSError as error:
        raise PluginStartError(f"{label}: cannot start {spec.argv[0]}: {error.strerror or error}") from error

    plugin_log = PluginLog(spec.kind, spec.name)
    stderr_task = asyncio.create_task(pump_stderr(process.stderr, plugin_log))
    try:
        line = await _read_handshake_line(process, label, plugin_log, stderr_task, handshake_timeout)
        try:
            shake = handshake.parse_handshake(line, versions)
        except handshake.HandshakeError as error:
            raise PluginStartError(f"{label}: bad handshake: {error}{_stderr_note(plugin_log)}") from None
        if tls is not None:
            if not shake.server_cert:
                raise PluginStartError(f"{label}: AutoMTLS was asked for but the plugin sent no certificate")
            tls = tls.with_server_cert(shake.server_cert)
        stdout_task = asyncio.create_task(_discard(process.stdout))
        plugin = PluginProcess(spec, process, shake, plugin_log, [stderr_task, stdout_task], socket_dir, tls)
    except BaseException:
        await _kill(process)
        stderr_task.cancel()
        raise
    try:
        await _wait_healthy(plugin, label, max(deadline - loop.time(), 1.0))
    except BaseException:
        await plugin.stop(grace=0)
        raise
    return plugin


async def _read_handshake_line(
    process: asyncio.subprocess.Process,
    label: str,
    plugin_log: PluginLog,
    stderr_task: asyncio.Task,
    timeout: float,
) -> str:
    received = bytearray()

    async def read_line() -> None:
        while b"\n" not in received and len(received) < MAX_HANDSHAKE_BYTES:
            chunk = await process.stdout.read(4096)
            if not chunk:
                return
            received.extend(chunk)

    try:
        await asyncio.wait_for(read_line(), timeout)
    except TimeoutError:
        printed = f"printed {_shown(received)} but no full line" if received else "printed nothing"
        raise PluginStartError(f"{label} {printed} within {timeout:g}s{_stderr_note(plugin_log)}") from None
    if b"\n" not in received:
        if len(received) >= MAX_HANDSHAKE_BYTES:
            raise PluginStartError(f"{label} printed {_shown(received)} without a line end; no handshake")
        code = await _exit_code(process)
        # Let the last stderr lines arrive: they usually say why it exited.
        await asyncio.wait([stderr_task], timeout=1.0)
        printed = f"after printing {_shown(received)}" if received else "without printing a handshake"
        raise PluginStartError(f"{label} exited with code {code} {printed}{_stderr_note(plugin_log)}")
    first_line = bytes(received).split(b"\n", 1)[0]
    return first_line.decode(errors="replace")


async def _wait_healthy(plugin: PluginProcess, label: str, timeout: float) -> None:
    stub = health_pb2_grpc.HealthStub(plugin.channel)
    try:
        response = await stub.Check(
            health_pb2.HealthCheckRequest(service="plugin"), timeout=timeout, wait_for_ready=True
        )
    except grpc.aio.AioRpcError as error:
        raise PluginStartError(
            f"{label}: health check failed: {error.code().name}: {error.details()}{_stderr_note(plugin.log)}"
        ) from None
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        raise PluginStartError(f"{label}: health check answered {status}, not SERVING")


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def _exit_code(process: asyncio.subprocess.Process) -> int | str:
    try:
        return await asyncio.wait_for(process.wait(), 2.0)
    except TimeoutError:
        return "?"


async def _kill(process: asyncio.subprocess.Process) -> None:
    kill_group(process.pid)
    try:
        await asyncio.wait_for(process.wait(), 5.0)
    except TimeoutError:
        log.error("plugin process %d did not die after SIGKILL", process.pid)


def _stderr_note(plugin_log: PluginLog) -> str:
    lines = plugin_log.tail()[-5:]
    return "; last stderr lines: " + " | ".join(lines) if lines else "; stderr was empty"


def _shown(data: bytes | bytearray, limit: int = 200) -> str:
    text = bytes(data[:limit]).decode(errors="replace")
    return repr(text + ("…" if len(data) > limit else ""))
