"""The nats executor: Dkron's `nats` executor as a horae plugin.

Publishes the job's `message` on its `subject` and succeeds once the server has read it (a PING/PONG
after the publish). Connections are kept per server list and credentials and shared by every
execution; each execution has the executor's `timeout` (default 30 s), cut short by the job's own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from horae_plugins.nats.asyncio_bridge import Cancelled, EventLoopThread
from horae_plugins.nats.config import CONFIG_SCHEMA, NatsConfig, parse_config
from horae_plugins.nats.connection import BrokerError, ConnectionGone, NatsConnection, open_connection
from horae_plugins.nats.connection_cache import ConnectionCache
from horae_sdk import ExecutionError, Executor, OutputStream

log = logging.getLogger("horae_plugins.nats")

CONFORMANCE_SERVER = "nats://127.0.0.1:4222"


class NatsExecutor(Executor):
    name = "nats"
    version = "1.0.0"
    config_schema: dict[str, Any] = CONFIG_SCHEMA
    # Needs a NATS server on 127.0.0.1:4222 (as in CI); horae-conformance's --echo-config overrides it.
    conformance = {
        "echo": {"url": CONFORMANCE_SERVER, "subject": "horae-conformance", "message": "horae-conformance"},
    }

    def __init__(self) -> None:
        self._loop = EventLoopThread("nats-client")
        self._connections: ConnectionCache[NatsConnection] = ConnectionCache(
            open_connection, lambda connection: connection.is_open, lambda connection: connection.close()
        )

    def execute(self, job_name: str, config: dict[str, str], stream: OutputStream) -> str:
        settings = parse_config(config)
        if settings.debug:
            shown = {key: ("***" if key == "password" and value else value) for key, value in config.items()}
            log.info("job %s: config %s", job_name, shown)
        step = Step(f"while connecting to {settings.address}")
        try:
            server = self._loop.run(self._publish(settings, step), stream)
        except TimeoutError:
            raise ExecutionError(f"nats: timed out after {settings.timeout:g}s {step.doing}", exit_code=1) from None
        except Cancelled:
            raise ExecutionError(f"nats: cancelled {step.doing}", exit_code=1) from None
        except BrokerError as error:
            raise ExecutionError(f"nats: {error}", exit_code=1) from None
        if settings.debug:
            size = len(settings.message)
            log.info("job %s: published %d bytes on %s to %s", job_name, size, settings.subject, server)
        # Dkron's line first, so output checks written for Dkron still match.
        return (
            "Result: Message successfully sent\n"
            f"subject {settings.subject}, {len(settings.message)} bytes, server {server}\n"
        )

    async def _publish(self, settings: NatsConfig, step: Step) -> str:
        """Publish on a shared connection within the timeout; the server that took the message."""
        deadline = asyncio.get_running_loop().time() + settings.timeout
        try:
            return await self._publish_once(settings, step, deadline)
        except ConnectionGone:
            # Dropped just now, before anything was sent: once more, on a new connection.
            return await self._publish_once(settings, step, deadline)

    async def _publish_once(self, settings: NatsConfig, step: Step, deadline: float) -> str:
        key = settings.connection_key
        step.doing = f"while connecting to {settings.address}"
        async with asyncio.timeout_at(deadline):
            connection = await self._connections.get(key, settings.timeout)
        step.doing = f"while waiting for {connection.server} to confirm the message"
        try:
            async with asyncio.timeout_at(deadline):
                await connection.publish(settings.subject, settings.message)
        except (ConnectionGone, TimeoutError):
            # Closed, or it stopped answering: the next attempt gets a new connection rather than this one.
            await self._connections.discard(key, connection)
            raise
        return connection.server


@dataclass
class Step:
    """What an execution is doing, for the message when it times out or is cancelled."""

    doing: str
