"""Helpers of the web UI tests: Debian's Chromium through Playwright, console errors, screenshots, a sub-path proxy.

The browser is /usr/bin/chromium (scripts/ensure_chromium.sh installs it for `make test`); Playwright never
downloads one. Screenshots go to `test-results/ui/<test>/` (ignored by git) so a person can look at each page.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "test-results" / "ui"


class Browser:
    """One headless Chromium page that records console errors and uncaught exceptions."""

    def __init__(self, playwright, screenshots: Path) -> None:
        if not CHROMIUM.exists():
            pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh (apt-get install -y chromium)")
        # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
        self.browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("dialog", lambda dialog: dialog.accept())  # "Delete job …?"
        self.screenshots = screenshots
        screenshots.mkdir(parents=True, exist_ok=True)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.screenshots / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        self.browser.close()


@contextmanager
def browser_for(request: pytest.FixtureRequest) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = Browser(playwright, SCREENSHOTS / request.node.name)
        try:
            yield browser
        finally:
            browser.close()


class _Forward(BaseHTTPRequestHandler):
    """Strips the prefix and forwards to the agent, as a reverse proxy serving horae on a sub-path does."""

    prefix = ""
    upstream = ("127.0.0.1", 0)
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        if not self.path.startswith(self.prefix + "/") and self.path != self.prefix:
            self.send_error(404, f"the proxy serves {self.prefix}/ only")
            return
        path = self.path[len(self.prefix) :] or "/"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {key: value for key, value in self.headers.items() if key.lower() not in ("host", "connection")}
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            connection.request(self.command, path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def sub_path_proxy(prefix: str, upstream_port: int) -> Iterator[str]:
    """A proxy on a free port that serves the agent under `prefix`; yields its base URL."""
    handler = type("Forward", (_Forward,), {"prefix": prefix, "upstream": ("127.0.0.1", upstream_port)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
