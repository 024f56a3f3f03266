"""Where the UI lives (the base path a proxy strips) and the API tokens it checks, kept on the app once."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request

from horae.access_tokens import AccessTokens, Token, load_tokens
from horae_web.access import presented_secret


@dataclass(frozen=True)
class UiSettings:
    # What the browser sees before /ui: "" or the --ui-base-path a reverse proxy strips (e.g. "/horae").
    prefix: str
    tokens: AccessTokens | None
    secure_cookie: bool

    @property
    def base(self) -> str:
        """The UI's root as the browser addresses it; every link in a page starts with it."""
        return f"{self.prefix}/ui"


def install(app: Starlette) -> None:
    """Keep the UI's settings on the app: the token file is read once, when the app is made."""
    config = app.state.service.config
    tokens = load_tokens(config.acl_tokens) if config.acl_tokens else None
    app.state.ui = UiSettings(prefix=config.ui_base_path, tokens=tokens, secure_cookie=bool(config.cert_file))


def ui_settings(request: Request) -> UiSettings:
    return request.app.state.ui


def caller(request: Request) -> Token | None:
    """The token the request presents, or None (no tokens configured, or none valid)."""
    tokens = ui_settings(request).tokens
    secret = presented_secret(request.scope)
    return tokens.find(secret) if tokens is not None and secret else None
