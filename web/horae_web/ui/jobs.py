"""The job list: search, filters (status, disabled, metadata), sorting, paging, and bulk run / toggle / delete.

Filtering and sorting are the API's (`JobIndex.select`, the same query as `GET /v1/jobs`); the bulk actions
call the same service operations as `/v1/jobs/{name}/run|toggle` and `DELETE /v1/jobs/{name}`.
"""

from __future__ import annotations

import urllib.parse

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from horae.errors import BadRequest, HoraeError, NotFound
from horae_web.job_index import JOB_FIELDS
from horae_web.secrets import shown
from horae_web.ui.guard import guarded
from horae_web.ui.pages import service_of
from horae_web.ui.rendering import render
from horae_web.ui.settings import ui_settings

PAGE_SIZE = 25
SORTABLE = ("name", "status", "next", "last_success", "last_error", "success_count", "error_count", "schedule")
BULK_ACTIONS = ("run", "toggle", "delete")


def api_query(params: QueryParams) -> tuple[QueryParams, list[str]]:
    """The page's query as `GET /v1/jobs` reads it; `metadata` is `key=value` (several comma-separated)."""
    items: list[tuple[str, str]] = []
    problems = []
    for key in ("q", "status", "disabled"):
        if params.get(key):
            items.append((key, params[key]))
    for pair in (params.get("metadata") or "").split(","):
        if not pair.strip():
            continue
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            problems.append(f"metadata filter {pair.strip()!r}: write key=value, e.g. team=ops")
            continue
        items.append((f"metadata[{key.strip()}]", value.strip()))
    sort = params.get("sort") or "name"
    items.append(("_sort", sort if sort in JOB_FIELDS else "name"))
    items.append(("_order", "DESC" if params.get("order") == "desc" else "ASC"))
    return QueryParams(items), problems


@guarded("GET", "/v1/jobs")
async def job_list(request: Request) -> Response:
    service = service_of(request)
    params = request.query_params
    query, problems = api_query(params)
    try:
        names = request.app.state.job_index.select(query)
    except BadRequest as error:
        names, problems = [], [*problems, error.message]
    try:
        page = max(1, int(params.get("page") or 1))
    except ValueError:
        page = 1
    pages = max(1, (len(names) + PAGE_SIZE - 1) // PAGE_SIZE)
    page = min(page, pages)
    jobs = []
    for name in names[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]:
        try:
            jobs.append(shown(request, service.job(name)))
        except NotFound:  # deleted since the names were taken
            continue
    keep = {key: params[key] for key in ("q", "status", "disabled", "metadata", "sort", "order") if params.get(key)}
    context = {
        "jobs": jobs,
        "total": len(names),
        "page": page,
        "pages": pages,
        "filters": keep,
        "query_for": lambda **changes: urllib.parse.urlencode({**keep, **changes}),
        "sortable": SORTABLE,
        "problems": problems,
        "message": params.get("done", ""),
        "statuses": ("success", "failed", "partially_failed", "untriggered"),
    }
    return render(request, "jobs.html", context)


# Run, toggle and delete all need the role `write` on the API.
@guarded("POST", "/v1/jobs/bulk/run")
async def bulk(request: Request) -> Response:
    """One of BULK_ACTIONS on the checked jobs; the list comes back saying what happened to each."""
    form = await request.form()
    action = str(form.get("action") or "")
    names = [str(name) for name in form.getlist("names")]
    return_to = str(form.get("return_to") or "")
    if action not in BULK_ACTIONS:
        return render(request, "error.html", {"message": f"unknown action {action!r}"}, status=400)
    service = service_of(request)
    done, failed = [], []
    for name in names:
        try:
            if action == "run":
                await service.run(name)
            elif action == "toggle":
                await service.toggle(name)
            else:
                await service.delete_job(name)
            done.append(name)
        except HoraeError as error:
            failed.append(f"{name}: {error.message}")
    verb = {"run": "started", "toggle": "toggled", "delete": "deleted"}[action]
    message = f"{verb} {len(done)} job(s)" + (f"; failed: {'; '.join(failed)}" if failed else "")
    if not names:
        message = "no jobs were selected"
    query = return_to if return_to.startswith("?") else "?"
    separator = "&" if len(query) > 1 else ""
    location = f"{ui_settings(request).base}/jobs{query}{separator}{urllib.parse.urlencode({'done': message})}"
    return RedirectResponse(location, status_code=303)
