"""The rabbitmq executor: Dkron's `rabbitmq` executor as a horae plugin.

Optionally declares the queue, publishes the job's message to the exchange with the queue name as
routing key, and succeeds once the broker has confirmed it (publisher confirms) and, unless
message.mandatory is "false", routed it to a queue. Connections are kept per URL and shared by every
execution; each execution has the executor's `timeout` (default 30 s), cut short by the job's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from horae_plugins.nats.asyncio_bridge import Cancelled, EventLoopThread
from horae_plugins.nats.connection_cache import ConnectionCache
from horae_plugins.rabbitmq.config import CONFIG_SCHEMA, RabbitConfig, parse_config
from horae_plugins.rabbitmq.connection import BrokerError, ConnectionGone, RabbitConnection, open_connection
from horae_sdk import ExecutionError, Executor, OutputStream

log = logging.getLogger("horae_plugins.rabbitmq")

CONFORMANCE_BROKER = "amqp://guest:guest@127.0.0.1:5672/"


class RabbitMQExecutor(Executor):
    name = "rabbitmq"
    version = "1.0.0"
    config_schema: dict[str, Any] = CONFIG_SCHEMA
    # Needs RabbitMQ on 127.0.0.1:5672 (as in CI); horae-conformance's --echo-config overrides it. The queue is
    # exclusive to the plugin's connection, so the broker deletes it, messages and all, when the plugin stops.
    conformance = {
        "echo": {
            "url": CONFORMANCE_BROKER,
            "queue.name": "horae-conformance",
            "queue.create": "true",
            "queue.exclusive": "true",
            "message.body": "horae-conformance",
        },
    }

    def __init__(self) -> None:
        self._loop = EventLoopThread("rabbitmq-client")
        self._connections: ConnectionCache[RabbitConnection] = ConnectionCache(
            open_connection, lambda connection: connection.is_open, lambda connection: connection.close()
        )

    def execute(self, job_name: str, config: dict[str, str], stream: OutputStream) -> str:
        settings = parse_config(config)
        step = Step(f"while connecting to {settings.address}")
        began = time.monotonic()
        try:
            self._loop.run(self._publish(settings, step), stream)
        except TimeoutError:
            raise ExecutionError(f"rabbitmq: timed out after {settings.timeout:g}s {step.doing}", exit_code=1) from None
        except Cancelled:
            raise ExecutionError(f"rabbitmq: cancelled {step.doing}", exit_code=1) from None
        except BrokerError as error:
            raise ExecutionError(f"rabbitmq: {error}", exit_code=1) from None
        where = f"exchange {settings.exchange!r}" if settings.exchange else "the default exchange"
        log.debug(
            "job %s: published %d bytes to %s, routing key %s, on %s in %.1f ms",
            job_name,
            len(settings.body),
            where,
            settings.routing_key,
            settings.address,
            (time.monotonic() - began) * 1000,
        )
        return (
            f"Result: message published to {where} with routing key {settings.routing_key}, "
            f"{len(settings.body)} bytes, confirmed by {settings.address}\n"
        )

    async def _publish(self, settings: RabbitConfig, step: Step) -> None:
        """Publish on a shared connection within the timeout."""
        deadline = asyncio.get_running_loop().time() + settings.timeout
        try:
            await self._publish_once(settings, step, deadline)
        except ConnectionGone:
            # Dropped by the broker just now, before anything was sent: once more, on a new connection.
            await self._publish_once(settings, step, deadline)

    async def _publish_once(self, settings: RabbitConfig, step: Step, deadline: float) -> None:
        step.doing = f"while connecting to {settings.address}"
        async with asyncio.timeout_at(deadline):
            connection = await self._connections.get(settings.url, settings.timeout)
        step.doing = f"while waiting for {settings.address} to confirm the message"
        try:
            async with asyncio.timeout_at(deadline):
                await connection.publish(settings)
        except (ConnectionGone, TimeoutError):
            # Closed, or it stopped answering (a resource alarm blocks publishers too): the next attempt connects anew.
            await self._connections.discard(settings.url, connection)
            raise


@dataclass
class Step:
    """What an execution is doing, for the message when it times out or is cancelled."""

    doing: str
