"""How the http executor words a failure: bad config naming its key, and network errors as Go words them.

Dkron's messages come from Go's net/http (`Get "https://…": dial tcp 10.0.0.1:443: connect:
connection refused`), so failures read the same way here: the operation and the URL, then the
reason found in the exception chain (the OS error, the TLS alert, the certificate problem).
"""

from __future__ import annotations

import os
import socket
import ssl
from urllib.parse import urlsplit

import httpx

from horae_sdk import ExecutionError


def config_error(message: str) -> ExecutionError:
    """A bad executor_config value: the message names the key and says how to fix it."""
    return ExecutionError(f"http: {message}", exit_code=1)


def operation(method: str, url: str) -> str:
    """Go's url.Error prefix: `Get "http://…"` (the method with only its first letter in capitals)."""
    return f'{method[:1].upper()}{method[1:].lower()} "{url}"'


def explain(error: BaseException, url: str) -> str:
    """What went wrong on the way to `url`, in a few words; the TLS or OS cause when there is one."""
    if isinstance(error, httpx.TooManyRedirects):
        return f"stopped after too many redirects ({error})"
    verify = _find(error, ssl.SSLCertVerificationError)
    if verify is not None:
        return (
            f"tls: failed to verify certificate: {verify.verify_message or verify.reason or verify} "
            "(set tlsRootCAsFile to the CA that signed it, or tlsNoVerifyPeer to true)"
        )
    tls = _find(error, ssl.SSLError)
    if tls is not None:
        return f"tls: {tls.reason or tls.strerror or tls}".replace("_", " ").lower()
    lookup = _find(error, socket.gaierror)
    if lookup is not None:
        return f"dial tcp: lookup {urlsplit(url).hostname}: {lookup.strerror or lookup}"
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        system = _find(error, OSError, with_errno=True)
        reason = os.strerror(system.errno).lower() if system is not None and system.errno else str(error)
        return f"dial tcp {_host_port(url)}: connect: {reason}"
    if isinstance(error, httpx.RemoteProtocolError):
        return f"the server broke the connection: {error}"
    if isinstance(error, httpx.DecodingError):
        return f"cannot decode the response body: {error}"
    if isinstance(error, httpx.TransportError):
        system = _find(error, OSError, with_errno=True)
        if system is not None and system.errno:
            return f"connection error: {os.strerror(system.errno).lower()}"
        return f"connection error: {error or type(error).__name__}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _find(error: BaseException, kind: type, with_errno: bool = False):
    """The first exception of `kind` in `error`'s chain of causes, or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kind) and (not with_errno or getattr(current, "errno", None)):
            return current
        current = current.__cause__ or current.__context__
    return None


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    host = parts.hostname or ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
