"""`/v1/jobs`: list, create or update, show, delete, run and toggle jobs, with Dkron's shapes and codes.

Dkron answers 201 to every create-or-update, 200 with the deleted job to a delete, 200 with the job
to a toggle and (meant to) 202 with the job to a run. Differences, on purpose:
- `POST /v1/jobs/{name}` runs the job when the body is empty (Dkron); with a body it creates or
  updates the job under that name, like `PUT`.
- `PUT`/`POST /v1/jobs/{name}` with a body whose `name` differs from the path is a 400 (Dkron
  ignores the path); a body without a name takes the path's.
- `?runoncreate` runs the job after saving it unless its value is false, 0 or no (Dkron: any value).
- A run answers 202 (Dkron's handler sets 202 and then writes 200).
- `q` matches names and display names case-insensitively (Dkron: case-sensitive).
- A parent job that does not exist is a 400 naming `parent_job` (Dkron: 404).
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from horae.errors import BadRequest, FieldProblem, HoraeError, NotFound
from horae.logs import fields
from horae_web.bodies import MAX_JOB_BODY_BYTES, parse_json, read_body, read_json
from horae_web.job_index import JobIndex
from horae_web.paging import window
from horae_web.responses import json_response
from horae_web.secrets import shown, unmasked

if TYPE_CHECKING:
    from horae.service import HoraeService

log = logging.getLogger("horae.web")

FALSE_WORDS = ("false", "0", "no")


def _service(request: Request) -> HoraeService:
    return request.app.state.service


def _index(request: Request) -> JobIndex:
    return request.app.state.job_index


def _location(name: str) -> str:
    return f"/v1/jobs/{urllib.parse.quote(name, safe='')}"


async def list_jobs(request: Request) -> Response:
    service = _service(request)
    names = _index(request).select(request.query_params)
    start, end = window(request.query_params, len(names))
    views = []
    for name in names[start:end]:
        try:
            views.append(shown(request, service.job(name)))
        except NotFound:  # deleted since the names were taken
            continue
    return json_response(request, views, headers={"X-Total-Count": str(len(names))})


async def create_or_update(request: Request) -> Response:
    return await _save(request, await read_json(request), None)


async def show(request: Request) -> Response:
    return json_response(request, shown(request, _service(request).job(request.path_params["name"])))


async def put(request: Request) -> Response:
    return await _save(request, await read_json(request), request.path_params["name"])


async def post(request: Request) -> Response:
    """Dkron's `POST /v1/jobs/{name}` runs the job; with a body it saves the job instead."""
    raw = await read_body(request, MAX_JOB_BODY_BYTES)
    if not raw.strip():
        return await run(request)
    return await _save(request, await parse_json(raw), request.path_params["name"])


async def delete(request: Request) -> Response:
    return json_response(request, shown(request, await _service(request).delete_job(request.path_params["name"])))


async def run(request: Request) -> Response:
    name = request.path_params["name"]
    job = await _service(request).run(name)
    return json_response(request, shown(request, job), status=202, headers={"Location": _location(name)})


async def toggle(request: Request) -> Response:
    name = request.path_params["name"]
    job = await _service(request).toggle(name)
    return json_response(request, shown(request, job), headers={"Location": _location(name)})


async def _save(request: Request, data: Any, path_name: str | None) -> Response:
    if path_name is not None and isinstance(data, dict):
        body_name = data.get("name")
        if body_name is None:
            data = {**data, "name": path_name}
        elif body_name != path_name:
            message = f"the body names job {body_name!r} but the path names {path_name!r}; make them the same"
            raise BadRequest(message, [FieldProblem("name", message)])
    service = _service(request)
    if isinstance(data, dict) and isinstance(data.get("name"), str):
        data = unmasked(data, service.state.jobs.get(data["name"]))  # a secret sent back as shown keeps its value
    job, _, warnings = await service.put_job(data)
    if _wants_run(request):
        try:
            await service.run(job["name"])
        except HoraeError as error:
            log.warning("runoncreate: job saved but not started", extra=fields(job=job["name"], error=error.message))
    headers = {"Location": _location(job["name"])}
    if warnings:
        headers["X-Horae-Warnings"] = json.dumps(warnings)  # ASCII-escaped: header values are Latin-1
    return json_response(request, shown(request, job), status=201, headers=headers)


def _wants_run(request: Request) -> bool:
    value = request.query_params.get("runoncreate")
    return value is not None and value.lower() not in FALSE_WORDS
