"""A NATS connection for the executor: connect with a clear reason on failure, publish until the server has it.

nats-py reconnects in the background and buffers while it does, which would let a publish "succeed"
into a buffer while the server is down. Here reconnection is off instead: a dropped connection closes,
the connection cache opens a new one for the next execution, and every failure names the server and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import nats.errors
from nats.aio.client import Client

from horae_plugins.nats.config import redact

log = logging.getLogger("horae_plugins.nats")

# nats-py's flush needs a timeout; the executor's own deadline is what ends the wait.
FLUSH_FOREVER_SECONDS = 24 * 3600
# Server key: (servers, user name, password), as NatsConfig.connection_key.
ConnectionKey = tuple[tuple[str, ...], str, str]


class BrokerError(Exception):
    """The server is unreachable, refused us, or dropped the connection: the message says which and why."""


class ConnectionGone(BrokerError):
    """The connection closed before anything was sent: a fresh connection may safely try again."""


class NatsConnection:
    def __init__(self, client: Client, address: str) -> None:
        self.client = client
        self.address = address
        self.closed = asyncio.Event()
        self.close_reason = ""

    @property
    def is_open(self) -> bool:
        return self.client.is_connected and not self.closed.is_set()

    @property
    def server(self) -> str:
        """The server this connection reached, without credentials."""
        url = self.client.connected_url
        return redact(url.geturl()) if url is not None else self.address

    async def publish(self, subject: str, message: bytes) -> None:
        """Publish, then wait for the server's PONG: success means the server has read the message.

        Waits as long as the connection is open: the caller bounds the wait.
        """
        try:
            await self.client.publish(subject, message)
        except nats.errors.MaxPayloadError:
            raise BrokerError(
                f"the message is {len(message)} bytes, above the max_payload of {self.client.max_payload} bytes "
                f"that {self.server} accepts"
            ) from None
        except nats.errors.ConnectionClosedError:
            raise ConnectionGone(
                f"the connection to {self.server} was closed: {self.close_reason or 'closed'}"
            ) from None
        flush = asyncio.ensure_future(self.client.flush(timeout=FLUSH_FOREVER_SECONDS))
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({flush, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not flush.done():
                flush.cancel()
        if not flush.done() or flush.cancelled():
            # Closed before the PONG: the server may or may not have read the message.
            raise BrokerError(f"the connection to {self.server} was lost before it confirmed: {self.close_reason}")
        error = flush.exception()
        if error is not None:
            raise BrokerError(f"the connection to {self.server} failed: {describe(error)}")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()


async def open_connection(key: ConnectionKey, timeout: float) -> NatsConnection:
    """A connected NatsConnection, or BrokerError naming the servers and why none would take us."""
    servers, user, password = key
    address = ",".join(redact(server) for server in servers)
    attempts: list[BaseException] = []
    connection: NatsConnection | None = None

    async def on_error(error: Exception) -> None:
        if connection is None:
            attempts.append(error)  # while connecting: the reason to report
        else:
            connection.close_reason = describe(error)
            log.warning("nats connection to %s: %s", connection.server, describe(error))

    async def on_closed() -> None:
        if connection is not None:
            connection.close_reason = connection.close_reason or "closed"
            connection.closed.set()
            log.info("nats connection to %s closed: %s", connection.server, connection.close_reason)

    client = Client()
    try:
        await _connect(
            client,
            servers=list(servers),
            user=user or None,
            password=password or None,
            name="horae nats executor",
            connect_timeout=max(timeout, 0.001),
            # No background reconnection: a dropped connection closes and the next execution connects anew.
            allow_reconnect=False,
            # nats-py reads 0 as "forever": 1 tries each server twice, then gives up.
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            error_cb=on_error,
            closed_cb=on_closed,
        )
    except nats.errors.NoServersError:
        reason = describe(attempts[-1]) if attempts else "no server answered"
        raise BrokerError(f"cannot connect to {address}: {reason}") from None
    except (OSError, TimeoutError, nats.errors.Error) as error:
        if "Authorization Violation" in str(error):
            hint = "check userName and password" if user or password else "it requires userName and password"
            raise BrokerError(f"{address} refused the credentials (Authorization Violation): {hint}") from None
        raise BrokerError(f"cannot connect to {address}: {describe(error)}") from None
    connection = NatsConnection(client, address)
    log.info("nats connection to %s open", connection.server)
    return connection


async def _connect(client: Client, **options: object) -> None:
    """`client.connect`, closing the client when it fails or is cancelled (the deadline), so nothing lingers."""
    try:
        await client.connect(**options)  # type: ignore[arg-type]
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.shield(client.close())
        raise


def describe(error: BaseException) -> str:
    """A short reason for a connection error: `connection refused`, `no answer (timed out)`…"""
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror})"
    if isinstance(error, TimeoutError) and not isinstance(error, nats.errors.Error):
        return "no answer (timed out)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[0].lower() + error.strerror[1:]
    text = str(error).removeprefix("nats: ").strip("'") or type(error).__name__
    return text
