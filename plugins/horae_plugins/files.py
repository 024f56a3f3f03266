"""The `files` processor: Dkron's files processor, writing each execution's output to a file of its own.

Dkron writes `<log_dir>/<execution key>.log` (key: start time in Unix nanoseconds and node name).
horae's execution ids are unique per job only (jobs due at the same time share them), so the file is
`<log_dir>/<job>/<execution id>.log`; the job's directory is created when missing. An execution
without an id falls back to Dkron's key. The file appears whole or not at all: it is written to a
temporary file in the same directory, flushed to disk, then renamed over the final name.

Config, as Dkron's: `log_dir` (default /var/log/horae, created when missing, as Dkron does for its
/var/log/dkron; a log_dir that is set must exist) and `forward` ("true"/"false", Go's
strconv.ParseBool; default false). When not forwarding, the output is replaced by the file's path,
as Dkron does. horae adds `max_bytes`: keep only the last N bytes of the output in the file
(default: no limit; Dkron's fixed 256 KB cut is its bug #1202).

When the file cannot be written (log_dir missing or not writable, bad config), the output is kept,
headed by a line that says what went wrong, so nothing is lost; the plugin keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path

from horae_plugins.log import parse_forward
from horae_sdk import Execution, Processor, serve

log = logging.getLogger("horae_plugins.files")

DEFAULT_LOG_DIR = "/var/log/horae"
FILE_MODE = 0o644
DIR_MODE = 0o755
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_SIZE_MULTIPLIERS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_FORWARD_VALUES = ["", "0", "1", "F", "FALSE", "False", "T", "TRUE", "True", "f", "false", "t", "true"]


class NotWritten(Exception):
    """The output could not be written; the text says where and why (naming the key when it is config)."""


class FilesProcessor(Processor):
    name = "files"
    version = "1.0.0"
    config_schema = {
        "type": "object",
        "properties": {
            "log_dir": {
                "type": "string",
                "description": f"Directory for the files (default {DEFAULT_LOG_DIR}); each job gets a subdirectory "
                "and each execution a file `<job>/<execution id>.log`.",
            },
            "forward": {
                "type": "string",
                "enum": _FORWARD_VALUES,
                "description": 'Keep the output in the stored execution ("true"). Otherwise ("false", the default) '
                "it is replaced by the file's path.",
            },
            "max_bytes": {
                "type": "string",
                "pattern": r"^\s*(|\d+\s*([kKmMgGtT]?)([iI]?[bB]?))\s*$",
                "description": "Keep only the last this many bytes of the output in the file: bytes, or a number with "
                "K, M, G or T (powers of 1024). Empty or 0: no limit. A horae extension.",
            },
        },
        "additionalProperties": False,
    }
    # horae-conformance writes its executions' files to the temp dir, not to /var/log.
    conformance = {"process": {"log_dir": tempfile.gettempdir()}}

    def process(self, execution: Execution, config: dict[str, str]) -> Execution:
        try:
            path = write_output(execution, config)
        except NotWritten as error:
            note = f"files: the output was not written to a file: {error}\n"
            log.warning("job %s execution %s: %s", execution.job_name, execution.id, note.strip())
            return execution.replace(output=note.encode() + execution.output)
        if parse_forward(config.get("forward", "")):
            return execution
        return execution.replace(output=str(path).encode())


def write_output(execution: Execution, config: dict[str, str]) -> Path:
    """Write the (capped) output to its file atomically; the file's path, or NotWritten."""
    max_bytes = parse_max_bytes(config.get("max_bytes", ""))
    log_dir = Path(config.get("log_dir", "").strip() or DEFAULT_LOG_DIR)
    path = (
        log_dir
        / safe_name(execution.job_name or "unnamed-job")
        / f"{safe_name(execution.id or dkron_key(execution))}.log"
    )
    output = execution.output
    if max_bytes and len(output) > max_bytes:
        log.info(
            "job %s execution %s: kept the last %d of %d bytes",
            execution.job_name,
            execution.id,
            max_bytes,
            len(output),
        )
        output = output[-max_bytes:]
    try:
        if str(log_dir) == DEFAULT_LOG_DIR:
            log_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)  # as Dkron creates its default
        elif not log_dir.is_dir():
            raise NotWritten(f"log_dir {str(log_dir)!r} does not exist or is not a directory: create it or fix log_dir")
        with contextlib.suppress(FileExistsError):
            path.parent.mkdir(mode=DIR_MODE)
        write_atomically(path, output)
    except OSError as error:
        raise NotWritten(
            f"cannot write {str(path)!r}: {error.strerror or error} (log_dir {str(log_dir)!r} must be a directory "
            "the agent's user can write to)"
        ) from None
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """The final name never shows partial content: a temp file in the same directory, fsync, rename."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
            os.fchmod(temp.fileno(), FILE_MODE)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def parse_max_bytes(text: str) -> int:
    """Bytes in `1048576`, `512K`, `50M`, `2GiB`; 0 (no limit) when empty."""
    value = text.strip()
    if not value:
        return 0
    match = _SIZE.fullmatch(value)
    if not match or match.group(3).lower() == "i" or (not match.group(2) and match.group(3).lower() == "ib"):
        raise NotWritten(f"max_bytes {text!r} is not a size (examples: 1048576, 512K, 50M, 2G; empty: no limit)")
    return int(match.group(1)) * _SIZE_MULTIPLIERS[match.group(2).lower()]


def safe_name(name: str) -> str:
    """One path component: no separators, no NUL, not `.` or `..`."""
    cleaned = name.replace("/", "_").replace("\\", "_").replace("\0", "_")
    return f"_{cleaned}" if cleaned in {"", ".", ".."} else cleaned


def dkron_key(execution: Execution) -> str:
    """Dkron's execution key: `<started_at in Unix nanoseconds>-<node name>`."""
    started = execution.started_at
    nanos = 0
    if started is not None:
        seconds = int(started.timestamp())
        nanos = seconds * 1_000_000_000 + started.microsecond * 1000
    return f"{nanos}-{execution.node_name}"


if __name__ == "__main__":
    serve(processor=FilesProcessor())
