"""AutoMTLS certificates: one fresh P-256 key and self-signed certificate per process.

go-plugin makes P-521 certificates, which grpcio's TLS refuses; horae's host and SDK use P-256
(PLUGIN_PROTOCOL.md §1). The same certificate serves as server and client certificate.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The name both sides put in the certificate and check: the plugin is always local.
TLS_SERVER_NAME = "localhost"


@dataclass(frozen=True)
class Certificate:
    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes

    @property
    def handshake_field(self) -> str:
        """The certificate as go-plugin puts it on the handshake line: base64 DER, no padding."""
        return base64.b64encode(self.cert_der).decode().rstrip("=")


def generate_certificate() -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_SERVER_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(TLS_SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        cert_der=cert.public_bytes(serialization.Encoding.DER),
    )


def pem_from_handshake_field(field: str) -> bytes:
    """Turn a handshake line's certificate field (base64 DER, maybe unpadded) into PEM."""
    der = base64.b64decode(field + "=" * (-len(field) % 4))
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
