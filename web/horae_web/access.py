"""The `/v1` door when API tokens are on: which role a request needs, and who presents it.

GETs need `read`; changes to jobs, runs and stops need `write`; leave, pause, restore and Raft changes need
`admin`. A token comes as `Authorization: Bearer …`, `X-Horae-Token`, Dkron's `X-Dkron-Token`, or the UI's
cookie. Paths outside `/v1` (health, metrics) are open: a load balancer and Prometheus probe them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from horae.access_tokens import AccessTokens, Token
from horae_web.responses import error_response

TOKEN_HEADERS = (b"x-horae-token", b"x-dkron-token")
TOKEN_COOKIE = "horae_token"
READ_METHODS = frozenset({"GET", "HEAD"})
ADMIN_PATHS = ("/v1/leave", "/v1/pause", "/v1/unpause", "/v1/restore", "/v1/raft/")


def required_role(method: str, path: str) -> str | None:
    """The role `method path` needs, or None when the path is open."""
    if path != "/v1" and not path.startswith("/v1/"):
        return None
    if method in READ_METHODS:
        return "read"
    if any(path == admin.rstrip("/") or path.startswith(admin) for admin in ADMIN_PATHS):
        return "admin"
    return "write"


def presented_secret(scope: Scope) -> str:
    """The secret the request carries, or ""."""
    cookie = ""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                return credential.strip()
        elif name in TOKEN_HEADERS and value.strip():
            return value.decode("latin-1").strip()
        elif name == b"cookie":
            for pair in value.decode("latin-1").split(";"):
                key, _, text = pair.strip().partition("=")
                if key == TOKEN_COOKIE and text:
                    cookie = text
    return cookie


class TokenGate:
    """Refuse `/v1` requests without a token (401) or with one whose role is too low (403).

    The token found is left in `scope["state"]["token"]` for the handlers (secrets are shown to admins only).
    CORS preflights (OPTIONS) pass: browsers send them without credentials.
    """

    def __init__(self, app: ASGIApp, tokens: AccessTokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        needed = required_role(method, path)
        token: Token | None = None
        if needed is not None:
            secret = presented_secret(scope)
            token = self.tokens.find(secret) if secret else None
            if token is None:
                message = (
                    "this API needs a token: send Authorization: Bearer <secret> (or X-Horae-Token); "
                    "the CLI takes --token or HORAE_TOKEN"
                    if not secret
                    else "the token sent is not one of this agent's tokens (--acl-tokens); check the secret"
                )
                response = error_response(message, 401, headers={"WWW-Authenticate": 'Bearer realm="horae"'})
                await response(scope, receive, send)
                return
            if not token.allows(needed):
                message = f"token {token.name!r} has role {token.role}; {method} {path} needs role {needed}"
                await error_response(message, 403)(scope, receive, send)
                return
        scope.setdefault("state", {})["token"] = token
        await self.app(scope, receive, send)
