"""The rabbitmq executor's job configuration: Dkron's `executor_config` keys, parsed and checked.

A bad value fails the execution with a message that names the key, before anything is sent;
`CONFIG_SCHEMA` describes the same keys so the API rejects a bad job at save time.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from dataclasses import dataclass

from horae_plugins.nats.config_values import GO_BOOL_VALUES, TIMEOUT_SCHEMA, parse_go_bool, parse_timeout
from horae_sdk import ExecutionError

# RabbitMQ's HTTP API (and Dkron's README example) call the nameless default exchange `amq.default`;
# AMQP itself only knows it as "", and a publish to `amq.default` gets NOT_FOUND.
DEFAULT_EXCHANGE_ALIAS = "amq.default"
DELIVERY_MODES = {"": None, "0": None, "1": 1, "2": 2}


def _flag(description: str) -> dict[str, object]:
    return {"type": "string", "enum": GO_BOOL_VALUES, "description": description}


CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "url": {
            "type": "string",
            "minLength": 1,
            "description": "AMQP URL with credentials and virtual host, e.g. `amqp://guest:guest@127.0.0.1:5672/` "
            "(`amqps://` for TLS).",
        },
        "exchange": {
            "type": "string",
            "description": 'Exchange to publish to; empty (or "amq.default") is the default exchange, which routes '
            "to the queue named by queue.name.",
        },
        "queue.name": {
            "type": "string",
            "minLength": 1,
            "description": "Queue to send the message to: the routing key of the publish.",
        },
        "queue.create": _flag('Declare the queue first ("true"); off by default.'),
        "queue.durable": _flag("Declare it durable: it survives a broker restart."),
        "queue.auto_delete": _flag("Declare it auto-delete: deleted when its last consumer goes away."),
        "queue.exclusive": _flag("Declare it exclusive to the executor's connection."),
        "message.content_type": {"type": "string", "description": "The message's content type (default text/plain)."},
        "message.delivery_mode": {
            "type": "string",
            "enum": sorted(DELIVERY_MODES),
            "description": "2: persistent (kept on disk by a durable queue); 1, 0 or empty: transient.",
        },
        "message.messageId": {
            "type": "string",
            "description": "The message's message-id property (default: a random id, which the client uses to "
            "match a returned message to its publish).",
        },
        "message.body": {"type": "string", "description": "The message body, as text. Give it or message.base64Body."},
        "message.base64Body": {
            "type": "string",
            "description": "The message body, base64-encoded (for binary bodies). Give it or message.body.",
        },
        "message.mandatory": _flag(
            'Fail when no queue receives the message ("true", the default): the broker returns an unroutable '
            "message instead of dropping it. A horae extension: Dkron drops it silently."
        ),
        "timeout": TIMEOUT_SCHEMA,
    },
    "required": ["url", "queue.name"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class QueueDeclaration:
    durable: bool
    auto_delete: bool
    exclusive: bool


@dataclass(frozen=True)
class RabbitConfig:
    url: str
    exchange: str  # "" is the default exchange
    routing_key: str  # queue.name
    queue: QueueDeclaration | None  # declared first when queue.create is true
    body: bytes
    content_type: str
    delivery_mode: int | None
    message_id: str | None
    mandatory: bool
    timeout: float

    @property
    def address(self) -> str:
        """The broker as an error message names it: the URL without credentials."""
        return redact(self.url)


def parse_config(config: dict[str, str]) -> RabbitConfig:
    """A checked RabbitConfig, or ExecutionError naming the key that is wrong."""
    url = config.get("url", "").strip()
    if not url:
        raise config_error("url is empty: set executor_config.url, e.g. amqp://guest:guest@127.0.0.1:5672/")
    check_url(url)
    queue_name = config.get("queue.name", "")
    if not queue_name:
        raise config_error("queue name is empty: set executor_config.queue.name to the queue to send to")
    if len(queue_name.encode()) > 255:
        raise config_error("queue.name is longer than 255 bytes, the AMQP limit")
    exchange = config.get("exchange", "")
    try:
        create = parse_go_bool("queue.create", config.get("queue.create", ""))
        queue = QueueDeclaration(
            durable=parse_go_bool("queue.durable", config.get("queue.durable", "")),
            auto_delete=parse_go_bool("queue.auto_delete", config.get("queue.auto_delete", "")),
            exclusive=parse_go_bool("queue.exclusive", config.get("queue.exclusive", "")),
        )
        mandatory = parse_go_bool("message.mandatory", config.get("message.mandatory", "") or "true")
        timeout = parse_timeout(config.get("timeout", ""))
    except ValueError as error:
        raise config_error(str(error)) from None
    delivery_mode = config.get("message.delivery_mode", "").strip()
    if delivery_mode not in DELIVERY_MODES:
        raise config_error(
            f"message.delivery_mode must be 1 (transient) or 2 (persistent), or empty; not {delivery_mode!r}"
        )
    return RabbitConfig(
        url=url,
        exchange="" if exchange == DEFAULT_EXCHANGE_ALIAS else exchange,
        routing_key=queue_name,
        queue=queue if create else None,
        body=parse_body(config),
        content_type=config.get("message.content_type", "") or "text/plain",
        delivery_mode=DELIVERY_MODES[delivery_mode],
        message_id=config.get("message.messageId", "") or None,
        mandatory=mandatory,
        timeout=timeout,
    )


def parse_body(config: dict[str, str]) -> bytes:
    """message.body or the decoded message.base64Body: exactly one of them."""
    text, encoded = config.get("message.body"), config.get("message.base64Body")
    if text and encoded:
        raise config_error("message.body and message.base64Body are both set: give the body once, as text or as base64")
    if text is None and encoded is None:
        raise config_error("no message: set message.body (text) or message.base64Body (base64)")
    if not encoded:
        return (text or "").encode()
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise config_error("message.base64Body is not valid base64 (standard alphabet, with padding)") from None


def check_url(url: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise config_error(f"url {redact(url)!r} is not an AMQP URL: {error}") from None
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise config_error(f"url {redact(url)!r} is not an AMQP URL: write amqp://user:password@host:5672/vhost")


def redact(url: str) -> str:
    """The URL without its password: errors and logs name the broker, never the secret."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.split("@")[-1]
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def config_error(message: str) -> ExecutionError:
    return ExecutionError(f"rabbitmq: {message}", exit_code=1)
