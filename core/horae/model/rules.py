"""The value rules of a job that are more than a type: names, tag counts, zones, addresses, sizes.

Where Dkron has a rule, horae keeps it (job names, "allow"/"forbid", the `value:count` form of tags);
where it has none, horae adds a sensible one. An executor's settings are its plugin's to check (the
shell executor's timeout and mem_limit included): horae.config_check, with the schema it serves.
Each check returns the problem as text, or None, so the API can reuse them (e.g. on a path's name).
"""

from __future__ import annotations

import json
import re
import unicodedata

from horae.schedule import ScheduleError
from horae.schedule.zones import load_zone

MAX_NAME_LENGTH = 255
NAME_RULE = 'use lower-case letters, digits, "_" and "-"'
_ASCII_NAME = re.compile(r"[a-z0-9_-]+")
_NAME_EXTRA = frozenset("0123456789_-")
# Deliberately loose: something@somewhere with no spaces or separators; mail servers judge the rest.
EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+")


def job_name_problem(name: str) -> str | None:
    """Dkron's rule: Unicode lower-case letters, ASCII digits, "_" and "-" (the store key, the URL)."""
    if not name:
        return f"required: {NAME_RULE}"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long: a job name has at most {MAX_NAME_LENGTH}"
    if _ASCII_NAME.fullmatch(name):
        return None
    # Dkron's pattern is [^\p{Ll}0-9_-]: any Unicode lower-case letter ("é", "ß") is allowed.
    if all(char in _NAME_EXTRA or unicodedata.category(char) == "Ll" for char in name):
        return None
    return f"{json.dumps(name, ensure_ascii=False)} is not a valid job name: {NAME_RULE}"


def timezone_problem(zone: str) -> str | None:
    """An IANA zone name, or "" for UTC; the schedule package owns zones, so its message is reused."""
    try:
        load_zone(zone)
    except ScheduleError as error:
        return str(error)
    return None


def split_tag(value: str) -> tuple[str, int | None]:
    """`"web:2"` → `("web", 2)`; `"web"` → `("web", None)`. The count follows the last ":"."""
    head, colon, tail = value.rpartition(":")
    if not colon:
        return value, None
    if tail.isascii() and tail.isdigit():
        return head, int(tail)
    raise ValueError(
        f'{json.dumps(value)}: the part after the last ":" is the number of nodes to run on, and '
        f'{json.dumps(tail)} is not a number; write e.g. "{head or "web"}:2", or leave out the ":"'
    )


def tag_problem(value: str) -> str | None:
    try:
        _, count = split_tag(value)
    except ValueError as error:
        return str(error)
    if count == 0:
        return f'{json.dumps(value)} would run on no node: the count after ":" must be at least 1'
    return None


def target_tags(tags: dict[str, str]) -> tuple[dict[str, str], int | None]:
    """Dkron's cleanTags: the tag values nodes must have, and how many nodes (the lowest count given).

    None means every matching node. Assumes the tags passed validation.
    """
    values: dict[str, str] = {}
    lowest: int | None = None
    for key, value in tags.items():
        values[key], count = split_tag(value)
        if count is not None and (lowest is None or count < lowest):
            lowest = count
    return values, lowest


def email_problem(addresses: str) -> str | None:
    """owner_email: one address, or several separated by commas."""
    for address in addresses.split(","):
        if not EMAIL.fullmatch(address.strip()):
            return f"{json.dumps(addresses)} is not an email address (or a comma-separated list of them)"
    return None
