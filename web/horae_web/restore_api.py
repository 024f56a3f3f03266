"""`POST /v1/restore`: import many jobs at once — a Dkron `GET /v1/jobs` dump or `horae jobs export`.

Accepts Dkron's multipart upload (form field `file`, as `curl -F file=@jobs.json`) and, beyond
Dkron, the JSON array as the request body. Computed fields in the dump (counters, status, next)
are ignored and unknown keys are warnings, so a dump from another version restores.

Difference from Dkron: Dkron answers with its result list JSON-encoded twice (a JSON string that
holds JSON); horae answers `{"restored": [job names], "warnings": [...]}`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from horae_web.bodies import MAX_RESTORE_BODY_BYTES, multipart_field, parse_json, read_body
from horae_web.responses import json_response

if TYPE_CHECKING:
    from horae.service import HoraeService

FILE_FIELD = "file"


async def restore(request: Request) -> Response:
    service: HoraeService = request.app.state.service
    raw = await read_body(request, MAX_RESTORE_BODY_BYTES)
    content_type = request.headers.get("content-type", "")
    what = "the body"
    if content_type.lower().startswith("multipart/"):
        raw = await asyncio.to_thread(multipart_field, raw, content_type, FILE_FIELD)
        what = f"the uploaded {FILE_FIELD!r}"
    jobs = await parse_json(raw, what)
    restored, warnings = await service.restore(jobs)
    return json_response(request, {"restored": restored, "warnings": warnings})
