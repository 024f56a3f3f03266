"""The kafka executor: Dkron's `kafka` executor as a horae plugin.

It produces the job's `message` (with its `key`) to `topic`, with acks=all, and succeeds once the
broker has acknowledged it, with Dkron's output line. It fails with the broker's address and the
reason when the message is not acknowledged within the `timeout` key (default 30 s), or at once
when the broker refuses the login or the TLS handshake; a job timeout or stop cancels the wait.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaException

from horae_plugins.kafka.config import CONFIG_SCHEMA, KafkaJob, parse_config
from horae_plugins.kafka.producers import Delivered, DeliveryFailed, ProducerPool, SharedProducer, kafka_text
from horae_sdk import ExecutionError, Executor, OutputStream

log = logging.getLogger("horae_plugins.kafka")

SUCCESS_LINE = "Result: successfully produced the message on Kafka broker\n"  # Dkron's words
# A port nothing listens on: the message waits for a broker until its timeout, unless cancelled.
_UNREACHABLE = "127.0.0.1:1"


class KafkaExecutor(Executor):
    name = "kafka"
    version = "1.0.0"
    config_schema: dict[str, Any] = CONFIG_SCHEMA
    # echo needs a broker: localhost:9092 is Kafka's default (pass --echo-config to use another).
    conformance = {
        "echo": {
            "brokerAddress": "localhost:9092",
            "topic": "horae-conformance",
            "message": "horae-conformance",
            "timeout": "10s",
        },
        "sleep": {"brokerAddress": _UNREACHABLE, "topic": "horae-conformance", "timeout": "60s"},
    }

    def __init__(self) -> None:
        self._producers = ProducerPool()

    def execute(self, job_name: str, config: dict[str, str], stream: OutputStream) -> str:
        job = parse_config(config)
        connection = job.connection
        unknown = sorted(set(config) - set(CONFIG_SCHEMA["properties"]))
        if unknown:
            log.warning("job %s: ignoring unknown executor_config key(s) %s", job_name, ", ".join(unknown))
        if connection.debug:
            log.info("job %s: config %s", job_name, _redacted(config))
        deadline = time.monotonic() + connection.timeout
        try:
            producer = self._producers.get(connection)
        except KafkaException as error:
            message = f"kafka: cannot set up a producer for {connection.describe()}: {kafka_text(error)}"
            raise ExecutionError(message) from None
        delivered = self._produce(producer, job, deadline, stream)
        if connection.debug:
            log.info(
                "job %s: delivered to topic %s partition %d offset %d",
                job_name,
                delivered.topic,
                delivered.partition,
                delivered.offset,
            )
        return SUCCESS_LINE + f"topic {delivered.topic}, partition {delivered.partition}, offset {delivered.offset}\n"

    def _produce(self, producer: SharedProducer, job: KafkaJob, deadline: float, stream: OutputStream) -> Delivered:
        brokers = job.connection.broker_list
        try:
            delivery = producer.send(job.topic, job.key, job.message)
        except DeliveryFailed as error:
            message = f"kafka: broker(s) {brokers}: cannot produce to topic {job.topic!r}: {error}"
            raise ExecutionError(message) from None
        # Wake the wait below when the host cancels (job timeout, stop, shutdown).
        stream.on_cancel(delivery.cancel)
        delivery.wait(deadline - time.monotonic())
        producer.forget(delivery)
        if delivery.result is not None:
            return delivery.result
        if delivery.cancelled:
            raise ExecutionError(
                f"kafka: cancelled while waiting for broker(s) {brokers} to acknowledge the message "
                f"(it may still be delivered within {_seconds(job.connection.timeout)})"
            )
        if not delivery.done or delivery.timed_out:
            # librdkafka's "Message timed out" says less than the connection error that caused it.
            reason = producer.last_error or "no answer and no connection error from the client"
            raise ExecutionError(
                f"kafka: broker(s) {brokers} did not acknowledge the message to topic {job.topic!r} "
                f"within {_seconds(job.connection.timeout)}: {reason}"
            )
        raise ExecutionError(f"kafka: broker(s) {brokers}: the message to topic {job.topic!r} failed: {delivery.error}")


def _redacted(config: dict[str, str]) -> dict[str, str]:
    return {key: ("***" if key == "saslPassword" and value else value) for key, value in config.items()}


def _seconds(seconds: float) -> str:
    return f"{seconds:g}s"
