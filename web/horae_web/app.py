"""The Starlette app `horae agent` serves: Dkron's `/v1` API over a `HoraeService`, plus `/health`.

Every route of the API is listed here, in one place. Every response carries `X-Whom` (the node's
name); every error is JSON (see `horae_web.errors`). CORS is open, as in Dkron, so a UI served
elsewhere can call the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from horae.access_tokens import load_tokens
from horae.errors import HoraeError
from horae_web import (
    cluster_api,
    docs_page,
    executions_api,
    jobs_api,
    metrics_api,
    openapi,
    restore_api,
    schedule_api,
    ui,
)
from horae_web.access import TokenGate
from horae_web.errors import UnexpectedErrors, horae_error, http_error
from horae_web.job_index import JobIndex
from horae_web.whom import WhomHeader

if TYPE_CHECKING:
    from horae.service import HoraeService

JOB = "/v1/jobs/{name}"
EXECUTION = JOB + "/executions/{execution_id}"

ROUTES = [
    Route("/health", cluster_api.health, methods=["GET"]),
    # Prometheus scrapes it: outside /v1, and not behind API tokens.
    Route("/metrics", metrics_api.metrics, methods=["GET"]),
    Route("/v1", cluster_api.index, methods=["GET"]),
    Route("/v1/", cluster_api.index, methods=["GET"]),
    Route("/v1/members", cluster_api.members, methods=["GET"]),
    Route("/v1/leader", cluster_api.leader, methods=["GET"]),
    Route("/v1/isleader", cluster_api.is_leader, methods=["GET"]),
    Route("/v1/leave", cluster_api.leave, methods=["POST"]),
    Route("/v1/raft/peers", cluster_api.raft_peers, methods=["GET"]),
    Route("/v1/raft/peers/{peer_id}", cluster_api.remove_raft_peer, methods=["DELETE"]),
    Route("/v1/busy", cluster_api.busy, methods=["GET"]),
    Route("/v1/pause", cluster_api.pause_state, methods=["GET"]),
    Route("/v1/pause", cluster_api.pause, methods=["POST"]),
    Route("/v1/unpause", cluster_api.unpause, methods=["POST"]),
    Route("/v1/plugins", cluster_api.plugins, methods=["GET"]),
    Route("/v1/restore", restore_api.restore, methods=["POST"]),
    Route("/v1/schedule/preview", schedule_api.preview, methods=["GET"]),
    Route("/v1/jobs", jobs_api.list_jobs, methods=["GET"]),
    Route("/v1/jobs", jobs_api.create_or_update, methods=["POST", "PATCH"]),
    Route(JOB, jobs_api.show, methods=["GET"]),
    Route(JOB, jobs_api.put, methods=["PUT"]),
    Route(JOB, jobs_api.post, methods=["POST"]),
    Route(JOB, jobs_api.delete, methods=["DELETE"]),
    Route(JOB + "/run", jobs_api.run, methods=["POST"]),
    Route(JOB + "/toggle", jobs_api.toggle, methods=["POST"]),
    Route(JOB + "/executions", executions_api.list_executions, methods=["GET"]),
    Route(JOB + "/executions", executions_api.delete_all, methods=["DELETE"]),
    Route(EXECUTION, executions_api.show, methods=["GET"]),
    Route(EXECUTION + "/stop", executions_api.stop, methods=["POST"]),
    Route("/v1/openapi.json", openapi.openapi_json, methods=["GET"]),
    Route("/docs", docs_page.docs, methods=["GET"]),
    Mount("/static", StaticFiles(directory=docs_page.STATIC_DIR), name="static"),
    # The web UI under /ui (and / redirects there): horae_web.ui lists its pages.
    *ui.ROUTES,
]


def create_app(service: HoraeService) -> Starlette:
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(WhomHeader, node_name=service.config.node_name),
            Middleware(UnexpectedErrors),
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["X-Total-Count", "X-Whom", "Location"],
            ),
            # Inside CORS, so that preflights pass and refusals carry CORS headers.
            *_token_gate(service),
        ],
        exception_handlers={HoraeError: horae_error, HTTPException: http_error},
    )
    app.state.service = service
    app.state.job_index = JobIndex(service.state)
    ui.install(app)
    return app


def _token_gate(service: HoraeService) -> list[Middleware]:
    if not service.config.acl_tokens:
        return []
    return [Middleware(TokenGate, tokens=load_tokens(service.config.acl_tokens))]
