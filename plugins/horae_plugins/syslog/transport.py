"""Delivers syslog messages over UDP, TCP or a unix socket; DeliveryError says where and why it failed.

Each call opens its own socket and closes it, so concurrent executions never share one (the
processor is called from many threads) and a restarted daemon is picked up at once. TCP uses
newline framing (RFC 6587 non-transparent framing, what Go's log/syslog and rsyslog send): a
message never holds a newline, since each is one line of output. UDP cannot confirm delivery:
an error is only seen when the network reports one (no route, an ICMP "port unreachable" for an
earlier datagram of the same execution); use tcp:// to know that the messages arrived.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import time
from collections.abc import Sequence

from horae_plugins.syslog.config import Destination

# Where local syslog daemons listen, in the order Go's log/syslog tries them.
LOCAL_SOCKETS = ("/dev/log", "/var/run/syslog", "/var/run/log")


class DeliveryError(Exception):
    """The messages could not be sent; the message names the destination and the reason."""


def local_destination() -> Destination:
    """The local syslog socket; DeliveryError when this machine has none."""
    for path in LOCAL_SOCKETS:
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return Destination("unix", path=path)
    raise DeliveryError(
        f"no local syslog socket (none of {', '.join(LOCAL_SOCKETS)} is a socket): start a syslog daemon, "
        "or set the processor's `address` (udp://host:514, tcp://host:514)"
    )


def deliver(destination: Destination, messages: Sequence[bytes], timeout: float) -> None:
    """Send every message to `destination` within `timeout` seconds, or raise DeliveryError."""
    deadline = time.monotonic() + timeout
    try:
        if destination.scheme == "udp":
            _send_udp(destination, messages, deadline)
        elif destination.scheme == "tcp":
            _send_tcp(destination, messages, deadline)
        else:
            _send_unix(destination, messages, deadline)
    except socket.gaierror as error:
        raise DeliveryError(f"{destination}: cannot resolve host {destination.host!r}: {error.strerror}") from None
    except TimeoutError:
        raise DeliveryError(f"{destination}: timed out after {timeout:g}s") from None
    except OSError as error:
        raise DeliveryError(f"{destination}: {error.strerror or error}") from None


def _send_udp(destination: Destination, messages: Sequence[bytes], deadline: float) -> None:
    family, kind, proto, _, address = socket.getaddrinfo(destination.host, destination.port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.settimeout(_remaining(deadline))
        # Connected, so that an ICMP error for one datagram fails the next send.
        sock.connect(address)
        for message in messages:
            sock.send(message)
        pending = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if pending:
            raise OSError(pending, os.strerror(pending))


def _send_tcp(destination: Destination, messages: Sequence[bytes], deadline: float) -> None:
    with socket.create_connection((destination.host, destination.port), timeout=_remaining(deadline)) as sock:
        sock.settimeout(_remaining(deadline))  # since Python 3.5 the bound of the whole sendall
        sock.sendall(b"".join(message + b"\n" for message in messages))


def _send_unix(destination: Destination, messages: Sequence[bytes], deadline: float) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.settimeout(_remaining(deadline))
        sock.connect(destination.path)
    except OSError as error:
        sock.close()
        if error.errno != errno.EPROTOTYPE:
            raise
        # A stream socket (some daemons): newline framing, as Go's log/syslog writes it.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stream:
            stream.settimeout(_remaining(deadline))
            stream.connect(destination.path)
            stream.sendall(b"".join(message + b"\n" for message in messages))
        return
    with sock:
        for message in messages:
            # A full daemon queue blocks the send; the socket timeout bounds the wait.
            sock.settimeout(_remaining(deadline))
            sock.send(message)


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return remaining
