"""A plugin's stderr is its log: parse each line (hclog JSON or an `[INFO]` prefix) into the
agent's log under the plugin's name, and keep the last lines for error messages."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque

from horae.logs import fields

LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_PREFIX = re.compile(r"\[(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)\]\s*", re.IGNORECASE)
MAX_LINE_CHARS = 4096
TAIL_LINES = 20
# A plugin that floods stderr must not flood the agent's log: beyond this, lines are counted.
MAX_LINES_PER_SECOND = 200


def parse_line(text: str) -> tuple[int, str, dict[str, object]]:
    """(level, message, extra fields) of one stderr line."""
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if isinstance(record, dict) and "@message" in record:
            level = LEVELS.get(str(record.get("@level", "info")).lower(), logging.INFO)
            extra = {k: v for k, v in record.items() if not k.startswith("@")}
            return level, str(record["@message"]), extra
    match = _PREFIX.search(text[:64])
    if match:
        return LEVELS.get(match.group(1).lower(), logging.INFO), text[match.end() :], {}
    return logging.INFO, text, {}


class PluginLog:
    def __init__(self, kind: str, name: str) -> None:
        self.name = name
        self._logger = logging.getLogger(f"horae.plugin.{name}")
        self._plugin_field = f"{kind}/{name}"
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._window_start = 0.0
        self._window_lines = 0
        self._suppressed = 0

    def tail(self) -> list[str]:
        return list(self._tail)

    def line(self, raw: bytes) -> None:
        text = raw.decode(errors="replace").rstrip("\r\n")
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + f"… ({len(text) - MAX_LINE_CHARS} more characters)"
        if not text.strip():
            return
        self._tail.append(text)
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            if self._suppressed:
                self._logger.warning(
                    "plugin log lines suppressed (more than %d per second)",
                    MAX_LINES_PER_SECOND,
                    extra=fields(plugin=self._plugin_field, suppressed=self._suppressed),
                )
            self._window_start, self._window_lines, self._suppressed = now, 0, 0
        self._window_lines += 1
        if self._window_lines > MAX_LINES_PER_SECOND:
            self._suppressed += 1
            return
        level, message, extra = parse_line(text)
        self._logger.log(level, message, extra=fields(plugin=self._plugin_field, **extra))


async def pump_stderr(reader: asyncio.StreamReader, plugin_log: PluginLog) -> None:
    """Read stderr to its end, line by line; an over-long line is cut, never fatal."""
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as end:
            if end.partial:
                plugin_log.line(end.partial)
            return
        except asyncio.LimitOverrunError as overrun:
            raw = await reader.read(overrun.consumed)
        plugin_log.line(raw)
