"""Structured logs: one line per event, `key=value` pairs (logfmt), job and execution ids as fields.

Log with `log.info("message", extra=fields(job="backup", execution="…"))`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    """The `extra=` argument that attaches key=value fields to one log record."""
    return {"fields": values}


def _quote(value: Any) -> str:
    text = str(value)
    if text and all(c.isprintable() and c not in ' "=' for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        parts = [
            f"time={moment.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key, value in getattr(record, "fields", {}).items():
            parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"error={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup_logging(level: str = "info", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
