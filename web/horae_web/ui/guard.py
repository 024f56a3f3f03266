"""Who may see a UI page: the same tokens and roles as the `/v1` API.

Each UI route names the `/v1` call it stands for, so `required_role` from `horae_web.access` decides the role it
needs, exactly as for the API. The token comes from the `horae_token` cookie the login page sets (or any header
the API accepts). A page without a valid token sends the browser to the login page.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from horae.errors import HoraeError
from horae_web.access import required_role
from horae_web.ui.rendering import render
from horae_web.ui.settings import caller, ui_settings

Handler = Callable[[Request], Awaitable[Response]]


def guarded(method: str, api_path: str) -> Callable[[Handler], Handler]:
    """Require the role that `method api_path` needs on the API; render HoraeErrors as an error page."""
    role = required_role(method, api_path)

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            settings = ui_settings(request)
            if settings.tokens is not None and role is not None:
                token = caller(request)
                if token is None:
                    return to_login(request)
                if not token.allows(role):
                    message = f"token {token.name!r} has role {token.role}; this needs role {role}"
                    return render(request, "error.html", {"message": message}, status=403)
                # secrets.shown() reads it: only admins see secrets.
                request.scope.setdefault("state", {})["token"] = token
            try:
                return await handler(request)
            except HoraeError as error:
                return render(request, "error.html", {"message": error.message}, status=error.status)

        return endpoint

    return wrap


def to_login(request: Request) -> Response:
    base = ui_settings(request).base
    wanted = ui_settings(request).prefix + request.url.path
    if request.url.query:
        wanted += "?" + request.url.query
    target = f"{base}/login?next={urllib.parse.quote(wanted, safe='')}"
    if request.headers.get("hx-request"):  # an htmx call: send the whole page to the login form
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def redirect(request: Request, path: str) -> RedirectResponse:
    """303 to a UI path (`/jobs/x`), as the browser addresses it."""
    return RedirectResponse(ui_settings(request).base + path, status_code=303)
