"""Blocking sockets for the connection pool that another thread can interrupt, under an overall deadline.

An execution runs in its own worker thread, blocking on its socket like Go's client does, which
costs no hand-off between threads. To cancel it promptly (the host cancelled the call), its
`Abort` shuts down whichever pooled socket the thread is blocked on: connect, send and receive
return at once, and the connection is dropped. The same `Abort` carries the execution's deadline
(the `timeout` key, covering the whole exchange as Go's Client.Timeout does): every blocking call
waits at most until then. The pool's network backend finds the thread's `Abort` in a thread-local.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore

_active = threading.local()


class Abort:
    """One execution's stop switch: `cancel()` from any thread interrupts its blocking socket calls."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline  # time.monotonic(), or None for no limit
        self.cancelled = False
        self._lock = threading.Lock()
        self._blocked_on: set[socket.socket] = set()

    def cancel(self) -> None:
        with self._lock:  # held while shutting down: a socket released after a call is never touched
            self.cancelled = True
            for sock in self._blocked_on:
                with contextlib.suppress(OSError):
                    # socket.socket's own shutdown, also for an SSLSocket: only the file descriptor.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    @contextlib.contextmanager
    def blocking_call(
        self, sock: socket.socket, timeout: float | None, timeout_error: type[Exception], error: type[Exception]
    ) -> Iterator[float | None]:
        """Around one blocking call on `sock`; yields the timeout to use (the deadline's, if sooner)."""
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise timeout_error("the deadline has passed")
            timeout = remaining if timeout is None else min(timeout, remaining)
        with self._lock:
            if self.cancelled:
                raise error("cancelled")
            self._blocked_on.add(sock)
        try:
            yield timeout
        finally:
            with self._lock:
                self._blocked_on.discard(sock)


@contextlib.contextmanager
def aborted_by(abort: Abort) -> Iterator[None]:
    """Socket calls this thread makes in the block obey `abort`."""
    _active.abort = abort
    try:
        yield
    finally:
        _active.abort = None


@contextlib.contextmanager
def _call(
    sock: socket.socket, timeout: float | None, timeout_error: type[Exception], error: type[Exception]
) -> Iterator[float | None]:
    """One blocking call: its timeout, the thread's Abort, and OS errors as httpcore's (the OS error as cause)."""
    abort: Abort | None = getattr(_active, "abort", None)
    try:
        if abort is None:
            yield timeout
        else:
            with abort.blocking_call(sock, timeout, timeout_error, error) as bounded:
                yield bounded
    except TimeoutError as cause:  # socket.timeout
        raise timeout_error(str(cause) or "timed out") from cause
    except OSError as cause:  # ssl.SSLError is one too
        raise error(str(cause) or type(cause).__name__) from cause


class AbortableStream(httpcore.NetworkStream):
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _call(self._sock, timeout, httpcore.ReadTimeout, httpcore.ReadError) as bounded:
            self._sock.settimeout(bounded)
            return self._sock.recv(max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        while view:
            with _call(self._sock, timeout, httpcore.WriteTimeout, httpcore.WriteError) as bounded:
                self._sock.settimeout(bounded)
                view = view[self._sock.send(view) :]

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> AbortableStream:
        try:
            with _call(self._sock, timeout, httpcore.ConnectTimeout, httpcore.ConnectError) as bounded:
                self._sock.settimeout(bounded)
                return AbortableStream(ssl_context.wrap_socket(self._sock, server_hostname=server_hostname))
        except Exception:
            self._sock.close()
            raise

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":  # httpcore reads the ALPN protocol from it; an SSLSocket answers the same
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "socket":
            return self._sock
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "is_readable":  # an idle pooled connection that is readable was closed by the server
            return _readable(self._sock)
        return None


class AbortableBackend(httpcore.NetworkBackend):
    """httpcore's network backend for the pool: TCP connections made with AbortableStream."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AbortableStream:
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as cause:
            raise httpcore.ConnectError(str(cause)) from cause
        last_error: Exception | None = None
        for family, kind, protocol, _, address in addresses:
            sock = socket.socket(family, kind, protocol)
            try:
                with _call(sock, timeout, httpcore.ConnectTimeout, httpcore.ConnectError) as bounded:
                    sock.settimeout(bounded)
                    if local_address:
                        sock.bind((local_address, 0))
                    sock.connect(address)
                    for option in socket_options or ():
                        sock.setsockopt(*option)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return AbortableStream(sock)
            except httpcore.ConnectTimeout:
                sock.close()
                raise
            except httpcore.ConnectError as error:
                sock.close()
                last_error = error
                abort: Abort | None = getattr(_active, "abort", None)
                if abort is not None and abort.cancelled:
                    raise
        raise last_error or httpcore.ConnectError(f"no address for {host}")


def _readable(sock: socket.socket) -> bool:
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
