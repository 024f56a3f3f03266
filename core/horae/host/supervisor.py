"""Keep plugins running: start each once, reuse it, check its health, restart it with backoff.

`PluginHost` is what the agent (and `horae plugins list`) talks to: `execute()` and `process()`
by plugin name. A failed call never raises out of `execute()`: it becomes a failed outcome whose
message names the plugin and says what happened (PLUGIN_PROTOCOL.md §6).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc

from horae.host.broker import OutputCallback
from horae.host.launcher import DEFAULT_HANDSHAKE_TIMEOUT, PluginStartError, launch_plugin
from horae.host.plugin_process import PluginProcess, kill_group
from horae.logs import fields
from horae_sdk.handshake import APP_PROTOCOL_VERSION, MAX_MESSAGE_BYTES
from horae_sdk.proto.horae.plugin.v1 import info_pb2, processor_pb2
from horae_sdk.proto.types.v1 import executor_pb2
from horae_sdk.spec import PluginSpec

log = logging.getLogger("horae.host")

# Restart delays after consecutive failures; a process that stayed up this long resets them,
# and a stable process that dies is restarted at once.
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_UPTIME_SECONDS = 10.0
# A call waits for a restart that is due this soon instead of failing at once.
WAIT_FOR_RESTART_SECONDS = 2.0
HEALTH_INTERVAL_SECONDS = 10.0
HEALTH_TIMEOUT_SECONDS = 2.0
HEALTH_FAILURES_BEFORE_RESTART = 2
# A process that dies mid-call usually dies before the failed call returns; give it this long.
EXIT_GRACE_SECONDS = 1.0
HOST_FAILURE_EXIT_CODE = -1


class PluginState(enum.StrEnum):
    STARTING = "starting"
    HEALTHY = "healthy"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PluginStatus:
    kind: str
    name: str
    source: str
    state: str
    error: str
    pid: int | None
    restarts: int
    version: str


@dataclass(frozen=True)
class ExecutionOutcome:
    success: bool
    output: bytes
    error: str = ""
    exit_code: int = 0
    cpu_seconds: float = 0.0
    max_rss_bytes: int = 0


class PluginUnavailable(RuntimeError):
    """No such plugin, or it is not running; the message says which and why."""


class PluginCallError(RuntimeError):
    """A call to a processor failed; the message names the plugin and says what happened."""


@dataclass(frozen=True)
class HostOptions:
    socket_dir: str
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    health_interval: float = HEALTH_INTERVAL_SECONDS
    versions: tuple[int, ...] = (APP_PROTOCOL_VERSION,)
    mtls: bool = False
    # False for one-shot users such as `horae plugins list`: a failed start stays failed.
    restart: bool = True


class SupervisedPlugin:
    def __init__(self, spec: PluginSpec, options: HostOptions) -> None:
        self.spec = spec
        self.label = f"{spec.kind} {spec.name!r}"
        self.state = PluginState.STOPPED
        self.error = ""
        self.restarts = 0
        self.description: info_pb2.Description | None = None
        self.process: PluginProcess | None = None
        self._options = options
        self._failures = 0
        self._started_at = 0.0
        self._kill_reason = ""
        self._stopping = False
        self._start_task: asyncio.Task | None = None
        self._restart_due = 0.0
        self._tasks: set[asyncio.Task] = set()

    def status(self) -> PluginStatus:
        alive = self.process is not None and self.process.returncode is None
        return PluginStatus(
            kind=self.spec.kind,
            name=self.spec.name,
            source=self.spec.source,
            state=self.state.value,
            error=self.error,
            pid=self.process.pid if alive and self.process else None,
            restarts=self.restarts,
            version=self.description.version if self.description else "",
        )

    async def start(self) -> None:
        """Start the plugin and wait for the outcome (state tells it)."""
        self._stopping = False
        self._start_task = self._spawn(self._start())
        await asyncio.shield(self._start_task)
        self._spawn(self._health_loop())

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _start(self) -> None:
        if self.state != PluginState.FAILED:  # a restart keeps showing why it is needed
            self.state = PluginState.STARTING
        try:
            process = await launch_plugin(
                self.spec,
                socket_dir=self._options.socket_dir,
                handshake_timeout=self._options.handshake_timeout,
                versions=self._options.versions,
                mtls=self._options.mtls,
            )
        except PluginStartError as error:
            self._failed(str(error))
            return
        if self._stopping:
            await process.stop()
            return
        self.process, self.state, self.error = process, PluginState.HEALTHY, ""
        self._started_at = time.monotonic()
        log.info("plugin started", extra=fields(plugin=f"{self.spec.kind}/{self.spec.name}", pid=process.pid))
        self._spawn(self._watch(process))
        with contextlib.suppress(grpc.aio.AioRpcError):
            self.description = await process.describe()

    def _failed(self, reason: str, immediate: bool = False) -> None:
        self.state, self.error = PluginState.FAILED, reason
        delay = 0.0 if immediate else RESTART_DELAYS[min(self._failures, len(RESTART_DELAYS) - 1)]
        if not immediate:
            self._failures += 1
        self._restart_due = time.monotonic() + delay
        plugin = f"{self.spec.kind}/{self.spec.name}"
        if self._stopping or not self._options.restart:
            log.error(reason, extra=fields(plugin=plugin))
            return
        log.error(reason, extra=fields(plugin=plugin, restart_in=f"{delay:g}s"))
        self._start_task = self._spawn(self._restart_after(delay))

    async def _restart_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._stopping:
            self.restarts += 1
            await self._start()

    async def _watch(self, process: PluginProcess) -> None:
        code = await process.wait()
        if self._stopping or process is not self.process:
            return
        stable = time.monotonic() - self._started_at >= STABLE_UPTIME_SECONDS
        if stable:
            self._failures = 0
        reason = self._kill_reason or f"exited with code {code}"
        self._kill_reason = ""
        await asyncio.sleep(0.05)  # let its last stderr lines arrive
        tail = process.log.tail()[-5:]
        message = f"{self.label} {reason}" + ("; last stderr lines: " + " | ".join(tail) if tail else "")
        # Only now: until the restart is scheduled, get() must see a dead process and wait, not give up.
        self.process = None
        self._failed(message, immediate=stable)
        await process.stop(grace=0)

    async def _health_loop(self) -> None:
        failures = 0
        while not self._stopping:
            await asyncio.sleep(self._options.health_interval)
            process = self.process
            if process is None or process.returncode is not None:
                failures = 0
                continue
            if await process.health(HEALTH_TIMEOUT_SECONDS):
                failures = 0
                continue
            failures += 1
            if failures >= HEALTH_FAILURES_BEFORE_RESTART:
                failures = 0
                self.kill(f"stopped answering health checks ({HEALTH_FAILURES_BEFORE_RESTART} in a row)")

    def kill(self, reason: str) -> None:
        """Kill the running process; the watcher records `reason` and restarts it."""
        if self.process is not None and self.process.returncode is None:
            self._kill_reason = reason
            kill_group(self.process.pid)

    async def get(self) -> PluginProcess:
        """The running process, waiting for a start that is under way or due soon."""
        deadline = time.monotonic() + self._options.handshake_timeout + WAIT_FOR_RESTART_SECONDS
        while True:
            process = self.process
            if process is not None and process.returncode is None:
                return process
            start = self._start_task
            soon = self._restart_due - time.monotonic() <= WAIT_FOR_RESTART_SECONDS
            if self._stopping or start is None or start.done() or not soon or time.monotonic() > deadline:
                if process is not None and process.returncode is not None:
                    await asyncio.sleep(0.05)  # its watcher has not run yet
                    if time.monotonic() <= deadline:
                        continue
                raise PluginUnavailable(f"{self.label} is not running: {self.error or self.state.value}")
            await asyncio.shield(start)

    async def stop(self) -> None:
        self._stopping = True
        self.state = PluginState.STOPPED
        cancelled = [task for task in list(self._tasks) if task is not asyncio.current_task()]
        for task in cancelled:
            task.cancel()
        # Let them finish their cleanup (a half-started broker server closes itself) while the loop runs.
        if cancelled:
            await asyncio.wait(cancelled, timeout=2.0)
        if self.process is not None:
            await self.process.stop()
            self.process = None


class PluginHost:
    def __init__(
        self,
        specs: Iterable[PluginSpec],
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        health_interval: float = HEALTH_INTERVAL_SECONDS,
        versions: Iterable[int] = (APP_PROTOCOL_VERSION,),
        mtls: bool = False,
        restart: bool = True,
    ) -> None:
        # Unix socket paths are limited to 107 bytes: keep the directory short.
        self._socket_dir = tempfile.mkdtemp(prefix="horae-", dir="/tmp")
        options = HostOptions(self._socket_dir, handshake_timeout, health_interval, tuple(versions), mtls, restart)
        self._plugins = {(spec.kind, spec.name): SupervisedPlugin(spec, options) for spec in specs}

    async def __aenter__(self) -> PluginHost:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every plugin; returns once each is healthy or has failed its first start."""
        await asyncio.gather(*(plugin.start() for plugin in self._plugins.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(plugin.stop() for plugin in self._plugins.values()))
        shutil.rmtree(self._socket_dir, ignore_errors=True)

    def statuses(self) -> list[PluginStatus]:
        return [plugin.status() for plugin in self._plugins.values()]

    def config_schemas(self) -> dict[str, str]:
        """`kind:name` of every plugin -> the JSON Schema of its config keys its Describe served ("" for none).

        Known once `start()` returned; a plugin whose first start failed counts as serving none.
        """
        return {
            f"{kind}:{name}": plugin.description.config_schema_json if plugin.description else ""
            for (kind, name), plugin in self._plugins.items()
        }

    def plugin(self, kind: str, name: str) -> SupervisedPlugin:
        try:
            return self._plugins[(kind, name)]
        except KeyError:
            known = sorted(n for k, n in self._plugins if k == kind)
            raise PluginUnavailable(
                f"no {kind} plugin named {name!r} (this agent has: {', '.join(known) or 'none'})"
            ) from None

    async def execute(
        self,
        name: str,
        job_name: str,
        config: dict[str, str],
        *,
        execution_id: str = "",
        slot_unix_ms: int = 0,
        attempt: int = 0,
        on_output: OutputCallback | None = None,
        timeout: float | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> ExecutionOutcome:
        """Run one execution on executor `name`. Cancelling the awaiting task cancels the call.

        `on_started()` is called when the Execute call goes out to the plugin.
        """
        try:
            plugin = self.plugin("executor", name)
            process = await plugin.get()
        except PluginUnavailable as error:
            return ExecutionOutcome(False, b"", str(error), HOST_FAILURE_EXIT_CODE)
        request = executor_pb2.ExecuteRequest(
            job_name=job_name,
            config=config,
            execution_id=execution_id,
            slot_unix_ms=slot_unix_ms,
            attempt=attempt,
        )
        try:
            response = await process.execute(request, on_output, timeout, on_started)
        except grpc.aio.AioRpcError as error:
            return ExecutionOutcome(
                False, b"", await self._explain(plugin, process, error, timeout), HOST_FAILURE_EXIT_CODE
            )
        return ExecutionOutcome(
            success=not response.error,
            output=response.output,
            error=response.error,
            exit_code=response.exit_code,
            cpu_seconds=response.cpu_seconds,
            max_rss_bytes=response.max_rss_bytes,
        )

    async def process(
        self,
        name: str,
        execution: processor_pb2.Execution,
        config: dict[str, str],
        timeout: float | None = 60.0,
    ) -> processor_pb2.Execution:
        """Run processor `name` on an execution; PluginUnavailable or PluginCallError when it fails."""
        plugin = self.plugin("processor", name)
        process = await plugin.get()
        request = processor_pb2.ProcessRequest(execution=execution, config=config)
        try:
            response = await process.process_execution(request, timeout)
        except grpc.aio.AioRpcError as error:
            raise PluginCallError(await self._explain(plugin, process, error, timeout)) from None
        return response.execution

    async def _explain(
        self,
        plugin: SupervisedPlugin,
        process: PluginProcess,
        error: grpc.aio.AioRpcError,
        timeout: float | None,
    ) -> str:
        code = error.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            if not await process.health(HEALTH_TIMEOUT_SECONDS):
                plugin.kill(f"hung: no answer within {timeout:g}s and no answer to a health check")
                # Reap it before answering, so that the next call waits for a fresh process instead of this one.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), EXIT_GRACE_SECONDS)
                return f"{plugin.label} hung: no answer within {timeout:g}s and none to a health check; restarting it"
            return f"{plugin.label}: the execution timed out after {timeout:g}s and was cancelled"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), EXIT_GRACE_SECONDS if code == grpc.StatusCode.UNAVAILABLE else 0.01)
        if process.returncode is not None:
            await asyncio.sleep(0.05)  # let the last stderr lines in
            tail = process.log.tail()[-5:]
            return f"{plugin.label} exited with code {process.returncode} during the call" + (
                "; last stderr lines: " + " | ".join(tail) if tail else "; its stderr was empty"
            )
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return (
                f"{plugin.label} sent a message larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MiB"
                f" ({error.details()}); its output must be capped (see output limits)"
            )
        return f"{plugin.label}: call failed: {code.name}: {error.details()}"
