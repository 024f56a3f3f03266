"""The fluent processor's configuration: the job's `processors.fluent` keys, then Dkron's variables.

Dkron's fluent processor reads its receiver from the agent's environment (FLUENTBIT_HOST,
FLUENTBIT_PORT, FLUENTBIT_TAG) and has one job key, `forward`. horae reads the keys `host`, `port`
and `tag` first and falls back to those variables (read from the plugin's environment, which is the
agent's), then to fluent-logger's defaults 127.0.0.1:24224 and the tag `horae`; so a Dkron setup
runs unchanged. `timeout` bounds the whole send, ack included. A bad value raises ExecutionError
naming the key or variable; the API rejects bad keys at save time through CONFIG_SCHEMA.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from horae_plugins.log import LogProcessor, parse_forward
from horae_plugins.shell.config import CONFIG_SCHEMA as SHELL_SCHEMA
from horae_plugins.shell.config import parse_duration
from horae_sdk import ExecutionError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 24224
DEFAULT_TAG = "horae"
DEFAULT_TIMEOUT_SECONDS = 10.0
# key -> Dkron's environment variable for it
ENVIRONMENT_FALLBACKS = {"host": "FLUENTBIT_HOST", "port": "FLUENTBIT_PORT", "tag": "FLUENTBIT_TAG"}

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "forward": {
            "type": "string",
            "enum": LogProcessor.config_schema["properties"]["forward"]["enum"],
            "description": 'Keep the output in the stored execution and pass it to the next processor ("true"). '
            'Otherwise ("false", the default) it is replaced by "Output sent to Fluent" once the receiver acked it.',
        },
        "host": {
            "type": "string",
            "description": "Host of the Fluentd / Fluent Bit forward input; default $FLUENTBIT_HOST, else 127.0.0.1.",
        },
        "port": {
            "type": "string",
            "pattern": r"^\s*([1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])?\s*$",
            "description": "Its TCP port; default $FLUENTBIT_PORT, else 24224.",
        },
        "tag": {
            "type": "string",
            "description": "Tag of the events; default $FLUENTBIT_TAG, else horae.",
        },
        "timeout": {
            "type": "string",
            "pattern": SHELL_SCHEMA["properties"]["timeout"]["pattern"],
            "description": "Give up when the receiver has not acked within this long: a Go duration (10s, 500ms) "
            "or seconds; default 10s.",
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class FluentConfig:
    host: str
    port: int
    tag: str
    timeout: float
    forward: bool

    @property
    def receiver(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_config(config: dict[str, str], environ: Mapping[str, str] = os.environ) -> FluentConfig:
    """A checked FluentConfig, or ExecutionError naming the key (or variable) that is wrong."""
    host, _ = _setting(config, environ, "host")
    port_text, port_source = _setting(config, environ, "port")
    tag, tag_source = _setting(config, environ, "tag")
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise config_error(f"{port_source} {port_text!r} is not a TCP port (1 to 65535)")
        port = int(port_text)
    if any(char.isspace() for char in tag):
        raise config_error(f"{tag_source} {tag!r} must not contain spaces (Fluent tags are dot-separated words)")
    return FluentConfig(
        host=host or DEFAULT_HOST,
        port=port,
        tag=tag or DEFAULT_TAG,
        timeout=parse_timeout(config.get("timeout", "")),
        forward=parse_forward(config.get("forward", "")),
    )


def _setting(config: dict[str, str], environ: Mapping[str, str], key: str) -> tuple[str, str]:
    """(value, where it came from) for `key`: the job's config, else Dkron's variable; '' when neither."""
    value = config.get(key, "").strip()
    if value:
        return value, key
    variable = ENVIRONMENT_FALLBACKS[key]
    return environ.get(variable, "").strip(), f"environment variable {variable}"


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
    return ExecutionError(f"fluent: {message}")
