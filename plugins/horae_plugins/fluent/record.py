"""An execution as one Fluent Forward protocol event: its record, its time, the Message-mode frame.

The record keeps Dkron's keys (`host` is the node, `job_name`, `message` the output) and adds the
execution's id, outcome, exit code, attempt and RFC 3339 start and finish times. `message` is
text (UTF-8, bad bytes replaced) where Dkron sends msgpack bin: Fluentd and Fluent Bit then write
it as a plain string to JSON outputs. The event time is the finish time as an EventTime
(nanosecond precision, msgpack ext type 0), falling back to now for an unfinished execution.
The frame is Message mode, `[tag, time, record, {"chunk": id}]`, whose `chunk` asks for an ack.
"""

from __future__ import annotations

import base64
import datetime
import struct
import uuid
from typing import Any

import msgpack

from horae_sdk import Execution

EVENT_TIME_EXT_TYPE = 0


def execution_record(execution: Execution) -> dict[str, Any]:
    return {
        "host": execution.node_name,
        "job_name": execution.job_name,
        "message": execution.output.decode(errors="replace"),
        "execution_id": execution.id,
        "success": execution.success,
        "exit_code": execution.exit_code,
        "attempt": execution.attempt,
        "started_at": rfc3339(execution.started_at),
        "finished_at": rfc3339(execution.finished_at),
    }


def message_frame(tag: str, execution: Execution, chunk: str) -> bytes:
    """The Message-mode frame for `execution`, asking for an ack of `chunk`."""
    moment = execution.finished_at or datetime.datetime.now(datetime.UTC)
    return msgpack.packb([tag, event_time(moment), execution_record(execution), {"chunk": chunk}], use_bin_type=True)


def new_chunk_id() -> str:
    """A unique chunk id, base64 of 16 random bytes (as fluent-logger-python makes them)."""
    return base64.b64encode(uuid.uuid4().bytes).decode()


def event_time(moment: datetime.datetime) -> msgpack.ExtType:
    """The Forward protocol's EventTime: ext type 0, seconds and nanoseconds as big-endian uint32."""
    seconds = int(moment.timestamp())
    nanoseconds = moment.microsecond * 1000
    return msgpack.ExtType(EVENT_TIME_EXT_TYPE, struct.pack(">II", seconds, nanoseconds))


def rfc3339(moment: datetime.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
