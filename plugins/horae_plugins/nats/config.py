"""The nats executor's job configuration: Dkron's `executor_config` keys, parsed and checked.

A bad value fails the execution with a message that names the key, before anything is sent;
`CONFIG_SCHEMA` describes the same keys so the API rejects a bad job at save time.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from horae_plugins.nats.config_values import TIMEOUT_SCHEMA, parse_timeout
from horae_sdk import ExecutionError

SCHEMES = ("nats", "tls", "ws", "wss")

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "url": {
            "type": "string",
            "minLength": 1,
            "description": "Comma separated NATS server URLs, e.g. `nats://127.0.0.1:4222` or "
            "`tls://nats.example.com:4443,tls://nats2.example.com:4443` (the first that answers is used).",
        },
        "subject": {"type": "string", "minLength": 1, "description": "The subject to publish the message to."},
        "message": {"type": "string", "description": "The message to publish (may be empty)."},
        "userName": {"type": "string", "description": "User name for username/password authentication."},
        "password": {"type": "string", "description": "Password for username/password authentication."},
        "debug": {
            "type": "string",
            "description": "If not empty, log the job's config (password hidden) and each publish in the agent's log.",
        },
        "timeout": TIMEOUT_SCHEMA,
    },
    "required": ["url", "subject"],
    "additionalProperties": False,
}

_SUBJECT_TOKEN = re.compile(r"[^\s.]+")


@dataclass(frozen=True)
class NatsConfig:
    servers: tuple[str, ...]
    subject: str
    message: bytes
    user: str
    password: str
    debug: bool
    timeout: float

    @property
    def connection_key(self) -> tuple[tuple[str, ...], str, str]:
        """Jobs with the same servers and credentials share one connection."""
        return (self.servers, self.user, self.password)

    @property
    def address(self) -> str:
        """The servers as an error message names them: without credentials."""
        return ",".join(redact(server) for server in self.servers)


def parse_config(config: dict[str, str]) -> NatsConfig:
    """A checked NatsConfig, or ExecutionError naming the key that is wrong."""
    url = config.get("url", "")
    if not url.strip():
        raise config_error("url is empty: set executor_config.url to the NATS server, e.g. nats://127.0.0.1:4222")
    servers = tuple(parse_server(item) for item in url.split(",") if item.strip())
    if not servers:
        raise config_error(f"url {url!r} names no server: write nats://host:port, comma separated for several")
    subject = config.get("subject", "")
    if not subject:
        raise config_error("subject is empty: set executor_config.subject to the subject to publish to")
    if not all(_SUBJECT_TOKEN.fullmatch(token) for token in subject.split(".")):
        raise config_error(
            f"subject {subject!r} is not a valid NATS subject: dot-separated tokens without spaces, e.g. jobs.report"
        )
    try:
        timeout = parse_timeout(config.get("timeout", ""))
    except ValueError as error:
        raise config_error(str(error)) from None
    return NatsConfig(
        servers=servers,
        subject=subject,
        message=config.get("message", "").encode(),
        user=config.get("userName", ""),
        password=config.get("password", ""),
        # As Dkron: any non-empty value turns debugging on.
        debug=bool(config.get("debug", "")),
        timeout=timeout,
    )


def parse_server(text: str) -> str:
    """One server URL; `host:port` alone means nats://host:port, as the Go client reads it."""
    server = text.strip()
    if "://" not in server:
        server = f"nats://{server}"
    try:
        parts = urllib.parse.urlsplit(server)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise config_error(f"url {redact(text.strip())!r} is not a server URL: {error}") from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise config_error(
            f"url {redact(text.strip())!r} is not a NATS server URL: "
            f"write {' or '.join(s + '://host:port' for s in SCHEMES[:2])}"
        )
    return server


def redact(server: str) -> str:
    """The URL without its password: errors and logs name the broker, never the secret."""
    try:
        parts = urllib.parse.urlsplit(server)
    except ValueError:
        return server.split("@")[-1]
    if parts.password is None and parts.username is None:
        return server
    host = parts.netloc.rsplit("@", 1)[-1]
    # A user name alone is a NATS token: hidden too.
    user = f"{parts.username}:***@" if parts.password is not None else "***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


def config_error(message: str) -> ExecutionError:
    return ExecutionError(f"nats: {message}", exit_code=1)
