"""horae.durations: Go's time.ParseDuration and Duration.String, as Dkron reads and writes durations."""

from __future__ import annotations

import pytest

from horae.durations import format_duration, format_duration_ns, parse_duration, parse_duration_ns


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2.0),
        ("90s", 90.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("1m0.5s", 60.5),
        ("1h0m0s", 3600.0),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("0", 0.0),
        ("-2s", -2.0),
        ("+3m", 180.0),
        ("250us", 0.00025),
        ("250\u00b5s", 0.00025),  # Go's micro sign
        ("250\u03bcs", 0.00025),  # Greek mu, which Go accepts too
        ("7ns", 7e-9),
        ("1h1h", 7200.0),  # Go adds repeated units
        (" 10s ", 10.0),
    ],
)
def test_parse_duration_reads_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


def test_parse_duration_ns_is_exact() -> None:
    assert parse_duration_ns("1.000000001s") == 1_000_000_001
    assert parse_duration_ns("0.1s") == 100_000_000
    assert parse_duration_ns("1.9999999999s") == 1_999_999_999  # below a nanosecond is dropped, as Go does
    assert parse_duration_ns("2562047h47m16.854775807s") == 2**63 - 1  # Go's longest duration


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("-", "empty duration"),
        ("30", 'missing unit in duration "30": write "30s" for 30 seconds'),
        ("1H", 'unknown unit "H"'),
        ("1d", "Go has no days, write 24h per day"),
        ("2w", "Go has no weeks, write 168h per week"),
        ("soon", 'invalid duration "soon"'),
        (".s", "invalid duration"),
        ("1h 30m", "without spaces"),
        ("1s.", 'invalid duration "1s."'),
        ("2562048h", "too long"),
    ],
)
def test_parse_duration_explains_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert message in str(caught.value)
    if "Go has no" not in message and "too long" not in message:
        assert '"1h30m"' in str(caught.value)  # the rest show what is accepted


def test_parse_duration_refuses_non_text() -> None:
    with pytest.raises(ValueError, match="must be text"):
        parse_duration(30)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (2, "2s"),
        (1.5, "1.5s"),
        (0.5, "500ms"),
        (0.0015, "1.5ms"),
        (0.000001, "1\u00b5s"),
        (0.000000001, "1ns"),
        (60, "1m0s"),
        (90, "1m30s"),
        (3600, "1h0m0s"),
        (5400, "1h30m0s"),
        (5400.25, "1h30m0.25s"),
        (86400, "24h0m0s"),
        (-90, "-1m30s"),
        (0.1, "100ms"),  # no float noise
    ],
)
def test_format_duration_writes_what_go_writes(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_ns_keeps_every_digit() -> None:
    assert format_duration_ns(2**63 - 1) == "2562047h47m16.854775807s"
    assert format_duration_ns(1_000_000_001) == "1.000000001s"


@pytest.mark.parametrize("text", ["1h30m0s", "500ms", "1.5s", "0s", "2562047h47m16.854775807s", "1m0.001s"])
def test_formatted_durations_read_back_to_the_same_value(text: str) -> None:
    assert format_duration_ns(parse_duration_ns(text)) == text


def test_format_duration_refuses_infinity() -> None:
    with pytest.raises(ValueError, match="cannot format"):
        format_duration(float("inf"))
