"""GRPCStdio: what a plugin writes to stdout after the handshake goes to the host over gRPC.

stdout (fd 1) is replaced by a pipe once the handshake line is out, so a stray print() can never
corrupt the protocol; a reader thread keeps the pipe drained and holds a bounded backlog.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterator

import grpc

from horae_sdk.proto.plugin import grpc_stdio_pb2, grpc_stdio_pb2_grpc

BACKLOG_CHUNKS = 1024
READ_SIZE = 64 * 1024


class StdioForwarder(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    def __init__(self) -> None:
        self._chunks: queue.Queue[bytes] = queue.Queue(maxsize=BACKLOG_CHUNKS)
        self._stopped = threading.Event()

    def capture_stdout(self) -> None:
        """Point fd 1 at a pipe drained by a daemon thread."""
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.close(write_fd)
        threading.Thread(target=self._drain, args=(read_fd,), name="horae-stdio", daemon=True).start()

    def _drain(self, read_fd: int) -> None:
        while True:
            data = os.read(read_fd, READ_SIZE)
            if not data:
                return
            # Nobody is listening and the backlog is full: this output is dropped, never blocking the plugin.
            with contextlib.suppress(queue.Full):
                self._chunks.put_nowait(data)

    def stop(self) -> None:
        self._stopped.set()

    def StreamStdio(self, request, context: grpc.ServicerContext) -> Iterator[grpc_stdio_pb2.StdioData]:
        while not self._stopped.is_set() and context.is_active():
            try:
                data = self._chunks.get(timeout=0.5)
            except queue.Empty:
                continue
            yield grpc_stdio_pb2.StdioData(channel=grpc_stdio_pb2.StdioData.STDOUT, data=data)
