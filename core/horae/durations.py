"""Go-style durations ("90s", "1h30m", "500ms", "1.5h"): the one parser and formatter horae uses.

Dkron reads every duration (job `timeout`, `@every` intervals, shell `timeout`...) with Go's
`time.ParseDuration` and writes them back with `Duration.String`, so horae accepts and prints the
same text: a job exported from Dkron reads the same here, and one written by horae reads in Dkron.

Values are float seconds at the API (what the rest of horae computes with), but parsing and
formatting go through whole nanoseconds, as Go does, so "0.1s" formats back as "100ms" exactly.
"""

from __future__ import annotations

import json
import math
import re

# Nanoseconds per unit, as Go spells them: both micro signs (U+00B5 and U+03BC) mean microseconds.
_UNIT_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# Units people reach for that Go lacks, so the error can say what to write instead.
_NOT_GO_UNITS = {"d": ("day", 24), "w": ("week", 168)}
_MAX_NANOSECONDS = 2**63 - 1  # Go's Duration is an int64 of nanoseconds: about 292 years
# One piece of a duration: digits, an optional fraction, then a unit (anything up to the next number).
_PIECE = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")

ACCEPTED = (
    'a Go duration such as "90s", "1h30m", "500ms" or "1.5h": numbers each followed by a unit (ns, us, ms, s, m, h)'
)


def parse_duration(text: str) -> float:
    """Seconds in a Go duration: "1h30m" → 5400.0, "500ms" → 0.5, "-2s" → -2.0, "0" → 0.0.

    Raises ValueError saying what is wrong and what is accepted. A sign is allowed, as in Go;
    callers that need a positive duration check the value themselves.
    """
    return parse_duration_ns(text) / 1e9


def parse_duration_ns(text: str) -> int:
    """Whole nanoseconds in a Go duration: for callers that must not lose precision to floats."""
    if not isinstance(text, str):
        raise ValueError(f"a duration must be text, {ACCEPTED}; got {text!r}")
    quoted = _quote(text)
    body = text.strip()
    negative = body.startswith("-")
    if body.startswith(("-", "+")):
        body = body[1:]
    if body == "0":  # Go's one unitless value
        return 0
    if not body:
        raise ValueError(f"empty duration {quoted}: expected {ACCEPTED}")
    if any(character.isspace() for character in body):
        raise ValueError(f"invalid duration {quoted}: write it without spaces, as {ACCEPTED}")
    total = 0
    position = 0
    while position < len(body):
        piece = _PIECE.match(body, position)
        whole, fraction, unit = piece.group(1), piece.group(2), piece.group(3)
        if not whole and not fraction:
            raise ValueError(f"invalid duration {quoted}: expected {ACCEPTED}")
        if not unit:
            number = body[position : piece.end()]
            hint = f'write "{number}s" for {number} seconds'
            raise ValueError(f"missing unit in duration {quoted}: {hint}, or {ACCEPTED}")
        if unit in _NOT_GO_UNITS:
            name, hours = _NOT_GO_UNITS[unit]
            hint = f"Go has no {name}s, write {hours}h per {name}"
            raise ValueError(f'unknown unit "{unit}" in duration {quoted}: {hint}')
        if unit not in _UNIT_NANOSECONDS:
            raise ValueError(f"unknown unit {_quote(unit)} in duration {quoted}: expected {ACCEPTED}")
        scale = _UNIT_NANOSECONDS[unit]
        total += int(whole or "0") * scale
        if fraction:
            # Go truncates digits below a nanosecond; so do we.
            total += int(fraction) * scale // 10 ** len(fraction)
        if total > _MAX_NANOSECONDS:
            raise ValueError(f"duration {quoted} is too long: the longest is about 2562047h (292 years)")
        position = piece.end()
    return -total if negative else total


def format_duration(seconds: float) -> str:
    """Go's `Duration.String`: 5400 → "1h30m0s", 0.5 → "500ms", 1.5 → "1.5s", 0 → "0s"."""
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format {seconds!r} as a duration")
    return format_duration_ns(round(seconds * 1e9))


def format_duration_ns(nanoseconds: int) -> str:
    """Go's `Duration.String` for whole nanoseconds."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    value = abs(nanoseconds)
    if value < 1_000_000_000:
        # Under a second Go uses the largest unit that keeps a whole part: ns, µs or ms.
        for unit, scale in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if value >= scale:
                return sign + _with_fraction(value, scale) + unit
    hours, rest = divmod(value, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _with_fraction(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _with_fraction(value: int, scale: int) -> str:
    """`value / scale` as a decimal without trailing zeros: (1_500, 1_000) → "1.5"."""
    whole, fraction = divmod(value, scale)
    if not fraction:
        return str(whole)
    digits = str(fraction).rjust(len(str(scale)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"
