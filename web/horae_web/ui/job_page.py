"""One job: its fields, next fire times, executions (refreshed while any runs), and run / toggle / delete."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from horae.errors import HoraeError
from horae_web.secrets import shown
from horae_web.ui.guard import guarded, redirect
from horae_web.ui.pages import service_of
from horae_web.ui.rendering import quote, render

NEXT_FIRE_TIMES = 5
EXECUTIONS_SHOWN = 50
# The executions table shows this much of each output; the rest comes on demand.
OUTPUT_PREVIEW_CHARS = 300
JOB_URL = "/v1/jobs/x"


@guarded("GET", JOB_URL)
async def show(request: Request) -> Response:
    service = service_of(request)
    name = request.path_params["name"]
    job = shown(request, service.job(name))
    next_times: list[str] = []
    preview_problem = ""
    if job.get("schedule"):
        try:
            next_times = service.preview(job["schedule"], job.get("timezone") or "", NEXT_FIRE_TIMES)
        except HoraeError as error:
            preview_problem = error.message
    context = {
        "job": job,
        "next_times": next_times,
        "preview_problem": preview_problem,
        "message": request.query_params.get("done", ""),
        **await _executions_context(request, name),
    }
    return render(request, "job.html", context)


@guarded("GET", JOB_URL + "/executions")
async def executions(request: Request) -> Response:
    """The executions table alone: the job page polls it while an execution runs."""
    return render(request, "executions.html", await _executions_context(request, request.path_params["name"]))


async def _executions_context(request: Request, name: str) -> dict[str, Any]:
    service = service_of(request)
    found = await service.executions(name)
    found.sort(key=lambda execution: execution.get("started_at") or "9999", reverse=True)
    shown_executions = []
    for execution in found[:EXECUTIONS_SHOWN]:
        output = execution.get("output") or ""
        # The end of an output says most (how it ended); the whole of it comes on demand.
        view = {**execution, "output_preview": output[-OUTPUT_PREVIEW_CHARS:]}
        view["output_cut"] = len(output) > OUTPUT_PREVIEW_CHARS
        # Held here: this node streams its output live (the leader holds every execution, a node its own).
        view["live_here"] = service.running.get(name, execution["id"]) is not None
        shown_executions.append(view)
    running = [execution for execution in shown_executions if execution.get("running")]
    return {
        "name": name,
        "executions": shown_executions,
        "executions_total": len(found),
        "running": running,
        "is_leader": service.is_leader(),
        "leader": service.leader(),
    }


@guarded("GET", JOB_URL + "/executions/x")
async def output(request: Request) -> Response:
    """One execution's whole output: as a fragment for the page, or as plain text with `?raw=1`."""
    service = service_of(request)
    name, execution_id = request.path_params["name"], request.path_params["execution_id"]
    execution = await service.execution(name, execution_id)
    text = execution.get("output") or ""
    if request.query_params.get("raw"):
        return PlainTextResponse(text)
    return render(request, "output.html", {"execution": execution, "text": text, "name": name})


@guarded("POST", JOB_URL + "/run")
async def run(request: Request) -> Response:
    name = request.path_params["name"]
    try:
        await service_of(request).run(name)
        message = "run started"
    except HoraeError as error:
        message = f"not started: {error.message}"
    return _back_to_job(request, name, message)


@guarded("POST", JOB_URL + "/toggle")
async def toggle(request: Request) -> Response:
    name = request.path_params["name"]
    job = await service_of(request).toggle(name)
    return _back_to_job(request, name, "disabled" if job.get("disabled") else "enabled")


@guarded("POST", JOB_URL + "/executions/x/stop")
async def stop(request: Request) -> Response:
    """Stop a running execution wherever it runs (a follower asks the leader), as the API's stop does."""
    name, execution_id = request.path_params["name"], request.path_params["execution_id"]
    try:
        await service_of(request).stop(name, execution_id)
        message = f"stop requested for execution {execution_id}"
    except HoraeError as error:
        message = f"not stopped: {error.message}"
    return _back_to_job(request, name, message)


@guarded("DELETE", JOB_URL)
async def delete(request: Request) -> Response:
    name = request.path_params["name"]
    await service_of(request).delete_job(name)
    return redirect(request, "/jobs?" + urlencode({"done": f"deleted job {name}"}))


def _back_to_job(request: Request, name: str, message: str) -> Response:
    return redirect(request, f"/jobs/{quote(name)}?" + urlencode({"done": message}))
