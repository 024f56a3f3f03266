"""The `log` processor: Dkron's log processor, writing an execution's output to the agent's log.

Dkron's version prints `----- BEGIN OUTPUT job=… execution=… -----`, the output, and
`----- END OUTPUT -----` on the plugin's stdout (stderr when the execution failed). Under horae a
plugin's stdout after the handshake is not shown anywhere, and its stderr *is* its log, which the
host attaches to the agent's log under `horae.plugin.log`. So this processor writes the same three
parts to stderr, as hclog JSON lines, one log line per line of output:

- level `info` for a successful execution, `warn` for a failed one (Dkron's stdout/stderr split);
- fields `job` and `execution` (the execution id) on every line, so a log search finds them all and
  concurrent executions stay apart; one execution's lines are written together;
- a line longer than 2000 characters is cut (the host cuts longer log lines, which would break the
  JSON); output that is not UTF-8 is decoded with replacement characters. The host's own limit of
  log lines per second applies: a long output may show up in the agent's log only in part.

Config, as Dkron's: `forward` ("true"/"false", Go's strconv.ParseBool; default false). When it is
not true, the execution's output is replaced, for what is stored and for the next processor, by
"Output in horae log" (Dkron writes "Output in dkron log"), since the output now lives in the log.
When it is true the output passes through unchanged.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import threading

from horae_sdk import Execution, Processor, serve

log = logging.getLogger("horae_plugins.log")

REPLACED_OUTPUT = b"Output in horae log"
MAX_LINE_CHARS = 2000
# The host cuts stderr lines longer than 4096 characters; a JSON line must stay below that to parse.
MAX_JSON_CHARS = 4000
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class LogProcessor(Processor):
    name = "log"
    version = "1.0.0"
    config_schema = {
        "type": "object",
        "properties": {
            "forward": {
                "type": "string",
                "enum": sorted(_TRUE | _FALSE | {""}),
                "description": 'Keep the output in the stored execution and pass it to the next processor ("true"). '
                'Otherwise ("false", the default) it is replaced by "Output in horae log".',
            }
        },
        "additionalProperties": False,
    }

    def __init__(self) -> None:
        self._write_lock = threading.Lock()

    def process(self, execution: Execution, config: dict[str, str]) -> Execution:
        self._log_output(execution)
        if parse_forward(config.get("forward", "")):
            return execution
        return execution.replace(output=REPLACED_OUTPUT)

    def _log_output(self, execution: Execution) -> None:
        level = "info" if execution.success else "warn"
        fields = {"job": execution.job_name, "execution": execution.id}
        messages = [
            f"----- BEGIN OUTPUT job={execution.job_name} execution={execution.id} -----",
            *execution.output.decode(errors="replace").splitlines(),
            "----- END OUTPUT -----",
        ]
        text = "".join(hclog_line(level, message, fields) + "\n" for message in messages)
        with self._write_lock:  # one execution's lines stay together
            sys.stderr.write(text)
            sys.stderr.flush()


def parse_forward(text: str) -> bool:
    """Go's strconv.ParseBool, as Dkron reads `forward`; anything else counts as false, with a warning."""
    value = text.strip()
    if value in _TRUE:
        return True
    if value and value not in _FALSE:
        log.warning("forward %r is not true or false: the output is not forwarded", text)
    return False


def hclog_line(level: str, message: str, fields: dict[str, str]) -> str:
    """One hclog JSON log line, short enough for the host to read whole."""
    if len(message) > MAX_LINE_CHARS:
        message = message[:MAX_LINE_CHARS] + f"… ({len(message) - MAX_LINE_CHARS} more characters)"
    timestamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
    for _ in range(12):
        line = json.dumps(
            {"@level": level, "@message": message, "@module": "log", "@timestamp": timestamp, **fields},
            ensure_ascii=False,
        )
        if len(line) <= MAX_JSON_CHARS:
            break
        # Escaped control characters made it longer than the message: cut harder.
        message = message[: len(message) // 2] + "… (cut)"
    return line


if __name__ == "__main__":
    serve(processor=LogProcessor())
