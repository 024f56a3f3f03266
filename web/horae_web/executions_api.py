"""`/v1/jobs/{name}/executions`: a job's executions (stored and running), one by id, and stopping one.

As Dkron: newest first by default (`_sort=id` means `started_at`), `output_size_limit=N` keeps the
last N bytes of each output and marks it `output_truncated`, `X-Total-Count` is the count before
paging. Beyond Dkron: `_start`/`_end` paging, and `POST …/executions/{id}/stop` (202: the stop is
requested; the execution is then recorded as failed, saying it was stopped). Any server takes it: a
follower asks the leader, which stops the execution on whichever node runs it. 404: no such job or
execution; 409: it already finished; 503: the leader (or the node running it) cannot be reached.

`DELETE …/executions` is Dkron 4's: 200 with the job view, its success_count, error_count,
last_success, last_error and status reset (404 for an unknown job). It goes through Raft, so every
server forgets the history; running executions are untouched and count afresh when they finish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from horae_web.paging import descending, int_param, sorted_by, window
from horae_web.responses import json_response

if TYPE_CHECKING:
    from horae.service import HoraeService


def _service(request: Request) -> HoraeService:
    return request.app.state.service


async def list_executions(request: Request) -> Response:
    query = request.query_params
    executions = await _service(request).executions(request.path_params["name"])
    field = query.get("_sort") or "started_at"
    if field == "id":
        field = "started_at"
    limit = int_param(query, "output_size_limit", None)
    values = [execution.get(field) for execution in executions]
    ordered = sorted_by(executions, values, descending(query, "DESC"))
    start, end = window(query, len(ordered))
    views = [_with_output_limit(execution, limit) for execution in ordered[start:end]]
    return json_response(request, views, headers={"X-Total-Count": str(len(executions))})


async def show(request: Request) -> Response:
    name, execution_id = request.path_params["name"], request.path_params["execution_id"]
    return json_response(request, await _service(request).execution(name, execution_id))


async def stop(request: Request) -> Response:
    name, execution_id = request.path_params["name"], request.path_params["execution_id"]
    return json_response(request, await _service(request).stop(name, execution_id), status=202)


async def delete_all(request: Request) -> Response:
    """Dkron operators clear a job's history this way; the answer is the job with its counters reset."""
    return json_response(request, await _service(request).clear_executions(request.path_params["name"]))


def _with_output_limit(execution: dict[str, Any], limit: int | None) -> dict[str, Any]:
    view = {**execution, "output_truncated": False}
    if limit is not None:
        output = (view.get("output") or "").encode()
        if len(output) > limit:
            view["output"] = output[len(output) - limit :].decode(errors="ignore")
            view["output_truncated"] = True
    return view
