"""The executor side of the SDK: the base class a plugin author subclasses, and its gRPC service.

`Executor.execute(job_name, config, stream)` runs in a worker thread; many run at once.
`stream.write()` sends live output to the host through the broker (`Update`), batched into
chunks of 64-256 KiB so that throughput is not bounded by one RPC per line.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from horae_sdk.broker import Broker
from horae_sdk.proto.types import executor_pb2 as legacy_pb2
from horae_sdk.proto.types import executor_pb2_grpc as legacy_pb2_grpc
from horae_sdk.proto.types.v1 import executor_pb2, executor_pb2_grpc

log = logging.getLogger("horae_sdk")

DEFAULT_OUTPUT_LIMIT = 256 * 1024
FLUSH_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 256 * 1024
FLUSH_INTERVAL_SECONDS = 0.1


@dataclass
class ExecutionResult:
    """What `execute` may return instead of plain output, to report process figures too."""

    output: bytes | str | None = None
    exit_code: int = 0
    cpu_seconds: float = 0.0
    max_rss_bytes: int = 0


class ExecutionError(Exception):
    """Raise from `execute` to fail the execution; `message` becomes the execution's error."""

    def __init__(
        self,
        message: str,
        *,
        output: bytes | str | None = None,
        exit_code: int = 1,
        cpu_seconds: float = 0.0,
        max_rss_bytes: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.output = output
        self.exit_code = exit_code
        self.cpu_seconds = cpu_seconds
        self.max_rss_bytes = max_rss_bytes


class Executor(abc.ABC):
    """Subclass this and implement `execute`. Class attributes describe the plugin (Describe)."""

    name: str = ""
    version: str = "0"
    # JSON Schema of the executor_config keys, served by PluginInfo/Describe.
    config_schema: dict[str, Any] | None = None
    # Job configs for horae-conformance: {"echo": {...}, "sleep": {...}, "flood": {...}}.
    conformance: dict[str, dict[str, str]] | None = None
    # The returned output is the tail of what was written, capped at this many bytes.
    output_limit: int = DEFAULT_OUTPUT_LIMIT

    @abc.abstractmethod
    def execute(
        self, job_name: str, config: dict[str, str], stream: OutputStream
    ) -> ExecutionResult | bytes | str | None:
        """Run the job. Return its output (None: what was written to `stream`) or raise ExecutionError."""


class _StatusUpdater:
    """Sends chunks to the host's StatusHelper; falls back to the pre-4.0.9 service name."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._v1 = executor_pb2_grpc.StatusHelperServiceStub(channel).Update
        self._legacy = legacy_pb2_grpc.StatusHelperStub(channel).Update
        self._use_legacy = False

    def update(self, chunk: bytes, stderr: bool) -> None:
        if not self._use_legacy:
            try:
                self._v1(executor_pb2.StatusUpdateRequest(output=chunk, error=stderr))
                return
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._use_legacy = True
        self._legacy(legacy_pb2.StatusUpdateRequest(output=chunk, error=stderr))


class OutputStream:
    """One execution's output: live chunks to the host, and the tail kept for the result."""

    def __init__(self, request: executor_pb2.ExecuteRequest, broker: Broker | None, output_limit: int) -> None:
        self.job_name = request.job_name
        self.execution_id = request.execution_id
        self.slot_unix_ms = request.slot_unix_ms
        self.attempt = request.attempt
        self.cancelled = threading.Event()
        # The tail kept and returned, in bytes; an executor may set it per call (a job's own limit).
        self.output_limit = output_limit
        self._broker = broker if request.status_server else None
        self._status_server = request.status_server
        self._updater: _StatusUpdater | None = None
        self._lock = threading.Lock()
        self._tail = bytearray()
        self._pending = bytearray()
        self._pending_stderr = False
        self._cancel_callbacks: list[Callable[[], None]] = []
        self._finished = False
        self.bytes_written = 0

    @property
    def live(self) -> bool:
        """True when the host listens to live output for this call."""
        return self._broker is not None

    def write(self, chunk: bytes | str, stderr: bool = False) -> None:
        """Add output. Blocks while the host is slow to take it (back-pressure)."""
        data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
        if not data:
            return
        with self._lock:
            self.bytes_written += len(data)
            self._tail += data
            if len(self._tail) > 2 * self.output_limit:
                del self._tail[: -self.output_limit]
            if self._broker is None:
                return
            if self._pending and self._pending_stderr != stderr:
                self._flush_locked()
            self._pending += data
            self._pending_stderr = stderr
            if len(self._pending) >= FLUSH_BYTES:
                self._flush_locked()
        if self._broker is not None:
            _flusher.watch(self)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def tail(self) -> bytes:
        with self._lock:
            return bytes(self._tail[-self.output_limit :]) if self.output_limit else b""

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from another thread) when the host cancels this execution."""
        with self._lock:
            if not self.cancelled.is_set():
                self._cancel_callbacks.append(callback)
                return
        callback()

    def cancel(self) -> None:
        with self._lock:
            if self._finished or self.cancelled.is_set():
                return
            self.cancelled.set()
            callbacks, self._cancel_callbacks = self._cancel_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a cancel callback of execution %s failed", self.execution_id)

    def finish(self) -> None:
        """The call is returning: send what is pending, unless the response alone carries all output.

        A short execution that streamed nothing yet and fits the returned tail costs no broker dial
        and no `Update`: the host gets the same bytes in `ExecuteResponse.output`.
        """
        with self._lock:
            if self._updater is not None or self.bytes_written > self.output_limit:
                self._flush_locked()
            self._pending.clear()
            self._finished = True
            self._broker = None

    def _flush_locked(self) -> None:
        if not self._pending or self._broker is None:
            self._pending.clear()
            return
        data, self._pending = bytes(self._pending), bytearray()
        try:
            if self._updater is None:
                self._updater = _StatusUpdater(self._broker.dial(self._status_server))
            for start in range(0, len(data), MAX_CHUNK_BYTES):
                self._updater.update(data[start : start + MAX_CHUNK_BYTES], self._pending_stderr)
        except Exception as error:  # the host went away or refused: keep running, stop streaming
            log.warning("live output of execution %s stopped: %s", self.execution_id, error)
            self._broker = None


class _Flusher:
    """One thread for all executions: sends output that sits below FLUSH_BYTES for too long."""

    def __init__(self) -> None:
        self._streams: weakref.WeakSet[OutputStream] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, stream: OutputStream) -> None:
        with self._lock:
            self._streams.add(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="horae-flusher", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_SECONDS)
            with self._lock:
                streams = list(self._streams)
                self._streams.clear()
            for stream in streams:
                stream.flush()


_flusher = _Flusher()


class ExecutorService:
    """Serves `Execute` for one Executor under both service names."""

    def __init__(self, executor: Executor, broker: Broker) -> None:
        self._executor = executor
        self._broker = broker
        self._running: set[OutputStream] = set()
        self._running_lock = threading.Lock()

    def Execute(self, request: executor_pb2.ExecuteRequest, context: grpc.ServicerContext):
        stream = OutputStream(request, self._broker, self._executor.output_limit)
        context.add_callback(stream.cancel)
        with self._running_lock:
            self._running.add(stream)
        try:
            return self._run(request, stream)
        finally:
            stream.finish()
            with self._running_lock:
                self._running.discard(stream)

    def _run(self, request: executor_pb2.ExecuteRequest, stream: OutputStream) -> executor_pb2.ExecuteResponse:
        try:
            result = self._executor.execute(request.job_name, dict(request.config), stream)
        except ExecutionError as error:
            return executor_pb2.ExecuteResponse(
                output=self._output(error.output, stream),
                error=error.message or "failed",
                exit_code=error.exit_code,
                cpu_seconds=error.cpu_seconds,
                max_rss_bytes=error.max_rss_bytes,
            )
        except Exception as error:
            log.error("execution %s raised:\n%s", request.execution_id, traceback.format_exc())
            return executor_pb2.ExecuteResponse(
                output=stream.tail(), error=f"executor raised {type(error).__name__}: {error}", exit_code=1
            )
        if not isinstance(result, ExecutionResult):
            result = ExecutionResult(output=result)
        return executor_pb2.ExecuteResponse(
            output=self._output(result.output, stream),
            exit_code=result.exit_code,
            cpu_seconds=result.cpu_seconds,
            max_rss_bytes=result.max_rss_bytes,
        )

    def _output(self, output: bytes | str | None, stream: OutputStream) -> bytes:
        if output is None:
            return stream.tail()
        data = output.encode() if isinstance(output, str) else bytes(output)
        limit = stream.output_limit
        return data[-limit:] if limit and len(data) > limit else data

    def cancel_all(self) -> None:
        with self._running_lock:
            streams = list(self._running)
        for stream in streams:
            stream.cancel()

    def add_to_server(self, server: grpc.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            self.Execute,
            request_deserializer=executor_pb2.ExecuteRequest.FromString,
            response_serializer=executor_pb2.ExecuteResponse.SerializeToString,
        )
        # The pre-4.0.9 messages are wire-identical, so one handler serves both names.
        for service_name in ("types.v1.ExecutorService", "types.Executor"):
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, {"Execute": handler}),))
