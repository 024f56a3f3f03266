"""`GET /v1/schedule/preview`: the next fire times of a schedule, to check a spec before saving a job.

`?schedule=…&timezone=…&count=N` (count 1..100, default 5) answers
`{"schedule": …, "timezone": …, "next": [RFC 3339 times]}`; a schedule that never fires again
(`@at` in the past, `@manually`) has an empty `next`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from horae.errors import BadRequest, FieldProblem
from horae.model import timezone_problem
from horae_web.paging import int_param
from horae_web.responses import json_response

if TYPE_CHECKING:
    from horae.service import HoraeService

DEFAULT_COUNT = 5


async def preview(request: Request) -> Response:
    service: HoraeService = request.app.state.service
    query = request.query_params
    schedule = query.get("schedule") or ""
    if not schedule.strip():
        message = "schedule is required, e.g. ?schedule=@every 10m or ?schedule=0 30 2 * * *"
        raise BadRequest(message, [FieldProblem("schedule", message)])
    timezone = query.get("timezone") or ""
    problem = timezone_problem(timezone)
    if problem is not None:
        raise BadRequest(f"timezone: {problem}", [FieldProblem("timezone", problem)])
    count = int_param(query, "count", DEFAULT_COUNT, minimum=1) or DEFAULT_COUNT
    times = service.preview(schedule, timezone, count)
    return json_response(request, {"schedule": schedule, "timezone": timezone, "next": times})
