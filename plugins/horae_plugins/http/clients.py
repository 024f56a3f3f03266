"""Pooled HTTP clients: one per distinct TLS setting, shared by every execution (and thread) that uses it.

A client keeps its connections alive between executions (Go's Transport does the same for Dkron,
although Dkron's own pool never kept a client), in pool.py's pool, whose connections use the
abortable sockets of sockets.py, so that a cancelled execution stops at once. Building a client
reads certificates, which can fail with a message naming the key.
"""

from __future__ import annotations

import http.cookiejar
import logging
import threading

import httpx

from horae_plugins.http.pool import ThreadSafePool
from horae_plugins.http.tls import TlsSettings, build_ssl_context, stamp

# httpx logs every request at INFO: one plugin log line per execution, which says nothing the
# execution's own record does not.
logging.getLogger("httpx").setLevel(logging.WARNING)

USER_AGENT = "horae-http-executor/1.0"
MAX_REDIRECTS = 10  # as Go's http.Client
# Idle connections kept per client, and for how long (Go's Transport: IdleConnTimeout 90s).
MAX_IDLE_CONNECTIONS = 256
IDLE_SECONDS = 90.0


class ClientPool:
    """`client_for(tls)` returns the same client for the same settings, until one of their files changes."""

    def __init__(self) -> None:
        self._clients: dict[TlsSettings, tuple[tuple, httpx.Client]] = {}
        self._lock = threading.Lock()

    def client_for(self, settings: TlsSettings) -> httpx.Client:
        files = stamp(settings)
        with self._lock:
            known = self._clients.get(settings)
        if known is not None and known[0] == files:
            return known[1]
        client = new_client(settings)  # outside the lock: it reads files
        with self._lock:
            known = self._clients.get(settings)
            if known is not None and known[0] == files:
                return known[1]
            # A replaced client (its certificate was rotated) is dropped, not closed: executions
            # still using it finish, and its idle connections go with it.
            self._clients[settings] = (files, client)
            return client


class AbortableTransport(httpx.HTTPTransport):
    """httpx's transport, with a thread-safe pool whose sockets an execution's Abort can interrupt."""

    def __init__(self, settings: TlsSettings) -> None:
        context = build_ssl_context(settings)
        super().__init__(verify=context, trust_env=False)
        # httpx takes no pool (nor network backend) as an argument: this replaces the one it built,
        # which is the same pool without a proxy.
        self._pool = ThreadSafePool(context, MAX_IDLE_CONNECTIONS, IDLE_SECONDS)


def new_client(settings: TlsSettings) -> httpx.Client:
    return httpx.Client(
        transport=AbortableTransport(settings),
        # The execution's Abort enforces the timeout key over the whole exchange.
        timeout=httpx.Timeout(None),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        # As Dkron's Transport: no proxy from the environment, and no cookies carried from one
        # execution (or job) to the next.
        trust_env=False,
        cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
        headers={"User-Agent": USER_AGENT},
    )
