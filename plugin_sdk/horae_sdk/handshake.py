"""The go-plugin handshake, shared by the SDK (plugin side) and horae's host (PLUGIN_PROTOCOL.md §1)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSION = 1

HORAE_COOKIE_KEY = "HORAE_PLUGIN_MAGIC_COOKIE"
HORAE_COOKIE_VALUE = "3519a2969fb7abd91918c591e84ad12573068e2fa2ea483ab1653bb69fa00bc9"
DKRON_COOKIE_KEY = "DKRON_PLUGIN_MAGIC_COOKIE"
DKRON_COOKIE_VALUE = "b29a76488b6f3ca7955c5f769b50641f0fcd88748d8cedecda313d516320ca19"
COOKIES = {HORAE_COOKIE_KEY: HORAE_COOKIE_VALUE, DKRON_COOKIE_KEY: DKRON_COOKIE_VALUE}

PROTOCOL_VERSIONS_KEY = "PLUGIN_PROTOCOL_VERSIONS"
MIN_PORT_KEY = "PLUGIN_MIN_PORT"
MAX_PORT_KEY = "PLUGIN_MAX_PORT"
UNIX_SOCKET_DIR_KEY = "PLUGIN_UNIX_SOCKET_DIR"
CLIENT_CERT_KEY = "PLUGIN_CLIENT_CERT"
# horae's own: ask the plugin to listen on TCP (in the port range) instead of a unix socket.
TRANSPORT_KEY = "HORAE_PLUGIN_TRANSPORT"

NOT_BY_HAND = (
    "this is a horae plugin; it is started by `horae agent`, not by hand "
    f"(the host sets {HORAE_COOKIE_KEY}). To check it, run: horae-conformance executor -- <this command>"
)

# Messages above 4 MiB are refused by gRPC's default; output tails and live chunks need more.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

# A certificate field shorter than this is not a certificate (go-plugin's rule).
MIN_CERT_FIELD_LENGTH = 50


class HandshakeError(ValueError):
    """The line a plugin printed is not a handshake horae can use; the message says why."""


@dataclass(frozen=True)
class Handshake:
    core_version: int
    app_version: int
    network: str  # "unix" or "tcp"
    address: str
    protocol: str  # "grpc"
    server_cert: str = ""  # base64 DER (no padding) when the plugin serves AutoMTLS

    @property
    def grpc_target(self) -> str:
        return f"unix:{self.address}" if self.network == "unix" else self.address


def cookie_present(environ: dict[str, str]) -> bool:
    """True when either magic cookie is set to its value."""
    return any(environ.get(key) == value for key, value in COOKIES.items())


def parse_versions(text: str) -> list[int]:
    """Parse PLUGIN_PROTOCOL_VERSIONS (`1,2`); unparseable entries are ignored."""
    versions = []
    for part in text.split(","):
        part = part.strip()
        if part.isdigit():
            versions.append(int(part))
    return versions


def negotiate(offered: Iterable[int], supported: Iterable[int]) -> int | None:
    """The highest version both sides speak, or None when they share none."""
    common = set(offered) & set(supported)
    return max(common) if common else None


def format_handshake(app_version: int, network: str, address: str, server_cert: str = "") -> str:
    """The one line a plugin prints on stdout once its server listens."""
    fields = [str(CORE_PROTOCOL_VERSION), str(app_version), network, address, "grpc"]
    if server_cert:
        fields.append(server_cert)
    return "|".join(fields)


def parse_handshake(line: str, accepted_versions: Iterable[int] = (APP_PROTOCOL_VERSION,)) -> Handshake:
    """Parse and check a handshake line; HandshakeError says exactly what is wrong with it."""
    accepted = sorted(set(accepted_versions))
    text = line.strip()
    fields = text.split("|")
    if len(fields) < 4:
        raise HandshakeError(f"expected a handshake line CORE|APP|NETWORK|ADDRESS|PROTOCOL, got {_shown(text)}")
    core, app, network, address = fields[:4]
    protocol = fields[4] if len(fields) > 4 and fields[4] else "netrpc"
    if core != str(CORE_PROTOCOL_VERSION):
        raise HandshakeError(
            f"core protocol version {_shown(core)} is not supported (horae speaks {CORE_PROTOCOL_VERSION});"
            f" the line was {_shown(text)}"
        )
    if not app.isdigit():
        raise HandshakeError(f"app protocol version {_shown(app)} is not a number; the line was {_shown(text)}")
    if int(app) not in accepted:
        raise HandshakeError(
            f"the plugin chose protocol version {app}, which the host did not offer "
            f"(offered: {','.join(map(str, accepted))})"
        )
    if network not in ("unix", "tcp"):
        raise HandshakeError(f"network type {_shown(network)} is not supported (use unix or tcp)")
    if not address:
        raise HandshakeError(f"the handshake line names no address: {_shown(text)}")
    if protocol != "grpc":
        raise HandshakeError(
            f"the plugin speaks {_shown(protocol)}; horae supports only grpc plugins "
            "(go-plugin: set GRPCServer in ServeConfig)"
        )
    cert = fields[5] if len(fields) > 5 and len(fields[5]) > MIN_CERT_FIELD_LENGTH else ""
    return Handshake(int(core), int(app), network, address, protocol, cert)


def _shown(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
