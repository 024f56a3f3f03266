"""The shell executor's job configuration: Dkron's `executor_config` keys, parsed and checked.

Every key is a string (Dkron's executor_config is a string map). A bad value fails the execution
with a message that names the key, before anything is started. The same keys are described by
`CONFIG_SCHEMA`, which the API uses to reject a bad job at save time.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from dataclasses import dataclass, field

from horae_sdk import ExecutionError

DEFAULT_OUTPUT_LIMIT = 256 * 1024  # as Dkron: the execution keeps the last 256 KiB
MAX_OUTPUT_LIMIT = 16 * 1024 * 1024  # the response must fit in a 64 MiB gRPC message with room to spare

# Go's strconv.ParseBool, which Dkron uses for `shell`.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

# Go's time.ParseDuration units, in seconds.
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_SIZE_MULTIPLIERS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "command": {
            "type": "string",
            "minLength": 1,
            "description": "The command to run. With shell=true it is a /bin/sh script; otherwise it is split "
            "into arguments like a shell would (quotes, backslashes) and executed directly.",
        },
        "shell": {
            "type": "string",
            "enum": sorted(_TRUE | _FALSE | {""}),
            "description": 'Run the command with `/bin/sh -c` ("true"), or execute it directly ("false", the default).',
        },
        "env": {
            "type": "string",
            "description": "Extra environment variables, comma separated: `KEY=value,KEY2=value2`.",
        },
        "cwd": {"type": "string", "description": "Working directory of the command (default: the agent's)."},
        "timeout": {
            "type": "string",
            "pattern": r"^\s*(|\d+(\.\d*)?|\.\d+|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)\s*$",
            "description": "Kill the command's whole process group when it runs longer than this: a Go duration "
            "such as `30s`, `1h30m`, `500ms`, or a number of seconds. Empty or 0: no timeout.",
        },
        "mem_limit": {
            "type": "string",
            "pattern": r"^\s*(|(\d+(\.\d*)?|\.\d+)\s*([kKmMgGtT]?)([iI]?[bB]?))\s*$",
            "description": "Kill the command when the resident memory of its process tree exceeds this: bytes, "
            "or a number with a K, M, G or T suffix (powers of 1024; KB, KiB, MB, MiB… are accepted). "
            "Checked every 150 ms. Empty or 0: no limit.",
        },
        "mem_limit_kb": {
            "type": "string",
            "pattern": r"^\s*\d*\s*$",
            "description": "Dkron's spelling of mem_limit: kibibytes. Give one of the two.",
        },
        "su": {
            "type": "string",
            "description": "Run the command as `user` or `user:group` (names or numeric ids). The agent must run "
            "as root. HOME, USER and LOGNAME are set for that user.",
        },
        "payload": {
            "type": "string",
            "description": "Base64 data written to the command's standard input (otherwise stdin is /dev/null).",
        },
        "output_limit": {
            "type": "string",
            "pattern": r"^\s*\d+(\.\d*)?\s*([kKmMgGtT]?)([iI]?[bB]?)\s*$",
            "description": "How many bytes of the end of the output the execution keeps (default 262144, 256 KiB; "
            "at most 16 MiB). The whole output is still streamed live. A horae extension.",
        },
    },
    "required": ["command"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class ShellConfig:
    command: str
    argv: list[str]
    shell: bool
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float | None = None
    mem_limit: int | None = None
    su: str = ""
    payload: bytes | None = None
    output_limit: int = DEFAULT_OUTPUT_LIMIT


def parse_config(config: dict[str, str]) -> ShellConfig:
    """A checked ShellConfig, or ExecutionError naming the key that is wrong."""
    command = config.get("command", "")
    if not command.strip():
        raise _config_error("command is empty")
    shell = parse_bool("shell", config.get("shell", ""))
    if shell:
        argv = ["/bin/sh", "-c", command]
    else:
        try:
            argv = shlex.split(command)
        except ValueError as error:
            raise _config_error(f"command cannot be split into arguments: {error}") from None
    timeout = parse_duration(config.get("timeout", "")) if config.get("timeout", "").strip() else None
    mem_limit = parse_size("mem_limit", config["mem_limit"]) if config.get("mem_limit", "").strip() else None
    if config.get("mem_limit_kb", "").strip():
        if mem_limit is not None:
            raise _config_error("mem_limit and mem_limit_kb are both set; keep one (mem_limit takes K, M, G suffixes)")
        mem_limit = parse_size("mem_limit_kb", config["mem_limit_kb"].strip() + "K")
    output_limit = DEFAULT_OUTPUT_LIMIT
    if config.get("output_limit", "").strip():
        output_limit = parse_size("output_limit", config["output_limit"])
        if output_limit > MAX_OUTPUT_LIMIT:
            raise _config_error(f"output_limit {output_limit} is above the maximum {MAX_OUTPUT_LIMIT} (16 MiB)")
    return ShellConfig(
        command=command,
        argv=argv,
        shell=shell,
        env=parse_env(config.get("env", "")),
        cwd=config.get("cwd") or None,
        timeout=timeout or None,
        mem_limit=mem_limit or None,
        su=config.get("su", "").strip(),
        payload=parse_payload(config.get("payload", "")),
        output_limit=output_limit,
    )


def parse_bool(key: str, text: str) -> bool:
    """Go's strconv.ParseBool; empty is false."""
    value = text.strip()
    if value in _TRUE:
        return True
    if value in _FALSE or not value:
        return False
    raise _config_error(f'{key} must be "true" or "false", not {text!r}')


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (`1h30m`, `500ms`, `2.5s`) or a plain number of seconds."""
    value = text.strip()
    if _PLAIN_NUMBER.fullmatch(value):
        return float(value)
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(value) or not value:
        raise _config_error(f"timeout {text!r} is not a duration (examples: 30s, 1h30m, 500ms, or seconds: 90)")
    return seconds


def parse_size(key: str, text: str) -> int:
    """Bytes in `1048576`, `512K`, `50M`, `1.5G`, `2GiB` (powers of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if not match or match.group(3).lower() == "i" or (not match.group(2) and match.group(3).lower() == "ib"):
        raise _config_error(f"{key} {text!r} is not a size (examples: 1048576, 512K, 50M, 2G)")
    return int(float(match.group(1)) * _SIZE_MULTIPLIERS[match.group(2).lower()])


def parse_env(text: str) -> dict[str, str]:
    """Dkron's `K=v,K2=v2` (values cannot contain commas); blank items are skipped."""
    env: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _config_error(f"env item {item!r} is not KEY=value")
        env[key.strip()] = value
    return env


def parse_payload(text: str) -> bytes | None:
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _config_error("payload is not valid base64") from None


def _config_error(message: str) -> ExecutionError:
    return ExecutionError(f"shell: {message}", exit_code=1)
