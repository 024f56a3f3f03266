"""The web UI under `/ui`: server-rendered pages (Jinja2, htmx) over the same `HoraeService` as the `/v1` API.

`ROUTES` go into the app's route list; `install(app)` keeps the UI's settings (base path, tokens) on the app.
"""

from __future__ import annotations

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from horae_web.ui import job_form, job_page, jobs, login, pages, stream
from horae_web.ui.rendering import STATIC_DIR
from horae_web.ui.settings import install

JOB = "/ui/jobs/{name}"
EXECUTION = JOB + "/executions/{execution_id}"

ROUTES = [
    Route("/", pages.root_redirect, methods=["GET"]),
    Route("/ui", pages.dashboard, methods=["GET"]),
    Route("/ui/", pages.dashboard, methods=["GET"]),
    Route("/ui/login", login.login_page, methods=["GET"]),
    Route("/ui/login", login.login, methods=["POST"]),
    Route("/ui/logout", login.logout, methods=["POST"]),
    Route("/ui/busy", pages.busy, methods=["GET"]),
    Route("/ui/members", pages.members, methods=["GET"]),
    Route("/ui/plugins", pages.plugins, methods=["GET"]),
    Route("/ui/schedule-preview", job_form.schedule_preview, methods=["GET"]),
    Route("/ui/config-fields", job_form.config_fields, methods=["GET"]),
    Route("/ui/jobs", jobs.job_list, methods=["GET"]),
    Route("/ui/jobs/bulk", jobs.bulk, methods=["POST"]),
    Route("/ui/new-job", job_form.new, methods=["GET"]),
    Route("/ui/new-job", job_form.save_new, methods=["POST"]),
    Route(JOB, job_page.show, methods=["GET"]),
    Route(JOB + "/edit", job_form.edit, methods=["GET"]),
    Route(JOB + "/edit", job_form.save_edit, methods=["POST"]),
    Route(JOB + "/run", job_page.run, methods=["POST"]),
    Route(JOB + "/toggle", job_page.toggle, methods=["POST"]),
    Route(JOB + "/delete", job_page.delete, methods=["POST"]),
    Route(JOB + "/executions", job_page.executions, methods=["GET"]),
    Route(EXECUTION + "/output", job_page.output, methods=["GET"]),
    Route(EXECUTION + "/stop", job_page.stop, methods=["POST"]),
    Route(EXECUTION + "/stream", stream.stream, methods=["GET"]),
    Mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static"),
]

__all__ = ["ROUTES", "install"]
