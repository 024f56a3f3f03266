"""The kafka executor's job configuration: Dkron's `executor_config` keys, parsed and checked.

Every key is a string, as in Dkron. A bad value fails the execution with a message naming the key
before anything is sent. `Connection` holds what a producer is made from, so that executions with
the same settings share one producer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from horae_sdk import ExecutionError

DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_TIMEOUT_SECONDS = 3600.0

# Go's strconv.ParseBool.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_BOOL_ENUM = sorted(_TRUE | _FALSE | {""})

# Go's time.ParseDuration units, in seconds.
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
# Kafka's own rule for topic names.
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")

# Dkron's saslMechanism values -> librdkafka's names. Empty is PLAIN, sarama's default.
SASL_MECHANISMS = {"": "PLAIN", "plain": "PLAIN", "sha256": "SCRAM-SHA-256", "sha512": "SCRAM-SHA-512"}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "brokerAddress": {
            "type": "string",
            "minLength": 1,
            "description": "Bootstrap broker(s), `host:port`, comma separated: `kafka1:9092,kafka2:9092`.",
        },
        "topic": {
            "type": "string",
            "pattern": r"^[a-zA-Z0-9._-]{1,249}$",
            "description": "The topic to produce the message to.",
        },
        "key": {"type": "string", "description": "The message key (empty: an empty key)."},
        "message": {"type": "string", "description": "The message value."},
        "tlsEnable": {
            "type": "string",
            "enum": _BOOL_ENUM,
            "description": 'Connect with TLS ("true"); the broker certificate is checked against the system CAs.',
        },
        "tlsInsecureSkipVerify": {
            "type": "string",
            "enum": _BOOL_ENUM,
            "description": 'With tlsEnable, do not check the broker certificate or its name ("true"). Unsafe.',
        },
        "saslUsername": {"type": "string", "description": "SASL user name; SASL is used when it is set."},
        "saslPassword": {"type": "string", "description": "SASL password."},
        "saslMechanism": {
            "type": "string",
            # Any case, as the executor reads it.
            "pattern": "^\\s*([Ss][Hh][Aa](256|512)|[Pp][Ll][Aa][Ii][Nn])?\\s*$",
            "description": "SASL mechanism: `sha256` (SCRAM-SHA-256), `sha512` (SCRAM-SHA-512); "
            "empty or `plain`: PLAIN.",
        },
        "debug": {
            "type": "string",
            "enum": _BOOL_ENUM,
            "description": 'Log the (redacted) config and the Kafka client\'s debug lines in the agent log ("true").',
        },
        "timeout": {
            "type": "string",
            "pattern": r"^\s*(|\d+(\.\d*)?|\.\d+|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)\s*$",
            "description": "Fail when the broker has not acknowledged the message within this time: a Go duration "
            "(`10s`, `1m`) or seconds. Default 30s, at most 1h. A horae extension.",
        },
    },
    "required": ["brokerAddress", "topic"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Connection:
    """Everything a producer is built from; equal settings share a producer."""

    brokers: tuple[str, ...]
    tls: bool = False
    tls_insecure_skip_verify: bool = False
    sasl_username: str = ""
    sasl_password: str = ""
    sasl_mechanism: str = "PLAIN"
    debug: bool = False
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def broker_list(self) -> str:
        return ",".join(self.brokers)

    def describe(self) -> str:
        """For logs and errors: never the password."""
        parts = [f"brokers={self.broker_list}", f"tls={'on' if self.tls else 'off'}"]
        if self.tls and self.tls_insecure_skip_verify:
            parts.append("tls-verify=off")
        if self.sasl_username:
            parts.append(f"sasl={self.sasl_mechanism} user={self.sasl_username}")
        return " ".join(parts)


@dataclass(frozen=True)
class KafkaJob:
    connection: Connection
    topic: str
    key: bytes
    message: bytes


def parse_config(config: dict[str, str]) -> KafkaJob:
    """A checked KafkaJob, or ExecutionError naming the key that is wrong."""
    brokers = parse_brokers(config.get("brokerAddress", ""))
    topic = config.get("topic", "").strip()
    if not topic:
        raise config_error("topic is empty: set it to the topic to produce to")
    if not _TOPIC.fullmatch(topic):
        raise config_error(
            f"topic {topic!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)"
        )
    username = config.get("saslUsername", "")
    password = config.get("saslPassword", "")
    mechanism = config.get("saslMechanism", "").strip()
    if mechanism.lower() not in SASL_MECHANISMS:
        raise config_error(f"saslMechanism {mechanism!r} is not one of sha256, sha512 (or empty for PLAIN)")
    if (password or mechanism) and not username:
        raise config_error("saslPassword or saslMechanism is set but saslUsername is empty")
    if username and not password:
        raise config_error(f"saslPassword is empty: SASL needs the password of user {username!r}")
    tls = parse_bool("tlsEnable", config.get("tlsEnable", ""))
    timeout = parse_timeout(config.get("timeout", ""))
    connection = Connection(
        brokers=brokers,
        tls=tls,
        tls_insecure_skip_verify=tls and parse_bool("tlsInsecureSkipVerify", config.get("tlsInsecureSkipVerify", "")),
        sasl_username=username,
        sasl_password=password if username else "",
        sasl_mechanism=SASL_MECHANISMS[mechanism.lower()],
        debug=parse_bool("debug", config.get("debug", "")),
        timeout=timeout,
    )
    return KafkaJob(
        connection=connection,
        topic=topic,
        key=config.get("key", "").encode(),
        message=config.get("message", "").encode(),
    )


def parse_brokers(text: str) -> tuple[str, ...]:
    """`host:port` items of a comma list, blanks skipped."""
    brokers = tuple(item.strip() for item in text.split(",") if item.strip())
    if not brokers:
        raise config_error("brokerAddress is empty: set it to host:port of one or more brokers, comma separated")
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise config_error(f"brokerAddress item {broker!r} is not host:port (example: kafka1:9092)")
    return brokers


def parse_bool(key: str, text: str) -> bool:
    """Go's strconv.ParseBool; empty is false."""
    value = text.strip()
    if value in _TRUE:
        return True
    if value in _FALSE or not value:
        return False
    raise config_error(f'{key} must be "true" or "false", not {text!r}')


def parse_timeout(text: str) -> float:
    """Seconds in a Go duration (`30s`, `1m30s`, `500ms`) or a plain number of seconds; default 30."""
    value = text.strip()
    if not value:
        return DEFAULT_TIMEOUT_SECONDS
    seconds = 0.0
    if _PLAIN_NUMBER.fullmatch(value):
        seconds = float(value)
    else:
        position = 0
        for match in _DURATION_PART.finditer(value):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            position = match.end()
        if position != len(value):
            raise config_error(f"timeout {text!r} is not a duration (examples: 10s, 1m, 500ms, or seconds: 30)")
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise config_error(f"timeout {text!r} must be more than 0 and at most 1h")
    return seconds


def config_error(message: str) -> ExecutionError:
    return ExecutionError(f"kafka: {message}", exit_code=1)
