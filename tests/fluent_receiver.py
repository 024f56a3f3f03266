"""A Fluent Forward protocol receiver for tests, as Fluentd's `in_forward` answers (over TCP).

It decodes the three event modes of the Forward protocol spec (v1): Message
`[tag, time, record, option]`, Forward `[tag, [[time, record], ...], option]` and PackedForward
`[tag, msgpack stream of [time, record] as bin/str, option]` (also gzip-compressed), with `time`
an integer or an EventTime (ext type 0). When `option.chunk` is set it answers `{"ack": chunk}`
after storing the events, unless told not to ack (a broken receiver) or to close the connection
after each ack (a receiver that restarts between events). No shared-key handshake.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass
from typing import Any

import msgpack

from tests.support import wait_until


@dataclass(frozen=True)
class EventTime:
    seconds: int
    nanoseconds: int


@dataclass(frozen=True)
class Event:
    tag: str
    time: EventTime | int
    record: dict[str, Any]
    mode: str  # "message", "forward" or "packed"
    chunk: str | None  # the chunk id the sender asked to be acked, if any


def _ext_hook(code: int, data: bytes) -> Any:
    if code == 0 and len(data) == 8:
        return EventTime(*struct.unpack(">II", data))
    return msgpack.ExtType(code, data)


class FluentReceiver:
    def __init__(self, *, ack: bool = True, close_after_ack: bool = False) -> None:
        self.ack = ack
        self.close_after_ack = close_after_ack
        self.events: list[Event] = []
        self.acks_sent: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                receiver._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler, bind_and_activate=True)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fluent-receiver", daemon=True)

    def __enter__(self) -> FluentReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop listening and close every open connection (the sender sees them drop)."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)  # wakes the handler's recv
                client.close()

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[Event]:
        wait_until(lambda: len(self.events) >= count, timeout=timeout, what=f"{count} fluent events")
        return list(self.events)

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._clients.append(client)
        unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape", ext_hook=_ext_hook)
        while data := _receive(client):
            unpacker.feed(data)
            for message in unpacker:
                chunk = self._store(message)
                if chunk is None or not self.ack:
                    continue
                client.sendall(msgpack.packb({"ack": chunk}))
                with self._lock:
                    self.acks_sent.append(chunk)
                if self.close_after_ack:
                    client.close()
                    return

    def _store(self, message: list[Any]) -> str | None:
        """Decode one frame into events; the chunk id to ack, if the sender asked for one."""
        tag, second, *rest = message
        if isinstance(second, (int, EventTime)):  # Message: [tag, time, record, option?]
            mode, pairs, options = "message", [(second, rest[0])], rest[1:]
        elif isinstance(second, list):  # Forward: [tag, [[time, record], ...], option?]
            mode, pairs, options = "forward", [tuple(entry) for entry in second], rest
        else:  # PackedForward: [tag, bin (or str) of concatenated [time, record], option?]
            mode, options = "packed", rest
            # Old clients send it as msgpack str: its bytes come back through surrogateescape.
            packed = second.encode("utf-8", "surrogateescape") if isinstance(second, str) else second
            if options and options[0].get("compressed") == "gzip":
                packed = gzip.decompress(packed)
            unpacker = msgpack.Unpacker(raw=False, ext_hook=_ext_hook)
            unpacker.feed(packed)
            pairs = [tuple(entry) for entry in unpacker]
        chunk = options[0].get("chunk") if options and isinstance(options[0], dict) else None
        with self._lock:
            self.events.extend(Event(tag, time, record, mode, chunk) for time, record in pairs)
        return chunk


def _receive(client: socket.socket) -> bytes:
    try:
        return client.recv(65536)
    except OSError:
        return b""
