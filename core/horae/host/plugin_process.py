"""A running plugin process and the calls horae makes to it: health, Describe, Execute, Process, stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from horae.host.broker import BrokerPool, CallbackServer, OutputCallback
from horae.host.plugin_log import PluginLog
from horae_sdk.handshake import GRPC_OPTIONS, Handshake
from horae_sdk.proto.horae.plugin.v1 import info_pb2, processor_pb2
from horae_sdk.proto.plugin import grpc_broker_pb2, grpc_controller_pb2
from horae_sdk.proto.types.v1 import executor_pb2
from horae_sdk.spec import PluginSpec
from horae_sdk.tls import TLS_SERVER_NAME, Certificate, generate_certificate, pem_from_handshake_field

log = logging.getLogger("horae.host")

EXECUTE_METHODS = ("/types.v1.ExecutorService/Execute", "/types.Executor/Execute")
SHUTDOWN_CALL_TIMEOUT = 1.0


def kill_group(pid: int) -> None:
    """SIGKILL the plugin's whole process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass(frozen=True)
class TlsMaterial:
    """AutoMTLS: the host's own certificate and, after the handshake, the plugin's."""

    own: Certificate
    server_cert_pem: bytes = b""

    @classmethod
    def generate(cls) -> TlsMaterial:
        return cls(own=generate_certificate())

    def with_server_cert(self, handshake_field: str) -> TlsMaterial:
        return dataclasses.replace(self, server_cert_pem=pem_from_handshake_field(handshake_field))

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.server_cert_pem,
            private_key=self.own.key_pem,
            certificate_chain=self.own.cert_pem,
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.own.key_pem, self.own.cert_pem)],
            root_certificates=self.server_cert_pem,
            require_client_auth=True,
        )


class PluginProcess:
    def __init__(
        self,
        spec: PluginSpec,
        process: asyncio.subprocess.Process,
        handshake: Handshake,
        plugin_log: PluginLog,
        tasks: list[asyncio.Task],
        socket_dir: str,
        tls: TlsMaterial | None,
    ) -> None:
        self.spec = spec
        self.process = process
        self.handshake = handshake
        self.log = plugin_log
        self._tasks = tasks
        if tls is None:
            self.channel = grpc.aio.insecure_channel(handshake.grpc_target, options=GRPC_OPTIONS)
        else:
            options = [*GRPC_OPTIONS, ("grpc.ssl_target_name_override", TLS_SERVER_NAME)]
            self.channel = grpc.aio.secure_channel(handshake.grpc_target, tls.channel_credentials(), options)
        self._brokers = BrokerPool(socket_dir, tls.server_credentials() if tls else None)
        self._broker_call: grpc.aio.StreamStreamCall | None = None
        # grpc.aio allows one write in flight per stream; concurrent calls take turns.
        self._broker_write_lock = asyncio.Lock()
        self._broker_unavailable = False
        # Set from Describe: announce each callback server once rather than once per call.
        self.reusable_status_servers = False
        self._service_ids = itertools.count(1)
        self._execute_method = 0
        self._execute_calls = [
            self.channel.unary_unary(
                method,
                request_serializer=executor_pb2.ExecuteRequest.SerializeToString,
                response_deserializer=executor_pb2.ExecuteResponse.FromString,
            )
            for method in EXECUTE_METHODS
        ]
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self._stopping = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def label(self) -> str:
        return f"{self.spec.kind} {self.spec.name!r}"

    async def wait(self) -> int:
        return await self.process.wait()

    async def health(self, timeout: float = 2.0) -> bool:
        try:
            response = await self._health.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return response.status == health_pb2.HealthCheckResponse.SERVING

    async def describe(self, timeout: float = 5.0) -> info_pb2.Description | None:
        """The plugin's Description, or None when it does not serve PluginInfo."""
        call = self.channel.unary_unary(
            "/horae.plugin.v1.PluginInfo/Describe",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=info_pb2.Description.FromString,
        )
        try:
            description = await call(empty_pb2.Empty(), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise
        self.reusable_status_servers = description.reusable_status_servers
        return description

    async def execute(
        self,
        request: executor_pb2.ExecuteRequest,
        on_output: OutputCallback | None = None,
        timeout: float | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> executor_pb2.ExecuteResponse:
        """One Execute call; live output goes to `on_output(chunk, is_stderr)` through the broker.

        `on_started()` is called as the call goes out, after any wait for a broker server.
        """
        callback_server = await self._open_callback(on_output) if on_output is not None else None
        if callback_server is not None:
            request.status_server = callback_server.service_id
        if on_started is not None:
            on_started()
        finished = False
        try:
            response = await self._call_execute(request, timeout)
            finished = True
            return response
        finally:
            if callback_server is not None:
                await self._brokers.release(callback_server, reusable=finished)

    async def _call_execute(
        self, request: executor_pb2.ExecuteRequest, timeout: float | None
    ) -> executor_pb2.ExecuteResponse:
        while True:
            try:
                return await self._execute_calls[self._execute_method](request, timeout=timeout)
            except grpc.aio.AioRpcError as error:
                # Dkron before 4.0.9 named the service types.Executor.
                if error.code() == grpc.StatusCode.UNIMPLEMENTED and self._execute_method + 1 < len(EXECUTE_METHODS):
                    self._execute_method += 1
                    continue
                raise

    async def _open_callback(self, on_output: OutputCallback) -> CallbackServer | None:
        if self._broker_unavailable:
            return None
        server = await self._brokers.acquire(on_output)
        if server.service_id and self.reusable_status_servers:
            return server  # announced for an earlier call; the plugin keeps the id
        server.service_id = next(self._service_ids) % (1 << 32) or 1
        try:
            if self._broker_call is None:
                self._broker_call = self.channel.stream_stream(
                    "/plugin.GRPCBroker/StartStream",
                    request_serializer=grpc_broker_pb2.ConnInfo.SerializeToString,
                    response_deserializer=grpc_broker_pb2.ConnInfo.FromString,
                )()
            async with self._broker_write_lock:
                await self._broker_call.write(
                    grpc_broker_pb2.ConnInfo(service_id=server.service_id, network="unix", address=server.address)
                )
        except (grpc.aio.AioRpcError, grpc.aio.UsageError) as error:
            log.warning("%s: no broker, so no live output: %s", self.label, error)
            self._broker_unavailable = True
            await self._brokers.release(server, reusable=False)
            return None
        except BaseException:  # cancelled while announcing: give the server's slot back
            await asyncio.shield(self._brokers.release(server, reusable=False))
            raise
        return server

    async def process_execution(
        self, request: processor_pb2.ProcessRequest, timeout: float | None = None
    ) -> processor_pb2.ProcessResponse:
        call = self.channel.unary_unary(
            "/horae.plugin.v1.ProcessorService/Process",
            request_serializer=processor_pb2.ProcessRequest.SerializeToString,
            response_deserializer=processor_pb2.ProcessResponse.FromString,
        )
        return await call(request, timeout=timeout)

    async def stop(self, grace: float = 2.0) -> None:
        """Ask the plugin to shut down, wait up to `grace` seconds, then kill its process group."""
        if self._stopping:
            await self.process.wait()
            return
        self._stopping = True
        if self.process.returncode is None and grace > 0:
            shutdown = self.channel.unary_unary(
                "/plugin.GRPCController/Shutdown",
                request_serializer=grpc_controller_pb2.Empty.SerializeToString,
                response_deserializer=grpc_controller_pb2.Empty.FromString,
            )
            # Go plugins often stop mid-call and answer UNAVAILABLE: that is success too.
            with contextlib.suppress(grpc.aio.AioRpcError):
                await shutdown(grpc_controller_pb2.Empty(), timeout=min(grace, SHUTDOWN_CALL_TIMEOUT))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace)
        kill_group(self.process.pid)
        await self.process.wait()
        if self._broker_call is not None:
            self._broker_call.cancel()
        await self.channel.close()
        await self._brokers.close()
        await asyncio.wait(self._tasks, timeout=1.0)
        for task in self._tasks:
            task.cancel()
        if self.handshake.network == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.handshake.address)
