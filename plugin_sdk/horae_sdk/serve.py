"""`serve()`: turn an Executor or Processor into a go-plugin compatible plugin process.

It checks the cookie, negotiates the version, starts the gRPC server (unix socket, or TCP in the
port range), prints the handshake line, and runs until the host calls Shutdown, sends SIGTERM,
or dies (PLUGIN_PROTOCOL.md §1, §2, §6).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import signal
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from horae_sdk import handshake
from horae_sdk.broker import Broker
from horae_sdk.executor import Executor, ExecutorService
from horae_sdk.processor import Processor, ProcessorService
from horae_sdk.proto.horae.plugin.v1 import info_pb2, info_pb2_grpc
from horae_sdk.proto.plugin import (
    grpc_broker_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2_grpc,
)
from horae_sdk.stdio import StdioForwarder

log = logging.getLogger("horae_sdk")

SUPPORTED_VERSIONS = (handshake.APP_PROTOCOL_VERSION,)
# Executions are long calls that each hold a worker thread; threads are created on demand.
DEFAULT_MAX_WORKERS = 256
PARENT_CHECK_SECONDS = 0.5
STOP_GRACE_SECONDS = 1.0
DEFAULT_PORT_RANGE = (10000, 25000)


class _Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def Shutdown(self, request, context):
        self._stop.set()
        return grpc_controller_pb2.Empty()


class _Describe(info_pb2_grpc.PluginInfoServicer):
    def __init__(self, plugin: Executor | Processor, kind: str) -> None:
        conformance = getattr(plugin, "conformance", None) or {}
        self._description = info_pb2.Description(
            name=plugin.name,
            kind=kind,
            version=plugin.version,
            config_schema_json=json.dumps(plugin.config_schema) if plugin.config_schema else "",
            conformance_configs={case: json.dumps(config) for case, config in conformance.items()},
            reusable_status_servers=True,  # the Broker keeps announced ids (horae_sdk.broker)
        )

    def Describe(self, request, context):
        return self._description


def serve(
    *,
    executor: Executor | None = None,
    processor: Processor | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> NoReturn:
    """Serve one plugin until the host stops it; never returns."""
    if (executor is None) == (processor is None):
        raise TypeError("serve() takes exactly one of executor= or processor=")
    plugin: Executor | Processor = executor if executor is not None else processor  # type: ignore[assignment]
    kind = "executor" if executor is not None else "processor"
    _setup_logging()
    # Read first: a host that dies right after the handshake must not go unnoticed.
    parent = os.getppid()

    environ = dict(os.environ)
    if not handshake.cookie_present(environ):
        _refuse(handshake.NOT_BY_HAND)
    offered = handshake.parse_versions(environ.get(handshake.PROTOCOL_VERSIONS_KEY, "1"))
    version = handshake.negotiate(offered, SUPPORTED_VERSIONS)
    if version is None:
        _refuse(
            f"{plugin.name or 'this plugin'} speaks protocol version(s) "
            f"{','.join(map(str, SUPPORTED_VERSIONS))}; the host offered "
            f"{environ.get(handshake.PROTOCOL_VERSIONS_KEY, '')!r}"
        )

    server_credentials, channel_credentials, server_cert_field = _tls(environ)
    stop = threading.Event()
    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers), options=handshake.GRPC_OPTIONS)
    broker = Broker(channel_credentials)
    stdio = StdioForwarder()
    health_servicer = health.HealthServicer()
    for health_service in ("plugin", ""):
        health_servicer.set(health_service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(_Controller(stop), server)
    grpc_broker_pb2_grpc.add_GRPCBrokerServicer_to_server(broker, server)
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(stdio, server)
    info_pb2_grpc.add_PluginInfoServicer_to_server(_Describe(plugin, kind), server)
    service = ExecutorService(executor, broker) if executor is not None else ProcessorService(processor)  # type: ignore[arg-type]
    service.add_to_server(server)

    # Before the handshake line: a host may signal the plugin as soon as it has read it.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    network, address, socket_path = _listen(server, environ, server_credentials)
    server.start()
    line = handshake.format_handshake(version, network, address, server_cert_field)
    os.write(1, (line + "\n").encode())
    stdio.capture_stdout()

    while not stop.wait(PARENT_CHECK_SECONDS):
        if os.getppid() != parent:
            log.warning("the host (pid %d) is gone; exiting", parent)
            break

    if isinstance(service, ExecutorService):
        service.cancel_all()
    stdio.stop()
    server.stop(STOP_GRACE_SECONDS).wait(STOP_GRACE_SECONDS + 0.5)
    broker.close()
    if socket_path:
        _remove(socket_path)
    sys.stderr.flush()
    # Executions that ignore cancellation must not keep the process alive past the host's deadline.
    os._exit(0)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
        root.setLevel(os.environ.get("HORAE_PLUGIN_LOG_LEVEL", "INFO").upper())


def _refuse(message: str) -> NoReturn:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    sys.exit(1)


def _tls(environ: dict[str, str]):
    """(server credentials, broker channel credentials, handshake cert field) for AutoMTLS, or Nones."""
    client_cert = environ.get(handshake.CLIENT_CERT_KEY, "")
    if not client_cert:
        return None, None, ""
    from horae_sdk.tls import generate_certificate

    own = generate_certificate()
    server_credentials = grpc.ssl_server_credentials(
        [(own.key_pem, own.cert_pem)], root_certificates=client_cert.encode(), require_client_auth=True
    )
    channel_credentials = grpc.ssl_channel_credentials(
        root_certificates=client_cert.encode(), private_key=own.key_pem, certificate_chain=own.cert_pem
    )
    return server_credentials, channel_credentials, own.handshake_field


def _listen(server: grpc.Server, environ: dict[str, str], credentials) -> tuple[str, str, str]:
    """Bind the server; returns (network, address, socket path to remove at exit)."""

    def bind(target: str) -> int:
        if credentials is None:
            return server.add_insecure_port(target)
        return server.add_secure_port(target, credentials)

    if environ.get(handshake.TRANSPORT_KEY, "unix") == "tcp":
        low = int(environ.get(handshake.MIN_PORT_KEY) or DEFAULT_PORT_RANGE[0])
        high = int(environ.get(handshake.MAX_PORT_KEY) or DEFAULT_PORT_RANGE[1])
        ports = list(range(low, high + 1))
        random.shuffle(ports)
        for port in ports[:200]:
            try:
                if bind(f"127.0.0.1:{port}"):
                    return "tcp", f"127.0.0.1:{port}", ""
            except RuntimeError:
                continue
        _refuse(f"no free TCP port in {low}-{high}")
    directory = environ.get(handshake.UNIX_SOCKET_DIR_KEY) or tempfile.gettempdir()
    path = os.path.join(directory, f"plugin{secrets.token_hex(5)}")
    bind(f"unix:{path}")
    return "unix", path, path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
