"""Every failure becomes a JSON error body: `{"error": "what to fix"}`, never a traceback.

The core raises `horae.errors` exceptions that carry their status code; Starlette raises
`HTTPException` for unknown paths and methods; anything else is a bug, answered with a generic 500
while the traceback goes to the agent's log.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from horae.errors import BadRequest, HoraeError
from horae.logs import fields
from horae_web.responses import error_response

log = logging.getLogger("horae.web")

INTERNAL_ERROR_MESSAGE = "internal error: the request could not be completed; the agent's log has the details"


class PayloadTooLarge(HoraeError):
    status = 413


def horae_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HoraeError)
    problems = None
    if isinstance(error, BadRequest) and error.fields:
        problems = [{"field": p.field, "message": p.message} for p in error.fields]
    return error_response(error.message, error.status, problems)


def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    method, path = request.method, request.url.path
    if error.status_code == 404:
        message = f"no such endpoint: {method} {path} (GET /v1/ describes this node; the API is Dkron's /v1)"
    elif error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        message = f"{method} is not allowed on {path}; use {allowed}" if allowed else f"{method} is not allowed"
    else:
        message = str(error.detail)
    return error_response(message, error.status_code, headers=error.headers)


class UnexpectedErrors:
    """Answer an unexpected exception with a JSON 500 (inside the X-Whom middleware) and log it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("request failed", extra=fields(method=scope.get("method"), path=scope.get("path")))
            if started:
                raise
            response = error_response(INTERNAL_ERROR_MESSAGE, 500)
            await response(scope, receive, send)
