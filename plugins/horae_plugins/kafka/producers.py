"""Kafka producers shared by executions: one per distinct connection, kept warm, dropped when broken.

A producer's TCP and TLS connections, SASL login and metadata cost more than the message, so
executions with equal `Connection` settings reuse one (confluent-kafka's Producer is thread-safe).
Each producer has a thread that serves its callbacks. The broker's connection errors are kept, so a
failed delivery can say why; a refused login or TLS handshake fails every waiting delivery at once
and retires the producer, so the next execution tries afresh instead of waiting out its timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from horae_plugins.kafka.config import Connection

log = logging.getLogger("horae_plugins.kafka")
client_log = logging.getLogger("horae_plugins.kafka.librdkafka")

POLL_SECONDS = 0.1
IDLE_SECONDS = 600.0  # a producer unused this long is closed
MAX_PRODUCERS = 32
ERROR_LOG_INTERVAL_SECONDS = 30.0  # the same connection error is logged at most this often

# Errors that waiting will not cure: the credentials or the TLS setup are wrong.
_REFUSED = {
    KafkaError._AUTHENTICATION: "the broker refused the SASL login",
    KafkaError.SASL_AUTHENTICATION_FAILED: "the broker refused the SASL login",
    KafkaError._SSL: "the TLS handshake failed",
}


class DeliveryFailed(Exception):
    """The message was not delivered; the text says what the broker or the client said."""


@dataclass
class Delivered:
    topic: str
    partition: int
    offset: int


class Delivery:
    """One message's fate, filled in from the producer's callback thread."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.result: Delivered | None = None
        self.error: str = ""
        self.timed_out = False  # librdkafka gave up on it (message.timeout.ms)
        self.cancelled = False  # the host cancelled the execution first

    def complete(self, result: Delivered | None, error: str = "", *, timed_out: bool = False) -> None:
        """The first outcome wins: the broker's report, a refusal, or the host's cancel."""
        with self._lock:
            if self._done.is_set():
                return
            self.result, self.error, self.timed_out = result, error, timed_out
            self._done.set()

    def cancel(self) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self.cancelled = True
            self._done.set()

    def wait(self, seconds: float) -> bool:
        return self._done.wait(max(0.0, seconds))

    @property
    def done(self) -> bool:
        return self._done.is_set()


class SharedProducer:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.last_used = time.monotonic()
        self.retired = False
        self._closed = False
        self._lock = threading.Lock()
        self._pending: set[Delivery] = set()
        self._last_error = ""
        self._logged_errors: dict[int, float] = {}
        self._stop = threading.Event()
        self._producer = Producer(producer_settings(connection, self._on_error))
        self._thread = threading.Thread(target=self._serve_callbacks, name="kafka-callbacks", daemon=True)
        self._thread.start()
        log.info("kafka producer started: %s", connection.describe())

    @property
    def last_error(self) -> str:
        return self._last_error

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def send(self, topic: str, key: bytes, value: bytes) -> Delivery:
        """Queue one message; raises DeliveryFailed when the client refuses it at once."""
        delivery = Delivery()
        self.last_used = time.monotonic()
        with self._lock:
            if self.retired:
                raise DeliveryFailed(self._last_error or "the producer was closed")
            self._pending.add(delivery)
        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=self._reporter(delivery))
        except Exception as error:  # BufferError (queue full), KafkaException (message too large, …)
            self._forget(delivery)
            raise DeliveryFailed(kafka_text(error)) from None
        return delivery

    def forget(self, delivery: Delivery) -> None:
        """The execution stopped waiting (timeout or cancel)."""
        self._forget(delivery)

    def close(self) -> None:
        """Drop queued messages and stop; a second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self.retired = self._closed = True
        self._stop.set()
        self._thread.join()
        try:
            self._producer.purge()
            self._producer.flush(0)
            self._producer.close()
        except Exception as error:
            log.warning("kafka producer close failed (%s): %s", self.connection.describe(), error)
        log.info("kafka producer closed: %s", self.connection.describe())

    def _reporter(self, delivery: Delivery):
        def report(error: KafkaError | None, message: Message) -> None:
            self._forget(delivery)
            if error is None:
                delivery.complete(Delivered(message.topic(), message.partition(), message.offset()))
            else:
                delivery.complete(None, kafka_text(error), timed_out=error.code() == KafkaError._MSG_TIMED_OUT)

        return report

    def _forget(self, delivery: Delivery) -> None:
        with self._lock:
            self._pending.discard(delivery)

    def _on_error(self, error: KafkaError) -> None:
        text = error.str()
        # "N/N brokers are down" follows the error that says why: keep that one.
        if error.code() != KafkaError._ALL_BROKERS_DOWN or not self._last_error:
            self._last_error = text
        now = time.monotonic()
        if now - self._logged_errors.get(error.code(), -ERROR_LOG_INTERVAL_SECONDS) >= ERROR_LOG_INTERVAL_SECONDS:
            self._logged_errors[error.code()] = now
            log.warning("kafka producer (%s): %s", self.connection.describe(), text)
        refused = _REFUSED.get(error.code())
        if refused is None and not error.fatal():
            return
        if refused and error.code() != KafkaError._SSL:
            refused += f" of user {self.connection.sasl_username!r} ({self.connection.sasl_mechanism})"
        reason = f"{refused or 'fatal client error'}: {text}"
        with self._lock:
            already_retired, self.retired = self.retired, True
            self._last_error = reason
            pending, self._pending = self._pending, set()
        for delivery in pending:
            delivery.complete(None, reason)
        if not already_retired:
            # Stop its reconnect attempts now; the pool makes a fresh producer for the next execution.
            _close_in_background(self)

    def _serve_callbacks(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(POLL_SECONDS)


class ProducerPool:
    """Producers by Connection; thread-safe. Retired and idle ones are closed in the background."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._producers: dict[Connection, SharedProducer] = {}

    def get(self, connection: Connection) -> SharedProducer:
        """The producer for these settings, made when missing; raises KafkaException when it cannot be."""
        with self._lock:
            producer = self._producers.get(connection)
            if producer is not None and not producer.retired:
                producer.last_used = time.monotonic()
                return producer
            producer = SharedProducer(connection)
            stale = self._take_stale(connection)
            self._producers[connection] = producer
        for old in stale:
            _close_in_background(old)
        return producer

    def close_all(self) -> None:
        with self._lock:
            producers, self._producers = list(self._producers.values()), {}
        for producer in producers:
            producer.close()

    def _take_stale(self, connection: Connection) -> list[SharedProducer]:
        """Remove the producer being replaced, idle ones, and the oldest beyond MAX_PRODUCERS."""
        now = time.monotonic()
        stale = [
            key
            for key, producer in self._producers.items()
            if key == connection or producer.retired or (now - producer.last_used > IDLE_SECONDS and not producer.busy)
        ]
        removed = [self._producers.pop(key) for key in stale]
        while len(self._producers) >= MAX_PRODUCERS:
            oldest = min(self._producers, key=lambda key: self._producers[key].last_used)
            removed.append(self._producers.pop(oldest))
        return removed


def producer_settings(connection: Connection, on_error) -> dict:
    """librdkafka settings for a connection, with Dkron's delivery guarantees (acks=all)."""
    settings: dict = {
        "bootstrap.servers": connection.broker_list,
        "client.id": "horae-kafka-executor",
        "acks": "all",
        # Sarama's hash partitioner, which Dkron's executor used: the same key lands on the same partition.
        "partitioner": "fnv1a_random",
        "linger.ms": 0,  # one message per execution: send it at once
        # librdkafka gives up on the message itself before the execution's own deadline.
        "message.timeout.ms": max(1, int(connection.timeout * 1000) - 200),
        "socket.connection.setup.timeout.ms": max(1000, min(int(connection.timeout * 1000), 30000)),
        "error_cb": on_error,
        "logger": client_log,
    }
    if connection.debug:
        settings.update({"debug": "broker,topic,msg,security", "log_level": 7})
    else:
        # Connection failures repeat on every retry; error_cb reports them, rate-limited.
        settings.update({"log_level": 0, "log.connection.close": False})
    protocol = ("SASL_" if connection.sasl_username else "") + ("SSL" if connection.tls else "PLAINTEXT")
    settings["security.protocol"] = protocol
    if connection.tls:
        if connection.tls_insecure_skip_verify:
            settings["enable.ssl.certificate.verification"] = False
            settings["ssl.endpoint.identification.algorithm"] = "none"
        else:
            # The wheel's OpenSSL has its own default paths: look for the system's CA bundle instead.
            settings["ssl.ca.location"] = "probe"
    if connection.sasl_username:
        settings.update(
            {
                "sasl.mechanism": connection.sasl_mechanism,
                "sasl.username": connection.sasl_username,
                "sasl.password": connection.sasl_password,
            }
        )
    return settings


def _close_in_background(producer: SharedProducer) -> None:
    threading.Thread(target=producer.close, name="kafka-close", daemon=True).start()


def kafka_text(error: object) -> str:
    """The client's own words for an error (KafkaError's str), without the class wrapping."""
    if isinstance(error, KafkaError):
        return error.str()
    inner = error.args[0] if getattr(error, "args", None) else None
    return inner.str() if isinstance(inner, KafkaError) else str(error)
