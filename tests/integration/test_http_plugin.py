"""The built-in http executor, run as a real plugin process against real local HTTP and HTTPS servers.

Dkron's keys (method, url, headers, body, timeout, expectCode, expectBody, debug, tls*), failures
that name the URL and the reason, pooled keep-alive connections per TLS setting, cancellation,
and horae-conformance with its echo/sleep/flood configs pointed at a local server.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from horae.host.supervisor import PluginHost
from tests.pki import Pki, issue, make_pki
from tests.support import REPO_ROOT, async_wait_until, builtin_spec

FLOOD_BYTES = 10 * 1024 * 1024 + 64 * 1024
DEFAULT_OUTPUT_LIMIT = 256 * 1024
CONFORMANCE_CLI = Path(sys.executable).with_name("horae-conformance")


# --- a real server --------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """Routes: /echo, /inspect (the request as JSON), /status/<code>, /hang, /flood, /redirect."""

    protocol_version = "HTTP/1.1"  # keep-alive
    server: LocalServer

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.route()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def route(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.requests += 1
        path = self.path.split("?")[0]
        if path == "/echo":
            self.reply(200, b"horae-conformance\n")
        elif path == "/inspect":
            peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            client_cn = dict(item[0] for item in peer["subject"])["commonName"] if peer else None
            report = {
                "method": self.command,
                "path": self.path,
                "headers": [[name, value] for name, value in self.headers.items()],
                "body": body.decode(),
                "client_cn": client_cn,
            }
            self.reply(200, json.dumps(report).encode(), "application/json")
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self.reply(code, f"status {code}: all good\n".encode())
        elif path == "/hang":
            self.hang()
        elif path == "/flood":
            self.send_response(200)
            self.send_header("Content-Length", str(FLOOD_BYTES))
            self.end_headers()
            line = b"x" * 1023 + b"\n"
            for _ in range(FLOOD_BYTES // len(line)):
                self.wfile.write(line)
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/echo")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.reply(404, b"no such route\n")

    def reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def hang(self) -> None:
        """Never answer; note when the client closes the connection (the executor gave up or was cancelled)."""
        with self.server.lock:
            self.server.hanging += 1
        while not self.server.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:
                try:
                    closed = not self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    closed = True
                if closed:
                    with self.server.lock:
                        self.server.abandoned += 1
                    self.close_connection = True
                    return
        self.close_connection = True


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs when 32 clients connect at once

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.connections = 0  # TCP connections accepted
        self.requests = 0
        self.hanging = 0  # /hang requests received
        self.abandoned = 0  # /hang requests whose client closed the connection
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.scheme = "https" if context is not None else "http"
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_port}{path}"

    def handle_error(self, request, client_address) -> None:
        pass  # failed TLS handshakes are part of the tests

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


# --- certificates -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def server_context(pki: Pki, *, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=pki.ca)
    return context


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LocalServer]:
    running = LocalServer()
    yield running
    running.stop()


@pytest.fixture
def https_server(pki) -> Iterator[LocalServer]:
    running = LocalServer(server_context(pki))
    yield running
    running.stop()


@pytest.fixture
def mtls_server(pki) -> Iterator[LocalServer]:
    running = LocalServer(server_context(pki, require_client_cert=True))
    yield running
    running.stop()


@pytest.fixture
async def host():
    async with PluginHost([builtin_spec("http")]) as plugin_host:
        yield plugin_host


def get(url: str, **keys: str) -> dict[str, str]:
    return {"method": "GET", "url": url, **keys}


def inspected(outcome) -> dict:
    assert outcome.success, outcome
    return json.loads(outcome.output)


# --- requests and responses -------------------------------------------------------------------


async def test_get_returns_the_response_body(host, server):
    outcome = await host.execute("http", "ping", get(server.url("/echo")))
    assert outcome.success, outcome
    assert (outcome.output, outcome.error, outcome.exit_code) == (b"horae-conformance\n", "", 0)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_method_and_body_reach_the_server(host, server, method):
    config = {"method": method, "url": server.url("/inspect?x=1"), "body": '{"name": "café"}'}
    report = inspected(await host.execute("http", "send", config))
    assert (report["method"], report["path"], report["body"]) == (method, "/inspect?x=1", '{"name": "café"}')


async def test_headers_keep_colons_in_their_values_and_a_later_one_replaces(host, server):
    headers = [
        "Authorization: Basic dXNlcjpwYXNz:with:colons",
        "X-Target: http://example.com:8080/path",
        "X-Name: café",
        "Content-Type: text/plain",
        "content-type: application/json",
        "",
    ]
    report = inspected(await host.execute("http", "h", get(server.url("/inspect"), headers=json.dumps(headers))))
    sent = {name.lower(): value for name, value in report["headers"]}
    assert sent["authorization"] == "Basic dXNlcjpwYXNz:with:colons"
    assert sent["x-target"] == "http://example.com:8080/path"
    assert sent["x-name"] == "café".encode().decode("latin-1")  # UTF-8 on the wire, as Go sends it
    assert sent["content-type"] == "application/json"
    assert [name.lower() for name, _ in report["headers"]].count("content-type") == 1


async def test_redirects_are_followed(host, server):
    outcome = await host.execute("http", "r", get(server.url("/redirect"), expectCode="200"))
    assert outcome.success, outcome
    assert outcome.output == b"horae-conformance\n"


async def test_expect_code(host, server):
    accepted = await host.execute("http", "c", get(server.url("/status/206"), expectCode="200, 206"))
    assert accepted.success, accepted

    url = server.url("/status/500")
    refused = await host.execute("http", "c", get(url, expectCode="200,206"))
    assert not refused.success
    assert refused.error == (f'Get "{url}": received response code 500 does not match the expected code 200,206')
    assert refused.output == b"status 500: all good\n"  # the body is kept, as Dkron

    # As Dkron: without expectCode any response code succeeds.
    anything = await host.execute("http", "c", get(url))
    assert anything.success, anything


async def test_expect_body(host, server):
    matched = await host.execute("http", "b", get(server.url("/status/200"), expectBody=r"all\s+go+d"))
    assert matched.success, matched

    url = server.url("/status/200")
    missed = await host.execute("http", "b", get(url, expectBody="^failure"))
    assert not missed.success
    assert missed.error == f"Get \"{url}\": received response body did not match the expected body '^failure'"
    assert missed.output == b"status 200: all good\n"


async def test_debug_shows_the_request_and_response_heads_and_masks_credentials(host, server):
    config = {
        "method": "POST",
        "url": server.url("/status/201"),
        "headers": '["Authorization: Bearer s3cr3t", "X-Trace: abc"]',
        "body": "payload",
        "debug": "true",
    }
    outcome = await host.execute("http", "d", config)
    assert outcome.success, outcome
    text = outcome.output.decode()
    assert text.startswith(f"* POST {server.url('/status/201')}, timeout 30s\n> POST /status/201 HTTP/1.1\n")
    assert "> X-Trace: abc\n" in text
    assert "> Authorization: Bearer <masked>\n" in text
    assert "s3cr3t" not in text
    assert "> payload\n" in text
    assert "< HTTP/1.1 201 Created\n" in text
    assert text.endswith("<\nstatus 201: all good\n")

    # debug off: the body alone, as without the key ("false" turns it off).
    quiet = await host.execute("http", "d", {**config, "debug": "false"})
    assert quiet.output == b"status 201: all good\n"


async def test_a_large_body_streams_live_and_the_result_keeps_its_tail(host, server):
    received = bytearray()
    outcome = await host.execute(
        "http", "big", get(server.url("/flood")), on_output=lambda chunk, stderr: received.extend(chunk)
    )
    assert outcome.success, outcome.error
    assert len(received) == FLOOD_BYTES
    assert len(outcome.output) == DEFAULT_OUTPUT_LIMIT
    assert outcome.output.endswith(b"x\n")


# --- failures ---------------------------------------------------------------------------------


async def test_a_hanging_server_fails_within_the_timeout_and_the_connection_is_closed(host, server):
    url = server.url("/hang")
    started = time.monotonic()
    outcome = await host.execute("http", "slow", get(url, timeout="1"))
    elapsed = time.monotonic() - started
    assert not outcome.success
    assert outcome.error == f'Get "{url}": timed out after 1s (the timeout key) while awaiting headers'
    assert 0.9 <= elapsed < 5, elapsed
    await async_wait_until(lambda: server.abandoned == 1, timeout=5, what="the server to see the connection closed")


async def test_cancelling_the_call_stops_the_request_promptly(host, server):
    call = asyncio.create_task(host.execute("http", "cancel-me", get(server.url("/hang"), timeout="60")))
    await async_wait_until(lambda: server.hanging == 1, timeout=10, what="the request to reach the server")
    cancelled = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # The plugin dropped the connection at once, not when its 60 s timeout ran out.
    await async_wait_until(lambda: server.abandoned == 1, timeout=3, what="the server to see the connection closed")
    assert time.monotonic() - cancelled < 3
    after = await host.execute("http", "next", get(server.url("/echo")))
    assert after.success, after


async def test_the_job_timeout_wins_when_shorter(host, server):
    started = time.monotonic()
    outcome = await host.execute("http", "job-timeout", get(server.url("/hang"), timeout="60"), timeout=1)
    assert not outcome.success
    assert time.monotonic() - started < 5
    assert "timed out after 1s" in outcome.error
    await async_wait_until(lambda: server.abandoned == 1, timeout=5, what="the server to see the connection closed")


async def test_connection_refused_names_the_url_and_the_reason(host):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/jobs"
    outcome = await host.execute("http", "down", {"method": "POST", "url": url, "body": "x"})
    assert not outcome.success
    assert outcome.error == f'Post "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'
    # The plugin keeps serving.
    assert (await host.execute("http", "down", {"method": "POST", "url": url})).error == outcome.error


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"headers": "[Content-Type: text/plain]"}, "http: headers is not valid JSON"),
        ({"headers": '{"Accept": "text/plain"}'}, 'http: headers must be a JSON array of "Name: value" strings'),
        ({"headers": '["no colon here"]'}, "http: headers entry 'no colon here' is not \"Name: value\""),
        ({"expectBody": "(unclosed"}, "http: expectBody '(unclosed' is not a valid regular expression"),
        ({"timeout": "ten"}, "http: timeout 'ten' is not a number of seconds"),
        ({"timeout": "30s"}, "http: timeout '30s' is not a number of seconds"),
        ({"expectCode": "200,OK"}, "http: expectCode item 'OK' is not a response code"),
        ({"tlsNoVerifyPeer": "sure"}, 'http: tlsNoVerifyPeer must be "true" or "false", not \'sure\''),
        ({"method": ""}, "http: method is empty"),
        ({"method": "GET /"}, "http: method 'GET /' is not an HTTP method"),
        ({"url": "ftp://127.0.0.1/"}, "http: url 'ftp://127.0.0.1/' is not an http:// or https:// URL"),
        ({"url": ""}, "http: url is empty"),
    ],
)
async def test_bad_config_fails_naming_the_key_and_sends_nothing(host, server, keys, message):
    outcome = await host.execute("http", "bad", {**get(server.url("/echo")), **keys})
    assert not outcome.success
    assert outcome.error.startswith(message), outcome.error
    assert server.requests == 0


async def test_describe_serves_the_schema(host):
    description = host.plugin("executor", "http").description
    assert description is not None
    schema = json.loads(description.config_schema_json)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "method",
        "url",
        "headers",
        "body",
        "timeout",
        "expectCode",
        "expectBody",
        "debug",
        "tlsNoVerifyPeer",
        "tlsCertificateFile",
        "tlsCertificateKeyFile",
        "tlsRootCAsFile",
    }


# --- TLS --------------------------------------------------------------------------------------


async def test_https_with_tls_root_cas_file(host, https_server, pki):
    outcome = await host.execute("http", "tls", get(https_server.url("/echo"), tlsRootCAsFile=str(pki.ca)))
    assert outcome.success, outcome
    assert outcome.output == b"horae-conformance\n"


async def test_an_untrusted_certificate_fails_clearly(host, https_server):
    url = https_server.url("/echo")
    outcome = await host.execute("http", "tls", get(url))
    assert not outcome.success
    assert outcome.error.startswith(f'Get "{url}": tls: failed to verify certificate: unable to get local issuer')
    assert "tlsRootCAsFile" in outcome.error


async def test_tls_no_verify_peer_accepts_an_untrusted_certificate(host, https_server):
    outcome = await host.execute("http", "tls", get(https_server.url("/echo"), tlsNoVerifyPeer="true"))
    assert outcome.success, outcome


async def test_mutual_tls_sends_the_client_certificate(host, mtls_server, pki):
    keys = {
        "tlsRootCAsFile": str(pki.ca),
        "tlsCertificateFile": str(pki.client_cert),
        "tlsCertificateKeyFile": str(pki.client_key),
    }
    report = inspected(await host.execute("http", "mtls", get(mtls_server.url("/inspect"), **keys)))
    assert report["client_cn"] == "horae-client"
    # A certificate file that holds the key too needs no key file.
    combined = {"tlsRootCAsFile": str(pki.ca), "tlsCertificateFile": str(pki.client_combined)}
    report = inspected(await host.execute("http", "mtls", get(mtls_server.url("/inspect"), **combined)))
    assert report["client_cn"] == "horae-client"


async def test_mutual_tls_without_a_client_certificate_fails_clearly(host, mtls_server, pki):
    url = mtls_server.url("/inspect")
    outcome = await host.execute("http", "mtls", get(url, tlsRootCAsFile=str(pki.ca)))
    assert not outcome.success
    assert outcome.error.startswith(f'Get "{url}": ')
    # TLS 1.3: the server's alert may arrive as such, or as a broken connection while sending.
    assert "certificate required" in outcome.error or "require a client certificate" in outcome.error, outcome.error


async def test_unusable_tls_files_name_their_key(host, https_server, pki, tmp_path):
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    url = https_server.url("/echo")
    cases = [
        (
            {"tlsRootCAsFile": str(tmp_path / "missing.pem")},
            f"http: tlsRootCAsFile {tmp_path / 'missing.pem'}: no such",
        ),
        ({"tlsRootCAsFile": str(not_pem)}, f"http: tlsRootCAsFile {not_pem}: no PEM CA certificates"),
        ({"tlsCertificateFile": str(not_pem)}, f"http: tlsCertificateFile {not_pem} with tlsCertificateKeyFile"),
        (
            {"tlsCertificateKeyFile": str(pki.client_key)},
            "http: tlsCertificateKeyFile is set without tlsCertificateFile",
        ),
        (
            {"tlsCertificateFile": str(pki.client_cert), "tlsCertificateKeyFile": str(pki.server_key)},
            f"http: tlsCertificateFile {pki.client_cert} with tlsCertificateKeyFile {pki.server_key}: not a PEM",
        ),
    ]
    for keys, message in cases:
        outcome = await host.execute("http", "tls", get(url, **keys))
        assert not outcome.success
        assert outcome.error.startswith(message), (keys, outcome.error)
    assert https_server.requests == 0


async def test_a_rewritten_ca_file_is_read_again(host, https_server, pki, tmp_path):
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = issue("another CA", other_key, "another CA", other_key, ca=True)
    ca_file = tmp_path / "rotating-ca.pem"
    ca_file.write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    config = get(https_server.url("/echo"), tlsRootCAsFile=str(ca_file))
    refused = await host.execute("http", "rotate", config)
    assert "tls: failed to verify certificate" in refused.error, refused
    # The operator puts the right CA in place: the next execution uses it, without a plugin restart.
    ca_file.write_bytes(pki.ca.read_bytes())
    accepted = await host.execute("http", "rotate", config)
    assert accepted.success, accepted


# --- pooling ----------------------------------------------------------------------------------


async def test_sequential_executions_reuse_one_connection(host, server):
    for _ in range(5):
        outcome = await host.execute("http", "pooled", get(server.url("/echo")))
        assert outcome.success, outcome
    assert (server.requests, server.connections) == (5, 1)


async def test_one_pool_per_tls_setting(host, https_server, pki):
    trusted = get(https_server.url("/echo"), tlsRootCAsFile=str(pki.ca))
    unverified = get(https_server.url("/echo"), tlsNoVerifyPeer="true")
    for config in (trusted, unverified, trusted, unverified, trusted):
        outcome = await host.execute("http", "pools", config)
        assert outcome.success, outcome
    # Two TLS settings, two clients, each with one connection kept alive.
    assert (https_server.requests, https_server.connections) == (5, 2)


async def test_concurrent_executions_all_succeed(host, server):
    outcomes = await asyncio.gather(
        *(host.execute("http", f"many-{n}", get(server.url(f"/inspect?n={n}"))) for n in range(32))
    )
    assert [inspected(outcome)["path"] for outcome in outcomes] == [f"/inspect?n={n}" for n in range(32)]
    assert server.connections <= 32


# --- conformance ------------------------------------------------------------------------------


def test_horae_conformance_passes_with_configs_for_a_local_server(server):
    """The http executor cannot name a server in Describe: the configs come from the command line."""
    cli = [str(CONFORMANCE_CLI)] if CONFORMANCE_CLI.exists() else [sys.executable, "-m", "horae_conformance"]
    configs = {
        "--echo-config": get(server.url("/echo")),
        "--sleep-config": get(server.url("/hang"), timeout="60"),
        "--flood-config": get(server.url("/flood")),
    }
    arguments = [item for flag, config in configs.items() for item in (flag, json.dumps(config))]
    done = subprocess.run(
        [*cli, "executor", "--plugin", "http", "--strict", "--json", *arguments],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    failed = {row["case"]: row["reason"] for row in report["results"] if row["result"] != "passed"}
    assert not failed, failed
    assert done.returncode == 0
    cases = {row["case"] for row in report["results"]}
    assert {
        "Execute returns the output",
        "16 concurrent calls",
        "a cancelled call ends, the plugin keeps serving",
    } <= cases
    assert "10 MiB of output neither crashes nor blocks" in cases
    # The cancelled sleep call really dropped its request.
    assert server.abandoned >= 1
