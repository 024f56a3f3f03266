"""The built-in nats executor as a real plugin process, against real nats-server processes.

Messages are checked at a real subscriber; failures (refused, wrong credentials, a hung or killed
server) against private nats-servers on ephemeral ports, so the machine's server stays untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nats
import psutil
import pytest

from horae.host.supervisor import PluginHost
from tests.brokers import NatsServer, SilentListener, free_port, require_nats
from tests.support import REPO_ROOT, async_wait_until, builtin_spec

DKRON_KEYS = {"url", "subject", "message", "userName", "password", "debug"}
CONSOLE_SCRIPT = Path(sys.executable).with_name("horae-conformance")
CONFORMANCE = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "horae_conformance"]


@pytest.fixture
def nats_url() -> str:
    return require_nats()


@pytest.fixture
async def host():
    async with PluginHost([builtin_spec("nats")]) as plugin_host:
        yield plugin_host


class Subscriber:
    """A real NATS subscriber collecting what arrives on one subject."""

    def __init__(self) -> None:
        self.messages: list[nats.aio.msg.Msg] = []

    async def start(self, url: str, subject: str, **credentials: str) -> Subscriber:
        self.client = await nats.connect(url, **credentials)
        await self.client.subscribe(subject, cb=self._received)
        await self.client.flush()  # the server has the subscription before anything is published
        return self

    async def _received(self, message) -> None:
        self.messages.append(message)

    async def wait_for(self, count: int) -> list:
        await async_wait_until(lambda: len(self.messages) >= count, timeout=10, what=f"{count} message(s)")
        return self.messages

    async def close(self) -> None:
        await self.client.close()


def unique_subject(name: str) -> str:
    return f"horae.test.{name}.{uuid.uuid4().hex[:12]}"


def plugin_connections(host: PluginHost, port: int) -> list:
    """The plugin process's established TCP connections to `port` on the loopback."""
    (status,) = host.statuses()
    assert status.pid
    return [
        connection
        for connection in psutil.Process(status.pid).net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == port and connection.status == psutil.CONN_ESTABLISHED
    ]


async def test_the_message_reaches_a_subscriber(host, nats_url):
    subject = unique_subject("publish")
    subscriber = await Subscriber().start(nats_url, subject)
    try:
        config = {"url": nats_url, "subject": subject, "message": '{"report": "daily"}'}
        outcome = await host.execute("nats", "publish", config)
        assert outcome.success, outcome
        (message,) = await subscriber.wait_for(1)
        assert (message.subject, message.data) == (subject, b'{"report": "daily"}')
        # Dkron's line, then where it went.
        assert outcome.output.decode().splitlines() == [
            "Result: Message successfully sent",
            f"subject {subject}, 19 bytes, server {nats_url}",
        ]
    finally:
        await subscriber.close()


async def test_an_empty_message_and_a_url_without_scheme_work(host, nats_url):
    subject = unique_subject("empty")
    subscriber = await Subscriber().start(nats_url, subject)
    try:
        outcome = await host.execute("nats", "empty", {"url": "127.0.0.1:4222", "subject": subject})
        assert outcome.success, outcome
        (message,) = await subscriber.wait_for(1)
        assert message.data == b""
    finally:
        await subscriber.close()


async def test_debug_logs_the_config_without_the_password_and_the_publish(host, nats_url, caplog):
    caplog.set_level(logging.INFO, logger="horae.plugin.nats")
    subject = unique_subject("debug")
    config = {
        "url": nats_url,
        "subject": subject,
        "message": "hi",
        "userName": "u",
        "password": "pw-5ecret",
        "debug": "1",
    }
    outcome = await host.execute("nats", "dbg", config)
    assert outcome.success, outcome

    def plugin_lines() -> list[str]:
        return [record.getMessage() for record in caplog.records if record.name == "horae.plugin.nats"]

    published = f"job dbg: published 2 bytes on {subject} to {nats_url}"
    await async_wait_until(lambda: any(published in line for line in plugin_lines()), what="the publish log line")
    (config_line,) = [line for line in plugin_lines() if "job dbg: config" in line]
    assert "'password': '***'" in config_line
    assert not [line for line in plugin_lines() if "pw-5ecret" in line]


async def test_concurrent_executions_share_one_connection_and_all_arrive(host, nats_url):
    subject = unique_subject("concurrent")
    subscriber = await Subscriber().start(nats_url, subject)
    try:
        configs = [{"url": nats_url, "subject": subject, "message": f"n{number}"} for number in range(32)]
        outcomes = await asyncio.gather(*(host.execute("nats", "many", config) for config in configs))
        assert all(outcome.success for outcome in outcomes), [o.error for o in outcomes if not o.success]
        messages = await subscriber.wait_for(32)
        assert sorted(message.data for message in messages) == sorted(f"n{n}".encode() for n in range(32))
        assert len(plugin_connections(host, 4222)) == 1
    finally:
        await subscriber.close()


async def test_a_refused_port_fails_naming_the_server_and_the_plugin_keeps_serving(host, nats_url):
    port = free_port()
    started = time.monotonic()
    outcome = await host.execute("nats", "refused", {"url": f"nats://127.0.0.1:{port}", "subject": "x"})
    assert time.monotonic() - started < 5
    assert not outcome.success
    assert outcome.error == f"nats: cannot connect to nats://127.0.0.1:{port}: connection refused"

    subject = unique_subject("after-refused")
    subscriber = await Subscriber().start(nats_url, subject)
    try:
        outcome = await host.execute("nats", "after", {"url": nats_url, "subject": subject, "message": "ok"})
        assert outcome.success, outcome
        await subscriber.wait_for(1)
    finally:
        await subscriber.close()


async def test_credentials_are_checked_and_never_shown(host):
    with NatsServer(user="bob", password="s3cret-pw") as server:
        subject = unique_subject("auth")
        base = {"url": server.url, "subject": subject, "message": "secured"}

        wrong = await host.execute("nats", "auth", {**base, "userName": "bob", "password": "wrong-pw"})
        assert wrong.error == (
            f"nats: {server.url} refused the credentials (Authorization Violation): check userName and password"
        )
        missing = await host.execute("nats", "auth", base)
        assert missing.error.endswith(
            "refused the credentials (Authorization Violation): it requires userName and password"
        )

        in_url = f"nats://bob:wrong-pw@127.0.0.1:{server.port}"
        outcome = await host.execute("nats", "auth", {**base, "url": in_url})
        assert f"nats://bob:***@127.0.0.1:{server.port} refused the credentials" in outcome.error
        assert "wrong-pw" not in outcome.error

        subscriber = await Subscriber().start(server.url, subject, user="bob", password="s3cret-pw")
        try:
            right = await host.execute("nats", "auth", {**base, "userName": "bob", "password": "s3cret-pw"})
            assert right.success, right
            (message,) = await subscriber.wait_for(1)
            assert message.data == b"secured"
        finally:
            await subscriber.close()


async def test_a_dropped_connection_is_replaced_once_the_server_is_back(host):
    server = NatsServer().start()
    try:
        config = {"url": server.url, "subject": unique_subject("restart"), "message": "before"}
        assert (await host.execute("nats", "restart", config)).success
        assert len(plugin_connections(host, server.port)) == 1

        server.kill()
        await async_wait_until(lambda: not plugin_connections(host, server.port), what="the dropped connection")
        down = await host.execute("nats", "restart", config)
        assert down.error == f"nats: cannot connect to {server.url}: connection refused"

        server.start()  # same port
        subscriber = await Subscriber().start(server.url, config["subject"])
        try:
            back = await host.execute("nats", "restart", {**config, "message": "after"})
            assert back.success, back
            (message,) = await subscriber.wait_for(1)
            assert message.data == b"after"
        finally:
            await subscriber.close()
    finally:
        server.stop()


async def test_a_hung_server_fails_within_the_timeout_key(host):
    with SilentListener() as listener:
        url = f"nats://127.0.0.1:{listener.port}"
        started = time.monotonic()
        outcome = await host.execute("nats", "hung", {"url": url, "subject": "x", "timeout": "500ms"})
        elapsed = time.monotonic() - started
    assert outcome.error == f"nats: timed out after 0.5s while connecting to {url}"
    assert 0.4 < elapsed < 3


async def test_the_jobs_timeout_cuts_the_executors_short_and_the_plugin_keeps_serving(host, nats_url):
    with SilentListener() as listener:
        started = time.monotonic()
        outcome = await host.execute(
            "nats", "hung", {"url": f"nats://127.0.0.1:{listener.port}", "subject": "x"}, timeout=0.5
        )
        assert time.monotonic() - started < 3  # not the executor's default 30 s
    assert not outcome.success
    assert "timed out after 0.5s" in outcome.error
    outcome = await host.execute("nats", "after", {"url": nats_url, "subject": unique_subject("after-timeout")})
    assert outcome.success, outcome


async def test_a_message_above_max_payload_fails_saying_so(host, nats_url):
    outcome = await host.execute("nats", "big", {"url": nats_url, "subject": "x", "message": "x" * (2 << 20)})
    assert outcome.error == (
        f"nats: the message is {2 << 20} bytes, above the max_payload of 1048576 bytes that {nats_url} accepts"
    )


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"subject": "x"}, "nats: url is empty: set executor_config.url"),
        ({"url": "nats://127.0.0.1:4222"}, "nats: subject is empty: set executor_config.subject"),
        ({"url": "nats://127.0.0.1:4222", "subject": "a b"}, "nats: subject 'a b' is not a valid NATS subject"),
        (
            {"url": "http://127.0.0.1:4222", "subject": "x"},
            "nats: url 'http://127.0.0.1:4222' is not a NATS server URL",
        ),
        ({"url": "nats://127.0.0.1:4222", "subject": "x", "timeout": "soon"}, "nats: timeout 'soon' is not a duration"),
        ({"url": "nats://127.0.0.1:4222", "subject": "x", "timeout": "0s"}, "nats: timeout '0s' must be above zero"),
    ],
)
async def test_bad_config_names_the_key(host, config, error):
    outcome = await host.execute("nats", "bad", config)
    assert not outcome.success
    assert outcome.error.startswith(error), outcome.error


async def test_describe_serves_dkrons_keys_and_the_timeout_extension(host):
    description = host.plugin("executor", "nats").description
    assert description is not None
    schema = json.loads(description.config_schema_json)
    assert set(schema["properties"]) == DKRON_KEYS | {"timeout"}
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"url", "subject"}


def test_horae_conformance_passes(nats_url):
    # The output names the subject: that is where the conformance marker shows.
    echo = {"url": nats_url, "subject": f"horae-conformance.{uuid.uuid4().hex[:12]}", "message": "x"}
    done = subprocess.run(
        [*CONFORMANCE, "--json", "executor", "--plugin", "nats", "--strict", "--echo-config", json.dumps(echo)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    report = json.loads(done.stdout)
    failed = {row["case"]: row["reason"] for row in report["results"] if row["result"] == "failed"}
    assert not failed, failed
    assert done.returncode == 0, done.stderr
    results = {row["case"]: row["result"] for row in report["results"]}
    assert results["Execute returns the output"] == "passed"
    assert results["16 concurrent calls"] == "passed"
