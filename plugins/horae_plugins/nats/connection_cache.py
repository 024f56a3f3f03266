"""One broker connection per distinct address and credentials, shared by concurrent executions.

Lives on the executor's event loop (asyncio_bridge.py), so it needs no locks: concurrent executions
asking for the same key while it connects all wait for that one attempt, and a connection the broker
has dropped is replaced by a fresh one on the next request. Shared by the nats and rabbitmq executors.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Connection = TypeVar("Connection")


class ConnectionCache(Generic[Connection]):
    def __init__(
        self,
        connect: Callable[[Hashable, float], Awaitable[Connection]],
        is_open: Callable[[Connection], bool],
        close: Callable[[Connection], Awaitable[object]],
    ) -> None:
        self._connect = connect
        self._is_open = is_open
        self._close = close
        self._connections: dict[Hashable, Connection] = {}
        self._connecting: dict[Hashable, asyncio.Task[Connection]] = {}
        self._closing: set[asyncio.Task] = set()

    async def get(self, key: Hashable, timeout: float) -> Connection:
        """The open connection for `key`, connecting when there is none; raises what connecting raised.

        A new connection attempt gives up after `timeout` seconds (the first requester's budget).
        """
        connection = self._connections.get(key)
        if connection is not None and self._is_open(connection):
            return connection
        if connection is not None:
            # Dropped by the broker: release what the client still holds, without making this caller wait.
            del self._connections[key]
            closing = asyncio.get_running_loop().create_task(self._close_quietly(connection))
            self._closing.add(closing)  # held until done: the loop keeps only weak references to tasks
            closing.add_done_callback(self._closing.discard)
        task = self._connecting.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(key, timeout))
            # Seen here even when every waiter has given up, so its failure is never reported as unretrieved.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._connecting[key] = task
        # Shielded: one waiter's deadline or cancellation must not abort the attempt the others wait for.
        return await asyncio.shield(task)

    async def discard(self, key: Hashable, connection: Connection) -> None:
        """Close `connection` and forget it (it stopped answering); the next `get` connects afresh."""
        if self._connections.get(key) is connection:
            del self._connections[key]
        await self._close_quietly(connection)

    async def _open(self, key: Hashable, timeout: float) -> Connection:
        try:
            connection = await asyncio.wait_for(self._connect(key, timeout), timeout)
        finally:
            del self._connecting[key]
        self._connections[key] = connection
        return connection

    async def _close_quietly(self, connection: Connection) -> None:
        with contextlib.suppress(Exception):
            await self._close(connection)
