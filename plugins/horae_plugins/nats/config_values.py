"""Parsers for the string values of a broker executor's config (Go booleans, the `timeout` key).

Dkron's executor_config is a map of strings and its executors read booleans with Go's
strconv.ParseBool; these keep that reading. Each raises ValueError with a message that names the
key and says what to write; the executors prefix it with their name. Shared by nats and rabbitmq.
"""

from __future__ import annotations

import re

from horae.durations import parse_duration

DEFAULT_TIMEOUT_SECONDS = 30.0
TIMEOUT_SCHEMA = {
    "type": "string",
    "pattern": r"^\s*(|\d+(\.\d*)?|\.\d+|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)\s*$",
    "description": "Give up when the broker has not taken the message after this long: a Go duration such as "
    "`30s` or `500ms`, or a number of seconds (default 30s). The job's own timeout applies too, whichever is "
    "shorter. A horae extension: Dkron has no such key.",
}

# Go's strconv.ParseBool.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
GO_BOOL_VALUES = sorted(_TRUE | _FALSE | {""})
_SECONDS = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_go_bool(key: str, text: str) -> bool:
    """Go's strconv.ParseBool; empty is false."""
    value = text.strip()
    if value in _TRUE:
        return True
    if value in _FALSE or not value:
        return False
    raise ValueError(f'{key} must be "true" or "false", not {text!r}')


def parse_timeout(text: str) -> float:
    """Seconds in the `timeout` key: a Go duration or a plain number of seconds; empty is the default."""
    value = text.strip()
    if not value:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(value) if _SECONDS.fullmatch(value) else parse_duration(value)
    except ValueError as error:
        raise ValueError(f"timeout {text!r} is not a duration (examples: 30s, 500ms, 2m, or seconds: 10)") from error
    if seconds <= 0:
        raise ValueError(f"timeout {text!r} must be above zero (examples: 30s, 500ms)")
    return seconds
