"""`GET /metrics`: the agent's Prometheus metrics in the text exposition format (version 0.0.4).

Served outside `/v1` and left open when API tokens come: a Prometheus server scrapes it without one,
as with Dkron's `/metrics`.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from horae.metrics import CONTENT_TYPE
from horae_web.responses import error_response


async def metrics(request: Request) -> Response:
    service = request.app.state.service
    collected = service.metrics
    if collected is None:
        return error_response("this node collects no metrics", 404)
    # The gauges are read on the loop (their sources belong to it); the text is written in a thread,
    # since a counter per job makes it long in a cluster of many jobs.
    collected.sample(service)
    body = await asyncio.to_thread(collected.render)
    return Response(body, media_type=CONTENT_TYPE)
