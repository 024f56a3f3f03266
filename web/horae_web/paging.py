"""react-admin style list parameters, as Dkron reads them: `_sort`, `_order`, `_start`, `_end`.

`_end` is exclusive and clipped to the list; `X-Total-Count` carries the length before paging.
Values that are not what they should be are a 400 naming the parameter, not a silent default.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, TypeVar

from starlette.datastructures import QueryParams

from horae.errors import BadRequest, FieldProblem

T = TypeVar("T")


def int_param(query: QueryParams, name: str, default: int | None = None, minimum: int = 0) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        message = f"{name} must be a whole number of at least {minimum}, not {raw!r}"
        raise BadRequest(message, [FieldProblem(name, message)]) from None
    return value


def descending(query: QueryParams, default: str = "ASC") -> bool:
    """`_order`: ASC or DESC, in any case."""
    order = (query.get("_order") or default).upper()
    if order not in ("ASC", "DESC"):
        message = f"_order must be ASC or DESC, not {query.get('_order')!r}"
        raise BadRequest(message, [FieldProblem("_order", message)])
    return order == "DESC"


def window(query: QueryParams, total: int) -> tuple[int, int]:
    """`_start` and `_end` clipped to `[0, total]`, with `start <= end`."""
    start = min(int_param(query, "_start", 0) or 0, total)
    end = int_param(query, "_end", total)
    end = total if end is None else min(end, total)
    return start, max(start, end)


def sort_key(value: Any) -> tuple[int, Any]:
    """An ordering over JSON values of mixed types: numbers, then text, then lists and objects."""
    if isinstance(value, bool | int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True))


def sorted_by(items: Sequence[T], values: Sequence[Any], descending: bool = False) -> list[T]:
    """`items` ordered by their `values` (same positions); items whose value is None come last either way.

    The sort is stable, so equal values keep the order `items` came in.
    """
    present = [(value, item) for value, item in zip(values, items, strict=True) if value is not None]
    try:
        present.sort(key=itemgetter(0), reverse=descending)
    except TypeError:  # values of different types, or objects: order them by kind first
        present.sort(key=lambda pair: sort_key(pair[0]), reverse=descending)
    missing = [item for value, item in zip(values, items, strict=True) if value is None]
    return [item for _, item in present] + missing
