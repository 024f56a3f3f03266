"""The built-in kafka executor, run as a real plugin process against a real broker (Tansu).

Messages are consumed back with confluent-kafka's consumer through `assign()` (no group join).
Tansu's SASL needs users that only an authenticated client can create, so SASL is tested on the
refusal path; TLS is tested through a TLS terminator in front of Tansu (tests/kafka_broker.py).
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

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from horae.host.supervisor import PluginHost
from tests.kafka_broker import TansuBroker, TlsTerminator, free_port, self_signed_certificate
from tests.support import REPO_ROOT, builtin_spec

PLUGIN_LOGGER = "horae.plugin.kafka"
SUCCESS_LINE = b"Result: successfully produced the message on Kafka broker\n"
CONFORMANCE = [str(Path(sys.executable).with_name("horae-conformance"))]


@pytest.fixture(scope="module")
def broker():
    with TansuBroker() as running:
        yield running


@pytest.fixture
async def host(caplog):
    caplog.set_level(logging.INFO, logger=PLUGIN_LOGGER)
    async with PluginHost([builtin_spec("kafka", "executor")]) as plugin_host:
        yield plugin_host


def new_topic() -> str:
    return f"horae-test-{uuid.uuid4().hex[:10]}"


def consume(address: str, topic: str, count: int, timeout: float = 15.0, **settings: object) -> list:
    """The first `count` messages of every partition of `topic`, read with assign() from the beginning."""
    consumer = Consumer(
        {"bootstrap.servers": address, "group.id": "horae-test", "enable.auto.commit": False, **settings}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        consumer.assign([TopicPartition(topic, number, OFFSET_BEGINNING) for number in partitions])
        messages = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
        assert len(messages) == count, f"consumed {len(messages)} of {count} messages from {topic}"
        return messages
    finally:
        consumer.close()


def partition_count(address: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": address, "group.id": "horae-test"})
    try:
        return len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        consumer.close()


def sarama_partition(key: bytes, partitions: int) -> int:
    """Sarama's hash partitioner (Dkron's executor): FNV-1a 32 of the key, as int32, modulo, made positive."""
    digest = 0x811C9DC5
    for byte in key:
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    signed = digest - (1 << 32) if digest & 0x80000000 else digest
    return abs(signed) % partitions


def started_producers(caplog, address: str) -> int:
    return sum(
        1
        for record in caplog.records
        if record.name == PLUGIN_LOGGER
        and "kafka producer started" in record.getMessage()
        and address in record.getMessage()
    )


async def test_the_message_and_its_key_are_produced_and_consumed_back(host, broker):
    topic = new_topic()
    outcome = await host.execute(
        "kafka",
        "publish",
        {"brokerAddress": broker.address, "topic": topic, "key": "order-17", "message": '{"hello":11}'},
    )
    assert outcome.success, outcome.error
    assert outcome.output.startswith(SUCCESS_LINE)
    [message] = consume(broker.address, topic, 1)
    assert (message.key(), message.value()) == (b"order-17", b'{"hello":11}')
    # Where it landed is reported, and it is where Dkron's Sarama producer would have put that key.
    assert f"topic {topic}, partition {message.partition()}, offset {message.offset()}".encode() in outcome.output
    assert message.partition() == sarama_partition(b"order-17", partition_count(broker.address, topic))


async def test_concurrent_executions_share_one_producer_and_all_arrive(host, broker, caplog):
    topic = new_topic()
    configs = [{"brokerAddress": broker.address, "topic": topic, "key": f"k{n}", "message": f"m{n}"} for n in range(16)]
    outcomes = await asyncio.gather(*(host.execute("kafka", "fanout", config) for config in configs))
    assert all(outcome.success for outcome in outcomes), [o.error for o in outcomes if not o.success]
    messages = consume(broker.address, topic, 16)
    assert sorted((m.key(), m.value()) for m in messages) == sorted(
        (f"k{n}".encode(), f"m{n}".encode()) for n in range(16)
    )
    # One producer for the 16 executions, and it is still the one used afterwards.
    outcome = await host.execute("kafka", "fanout", configs[0])
    assert outcome.success
    assert started_producers(caplog, broker.address) == 1


async def test_an_empty_key_and_message_are_produced_as_empty(host, broker):
    topic = new_topic()
    outcome = await host.execute("kafka", "empty", {"brokerAddress": broker.address, "topic": topic})
    assert outcome.success, outcome.error
    [message] = consume(broker.address, topic, 1)
    assert (message.key(), message.value()) == (b"", b"")  # Dkron's Sarama StringEncoder("") sends empty, not null


async def test_a_broker_that_is_down_fails_within_the_timeout_naming_it(host, broker):
    down = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    outcome = await host.execute("kafka", "down", {"brokerAddress": down, "topic": "t", "timeout": "2s"})
    elapsed = time.monotonic() - started
    assert not outcome.success
    assert 1.5 < elapsed < 5, elapsed
    assert f"broker(s) {down} did not acknowledge the message to topic 't' within 2s" in outcome.error
    assert "Connection refused" in outcome.error
    # The plugin is still up and serves the next execution.
    outcome = await host.execute("kafka", "up", {"brokerAddress": broker.address, "topic": new_topic()})
    assert outcome.success, outcome.error


async def test_the_jobs_timeout_ends_the_wait_when_it_is_shorter(host):
    down = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    outcome = await host.execute("kafka", "down", {"brokerAddress": down, "topic": "t"}, timeout=1.0)
    assert time.monotonic() - started < 5
    assert not outcome.success
    assert "timed out after 1s" in outcome.error


async def test_a_broker_that_stops_fails_the_next_execution_with_the_reason(host):
    with TansuBroker() as short_lived:
        config = {"brokerAddress": short_lived.address, "topic": new_topic(), "timeout": "3s"}
        assert (await host.execute("kafka", "job", config)).success
    started = time.monotonic()
    outcome = await host.execute("kafka", "job", config)
    assert time.monotonic() - started < 6
    assert not outcome.success
    assert short_lived.address in outcome.error and "within 3s" in outcome.error
    assert "Connection refused" in outcome.error or "Disconnected" in outcome.error


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"topic": "t"}, "brokerAddress is empty"),
        ({"brokerAddress": "kafka1", "topic": "t"}, "brokerAddress item 'kafka1' is not host:port"),
        ({"brokerAddress": "k:9092"}, "topic is empty"),
        ({"brokerAddress": "k:9092", "topic": "a topic"}, "topic 'a topic' is not a valid Kafka topic name"),
        ({"brokerAddress": "k:9092", "topic": "t", "tlsEnable": "yes"}, 'tlsEnable must be "true" or "false"'),
        ({"brokerAddress": "k:9092", "topic": "t", "debug": "on"}, 'debug must be "true" or "false"'),
        ({"brokerAddress": "k:9092", "topic": "t", "timeout": "soon"}, "timeout 'soon' is not a duration"),
        ({"brokerAddress": "k:9092", "topic": "t", "timeout": "2h"}, "timeout '2h' must be more than 0 and at most 1h"),
        (
            {"brokerAddress": "k:9092", "topic": "t", "saslUsername": "u", "saslPassword": "p", "saslMechanism": "md5"},
            "saslMechanism 'md5' is not one of sha256, sha512",
        ),
        ({"brokerAddress": "k:9092", "topic": "t", "saslPassword": "p"}, "saslUsername is empty"),
        ({"brokerAddress": "k:9092", "topic": "t", "saslUsername": "u"}, "saslPassword is empty"),
    ],
)
async def test_bad_config_fails_at_once_naming_the_key(host, config, expected):
    started = time.monotonic()
    outcome = await host.execute("kafka", "bad", config)
    assert time.monotonic() - started < 2
    assert not outcome.success
    assert outcome.error.startswith("kafka: ") and expected in outcome.error, outcome.error


@pytest.mark.parametrize("mechanism", ["sha256", "sha512"])
async def test_refused_scram_credentials_fail_fast_naming_the_broker(host, caplog, mechanism):
    with TansuBroker(authentication=True) as secured:
        config = {
            "brokerAddress": secured.address,
            "topic": "t",
            "saslUsername": "alice",
            "saslPassword": "s3cret-password",
            "saslMechanism": mechanism,
            "timeout": "20s",
            "debug": "true",
        }
        started = time.monotonic()
        outcome = await host.execute("kafka", "secured", config)
        assert time.monotonic() - started < 10  # not the 20 s timeout: waiting would not help
        assert not outcome.success
        assert secured.address in outcome.error
        assert f"the broker refused the SASL login of user 'alice' (SCRAM-SHA-{mechanism[3:]})" in outcome.error
        # A new producer is made for the next try (the user may have been created meanwhile).
        outcome = await host.execute("kafka", "secured", config)
        assert "refused the SASL login" in outcome.error
    # debug logs the config, never the password.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == PLUGIN_LOGGER)
    assert "'saslPassword': '***'" in logged
    assert "s3cret-password" not in logged


@pytest.fixture
def tls_broker(tmp_path):
    """Tansu behind a TLS terminator; the broker advertises the terminator's port."""
    certificate = self_signed_certificate(tmp_path)
    tls_port = free_port()
    with TansuBroker(advertised_port=tls_port) as plain, TlsTerminator(tls_port, plain.port, certificate) as tls:
        yield plain, tls


async def test_tls_with_verification_off_produces_through_tls(host, tls_broker):
    plain, _tls = tls_broker
    topic = new_topic()
    config = {"brokerAddress": plain.address, "topic": topic, "key": "k", "message": "over tls", "tlsEnable": "true"}
    outcome = await host.execute("kafka", "tls", {**config, "tlsInsecureSkipVerify": "true"})
    assert outcome.success, outcome.error
    [message] = consume(
        plain.address,
        topic,
        1,
        **{"security.protocol": "SSL", "enable.ssl.certificate.verification": False},
    )
    assert (message.key(), message.value()) == (b"k", b"over tls")


async def test_tls_refuses_a_certificate_it_cannot_verify(host, tls_broker):
    plain, _tls = tls_broker
    config = {"brokerAddress": plain.address, "topic": "t", "tlsEnable": "true", "timeout": "20s"}
    started = time.monotonic()
    outcome = await host.execute("kafka", "tls", config)
    assert time.monotonic() - started < 10
    assert not outcome.success
    assert plain.address in outcome.error
    assert "the TLS handshake failed" in outcome.error and "certificate verify failed" in outcome.error


async def test_tls_to_a_plain_listener_fails_within_the_timeout(host, broker):
    started = time.monotonic()
    outcome = await host.execute(
        "kafka", "tls", {"brokerAddress": broker.address, "topic": "t", "tlsEnable": "true", "timeout": "2s"}
    )
    assert time.monotonic() - started < 5
    assert not outcome.success
    assert f"broker(s) {broker.address} did not acknowledge the message to topic 't' within 2s" in outcome.error


async def test_describe_serves_the_schema_with_dkrons_keys(host):
    description = host.plugin("executor", "kafka").description
    assert description is not None and description.kind == "executor"
    schema = json.loads(description.config_schema_json)
    assert set(schema["properties"]) == {
        "brokerAddress",
        "topic",
        "key",
        "message",
        "tlsEnable",
        "tlsInsecureSkipVerify",
        "saslUsername",
        "saslPassword",
        "saslMechanism",
        "debug",
        "timeout",
    }
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["brokerAddress", "topic"]


def test_kafka_executor_passes_conformance(broker):
    cli = CONFORMANCE if Path(CONFORMANCE[0]).exists() else [sys.executable, "-m", "horae_conformance"]
    echo = {"brokerAddress": broker.address, "topic": "horae-conformance", "message": "horae-conformance"}
    done = subprocess.run(
        [*cli, "--json", "executor", "--plugin", "kafka", "--strict", "--echo-config", json.dumps(echo)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    results = {row["case"]: row["result"] for row in report["results"]}
    failed = {row["case"]: row["reason"] for row in report["results"] if row["result"] not in ("passed", "skipped")}
    assert not failed, (failed, done.stderr[-3000:])
    assert done.returncode == 0, done.stdout
    # The broker-backed cases ran; only the 10 MiB flood cases have no kafka equivalent.
    for case in (
        "Execute returns the output",
        "16 concurrent calls",
        "a cancelled call ends, the plugin keeps serving",
    ):
        assert results[case] == "passed", report
    assert {case for case, result in results.items() if result == "skipped"} <= {
        "10 MiB of output neither crashes nor blocks",
        "live output arrives through the broker",
    }, results
    # 1 echo + 16 concurrent + 1 after the cancel arrived on the broker.
    assert len(consume(broker.address, "horae-conformance", 18)) == 18
