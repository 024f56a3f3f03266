"""httpcore's connection pool, made safe for the many threads that share it.

httpcore 1.0.9's pool decides that an idle keep-alive connection was closed by the server when
its socket is readable, but it reads the connection's state and then the socket without a lock:
a thread that starts a request on that connection in between makes its own response look like a
server's goodbye, and the pool closes the socket under it ("Bad file descriptor"; seen about once
in 5,000 requests with 32 threads). Here a connection counts the requests started on it and is
only found expired when no request started while it was being checked and it is still idle.
"""

from __future__ import annotations

import ssl

import httpcore

from horae_plugins.http.sockets import AbortableBackend


class _Connection(httpcore.HTTPConnection):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.requests_started = 0

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        self.requests_started += 1  # before the connection turns active, so has_expired() sees it
        return super().handle_request(request)

    def has_expired(self) -> bool:
        started = self.requests_started
        expired = super().has_expired()
        return expired and self.is_idle() and self.requests_started == started


class ThreadSafePool(httpcore.ConnectionPool):
    """HTTP/1.1 connections through abortable sockets, expired only when truly idle."""

    def __init__(self, ssl_context: ssl.SSLContext, max_idle_connections: int, idle_seconds: float) -> None:
        self._backend = AbortableBackend()
        self._tls = ssl_context
        self._idle_seconds = idle_seconds
        super().__init__(
            ssl_context=ssl_context,
            max_connections=None,
            max_keepalive_connections=max_idle_connections,
            keepalive_expiry=idle_seconds,
            http1=True,
            http2=False,
            network_backend=self._backend,
        )

    def create_connection(self, origin: httpcore.Origin) -> httpcore.ConnectionInterface:
        return _Connection(
            origin=origin,
            ssl_context=self._tls,
            keepalive_expiry=self._idle_seconds,
            http1=True,
            http2=False,
            network_backend=self._backend,
        )
