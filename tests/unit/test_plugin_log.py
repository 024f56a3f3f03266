"""A plugin's stderr is its log: line parsing, the rate limit, the tail kept for error messages."""

from __future__ import annotations

import asyncio
import logging

import pytest

from horae.host import plugin_log
from horae.host.plugin_log import MAX_LINE_CHARS, MAX_LINES_PER_SECOND, TAIL_LINES, PluginLog, parse_line, pump_stderr


def test_hclog_json_line_gives_level_message_and_extra_fields():
    line = (
        '{"@level":"warn","@message":"disk almost full","@timestamp":"2024-01-01T00:00:00.000000Z",'
        '"@module":"plugin.shell","free":"5%","attempt":2}'
    )
    level, message, extra = parse_line(line)
    assert level == logging.WARNING
    assert message == "disk almost full"
    assert extra == {"free": "5%", "attempt": 2}


@pytest.mark.parametrize(
    ("level_name", "expected"),
    [("trace", logging.DEBUG), ("debug", logging.DEBUG), ("INFO", logging.INFO), ("error", logging.ERROR)],
)
def test_hclog_levels_map_to_logging_levels(level_name, expected):
    assert parse_line(f'{{"@level":"{level_name}","@message":"m"}}')[0] == expected


def test_hclog_line_without_a_level_is_info():
    assert parse_line('{"@message":"hello"}') == (logging.INFO, "hello", {})


def test_prefixed_line_takes_its_level_from_the_bracketed_word():
    assert parse_line("2024-01-01T00:00:00Z [WARN]  connection lost") == (logging.WARNING, "connection lost", {})
    assert parse_line("[ERROR] boom")[:2] == (logging.ERROR, "boom")
    assert parse_line("[debug] quiet")[:2] == (logging.DEBUG, "quiet")


@pytest.mark.parametrize(
    "line",
    [
        "just some text",
        "{not json at all",
        '{"json": "but not hclog"}',
        "x" * 80 + " [ERROR] a bracketed level far into the line is not a prefix",
    ],
)
def test_other_lines_are_info_and_kept_whole(line):
    level, message, extra = parse_line(line)
    assert level == logging.INFO
    assert extra == {}
    assert message == line


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(plugin_log, "time", fake)
    return fake


def plugin_records(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == f"horae.plugin.{name}"]


def test_lines_reach_the_log_under_the_plugin_name_with_their_level(caplog, clock):
    caplog.set_level(logging.DEBUG)
    log = PluginLog("executor", "demo")
    log.line(b'{"@level":"error","@message":"it failed","code":7}\n')
    log.line(b"[WARN] careful\r\n")
    log.line(b"plain\n")
    records = plugin_records(caplog, "demo")
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.ERROR, "it failed"),
        (logging.WARNING, "careful"),
        (logging.INFO, "plain"),
    ]
    assert records[0].fields == {"plugin": "executor/demo", "code": 7}


def test_blank_lines_are_ignored_and_invalid_utf8_is_replaced(caplog, clock):
    caplog.set_level(logging.DEBUG)
    log = PluginLog("executor", "demo")
    log.line(b"   \n")
    log.line(b"caf\xe9\n")
    assert log.tail() == ["caf\ufffd"]


def test_flood_is_rate_limited_and_the_suppressed_count_is_reported(caplog, clock):
    caplog.set_level(logging.DEBUG)
    log = PluginLog("executor", "flood")
    for i in range(MAX_LINES_PER_SECOND * 5):
        log.line(f"line {i}\n".encode())
    assert len(plugin_records(caplog, "flood")) == MAX_LINES_PER_SECOND

    clock.now += 1.5
    log.line(b"after the flood\n")
    records = plugin_records(caplog, "flood")
    warnings = [r for r in records if "suppressed" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert warnings[0].fields["suppressed"] == MAX_LINES_PER_SECOND * 4
    assert records[-1].getMessage() == "after the flood"


def test_lines_within_the_limit_are_all_logged_across_windows(caplog, clock):
    caplog.set_level(logging.DEBUG)
    log = PluginLog("executor", "steady")
    for second in range(3):
        for i in range(MAX_LINES_PER_SECOND):
            log.line(f"{second}-{i}\n".encode())
        clock.now += 1.0
    records = plugin_records(caplog, "steady")
    assert len(records) == 3 * MAX_LINES_PER_SECOND
    assert not any("suppressed" in r.getMessage() for r in records)


def test_tail_keeps_the_last_lines_even_when_they_are_suppressed(clock):
    log = PluginLog("executor", "tail")
    total = MAX_LINES_PER_SECOND * 3
    for i in range(total):
        log.line(f"line {i}\n".encode())
    assert log.tail() == [f"line {i}" for i in range(total - TAIL_LINES, total)]


def test_an_over_long_line_is_cut_and_says_how_much_was_cut(clock):
    log = PluginLog("executor", "long")
    log.line(b"x" * (MAX_LINE_CHARS + 1000) + b"\n")
    (kept,) = log.tail()
    assert kept.startswith("x" * MAX_LINE_CHARS)
    assert kept.endswith("(1000 more characters)")


async def test_pump_survives_a_line_beyond_the_reader_limit_and_keeps_the_last_partial_line():
    reader = asyncio.StreamReader(limit=1024)
    reader.feed_data(b"first\n" + b"y" * 5000 + b"\nsecond\nno newline at the end")
    reader.feed_eof()
    log = PluginLog("executor", "pump")
    await asyncio.wait_for(pump_stderr(reader, log), 10)
    lines = log.tail()
    assert lines[0] == "first"
    assert lines[-2:] == ["second", "no newline at the end"]
    long_line = lines[1:-2]
    assert long_line, "the over-long line was lost"
    assert all(piece.startswith("y") for piece in long_line)
