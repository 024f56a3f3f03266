"""TLS for inter-node gRPC: the credentials a node serves and calls with, and why a handshake failed.

Two ways (docs/operations.md, "TLS"):
- `--cert-file/--key-file` (the API's certificate): servers serve gRPC over TLS with it; callers check the
  server's certificate and name against `--ca-file`, or else the system trust store plus this node's own
  certificate (so a self-signed certificate shared by all nodes works). Callers show no certificate.
- `--auto-tls` (needs `--encrypt`): every node derives the same CA key from the cluster key (HKDF, then
  P-256), and signs a fresh certificate for itself at start. Both sides show their certificate and check
  it against that CA (mutual TLS), so only holders of the cluster key complete a handshake.

A node whose TLS setting differs from a server's cannot talk to it; `diagnose` tells which side lacks what.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import ssl
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from horae.cluster.auth import decode_key

# The name every auto-TLS certificate holds and every auto-TLS caller expects (nodes share one CA, so an
# address-based name adds nothing: what is checked is that the peer holds the cluster key).
AUTO_TLS_NAME = "horae-cluster"
_CA_INFO = b"horae auto-tls ca v1"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_CA_VALID = (datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC), datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC))
_LEAF_DAYS = 3650
_CLOCK_SKEW = datetime.timedelta(days=1)
PROBE_TIMEOUT = 2.0

_FILES_FIX = "start every node with --cert-file/--key-file (and --ca-file), or every node with --auto-tls"


class TlsSetupError(ValueError):
    """A TLS file is missing or not PEM of the right kind; the message names the flag."""


@dataclass(frozen=True)
class RpcTls:
    """How this node's inter-node gRPC uses TLS: `mode` is "files" or "auto"."""

    mode: str
    roots_pem: bytes | None
    cert_pem: bytes = b""  # served (and, with auto-TLS, shown as a caller); empty on a client agent in files mode
    key_pem: bytes = b""
    target_name: str | None = None  # the name callers expect in every server's certificate, when not the address

    @property
    def mutual(self) -> bool:
        return self.mode == "auto"

    @property
    def can_serve(self) -> bool:
        return bool(self.cert_pem and self.key_pem)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.roots_pem if self.mutual else None,
            require_client_auth=self.mutual,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        if self.mutual:
            return grpc.ssl_channel_credentials(self.roots_pem, self.key_pem, self.cert_pem)
        return grpc.ssl_channel_credentials(self.roots_pem)

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.target_name)] if self.target_name else []

    def describe(self) -> str:
        return "--auto-tls" if self.mutual else "--cert-file/--ca-file"


def rpc_tls(
    cert_file: str = "", key_file: str = "", ca_file: str = "", auto_tls: bool = False, encrypt: str = ""
) -> RpcTls | None:
    """The node's gRPC TLS from its settings (config.check_serving refused the contradictory ones); None: plain."""
    if auto_tls:
        return auto_tls_material(encrypt)
    if not (cert_file or ca_file):
        return None
    cert_pem = _read_pem(cert_file, "cert-file", _check_certificates) if cert_file else b""
    key_pem = _read_pem(key_file, "key-file", _check_key) if key_file else b""
    # Without --ca-file: the system's roots, and this node's own certificate (one self-signed for every node).
    roots = _read_pem(ca_file, "ca-file", _check_certificates) if ca_file else _system_roots() + cert_pem
    return RpcTls("files", roots or None, cert_pem, key_pem)


def _read_pem(path: str, flag: str, check) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise TlsSetupError(f"{flag} {path}: cannot read it ({error.strerror})") from None
    try:
        check(data)
    except ValueError as error:
        raise TlsSetupError(f"{flag} {path}: {error}") from None
    return data


def _check_certificates(data: bytes) -> None:
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError("holds no PEM certificate (-----BEGIN CERTIFICATE-----)") from None


def _check_key(data: bytes) -> None:
    try:
        serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key") from None


def _system_roots() -> bytes:
    """The system's trust store (Debian: /etc/ssl/certs/ca-certificates.crt); empty when there is none."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            with open(candidate, "rb") as handle:
                return handle.read()
    return b""


# -- auto-TLS ---------------------------------------------------------------------------------------


def cluster_ca_key(encrypt: str) -> ec.EllipticCurvePrivateKey:
    """The CA key every node with cluster key `encrypt` derives: the same on each, unknown without the key.

    HKDF separates it from the key's other uses (the RPC credential, Raft's encryption); 48 bytes reduced
    modulo the group order leave no usable bias.
    """
    secret = HKDF(hashes.SHA256(), 48, salt=None, info=_CA_INFO).derive(decode_key(encrypt))
    return ec.derive_private_key(int.from_bytes(secret, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def cluster_ca(ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """A self-signed certificate of the CA key. Nodes make their own copy; each signs with the same key and
    name, so a certificate one node issues chains to every other node's copy."""
    public = ca_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name("horae cluster CA (auto-tls)"))
        .issuer_name(_name("horae cluster CA (auto-tls)"))
        .public_key(public)
        .serial_number(1)
        .not_valid_before(_CA_VALID[0])
        .not_valid_after(_CA_VALID[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def auto_tls_material(encrypt: str) -> RpcTls:
    """This node's auto-TLS: the derived CA as the only root, and a fresh key and certificate it signed."""
    ca_key = cluster_ca_key(encrypt)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(AUTO_TLS_NAME))
        .issuer_name(_name("horae cluster CA (auto-tls)"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(AUTO_TLS_NAME)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return RpcTls(
        "auto",
        cluster_ca(ca_key).public_bytes(pem),
        leaf.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        AUTO_TLS_NAME,
    )


# -- why a call failed ------------------------------------------------------------------------------


async def speaks_tls(address: str, timeout: float = PROBE_TIMEOUT) -> bool | None:
    """Whether the server at host:port answers a TLS handshake; None when it cannot be reached at all."""
    host, _, port = address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only whether TLS is spoken is asked, not whom to trust
    context.set_alpn_protocols(["h2"])
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout)
    except (OSError, TimeoutError, ValueError):
        return None
    try:
        await asyncio.wait_for(writer.start_tls(context), timeout)
        return True
    except ssl.SSLError as error:
        # An alert is TLS answering (say, refusing a caller without a certificate); anything else is not TLS.
        return "ALERT" in str(error.reason or "").upper()
    except (OSError, TimeoutError, EOFError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), timeout)


def _unverified(text: str) -> bool:
    lowered = text.lower()
    return "certificate_verify_failed" in lowered or "certificate verify failed" in lowered or "peer name" in lowered


async def diagnose(address: str, error: grpc.aio.AioRpcError, tls: RpcTls | None) -> str | None:
    """Why a call to `address` failed when a TLS setting is the cause (for the log and the caller); else None."""
    if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN):
        return None
    text = f"{error.details() or ''} {error.debug_error_string() or ''}"
    if tls is not None and _unverified(text):
        if tls.mutual:
            return (
                f"server {address} is not trusted: its certificate is not from this cluster's auto-TLS CA; "
                "start every node with --auto-tls and the same --encrypt key"
            )
        return (
            f"server {address} is not trusted: its certificate does not chain to --ca-file (or the system trust "
            f"store) or does not name {address.rpartition(':')[0]}; give --ca-file the CA that signed it"
        )
    peer_tls = await speaks_tls(address)
    if peer_tls is None or peer_tls == (tls is not None):
        return None
    if peer_tls:
        return f"server {address} serves inter-node gRPC over TLS but this node has no TLS setting: {_FILES_FIX}"
    return (
        f"server {address} serves inter-node gRPC without TLS but this node uses TLS ({tls.describe()}): "
        "give every node the same TLS settings"
    )


class TlsRefusal(grpc.aio.AioRpcError):
    """A call failed because this node's TLS setting and a server's differ: retrying cannot help.

    UNAUTHENTICATED, like a refused cluster key, so cluster formation stops at once when every server refuses.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(grpc.StatusCode.UNAUTHENTICATED, grpc.aio.Metadata(), grpc.aio.Metadata(), reason, reason)
