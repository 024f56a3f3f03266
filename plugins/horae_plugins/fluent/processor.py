"""The `fluent` processor: sends each execution to Fluentd / Fluent Bit over the Forward protocol.

Dkron's fluent processor posts `{host, job_name, message}` without waiting for an ack and forgets
errors. horae sends the execution's record (record.py) with an ack request and waits for it
(client.py), so the stored execution says whether the event arrived: unless `forward` is true,
the output is replaced by Dkron's "Output sent to Fluent" once acked; when the receiver is down,
drops the connection twice or never acks within `timeout`, the output is kept and a last line
says which receiver and what went wrong (also in the plugin's log), and the plugin keeps serving.
A bad config value fails the call with the key named.
"""

from __future__ import annotations

import logging

from horae_plugins.fluent.client import ConnectionPool, FluentError
from horae_plugins.fluent.config import CONFIG_SCHEMA, parse_config
from horae_plugins.fluent.record import message_frame, new_chunk_id
from horae_sdk import Execution, Processor

log = logging.getLogger("horae_plugins.fluent")

REPLACED_OUTPUT = b"Output sent to Fluent"


class FluentProcessor(Processor):
    name = "fluent"
    version = "1.0.0"
    config_schema = CONFIG_SCHEMA

    def __init__(self) -> None:
        self._connections = ConnectionPool()

    def process(self, execution: Execution, config: dict[str, str]) -> Execution:
        settings = parse_config(config)
        label = f"fluent receiver {settings.receiver}"
        connection = self._connections.get(settings.host, settings.port, label)
        chunk = new_chunk_id()
        try:
            connection.send(message_frame(settings.tag, execution, chunk), chunk, settings.timeout)
        except FluentError as error:
            log.error("fluent delivery failed: job=%s execution=%s error=%s", execution.job_name, execution.id, error)
            failure = f"fluent: the output was not delivered: {error}"
            return execution.replace(output=with_error_line(execution.output, failure))
        if settings.forward:
            return execution
        return execution.replace(output=REPLACED_OUTPUT)


def with_error_line(output: bytes, line: str) -> bytes:
    """The output with `line` added as its last line."""
    separator = b"" if not output or output.endswith(b"\n") else b"\n"
    return output + separator + line.encode() + b"\n"
