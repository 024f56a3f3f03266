"""The syslog processor's configuration: the job's `processors.syslog` keys, parsed and checked.

Dkron's syslog processor has one key, `forward`, and always logs to the local syslog with
facility CRON. horae keeps `forward` exactly (Go's strconv.ParseBool, lenient as Dkron's) and adds
`facility`, `tag`, `address` and `timeout`, all optional, so a Dkron job runs unchanged. A bad
value raises ExecutionError naming the key; the API rejects it at save time through CONFIG_SCHEMA.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from horae_plugins.log import LogProcessor, parse_forward
from horae_plugins.shell.config import CONFIG_SCHEMA as SHELL_SCHEMA
from horae_plugins.shell.config import parse_duration
from horae_sdk import ExecutionError

DEFAULT_FACILITY = "CRON"
DEFAULT_TAG = "horae"
DEFAULT_PORT = 514
DEFAULT_TIMEOUT_SECONDS = 10.0

# Facility codes of RFC 5424 §6.2.1, under the names Go's syslog packages (and so Dkron) use.
FACILITIES = {
    "KERN": 0,
    "USER": 1,
    "MAIL": 2,
    "DAEMON": 3,
    "AUTH": 4,
    "SYSLOG": 5,
    "LPR": 6,
    "NEWS": 7,
    "UUCP": 8,
    "CRON": 9,
    "AUTHPRIV": 10,
    "FTP": 11,
    **{f"LOCAL{number}": 16 + number for number in range(8)},
}
SCHEMES = ("udp", "tcp", "unix")
# RFC 5424's APP-NAME: 1 to 48 printable US-ASCII characters, no space.
TAG_PATTERN = r"^([!-~]{1,48})?$"
ADDRESS_PATTERN = r"^(|(udp|tcp)://[^/\s]+|unix:///\S+)$"
# A Go duration or seconds, as the shell executor's `timeout`.
TIMEOUT_PATTERN = SHELL_SCHEMA["properties"]["timeout"]["pattern"]

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "forward": {
            "type": "string",
            "enum": LogProcessor.config_schema["properties"]["forward"]["enum"],
            "description": 'Keep the output in the stored execution and pass it to the next processor ("true"). '
            'Otherwise ("false", the default) it is replaced by "Output in syslog" once it was sent.',
        },
        "facility": {
            "type": "string",
            "enum": sorted({"", *FACILITIES, *(name.lower() for name in FACILITIES)}),
            "description": "Syslog facility of the messages (default CRON, as Dkron).",
        },
        "tag": {
            "type": "string",
            "pattern": TAG_PATTERN,
            "description": "Program name the messages carry (RFC 5424 APP-NAME, the traditional TAG); default horae.",
        },
        "address": {
            "type": "string",
            "pattern": ADDRESS_PATTERN,
            "description": "Where to send: udp://host:port, tcp://host:port (port default 514) or unix:///path. "
            "Empty (the default, as Dkron): the local syslog socket, /dev/log.",
        },
        "timeout": {
            "type": "string",
            "pattern": TIMEOUT_PATTERN,
            "description": "Give up sending after this long: a Go duration (10s, 500ms) or seconds; default 10s.",
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Destination:
    """Where the messages go: a network peer (udp/tcp) or a unix socket path."""

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_local(self) -> bool:
        return self.scheme == "unix"

    def __str__(self) -> str:
        if self.is_local:
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class SyslogConfig:
    facility: int
    tag: str
    destination: Destination | None  # None: the local syslog socket
    timeout: float
    forward: bool


def parse_config(config: dict[str, str]) -> SyslogConfig:
    """A checked SyslogConfig, or ExecutionError naming the key that is wrong and how to fix it."""
    facility_name = config.get("facility", "").strip().upper() or DEFAULT_FACILITY
    if facility_name not in FACILITIES:
        raise config_error(f"facility {config['facility']!r} is not a syslog facility (one of {', '.join(FACILITIES)})")
    tag = config.get("tag", "").strip() or DEFAULT_TAG
    if not (len(tag) <= 48 and all("!" <= char <= "~" for char in tag)):
        raise config_error(f"tag {tag!r} must be 1 to 48 printable ASCII characters without spaces")
    address = config.get("address", "").strip()
    return SyslogConfig(
        facility=FACILITIES[facility_name],
        tag=tag,
        destination=parse_address(address) if address else None,
        timeout=parse_timeout(config.get("timeout", "")),
        forward=parse_forward(config.get("forward", "")),
    )


def parse_address(text: str) -> Destination:
    """`udp://host:port`, `tcp://host:port` (port default 514) or `unix:///path`."""
    how_to = "write it as udp://host:port, tcp://host:port or unix:///path/to/socket"
    scheme, _, rest = text.partition("://")
    if scheme.lower() not in SCHEMES or not rest:
        raise config_error(f"address {text!r} is not usable: {how_to}")
    scheme = scheme.lower()
    if scheme == "unix":
        if not rest.startswith("/"):
            raise config_error(f"address {text!r}: a unix socket needs an absolute path (unix:///dev/log)")
        return Destination("unix", path=rest)
    try:
        parts = urlsplit(f"//{rest}")
        port = parts.port or DEFAULT_PORT
    except ValueError as error:
        raise config_error(f"address {text!r} has a bad port ({error}): {how_to}") from None
    if not parts.hostname or parts.path or parts.query:
        raise config_error(f"address {text!r} has no host or has a path: {how_to}")
    return Destination(scheme, host=parts.hostname, port=port)


def parse_timeout(text: str) -> float:
    if not text.strip():
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = parse_duration(text)
    except ExecutionError:
        seconds = 0.0
    if seconds <= 0:
        raise config_error(f"timeout {text!r} is not a positive duration (examples: 10s, 500ms, or seconds: 10)")
    return seconds


def config_error(message: str) -> ExecutionError:
    return ExecutionError(f"syslog: {message}")
