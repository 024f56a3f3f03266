"""The login page when API tokens are on: the token goes into the `horae_token` cookie that the API and the UI read.

The cookie is HttpOnly (scripts cannot read it) and SameSite=Strict (other sites cannot make the browser send it,
which is what keeps the UI's forms safe from cross-site posts); Secure when the agent serves HTTPS.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from horae_web.access import TOKEN_COOKIE
from horae_web.ui.rendering import render
from horae_web.ui.settings import ui_settings

COOKIE_DAYS = 7


def _next_page(request: Request, wanted: str) -> str:
    """Where to go after logging in: a UI page of this agent only (never another site)."""
    base = ui_settings(request).base
    if wanted.startswith(base + "/") and not wanted.startswith("//") and "\\" not in wanted:
        return wanted
    return base + "/"


async def login_page(request: Request) -> Response:
    settings = ui_settings(request)
    wanted = _next_page(request, request.query_params.get("next") or "")
    if settings.tokens is None:
        return RedirectResponse(wanted, status_code=303)
    return render(request, "login.html", {"next": wanted, "problem": ""})


async def login(request: Request) -> Response:
    settings = ui_settings(request)
    form = await request.form()
    wanted = _next_page(request, str(form.get("next") or ""))
    if settings.tokens is None:
        return RedirectResponse(wanted, status_code=303)
    secret = str(form.get("token") or "").strip()
    token = settings.tokens.find(secret) if secret else None
    if token is None:
        problem = "enter a token" if not secret else "that is not one of this agent's tokens (--acl-tokens)"
        return render(request, "login.html", {"next": wanted, "problem": problem}, status=200)
    response = RedirectResponse(wanted, status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        secret,
        max_age=COOKIE_DAYS * 86400,
        path=settings.prefix or "/",
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookie,
    )
    return response


async def logout(request: Request) -> Response:
    settings = ui_settings(request)
    response = RedirectResponse(settings.base + "/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path=settings.prefix or "/", httponly=True, samesite="strict")
    return response
