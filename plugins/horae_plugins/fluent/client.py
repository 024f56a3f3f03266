"""A Fluent Forward protocol client: one reused TCP connection per receiver, each event acked.

`send()` writes a frame that carries a `chunk` option and waits for the receiver's `{"ack": chunk}`
(the Forward protocol's at-least-once delivery) within the caller's deadline. Executions are
processed in many threads; a receiver's connection is used by one at a time (a lock), so acks
never cross. A connection that dropped (closed by the receiver or reset, seen when writing or as
the end of the stream while waiting for the ack) is reopened and the frame sent once more with
the same chunk id, so a receiver may drop the duplicate. A connection whose ack did not come in
time is closed, so that a late ack cannot be taken for the next event's.
"""

from __future__ import annotations

import socket
import threading
import time

import msgpack

RECEIVE_BYTES = 4096


class FluentError(Exception):
    """The event was not acked; the message names the receiver and says what happened."""


class ConnectionDropped(Exception):
    """The connection ended before the ack: worth one more try on a fresh connection."""


class ForwardConnection:
    """The connection to one receiver, opened on first use and kept for the next events."""

    def __init__(self, host: str, port: int, label: str) -> None:
        self._address = (host, port)
        self._label = label
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def send(self, frame: bytes, chunk: str, timeout: float) -> None:
        """Send `frame` and wait for the ack of `chunk`, all within `timeout` seconds; FluentError otherwise."""
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=timeout):
            raise FluentError(
                f"{self._label}: not sent within {timeout:g}s: the events before it were still waiting for acks"
            )
        try:
            try:
                self._send_once(frame, chunk, deadline, timeout)
            except ConnectionDropped as first:
                self._close()
                try:
                    self._send_once(frame, chunk, deadline, timeout)
                except ConnectionDropped as second:
                    self._close()
                    raise FluentError(
                        f"{self._label}: the connection dropped before the ack, also when retried on a new one "
                        f"(first: {first}; then: {second})"
                    ) from None
        except BaseException:
            self._close()
            raise
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _send_once(self, frame: bytes, chunk: str, deadline: float, timeout: float) -> None:
        sock = self._connected(deadline, timeout)
        try:
            sock.settimeout(_remaining(deadline, self._label, timeout, "sending"))
            sock.sendall(frame)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as error:
            raise ConnectionDropped(f"the connection broke while sending ({error.strerror})") from None
        except TimeoutError:
            raise FluentError(f"{self._label}: could not send the event within {timeout:g}s") from None
        except OSError as error:
            raise FluentError(f"{self._label}: sending failed: {error.strerror or error}") from None
        self._wait_for_ack(sock, chunk, deadline, timeout)

    def _connected(self, deadline: float, timeout: float) -> socket.socket:
        if self._sock is None:
            try:
                self._sock = socket.create_connection(
                    self._address, timeout=_remaining(deadline, self._label, timeout, "connecting")
                )
            except TimeoutError:
                raise FluentError(f"{self._label}: could not connect within {timeout:g}s") from None
            except OSError as error:
                raise FluentError(f"{self._label}: could not connect: {error.strerror or error}") from None
        return self._sock

    def _wait_for_ack(self, sock: socket.socket, chunk: str, deadline: float, timeout: float) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        while True:
            for answer in unpacker:
                if isinstance(answer, dict) and answer.get("ack") == chunk:
                    return
                raise FluentError(f"{self._label}: answered {answer!r} where the ack of chunk {chunk!r} was due")
            try:
                sock.settimeout(_remaining(deadline, self._label, timeout, "waiting for the ack"))
                data = sock.recv(RECEIVE_BYTES)
            except TimeoutError:
                raise FluentError(
                    f"{self._label}: no ack within {timeout:g}s (the receiver took the event but did not"
                    " acknowledge it; is it a Fluentd/Fluent Bit forward input?)"
                ) from None
            except (ConnectionResetError, ConnectionAbortedError) as error:
                raise ConnectionDropped(f"the connection was reset before the ack ({error.strerror})") from None
            except OSError as error:
                raise FluentError(f"{self._label}: reading the ack failed: {error.strerror or error}") from None
            if not data:
                raise ConnectionDropped("the receiver closed the connection before the ack")
            unpacker.feed(data)

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class ConnectionPool:
    """One ForwardConnection per receiver address, for every execution of every job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[tuple[str, int], ForwardConnection] = {}

    def get(self, host: str, port: int, label: str) -> ForwardConnection:
        with self._lock:
            connection = self._connections.get((host, port))
            if connection is None:
                connection = self._connections[(host, port)] = ForwardConnection(host, port, label)
            return connection


def _remaining(deadline: float, label: str, timeout: float, doing: str) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FluentError(f"{label}: timed out after {timeout:g}s while {doing}")
    return remaining
