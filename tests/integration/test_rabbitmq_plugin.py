"""The built-in rabbitmq executor as a real plugin process, against the machine's real RabbitMQ.

Every message is consumed back from its queue with a real AMQP client (aio-pika); queue flags are
checked through the broker's own answers. Each test uses queues and exchanges of its own and deletes them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aio_pika
import aiormq.exceptions
import psutil
import pytest

from horae.host.supervisor import PluginHost
from tests.brokers import RABBITMQ_PORT, SilentListener, free_port, require_rabbitmq
from tests.support import REPO_ROOT, async_wait_until, builtin_spec

DKRON_KEYS = {
    "url",
    "exchange",
    "queue.name",
    "queue.create",
    "queue.durable",
    "queue.auto_delete",
    "queue.exclusive",
    "message.content_type",
    "message.delivery_mode",
    "message.messageId",
    "message.body",
    "message.base64Body",
}
ADDRESS = f"amqp://guest:***@127.0.0.1:{RABBITMQ_PORT}/"
CONSOLE_SCRIPT = Path(sys.executable).with_name("horae-conformance")
CONFORMANCE = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "horae_conformance"]


@pytest.fixture
async def host():
    async with PluginHost([builtin_spec("rabbitmq")]) as plugin_host:
        yield plugin_host


class Broker:
    """The test's own AMQP connection: makes unique queues and exchanges, reads messages, cleans up."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    async def open(self) -> Broker:
        self.connection = await aio_pika.connect(self.url)
        self.channel = await self.connection.channel()
        return self

    def name(self, what: str, delete: bool = True) -> str:
        """A unique name, deleted at the end of the test unless `delete` is false."""
        name = f"horae-test-{what}-{uuid.uuid4().hex[:12]}"
        if delete:
            (self.exchanges if what.startswith("exchange") else self.queues).append(name)
        return name

    async def queue(self, what: str = "queue") -> str:
        name = self.name(what)
        await self.channel.declare_queue(name)
        return name

    async def get(self, queue: str) -> aio_pika.abc.AbstractIncomingMessage:
        """The next message of `queue`, once it is there."""
        found: list = []

        async def arrived() -> bool:
            message = await self.channel.get_queue(queue, ensure=False)
            got = await message.get(no_ack=True, fail=False)
            if got is not None:
                found.append(got)
            return bool(found)

        await async_wait_until(arrived, timeout=10, what=f"a message on {queue}")
        return found[0]

    async def check(self, coroutine) -> aiormq.exceptions.AMQPError | None:
        """Run a declaration on a fresh channel; the broker's refusal, or None if it agreed."""
        channel = await self.connection.channel()
        try:
            await coroutine(channel)
        except aiormq.exceptions.ChannelClosed as error:
            return error
        await channel.close()
        return None

    async def close(self) -> None:
        channel = await self.connection.channel()
        for queue in self.queues:
            await channel.queue_delete(queue)
        for exchange in self.exchanges:
            await channel.exchange_delete(exchange)
        await self.connection.close()


@pytest.fixture
async def broker():
    opened = await Broker(require_rabbitmq()).open()
    yield opened
    await opened.close()


def plugin_connections(host: PluginHost, port: int = RABBITMQ_PORT) -> list:
    """The plugin process's established TCP connections to `port` on the loopback."""
    (status,) = host.statuses()
    assert status.pid
    return [
        connection
        for connection in psutil.Process(status.pid).net_connections(kind="tcp")
        if connection.raddr and connection.raddr.port == port and connection.status == psutil.CONN_ESTABLISHED
    ]


async def test_a_text_body_arrives_with_dkrons_defaults(host, broker):
    queue = await broker.queue()
    config = {"url": broker.url, "queue.name": queue, "message.body": '{"key":"value"}'}
    outcome = await host.execute("rabbitmq", "text", config)
    assert outcome.success, outcome
    assert outcome.output.decode() == (
        f"Result: message published to the default exchange with routing key {queue}, 15 bytes, "
        f"confirmed by {ADDRESS}\n"
    )
    message = await broker.get(queue)
    assert message.body == b'{"key":"value"}'
    assert message.content_type == "text/plain"  # Dkron's default
    # Transient, as Dkron's unset delivery mode is. aiormq gives every message an id when none is configured:
    # it matches a returned (unroutable) message to its publish by that id.
    assert message.delivery_mode == aio_pika.DeliveryMode.NOT_PERSISTENT
    assert message.message_id and len(message.message_id) == 32


async def test_a_base64_body_and_the_message_properties(host, broker):
    queue = await broker.queue()
    body = bytes(range(256))
    config = {
        "url": broker.url,
        "queue.name": queue,
        "message.base64Body": base64.b64encode(body).decode(),
        "message.content_type": "application/octet-stream",
        "message.delivery_mode": "2",
        "message.messageId": "4373732772",
    }
    outcome = await host.execute("rabbitmq", "binary", config)
    assert outcome.success, outcome
    message = await broker.get(queue)
    assert message.body == body
    assert message.content_type == "application/octet-stream"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.message_id == "4373732772"


async def test_queue_create_declares_it_with_the_flags_given(host, broker):
    durable = broker.name("durable")
    config = {"url": broker.url, "queue.create": "true", "message.body": "kept"}
    outcome = await host.execute("rabbitmq", "create", {**config, "queue.name": durable, "queue.durable": "true"})
    assert outcome.success, outcome
    assert (await broker.get(durable)).body == b"kept"
    # The broker compares a redeclaration with what the executor declared.
    assert await broker.check(lambda channel: channel.declare_queue(durable, durable=True)) is None
    refusal = await broker.check(lambda channel: channel.declare_queue(durable, durable=False))
    assert "inequivalent arg 'durable'" in str(refusal)

    auto_delete = broker.name("auto-delete")
    outcome = await host.execute(
        "rabbitmq", "create", {**config, "queue.name": auto_delete, "queue.auto_delete": "true"}
    )
    assert outcome.success, outcome
    assert await broker.check(lambda channel: channel.declare_queue(auto_delete, auto_delete=True)) is None
    refusal = await broker.check(lambda channel: channel.declare_queue(auto_delete, auto_delete=False))
    assert "inequivalent arg 'auto_delete'" in str(refusal)

    # Only the plugin's connection may delete it; the broker does when the plugin stops.
    exclusive = broker.name("exclusive", delete=False)
    outcome = await host.execute("rabbitmq", "create", {**config, "queue.name": exclusive, "queue.exclusive": "true"})
    assert outcome.success, outcome
    # Exclusive to the plugin's connection: the broker locks everyone else out of it.
    refusal = await broker.check(lambda channel: channel.declare_queue(exclusive, passive=True))
    assert isinstance(refusal, aiormq.exceptions.ChannelLockedResource), refusal
    assert "RESOURCE_LOCKED" in str(refusal)


async def test_a_queue_declared_with_other_flags_fails_with_the_brokers_words(host, broker):
    queue = await broker.queue()  # not durable
    config = {
        "url": broker.url,
        "queue.name": queue,
        "queue.create": "true",
        "queue.durable": "true",
        "message.body": "x",
    }
    outcome = await host.execute("rabbitmq", "conflict", config)
    assert outcome.error == (
        f"rabbitmq: {ADDRESS} refused the request: PRECONDITION_FAILED - inequivalent arg 'durable' for queue "
        f"'{queue}' in vhost '/': received 'true' but current is 'false'"
    )


async def test_publishing_to_an_exchange_routes_by_queue_name(host, broker):
    exchange = broker.name("exchange")
    queue = await broker.queue()
    declared = await broker.channel.declare_exchange(exchange, aio_pika.ExchangeType.DIRECT, auto_delete=False)
    await (await broker.channel.get_queue(queue)).bind(declared, routing_key=queue)
    config = {"url": broker.url, "exchange": exchange, "queue.name": queue, "message.body": "via exchange"}
    outcome = await host.execute("rabbitmq", "exchange", config)
    assert outcome.success, outcome
    assert f"to exchange '{exchange}' with routing key {queue}" in outcome.output.decode()
    assert (await broker.get(queue)).body == b"via exchange"

    # Dkron's README example names the default exchange `amq.default`, as RabbitMQ's HTTP API does.
    outcome = await host.execute(
        "rabbitmq", "exchange", {**config, "exchange": "amq.default", "message.body": "default"}
    )
    assert outcome.success, outcome
    assert (await broker.get(queue)).body == b"default"


async def test_an_unknown_exchange_or_an_unroutable_message_fails(host, broker):
    missing = broker.name("exchange-missing")
    config = {"url": broker.url, "queue.name": "anything", "message.body": "x"}
    outcome = await host.execute("rabbitmq", "missing", {**config, "exchange": missing})
    assert outcome.error == f"rabbitmq: {ADDRESS} refused the request: NOT_FOUND - no exchange '{missing}' in vhost '/'"

    nowhere = broker.name("no-queue")
    outcome = await host.execute("rabbitmq", "unroutable", {**config, "queue.name": nowhere})
    assert outcome.error.startswith("rabbitmq: the broker returned the message (312 NO_ROUTE): no queue is bound to")
    assert repr(nowhere) in outcome.error
    # As Dkron, when asked: the broker drops it and the execution succeeds.
    outcome = await host.execute("rabbitmq", "dropped", {**config, "queue.name": nowhere, "message.mandatory": "false"})
    assert outcome.success, outcome


async def test_concurrent_executions_share_one_connection(host, broker):
    queue = await broker.queue()
    configs = [{"url": broker.url, "queue.name": queue, "message.body": f"n{n}"} for n in range(24)]
    outcomes = await asyncio.gather(*(host.execute("rabbitmq", "many", config) for config in configs))
    assert all(outcome.success for outcome in outcomes), [o.error for o in outcomes if not o.success]
    bodies = [(await broker.get(queue)).body for _ in range(24)]
    assert sorted(bodies) == sorted(f"n{n}".encode() for n in range(24))
    assert len(plugin_connections(host)) == 1


async def test_a_connection_closed_by_the_broker_is_replaced(host, broker):
    queue = await broker.queue()
    config = {"url": broker.url, "queue.name": queue, "message.body": "first"}
    assert (await host.execute("rabbitmq", "drop", config)).success
    (connection,) = plugin_connections(host)
    await asyncio.to_thread(close_broker_connection, connection.laddr.port)
    await async_wait_until(lambda: not plugin_connections(host), what="the plugin to see its connection closed")

    outcome = await host.execute("rabbitmq", "drop", {**config, "message.body": "second"})
    if not outcome.success:
        # The plugin's client may not have read the broker's close yet: the publish then fails on the old
        # connection (not retried: once written, a message's fate is unknown) and the next one connects anew.
        assert "was lost: CONNECTION_FORCED - closed by the test" in outcome.error, outcome
        outcome = await host.execute("rabbitmq", "drop", {**config, "message.body": "second"})
    assert outcome.success, outcome
    assert [(await broker.get(queue)).body for _ in range(2)] == [b"first", b"second"]
    (replacement,) = plugin_connections(host)
    assert replacement.laddr.port != connection.laddr.port


def close_broker_connection(client_port: int) -> None:
    """Have RabbitMQ itself close the connection that comes from `client_port` (rabbitmqctl)."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "peer_port"], capture_output=True, text=True, timeout=60
    )
    for line in listed.stdout.splitlines():
        pid, _, port = line.rpartition("\t")
        if port.strip() == str(client_port):
            subprocess.run(
                ["rabbitmqctl", "close_connection", pid.strip(), "closed by the test"], timeout=60, check=True
            )
            return
    raise AssertionError(f"no RabbitMQ connection from port {client_port}: {listed.stdout}{listed.stderr}")


async def test_a_refused_port_or_wrong_password_fails_naming_the_broker_and_the_reason(host, broker):
    port = free_port()
    config = {"queue.name": "x", "message.body": "x"}
    started = time.monotonic()
    outcome = await host.execute("rabbitmq", "refused", {**config, "url": f"amqp://guest:guest@127.0.0.1:{port}/"})
    assert time.monotonic() - started < 5
    assert outcome.error == f"rabbitmq: cannot connect to amqp://guest:***@127.0.0.1:{port}/: connection refused"

    wrong = f"amqp://guest:not-the-password@127.0.0.1:{RABBITMQ_PORT}/"
    outcome = await host.execute("rabbitmq", "password", {**config, "url": wrong})
    assert outcome.error.startswith(f"rabbitmq: {ADDRESS} refused the credentials: ACCESS_REFUSED - Login was refused")
    assert "not-the-password" not in outcome.error

    # The plugin is still serving, with its other connection intact.
    queue = await broker.queue()
    outcome = await host.execute("rabbitmq", "after", {"url": broker.url, "queue.name": queue, "message.body": "ok"})
    assert outcome.success, outcome


async def test_a_hung_broker_fails_within_the_timeout_key(host):
    with SilentListener() as listener:
        url = f"amqp://guest:guest@127.0.0.1:{listener.port}/"
        started = time.monotonic()
        outcome = await host.execute(
            "rabbitmq", "hung", {"url": url, "queue.name": "x", "message.body": "x", "timeout": "0.5"}
        )
        elapsed = time.monotonic() - started
    assert (
        outcome.error
        == f"rabbitmq: timed out after 0.5s while connecting to amqp://guest:***@127.0.0.1:{listener.port}/"
    )
    assert 0.4 < elapsed < 3


async def test_the_jobs_timeout_cuts_the_executors_short_and_the_plugin_keeps_serving(host, broker):
    with SilentListener() as listener:
        config = {"url": f"amqp://guest:guest@127.0.0.1:{listener.port}/", "queue.name": "x", "message.body": "x"}
        started = time.monotonic()
        outcome = await host.execute("rabbitmq", "hung", config, timeout=0.5)
        assert time.monotonic() - started < 3  # not the executor's default 30 s
    assert not outcome.success
    assert "timed out after 0.5s" in outcome.error
    queue = await broker.queue()
    outcome = await host.execute("rabbitmq", "after", {"url": broker.url, "queue.name": queue, "message.body": "ok"})
    assert outcome.success, outcome


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"queue.name": "q", "message.body": "x"}, "rabbitmq: url is empty"),
        ({"url": "amqp://127.0.0.1/", "message.body": "x"}, "rabbitmq: queue name is empty"),
        ({"url": "amqp://127.0.0.1/", "queue.name": "q"}, "rabbitmq: no message: set message.body"),
        (
            {"url": "amqp://127.0.0.1/", "queue.name": "q", "message.body": "a", "message.base64Body": "YQ=="},
            "rabbitmq: message.body and message.base64Body are both set",
        ),
        (
            {"url": "amqp://127.0.0.1/", "queue.name": "q", "message.base64Body": "not base64!"},
            "rabbitmq: message.base64Body is not valid base64",
        ),
        (
            {"url": "amqp://127.0.0.1/", "queue.name": "q", "message.body": "x", "queue.durable": "yes"},
            'rabbitmq: queue.durable must be "true" or "false", not \'yes\'',
        ),
        (
            {"url": "amqp://127.0.0.1/", "queue.name": "q", "message.body": "x", "message.delivery_mode": "3"},
            "rabbitmq: message.delivery_mode must be 1 (transient) or 2 (persistent)",
        ),
        (
            {"url": "http://u:pw@h/", "queue.name": "q", "message.body": "x"},
            "rabbitmq: url 'http://u:***@h/' is not an AMQP URL",
        ),
        (
            {"url": "amqp://h/", "queue.name": "q", "message.body": "x", "timeout": "1d"},
            "rabbitmq: timeout '1d' is not a duration",
        ),
    ],
)
async def test_bad_config_names_the_key(host, config, error):
    outcome = await host.execute("rabbitmq", "bad", config)
    assert not outcome.success
    assert outcome.error.startswith(error), outcome.error


async def test_describe_serves_dkrons_keys_and_the_extensions(host):
    description = host.plugin("executor", "rabbitmq").description
    assert description is not None
    schema = json.loads(description.config_schema_json)
    assert set(schema["properties"]) == DKRON_KEYS | {"timeout", "message.mandatory"}
    assert schema["additionalProperties"] is False


def test_horae_conformance_passes():
    url = require_rabbitmq()
    # An exclusive queue: the broker deletes it, with every message the suite sent, when the plugin stops.
    echo = {
        "url": url,
        "queue.name": f"horae-conformance-{uuid.uuid4().hex[:12]}",
        "queue.create": "true",
        "queue.exclusive": "true",
        "message.body": "x",
    }
    done = subprocess.run(
        [*CONFORMANCE, "--json", "executor", "--plugin", "rabbitmq", "--strict", "--echo-config", json.dumps(echo)],
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
