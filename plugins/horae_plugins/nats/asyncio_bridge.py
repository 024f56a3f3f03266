"""Run asyncio client code (nats-py, aio-pika) from the SDK's worker threads, on one long-lived loop.

`Executor.execute` runs in a gRPC worker thread, many at once; the broker clients are asyncio
libraries whose connections belong to one event loop. So every broker executor keeps one loop on a
thread of its own, shares its connections there, and each execution waits for its coroutine with a
the host's cancellation (the coroutine keeps its own deadline). Shared by the nats and rabbitmq executors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from horae_sdk import OutputStream

T = TypeVar("T")


class Cancelled(Exception):
    """The host cancelled the execution (job timeout, job stopped, agent shutdown)."""


class EventLoopThread:
    """One asyncio loop on a daemon thread, started on first use; `run` may be called from any thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                # A daemon: the plugin exits when the host stops it, whatever the loop still holds.
                threading.Thread(target=loop.run_forever, name=self._name, daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T], stream: OutputStream) -> T:
        """The coroutine's result, or what it raised; Cancelled when the host cancels the execution.

        A cancelled execution cancels the coroutine on the loop, so nothing of it outlives the call.
        """
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        stream.on_cancel(future.cancel)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise Cancelled() from None
