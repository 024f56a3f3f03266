"""The UI's overview pages: dashboard, busy (running now), members and plugins."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from horae_web.ui.chart import executions_per_minute, job_counts
from horae_web.ui.guard import guarded
from horae_web.ui.rendering import render
from horae_web.ui.settings import ui_settings

if TYPE_CHECKING:
    from horae.service import HoraeService

FAILING_SHOWN = 10


def service_of(request: Request) -> HoraeService:
    return request.app.state.service


@guarded("GET", "/v1/jobs")
async def dashboard(request: Request) -> Response:
    service = service_of(request)
    failing = [
        name
        for name, runtime in list(service.state.runtime.items())
        if runtime.status and runtime.status != "success" and name in service.state.jobs
    ]
    failing.sort(key=lambda name: service.state.runtime[name].last_error_ms or 0, reverse=True)
    context = {
        "leader": service.leader(),
        "is_leader": service.is_leader(),
        "members": service.members(),
        "counts": job_counts(service),
        "chart": await executions_per_minute(service),
        "failing": [service.job(name) for name in failing[:FAILING_SHOWN] if name in service.state.jobs],
        "failing_total": len(failing),
        "paused": service.state.paused,
        "busy": len(service.running),
    }
    return render(request, "dashboard.html", context)


@guarded("GET", "/v1/busy")
async def busy(request: Request) -> Response:
    service = service_of(request)
    running = sorted(service.busy(), key=lambda execution: execution["started_at"] or "")
    leader = service.leader()
    return render(
        request,
        "busy.html",
        {"running": running, "is_leader": service.is_leader(), "leader": leader},
    )


@guarded("GET", "/v1/members")
async def members(request: Request) -> Response:
    service = service_of(request)
    return render(request, "members.html", {"members": service.members(), "leader": service.leader()})


@guarded("GET", "/v1/plugins")
async def plugins(request: Request) -> Response:
    service = service_of(request)
    schemas = service.host.config_schemas()
    found = sorted(service.plugins(), key=lambda plugin: (plugin["kind"], plugin["name"]))
    for plugin in found:
        plugin["config_keys"] = sorted(schema_properties(schemas.get(f"{plugin['kind']}:{plugin['name']}", "")))
    return render(request, "plugins.html", {"plugins": found})


def schema_properties(schema_text: str) -> dict[str, dict[str, Any]]:
    """The config keys a plugin's JSON Schema describes (its `properties`), or {} when it serves none."""
    if not schema_text:
        return {}
    try:
        schema = json.loads(schema_text)
    except ValueError:
        return {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return {key: value for key, value in (properties or {}).items() if isinstance(value, dict)}


async def root_redirect(request: Request) -> Response:
    return RedirectResponse(ui_settings(request).base + "/", status_code=302)
