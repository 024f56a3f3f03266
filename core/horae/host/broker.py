"""The host side of go-plugin's broker: StatusHelper servers that receive an execution's live output.

The Update message carries no execution id, so each in-flight call needs a server of its own.
Servers are pooled per plugin process and reused across calls; a server whose call was cancelled
is closed rather than reused, since the plugin may still send that call's late chunks to it.
Starting a server costs ~1.4 ms of loop time and each costs memory on both sides, so a plugin
process has at most `max_servers`: a call beyond that waits for one to be released.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Callable

import grpc

from horae_sdk.handshake import GRPC_OPTIONS
from horae_sdk.proto.types.v1 import executor_pb2

OutputCallback = Callable[[bytes, bool], None]
STATUS_HELPER_NAMES = ("types.v1.StatusHelperService", "types.StatusHelper")

DEFAULT_MAX_SERVERS = 256

_server_numbers = itertools.count(1)


class CallbackServer:
    """One StatusHelper server on a unix socket; `on_output` is the call it currently serves."""

    def __init__(self, socket_dir: str, credentials: grpc.ServerCredentials | None) -> None:
        self.address = os.path.join(socket_dir, f"b{os.getpid()}-{next(_server_numbers)}")
        self.on_output: OutputCallback | None = None
        self.service_id = 0  # its broker id: announced per call, or once when the plugin keeps ids
        self._server = grpc.aio.server(options=GRPC_OPTIONS)
        handler = grpc.unary_unary_rpc_method_handler(
            self._update,
            request_deserializer=executor_pb2.StatusUpdateRequest.FromString,
            response_serializer=executor_pb2.StatusUpdateResponse.SerializeToString,
        )
        for name in STATUS_HELPER_NAMES:
            self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, {"Update": handler}),))
        target = f"unix:{self.address}"
        if credentials is None:
            self._server.add_insecure_port(target)
        else:
            self._server.add_secure_port(target, credentials)

    async def start(self) -> None:
        await self._server.start()

    async def _update(self, request: executor_pb2.StatusUpdateRequest, context) -> executor_pb2.StatusUpdateResponse:
        callback = self.on_output
        if callback is not None:
            callback(request.output, request.error)
        return executor_pb2.StatusUpdateResponse(r=len(request.output))

    async def close(self) -> None:
        await self._server.stop(None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address)


class BrokerPool:
    def __init__(
        self,
        socket_dir: str,
        credentials: grpc.ServerCredentials | None = None,
        max_servers: int = DEFAULT_MAX_SERVERS,
    ) -> None:
        self._socket_dir = socket_dir
        self._credentials = credentials
        self._idle: list[CallbackServer] = []
        self._busy: set[CallbackServer] = set()
        self._slots = asyncio.Semaphore(max_servers)
        self._closed = False

    async def acquire(self, on_output: OutputCallback) -> CallbackServer:
        await self._slots.acquire()
        try:
            server = self._idle.pop() if self._idle else await self._new_server()
        except BaseException:
            self._slots.release()
            raise
        server.on_output = on_output
        self._busy.add(server)
        return server

    async def _new_server(self) -> CallbackServer:
        server = CallbackServer(self._socket_dir, self._credentials)
        try:
            await server.start()
        except BaseException:  # cancelled or failed: a server left to the GC warns and leaks its socket
            await asyncio.shield(server.close())
            raise
        return server

    async def release(self, server: CallbackServer, reusable: bool) -> None:
        server.on_output = None
        self._busy.discard(server)
        self._slots.release()
        if reusable and not self._closed:
            self._idle.append(server)
        else:  # a call that outlived the pool (the plugin died meanwhile) must not leave a server behind
            await server.close()

    async def close(self) -> None:
        self._closed = True
        servers, self._idle = [*self._idle, *self._busy], []
        self._busy.clear()
        for server in servers:
            await server.close()
