"""Readers for the JSON values of a job, an execution or a member: type checks with clear messages.

Each reader takes the `Problems` collector, the JSON path of the value and the value itself, and
returns a typed value (or a harmless default after recording what is wrong), so that one pass over
an object finds every mistake. Messages say what was given and what is accepted.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from horae.durations import parse_duration
from horae.model.errors import Problems
from horae.model.times import parse_time

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


# -- paths and descriptions ------------------------------------------------------------------------
def child(path: str, key: str) -> str:
    """The JSON path of `key` inside the object at `path`: `tags.role`, `metadata["a.b"]`."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def describe(value: Any) -> str:
    """How a JSON value is shown in a message: `30 (a number)`, `"three" (a string)`, `an object`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, int | float):
        return f"{_shown(value)} (a number)"
    if isinstance(value, str):
        return f"{_shown(value)} (a string)"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# -- scalars ---------------------------------------------------------------------------------------
def text(problems: Problems, path: str, value: Any, default: str = "") -> str:
    """A string; null means the default (as Go's decoder leaves the field unset)."""
    if value is None:
        return default
    if isinstance(value, str):
        return value
    problems.error(path, f"must be a string, got {describe(value)}")
    return default


def flag(problems: Problems, path: str, value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    problems.error(path, f"must be true or false, got {describe(value)}")
    return default


def whole(problems: Problems, path: str, value: Any, low: int, high: int | None = None, default: int = 0) -> int:
    """An integer within [low, high]; a bound horae adds beyond Dkron's is left to the caller."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        problems.error(path, f"must be a whole number{_range(low, high)}, got {describe(value)}")
        return default
    if value < low or (high is not None and value > high):
        problems.error(path, f"must be a whole number{_range(low, high)}, got {value}")
        return default
    return value


def _range(low: int, high: int | None) -> str:
    return f" from {low} to {high}" if high is not None else f" of {low} or more"


def number(problems: Problems, path: str, value: Any, default: float = 0.0) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.error(path, f"must be a number, got {describe(value)}")
        return default
    return float(value)


def moment(problems: Problems, path: str, value: Any) -> datetime.datetime | None:
    """An RFC 3339 time with `Z` or an offset; null, "" and Go's zero time mean unset."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.error(path, f'must be an RFC 3339 time such as "2024-05-01T10:00:00Z", got {describe(value)}')
        return None
    try:
        return parse_time(value)
    except ValueError as error:
        problems.error(path, str(error))
        return None


def seconds(problems: Problems, path: str, value: Any, example: str) -> float | None:
    """A duration: text such as "90s" or "1h30m", or a number of seconds. None when unset."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            result = parse_duration(value)
        except ValueError as error:
            problems.error(path, str(error))
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        result = float(value)
    else:
        problems.error(path, f'must be a duration such as "{example}" (or a number of seconds), got {describe(value)}')
        return None
    if result < 0:
        problems.error(path, f"must not be negative, got {_shown(value)}")
        return None
    return result


# -- containers ------------------------------------------------------------------------------------
def string_map(problems: Problems, path: str, value: Any, what: str, example: str) -> dict[str, str]:
    """An object whose values are strings (Go's map[string]string): tags, metadata, settings.

    A number or boolean where a string belongs is refused with the fix spelled out; when importing
    it is converted (`30` → `"30"`) with a warning, since that is plainly what was meant.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.error(path, f"must be an object of {what}, e.g. {example}, got {describe(value)}")
        return {}
    result: dict[str, str] = {}
    for key, entry in value.items():
        if isinstance(entry, str):
            result[key] = entry
            continue
        where = child(path, key)
        if isinstance(entry, Mapping | list | tuple):
            problems.error(where, f"must be a string, got {describe(entry)}: {what} are plain text")
            continue
        as_text = "" if entry is None else json.dumps(entry)
        if problems.strict:
            fix = json.dumps(as_text)
            problems.error(where, f"must be a string, got {describe(entry)}: {what} are text, write {fix}")
        else:
            problems.warn(where, f"{describe(entry)} read as the string {json.dumps(as_text)}")
            result[key] = as_text
    return result


def string_list(problems: Problems, path: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        problems.error(path, f"must be a list of strings, got {describe(value)}")
        return []
    result = []
    for index, entry in enumerate(value):
        if isinstance(entry, str):
            result.append(entry)
        else:
            problems.error(item(path, index), f"must be a string, got {describe(entry)}")
    return result


class FieldNames:
    """The keys an object may have, with what the unknown-key message needs worked out once."""

    __slots__ = ("by_lower", "hints", "names", "ordered", "subject")

    def __init__(self, subject: str, names: Iterable[str], hints: Mapping[str, str] | None = None) -> None:
        self.subject = subject
        self.ordered = tuple(names)
        self.names = frozenset(self.ordered)
        self.by_lower = {name.lower(): name for name in self.ordered}
        self.hints = dict(hints or {})


def own_keys(problems: Problems, path: str, data: Mapping[str, Any], fields: FieldNames) -> Mapping[str, Any]:
    """`data` restricted to known keys. Unknown keys: errors with the closest known key (strict),
    or left out with a warning (lenient). Go's decoder matches keys case-insensitively, so when
    importing `"Name"` is read as `name`; a user writing a job is told the right spelling instead.
    """
    if data.keys() <= fields.names:  # the usual case costs one set comparison
        return data
    known = {key: value for key, value in data.items() if key in fields.names}
    for key, value in data.items():
        if key in fields.names:
            continue
        where = child(path, key)
        same_but_case = fields.by_lower.get(key.lower())
        if not problems.strict and same_but_case is not None and same_but_case not in data:
            known[same_but_case] = value
            problems.warn(where, f'read as "{same_but_case}" (field names are lower-case)')
            continue
        advice = _advice(key, same_but_case, fields)
        if problems.strict:
            problems.error(where, f"unknown field{advice}")
        else:
            problems.warn(where, f"unknown field ignored{advice}")
    return known


def _advice(key: str, same_but_case: str | None, fields: FieldNames) -> str:
    if key in fields.hints:
        return f": {fields.hints[key]}"
    candidates = fields.ordered + tuple(fields.hints)
    suggestion = same_but_case or next(iter(difflib.get_close_matches(key.lower(), candidates, n=1)), None)
    if suggestion in fields.hints:
        return f'; did you mean "{suggestion}"? That is {fields.hints[suggestion]}'
    if suggestion is not None:
        return f'; did you mean "{suggestion}"?'
    return f": a {fields.subject} has " + ", ".join(fields.ordered)
