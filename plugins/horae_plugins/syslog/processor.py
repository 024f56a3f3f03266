"""The `syslog` processor: sends an execution's output to syslog, as Dkron's syslog processor does.

Dkron writes the whole output as one message with facility CRON, severity info, tag `[dkron]`, to
the local syslog. horae writes one message per line (see message.py for why) with facility and
tag from the config (defaults CRON and horae), severity info for a successful execution and err
for a failed one, to the local socket or to `address`.

`forward` as Dkron's: unless it is true, the output is replaced by "Output in syslog" once the
messages were sent. When they could not be sent (no daemon, an unreachable address, a timeout)
the output is kept and a last line says where it could not be sent and why; the same goes to the
plugin's log, and the plugin keeps serving. A bad config value fails the call with the key named.
"""

from __future__ import annotations

import logging

from horae_plugins.syslog.config import CONFIG_SCHEMA, parse_config
from horae_plugins.syslog.message import local_format, message_texts, priority, rfc5424
from horae_plugins.syslog.transport import DeliveryError, deliver, local_destination
from horae_sdk import Execution, Processor

log = logging.getLogger("horae_plugins.syslog")

REPLACED_OUTPUT = b"Output in syslog"


class SyslogProcessor(Processor):
    name = "syslog"
    version = "1.0.0"
    config_schema = CONFIG_SCHEMA

    def process(self, execution: Execution, config: dict[str, str]) -> Execution:
        settings = parse_config(config)
        pri = priority(settings.facility, execution.success)
        texts = message_texts(execution)
        try:
            destination = settings.destination or local_destination()
            encode = local_format if destination.is_local else rfc5424
            deliver(destination, [encode(pri, settings.tag, text) for text in texts], settings.timeout)
        except DeliveryError as error:
            log.error("syslog delivery failed: job=%s execution=%s error=%s", execution.job_name, execution.id, error)
            failure = f"syslog: the output was not sent: {error}"
            return execution.replace(output=with_error_line(execution.output, failure))
        if settings.forward:
            return execution
        return execution.replace(output=REPLACED_OUTPUT)


def with_error_line(output: bytes, line: str) -> bytes:
    """The output with `line` added as its last line."""
    separator = b"" if not output or output.endswith(b"\n") else b"\n"
    return output + separator + line.encode() + b"\n"
