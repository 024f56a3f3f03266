"""The http executor: Dkron's `http` executor as a horae plugin.

It sends the job's request with a pooled client for the job's TLS settings, streams the response
body as the execution's output (live, and its tail as the result, as Dkron returns the body), and
fails the execution when the exchange fails or times out, or when the response code or body is
not what `expectCode` / `expectBody` expect. Every failure names the method, the URL and the reason.

horae-conformance needs a server to call, which no config can name in advance: the plugin offers
no conformance configs, and its echo/sleep/flood configs are given on the command line against a
local server (tests/integration/test_http_plugin.py does exactly that).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from horae_plugins.http import debug
from horae_plugins.http.clients import ClientPool
from horae_plugins.http.config import CONFIG_SCHEMA, HttpConfig, parse_config
from horae_plugins.http.errors import explain, operation
from horae_plugins.http.sockets import Abort, aborted_by
from horae_sdk import ExecutionError, Executor, OutputStream

log = logging.getLogger("horae_plugins.http")

# With expectBody the whole body is matched, as Dkron; past this size it cannot be.
MAX_MATCHED_BODY = 64 * 1024 * 1024


class HttpExecutor(Executor):
    name = "http"
    version = "1.0.0"
    config_schema: dict[str, Any] = CONFIG_SCHEMA

    def __init__(self) -> None:
        self._clients = ClientPool()

    def execute(self, job_name: str, config: dict[str, str], stream: OutputStream) -> None:
        """Send the request in this worker thread; the output is the body, as it arrives."""
        settings = parse_config(config)
        unknown = sorted(set(config) - set(CONFIG_SCHEMA["properties"]))
        if unknown:
            log.warning("job %s: ignoring unknown executor_config key(s) %s", job_name, ", ".join(unknown))
        client = self._clients.client_for(settings.tls)
        what = operation(settings.method, settings.url)
        # Values go out as UTF-8 bytes, as Go sends a string (httpx would refuse anything but ASCII).
        headers = [(name.encode("ascii"), value.encode()) for name, value in settings.headers]
        try:
            request = client.build_request(
                settings.method, settings.url, headers=headers, content=settings.body or None
            )
        except Exception as error:  # httpx.InvalidURL, UnsupportedProtocol…: what parse_url could not tell
            raise ExecutionError(f"http: url {settings.url!r} cannot be requested: {error}") from None
        if settings.debug:
            stream.write(debug.request_lines(request, settings.timeout, _tls_lines(settings)))
        if stream.cancelled.is_set():
            raise ExecutionError(f"{what}: cancelled before it was sent")

        started = time.monotonic()
        abort = Abort(started + settings.timeout if settings.timeout else None)
        stream.on_cancel(abort.cancel)
        response: httpx.Response | None = None
        matched_body = bytearray() if settings.expect_body is not None else None
        try:
            with aborted_by(abort):
                response = client.send(request, stream=True)
                try:
                    if settings.debug:
                        stream.write(debug.response_lines(response))
                    for chunk in response.iter_bytes():
                        stream.write(chunk)
                        if matched_body is not None:
                            matched_body += chunk
                            if len(matched_body) > MAX_MATCHED_BODY:
                                raise ExecutionError(
                                    f"{what}: the response body is larger than {MAX_MATCHED_BODY >> 20} MiB, "
                                    "too large to match expectBody against"
                                )
                finally:
                    response.close()
        except ExecutionError:
            raise
        except Exception as error:  # httpx's errors, with the TLS or socket error that caused them
            raise ExecutionError(f"{what}: {_failure(settings, abort, error, response)}") from None
        _check_response(settings, what, response, matched_body)
        if settings.debug:
            log.info(
                "job %s: %s -> %d in %.0f ms",
                job_name,
                what,
                response.status_code,
                (time.monotonic() - started) * 1000,
            )


def _check_response(settings: HttpConfig, what: str, response: httpx.Response, body: bytearray | None) -> None:
    """ExecutionError when the response code or body is not what the job expects (Dkron checks the code first)."""
    if settings.expect_codes and response.status_code not in settings.expect_codes:
        raise ExecutionError(
            f"{what}: received response code {response.status_code} does not match the expected code "
            f"{settings.expect_code_text}"
        )
    pattern = settings.expect_body
    if pattern is not None and body is not None and not pattern.search(body.decode(errors="replace")):
        raise ExecutionError(f"{what}: received response body did not match the expected body {pattern.pattern!r}")


def _failure(settings: HttpConfig, abort: Abort, error: Exception, response: httpx.Response | None) -> str:
    """Why the exchange failed: cancelled, timed out (and while doing what), or what went wrong on the way."""
    if abort.cancelled:
        return "cancelled"
    if isinstance(error, httpx.TimeoutException) or abort.timed_out():
        doing = "connecting" if isinstance(error, httpx.ConnectTimeout) else "awaiting headers"
        if response is not None:
            doing = "reading the body"
        return f"timed out after {settings.timeout:g}s (the timeout key) while {doing}"
    reason = explain(error, settings.url)
    if response is None and _maybe_a_missing_client_certificate(settings, error):
        reason += (
            " (the server closed the TLS connection before answering: does it require a client "
            "certificate? set tlsCertificateFile and tlsCertificateKeyFile)"
        )
    return reason


def _maybe_a_missing_client_certificate(settings: HttpConfig, error: Exception) -> bool:
    """With TLS 1.3 a server that wants a client certificate says so after the handshake, and the
    client often sees only a broken pipe or a closed connection while it sends the request."""
    return (
        settings.url.lower().startswith("https")
        and not settings.tls.certificate_file
        and isinstance(error, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError)
        and "certificate" not in str(error)
    )


def _tls_lines(settings: HttpConfig) -> list[str]:
    if not settings.url.lower().startswith("https"):
        return []
    tls = settings.tls
    return [
        "TLS: "
        + ", ".join(
            [
                "peer NOT verified (tlsNoVerifyPeer)" if tls.no_verify_peer else "peer verified",
                f"root CAs {tls.root_cas_file}" if tls.root_cas_file else "system root CAs",
                f"client certificate {tls.certificate_file}" if tls.certificate_file else "no client certificate",
            ]
        )
    ]
