"""This node and its cluster: `/v1/`, members, leader, leave, busy, pause, plugins and `/health`.

Shapes follow Dkron where it has the endpoint. horae has no Serf: `/v1/` reports membership and
Raft figures under `serf` and `raft`, as strings like Dkron's Serf stats. A member's `id` is its
name (Dkron makes up a new UUID on every call). `/v1/pause` pauses the scheduler cluster-wide
(horae's pause command). `POST /v1/leave` makes this server leave its cluster and then stops it,
answering with the members first, as Dkron does (a single server has nowhere to go: it only
answers). Dkron lists and removes Raft peers over its gRPC API only; horae has no public gRPC, so
`GET /v1/raft/peers` and `DELETE /v1/raft/peers/{id}` serve `horae raft list-peers` and `remove-peer`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

import horae
from horae.errors import NotFound
from horae.logs import fields
from horae_web.responses import json_response

if TYPE_CHECKING:
    from horae.service import HoraeService

log = logging.getLogger("horae.web")


def _service(request: Request) -> HoraeService:
    return request.app.state.service


async def index(request: Request) -> Response:
    service = _service(request)
    member = service.member()
    members = service.members()
    health = service.health()
    body = {
        "agent": {"name": member["Name"], "version": horae.__version__, "backend": "sqlitedict"},
        "serf": {
            "members": str(len(members)),
            "failed": str(sum(1 for m in members if m.get("statusText") == "failed")),
            "left": str(sum(1 for m in members if m.get("statusText") == "left")),
            "encrypted": str(bool(service.config.encrypt)).lower(),
        },
        "raft": {
            "leader": str(health["leader"] or ""),
            "is_leader": str(service.is_leader()).lower(),
            "ready": str(health["ready"]).lower(),
        },
        "tags": {**member["Tags"], "server": str(service.config.server).lower(), "version": horae.__version__},
    }
    return json_response(request, body)


async def members(request: Request) -> Response:
    found = [{**member, "id": member["Name"]} for member in _service(request).members()]
    return json_response(request, found, headers={"X-Total-Count": str(len(found))})


async def leader(request: Request) -> Response:
    member = _service(request).leader()
    if member is None:
        raise NotFound("no leader is known to this node yet; retry shortly")
    return json_response(request, member)


async def is_leader(request: Request) -> Response:
    if _service(request).is_leader():
        return json_response(request, "I am a leader")
    return json_response(request, "I am a follower", status=404)


async def leave(request: Request) -> Response:
    """This server leaves (handing leadership over first if it leads); the agent stops once the answer is sent.

    A single server is the whole cluster: it stays up and only answers with the members."""
    service = _service(request)
    log.info("leave requested", extra=fields(node=service.config.node_name))
    members, left = await service.leave()
    response = json_response(request, members)
    if left:
        response.background = BackgroundTask(service.stop_after_leave)
    return response


async def raft_peers(request: Request) -> Response:
    found = _service(request).raft_peers()
    return json_response(request, found, headers={"X-Total-Count": str(len(found))})


async def remove_raft_peer(request: Request) -> Response:
    """Remove a server (by node name or Raft address) from the Raft membership; answers with the peers left."""
    found = await _service(request).remove_raft_peer(request.path_params["peer_id"])
    return json_response(request, found, headers={"X-Total-Count": str(len(found))})


async def busy(request: Request) -> Response:
    running = sorted(_service(request).busy(), key=lambda execution: execution["started_at"] or "")
    return json_response(request, running, headers={"X-Total-Count": str(len(running))})


async def pause_state(request: Request) -> Response:
    return json_response(request, {"paused": _service(request).state.paused})


async def pause(request: Request) -> Response:
    return json_response(request, {"paused": await _service(request).set_paused(True)})


async def unpause(request: Request) -> Response:
    return json_response(request, {"paused": await _service(request).set_paused(False)})


async def plugins(request: Request) -> Response:
    found = _service(request).plugins()
    return json_response(request, found, headers={"X-Total-Count": str(len(found))})


async def health(request: Request) -> Response:
    """200 when this node is ready (Raft up, a leader known), else 503; the body says which."""
    state = _service(request).health()
    ready = bool(state["ready"])
    return json_response(request, {"status": "healthy" if ready else "unavailable", **state}, 200 if ready else 503)
