"""The TLS keys of a job (tlsNoVerifyPeer, tlsCertificateFile, tlsCertificateKeyFile, tlsRootCAsFile) as an SSL context.

Certificates are read when a context is built, and a file that cannot be used fails the execution
with a message naming the key. `stamp()` says whether the files changed since, so that a rotated
certificate is picked up by a new client instead of being ignored until the plugin restarts.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from horae_plugins.http.errors import config_error


@dataclass(frozen=True)
class TlsSettings:
    no_verify_peer: bool = False
    certificate_file: str = ""
    certificate_key_file: str = ""
    root_cas_file: str = ""

    def files(self) -> tuple[str, ...]:
        return tuple(path for path in (self.certificate_file, self.certificate_key_file, self.root_cas_file) if path)


def stamp(settings: TlsSettings) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of each file the settings name; a missing file stamps as (path, -1, -1)."""
    stamps = []
    for path in settings.files():
        try:
            status = os.stat(path)
            stamps.append((path, status.st_mtime_ns, status.st_size))
        except OSError:
            stamps.append((path, -1, -1))
    return tuple(stamps)


def build_ssl_context(settings: TlsSettings) -> ssl.SSLContext:
    """A client context for the settings: the system's CAs unless tlsRootCAsFile, a client certificate if given."""
    if settings.root_cas_file:
        try:
            # With a cafile, only that file's CAs are trusted, as Go's tls.Config.RootCAs.
            context = ssl.create_default_context(cafile=settings.root_cas_file)
        except FileNotFoundError:
            raise config_error(f"tlsRootCAsFile {settings.root_cas_file}: no such file") from None
        except (OSError, ssl.SSLError) as error:
            raise config_error(
                f"tlsRootCAsFile {settings.root_cas_file}: no PEM CA certificates could be read from it ({_why(error)})"
            ) from None
    else:
        context = ssl.create_default_context()
    if settings.certificate_key_file and not settings.certificate_file:
        raise config_error("tlsCertificateKeyFile is set without tlsCertificateFile: set both, or neither")
    if settings.certificate_file:
        _load_client_certificate(context, settings)
    if settings.no_verify_peer:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _load_client_certificate(context: ssl.SSLContext, settings: TlsSettings) -> None:
    for key, path in (
        ("tlsCertificateFile", settings.certificate_file),
        ("tlsCertificateKeyFile", settings.certificate_key_file),
    ):
        if path and not os.path.isfile(path):
            raise config_error(f"{key} {path}: no such file")
    try:
        # A password callback that gives none: an encrypted key fails here instead of prompting on a terminal.
        context.load_cert_chain(settings.certificate_file, settings.certificate_key_file or None, password=lambda: b"")
    except (OSError, ssl.SSLError) as error:
        key_file = settings.certificate_key_file or settings.certificate_file
        raise config_error(
            f"tlsCertificateFile {settings.certificate_file} with tlsCertificateKeyFile {key_file}: not a PEM "
            f"certificate and its unencrypted private key ({_why(error)})"
        ) from None


def _why(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return error.reason.replace("_", " ").lower()
    return getattr(error, "strerror", None) or str(error)
