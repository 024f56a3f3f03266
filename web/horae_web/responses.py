"""JSON responses, encoded once and compactly, with Dkron's `?pretty` switch.

Every endpoint answers through `json_response` so the encoding is the same everywhere and cheap:
the job list is the hottest path of the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json"

_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_pretty = json.JSONEncoder(ensure_ascii=False, indent=4)


def encode(data: Any, pretty: bool = False) -> bytes:
    if not pretty:
        try:
            return orjson.dumps(data)  # the same compact UTF-8 JSON, several times faster (the job list's top cost)
        except TypeError:  # what orjson refuses and json takes: integers beyond 64 bits, non-string keys
            pass
    return (_pretty if pretty else _compact).encode(data).encode("utf-8")


def json_response(
    request: Request | None, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """`data` as JSON; indented when the query has `pretty` (as Dkron)."""
    pretty = request is not None and "pretty" in request.query_params
    return Response(encode(data, pretty), status_code=status, headers=headers, media_type=JSON_MEDIA_TYPE)


def error_response(
    message: str,
    status: int,
    fields: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error shape of the whole API: `{"error": …}` plus `"fields"` when individual fields are wrong."""
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = fields
    return Response(encode(body), status_code=status, headers=headers, media_type=JSON_MEDIA_TYPE)
