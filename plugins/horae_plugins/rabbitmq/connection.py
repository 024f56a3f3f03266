"""A RabbitMQ connection for the executor: connect with a clear reason, publish with publisher confirms.

One AMQP connection per URL (the URL carries the credentials and virtual host), shared by every
execution. Each publish borrows a channel of its own from a small pool: a channel error (an unknown
exchange, a queue declared with other flags) closes only that channel, never a neighbour's publish.
No background reconnection (aio-pika's robust connection would hold publishes while it retries): a
dropped connection is closed, and the connection cache opens a new one for the next execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import urllib.parse

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection

from horae_plugins.rabbitmq.config import RabbitConfig, redact

log = logging.getLogger("horae_plugins.rabbitmq")

# Idle channels kept per connection; more may be open at once while executions overlap.
IDLE_CHANNELS = 16


class BrokerError(Exception):
    """The broker is unreachable, refused us, or refused the message: the message says which and why."""


class ConnectionGone(BrokerError):
    """The connection closed before anything was sent: a fresh connection may safely try again."""


class RabbitConnection:
    def __init__(self, connection: AbstractConnection, address: str) -> None:
        self.connection = connection
        self.address = address
        self._idle: list[AbstractChannel] = []
        self._closing: set[asyncio.Task] = set()

    @property
    def is_open(self) -> bool:
        # aio-pika sets is_closed only when we close it; `connected` is cleared when the broker drops it too.
        return self.connection.connected.is_set() and not self.connection.is_closed

    async def publish(self, settings: RabbitConfig) -> None:
        """Declare the queue when asked, publish, and return once the broker confirmed (ack) the message."""
        channel = await self._borrow()
        done = False
        try:
            if settings.queue is not None:
                await channel.declare_queue(
                    settings.routing_key,
                    durable=settings.queue.durable,
                    auto_delete=settings.queue.auto_delete,
                    exclusive=settings.queue.exclusive,
                )
            exchange = (
                channel.default_exchange
                if not settings.exchange
                else await channel.get_exchange(settings.exchange, ensure=False)
            )
            message = aio_pika.Message(
                settings.body,
                content_type=settings.content_type,
                delivery_mode=settings.delivery_mode,
                message_id=settings.message_id,
            )
            await exchange.publish(message, routing_key=settings.routing_key, mandatory=settings.mandatory)
            done = True
        except aiormq.exceptions.PublishError as error:
            done = True  # a returned message leaves the channel usable
            raise BrokerError(returned(error, settings)) from None
        except aiormq.exceptions.DeliveryError:
            done = True
            raise BrokerError(f"{self.address} refused the message (nack): it could not take it") from None
        except aiormq.exceptions.ChannelClosed as error:
            raise BrokerError(f"{self.address} refused the request: {broker_text(error)}") from None
        except (aiormq.exceptions.AMQPConnectionError, ConnectionError) as error:
            raise BrokerError(f"the connection to {self.address} was lost: {describe(error)}") from None
        finally:
            if done:
                self._give_back(channel)
            else:
                # Failed or cancelled mid-way: its state is unknown, so it is not reused.
                self._close_later(channel)

    async def close(self) -> None:
        await close_quietly(self.connection)

    async def _borrow(self) -> AbstractChannel:
        while self._idle:
            channel = self._idle.pop()
            if not channel.is_closed:
                return channel
        try:
            # Confirms: a publish returns once the broker has taken the message; returns raise PublishError.
            return await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as error:
            message = f"cannot open a channel on {self.address}: {describe(error)}"
            raise (BrokerError if self.is_open else ConnectionGone)(message) from None

    def _give_back(self, channel: AbstractChannel) -> None:
        if channel.is_closed:
            return
        if len(self._idle) < IDLE_CHANNELS:
            self._idle.append(channel)
        else:
            self._close_later(channel)

    def _close_later(self, channel: AbstractChannel) -> None:
        task = asyncio.ensure_future(close_quietly(channel))
        self._closing.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._closing.discard)


async def open_connection(url: str, timeout: float) -> RabbitConnection:
    """A connected RabbitConnection, or BrokerError naming the broker and why it would not take us."""
    address = redact(url)
    connection = aio_pika.Connection(
        url, client_properties={"connection_name": f"horae rabbitmq executor (pid {os.getpid()})"}
    )
    try:
        try:
            await connection.connect(timeout=timeout)
        except BaseException:
            # Failed or cancelled (the deadline) half-way: nothing of it may linger.
            await asyncio.shield(close_quietly(connection))
            raise
    except aiormq.exceptions.ProbableAuthenticationError as error:
        raise BrokerError(f"{address} refused the credentials: {broker_text(error)}") from None
    except aiormq.exceptions.InvalidFrameError as error:
        if "Connection.Close" in str(error):
            vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:]) or "/"
            raise BrokerError(
                f"{address} closed the connection while opening virtual host {vhost!r}: "
                "check that it exists and that the user may use it"
            ) from None
        raise BrokerError(f"cannot connect to {address}: {describe(error)}") from None
    except (aiormq.exceptions.AMQPError, OSError, TimeoutError) as error:
        raise BrokerError(f"cannot connect to {address}: {describe(error)}") from None
    wrapped = RabbitConnection(connection, address)
    connection.close_callbacks.add(lambda _, reason: log.info("rabbitmq connection to %s closed: %s", address, reason))
    log.info("rabbitmq connection to %s open", address)
    return wrapped


def returned(error: aiormq.exceptions.PublishError, settings: RabbitConfig) -> str:
    """The message for a message the broker returned because no queue took it (mandatory)."""
    frame = getattr(error, "frame", None)
    code = f"{frame.reply_code} {frame.reply_text}" if frame is not None else "unroutable"
    where = f"exchange {settings.exchange!r}" if settings.exchange else "the default exchange"
    return (
        f"the broker returned the message ({code}): no queue is bound to {where} with routing key "
        f'{settings.routing_key!r}; create the queue (queue.create: "true") or set message.mandatory: "false" '
        "to let the broker drop it"
    )


def broker_text(error: BaseException) -> str:
    """The broker's own words (`NOT_FOUND - no exchange 'x' in vhost '/'`) from an aiormq exception."""
    for argument in error.args:
        text = getattr(argument, "reply_text", None) or (argument if isinstance(argument, str) else None)
        if text:
            return str(text)
    return describe(error)


def describe(error: BaseException) -> str:
    """A short reason for a connection error: `connection refused`, `no answer (timed out)`…"""
    if isinstance(error, aiormq.exceptions.AMQPConnectionError) and error.args:
        first = error.args[0]
        if isinstance(first, int) and len(error.args) == 2:
            if first >= 300:  # an AMQP reply code (320 CONNECTION_FORCED…): the broker's own words
                return str(error.args[1])
            error = OSError(first, error.args[1])  # aiormq keeps the socket error as (errno, text)
        elif isinstance(first, BaseException):
            error = first
    if isinstance(error, ConnectionRefusedError) or (isinstance(error, OSError) and error.errno == errno.ECONNREFUSED):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror})"
    if isinstance(error, TimeoutError):
        return "no answer (timed out)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[0].lower() + error.strerror[1:]
    return str(error) or type(error).__name__


async def close_quietly(closable: AbstractChannel | AbstractConnection) -> None:
    with contextlib.suppress(Exception):
        await closable.close()
