"""The real NATS and RabbitMQ servers the broker executor tests talk to, started when they are down.

`require_nats()` / `require_rabbitmq()` check that the machine's broker answers on 127.0.0.1 (as CI
starts them, /work/shared/SERVICES.md); if not, they run that start command when the server is
installed, and otherwise fail the test with the exact command to run. They never skip: a missing
broker is a failure, in CI and on a laptop alike. `NatsServer` runs a private nats-server (with
credentials, or to stop and restart it) on an ephemeral port; `SilentListener` accepts connections
and never answers, like a hung broker.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

import pytest

LOOPBACK = "127.0.0.1"
NATS_PORT = 4222
RABBITMQ_PORT = 5672
NATS_URL = f"nats://{LOOPBACK}:{NATS_PORT}"
RABBITMQ_URL = f"amqp://guest:guest@{LOOPBACK}:{RABBITMQ_PORT}/"
NATS_SERVER = "/usr/sbin/nats-server"
# AMQP 0-9-1's protocol header; a broker answers it with a Connection.Start method frame (type 1).
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    program: str  # what must be installed to start it
    package: str  # the Debian package that installs it
    start: list[str]  # as SERVICES.md starts it
    start_seconds: float  # how long it may take to answer after starting


NATS = Service(
    "NATS",
    NATS_PORT,
    NATS_SERVER,
    "nats-server",
    [
        "start-stop-daemon",
        "--start",
        "--oknodo",
        "--background",
        "--exec",
        "/usr/sbin/nats-server",
        "--",
        "-a",
        "127.0.0.1",
        "-p",
        "4222",
        "-js",
        "-sd",
        "/var/lib/nats-server",
        "-l",
        "/var/log/nats-server.log",
    ],
    10.0,
)
RABBITMQ = Service(
    "RabbitMQ", RABBITMQ_PORT, "rabbitmq-server", "rabbitmq-server", ["rabbitmq-server", "-detached"], 90.0
)


def nats_answers(port: int = NATS_PORT) -> bool:
    """True when a NATS server greets a new connection with its INFO line."""
    return _greeting(port, b"").startswith(b"INFO ")


def rabbitmq_answers(port: int = RABBITMQ_PORT) -> bool:
    """True when an AMQP broker answers the protocol header with a method frame (Connection.Start)."""
    return _greeting(port, AMQP_HEADER)[:1] == b"\x01"


def require_nats() -> str:
    """NATS_URL once the machine's NATS server answers; fails the test saying how to get one."""
    _require(NATS, nats_answers)
    return NATS_URL


def require_rabbitmq() -> str:
    """RABBITMQ_URL once the machine's RabbitMQ answers; fails the test saying how to get one."""
    _require(RABBITMQ, rabbitmq_answers)
    return RABBITMQ_URL


def _require(service: Service, answers) -> None:
    if answers(service.port):
        return
    command = " ".join(service.start)
    if shutil.which(service.program) is None:
        pytest.fail(
            f"{service.name} is not running on {LOOPBACK}:{service.port} and {service.program} is not installed: "
            f"run `apt-get install {service.package}`, then `{command}`",
            pytrace=False,
        )
    started = subprocess.run(service.start, capture_output=True, text=True, timeout=60, check=False)
    deadline = time.monotonic() + service.start_seconds
    while not answers(service.port):
        if time.monotonic() > deadline:
            pytest.fail(
                f"{service.name} is not running on {LOOPBACK}:{service.port}, and `{command}` (exit code "
                f"{started.returncode}) did not bring it up within {service.start_seconds:g}s: "
                f"{(started.stderr or started.stdout).strip()[-500:]}",
                pytrace=False,
            )
        time.sleep(0.2)


def _greeting(port: int, send: bytes) -> bytes:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as connection:
            if send:
                connection.sendall(send)
            return connection.recv(64)
    except OSError:
        return b""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class NatsServer:
    """A private nats-server on an ephemeral loopback port, optionally requiring a user and password."""

    def __init__(self, user: str = "", password: str = "") -> None:
        if not shutil.which(NATS_SERVER):
            pytest.fail(f"{NATS_SERVER} is not installed: run `apt-get install nats-server`", pytrace=False)
        self.port = free_port()
        self.url = f"nats://{LOOPBACK}:{self.port}"
        self._credentials = ["--user", user, "--pass", password] if user else []
        self._process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop(); a pipe nobody reads would stall it

    def start(self) -> NatsServer:
        argv = [NATS_SERVER, "-a", LOOPBACK, "-p", str(self.port), *self._credentials]
        self._process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not nats_answers(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._log.seek(0)
                raise RuntimeError(f"nats-server on port {self.port} did not start: {self._log.read()[-500:]!r}")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """Stop it at once (SIGKILL): its clients' connections drop."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)

    def stop(self) -> None:
        self.kill()
        self._log.close()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class SilentListener:
    """Accepts TCP connections on an ephemeral loopback port and never sends a byte: a hung broker."""

    def __init__(self) -> None:
        self._socket = socket.create_server((LOOPBACK, 0))
        self._socket.settimeout(0.05)  # so the accepting thread sees _closed soon
        self._closed = threading.Event()
        self.port = self._socket.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="silent-listener", daemon=True)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted.append(connection)

    def __enter__(self) -> SilentListener:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closed.set()
        self._thread.join(5)
        self._socket.close()
        for connection in self._accepted:
            connection.close()
