"""An execution as syslog messages: one per line of output, then one that says how it ended.

One message per line, not one per execution: syslog daemons store a message as one line (a newline
inside becomes `#012`), UDP carries about 2 KiB safely, and an operator greps and tails the log
line by line. Every message starts with `job=… execution=…:` so the lines of concurrent
executions stay apart; the last one (`execution finished: success=… exit_code=…`) tells that the
output is complete, also for an execution without output. Severity is info for a successful
execution and err for a failed one, on every message, so `cron.err` selects whole failed outputs.

Two wire formats, each what the receiver expects (RFC 5424 leaves local IPC unspecified):
- network (udp/tcp): RFC 5424, for its full timestamp (year, time zone, microseconds) and the
  sender's host name, which a central collector of many agents needs;
- a unix socket (/dev/log): the traditional local format of glibc's syslog(3) and Go's
  log/syslog (`<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`), which every local daemon, journald
  included, parses; it is what Dkron's processor writes.
"""

from __future__ import annotations

import datetime
import os
import socket

from horae_sdk import Execution

SEVERITY_ERR = 3
SEVERITY_INFO = 6
# Lines are cut to this many bytes so that a whole message stays near the 2048 octets every
# RFC 5426 receiver should accept over UDP.
MAX_LINE_BYTES = 1800
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def message_texts(execution: Execution) -> list[str]:
    """The MSG part of each message for `execution`, in the order they are sent."""
    prefix = f"job={execution.job_name} execution={execution.id}:"
    lines = execution.output.decode(errors="replace").splitlines()
    texts = [f"{prefix} {cut(line)}" for line in lines]
    texts.append(
        f"{prefix} execution finished: success={'true' if execution.success else 'false'}"
        f" exit_code={execution.exit_code} node={execution.node_name or '-'} lines={len(lines)}"
    )
    return texts


def priority(facility: int, success: bool) -> int:
    """PRI = facility * 8 + severity (RFC 5424 §6.2.1)."""
    return facility * 8 + (SEVERITY_INFO if success else SEVERITY_ERR)


def rfc5424(pri: int, tag: str, text: str, now: datetime.datetime | None = None) -> bytes:
    """`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - MSG`, without structured data."""
    moment = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    timestamp = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return f"<{pri}>1 {timestamp} {_hostname()} {tag} {os.getpid()} - - {text}".encode()


def local_format(pri: int, tag: str, text: str, now: datetime.datetime | None = None) -> bytes:
    """`<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG` in local time, as glibc's syslog(3) sends to /dev/log."""
    moment = now or datetime.datetime.now().astimezone()
    timestamp = f"{_MONTHS[moment.month - 1]} {moment.day:2d} {moment:%H:%M:%S}"
    return f"<{pri}>{timestamp} {tag}[{os.getpid()}]: {text}".encode()


def cut(line: str) -> str:
    """The line, cut to MAX_LINE_BYTES of UTF-8 at a character boundary, saying how much was left out."""
    encoded = line.encode()
    if len(encoded) <= MAX_LINE_BYTES:
        return line
    kept = encoded[:MAX_LINE_BYTES].decode(errors="ignore")
    return f"{kept}… ({len(encoded) - len(kept.encode())} more bytes)"


def _hostname() -> str:
    """RFC 5424 HOSTNAME: printable ASCII without spaces, at most 255 characters, `-` when unknown."""
    name = "".join(char for char in socket.gethostname() if "!" <= char <= "~")[:255]
    return name or "-"
