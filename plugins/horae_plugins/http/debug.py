"""The `debug` key's output: the request and the response head, curl -v style, before the body.

Dkron logged the request and response structs and put the config at the top of the output; here
the output itself shows what was sent and what came back, where a user looks first. Credentials
(Authorization, cookies) are masked: the output is stored and shown in the UI.
"""

from __future__ import annotations

import httpx

MAX_BODY_SHOWN = 4096
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}


def request_lines(request: httpx.Request, timeout: float | None, tls_lines: list[str]) -> str:
    target = request.url.raw_path.decode("ascii", errors="replace")
    lines = [
        f"* {request.method} {request.url}, timeout {f'{timeout:g}s' if timeout else 'none'}",
        *(f"* {line}" for line in tls_lines),
        f"> {request.method} {target} HTTP/1.1",
        *(f"> {name}: {_shown(name, value)}" for name, value in _items(request.headers)),
        ">",
    ]
    body = request.content
    if body:
        text = body[:MAX_BODY_SHOWN].decode(errors="replace")
        lines += [f"> {line}" for line in text.splitlines()]
        if len(body) > MAX_BODY_SHOWN:
            lines.append(f"> … ({len(body) - MAX_BODY_SHOWN} more bytes)")
    return "\n".join(lines) + "\n"


def response_lines(response: httpx.Response) -> str:
    lines = [
        f"< {hop.http_version} {hop.status_code} {hop.reason_phrase} (redirect to {hop.headers.get('location', '')})"
        for hop in response.history
    ]
    lines += [
        f"< {response.http_version} {response.status_code} {response.reason_phrase}",
        *(f"< {name}: {_shown(name, value)}" for name, value in _items(response.headers)),
        "<",
    ]
    return "\n".join(lines) + "\n"


def _items(headers: httpx.Headers) -> list[tuple[str, str]]:
    """Headers as sent or received, with the case of their names."""
    return [(name.decode("latin-1"), value.decode(errors="replace")) for name, value in headers.raw]


def _shown(name: str, value: str) -> str:
    if name.lower() not in _SECRET_HEADERS:
        return value
    scheme, _, secret = value.partition(" ")
    # Keep the scheme of an Authorization header (Basic, Bearer): it helps, and it is no secret.
    return f"{scheme} <masked>" if secret and name.lower().endswith("authorization") else "<masked>"
