"""Dkron's `X-Whom` header on every response: which node answered, useful behind a load balancer."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class WhomHeader:
    def __init__(self, app: ASGIApp, node_name: str) -> None:
        self.app = app
        self.header = (b"x-whom", node_name.encode("latin-1", errors="replace"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_whom(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        await self.app(scope, receive, send_with_whom)
