"""Real receivers for notification tests: an SMTP server (aiosmtpd) and an HTTP server, each in a thread.

with MailSink() as mail, HookReceiver() as hooks:
    ...  # point an agent at mail.port and hooks.url("/path"), then poll mail.messages / hooks.requests
"""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.integration.agent_process import free_port

# A request to a path under this prefix is held until `HookReceiver.release` is set.
SLOW_PREFIX = "/slow"
# A request to a path under this prefix is answered 500.
REFUSE_PREFIX = "/refuse"
HOLD_LIMIT_SECONDS = 60.0


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    subject: str
    body: str
    login: str | None
    headers: dict[str, str] = field(default_factory=dict)


class MailSink:
    """An SMTP server on 127.0.0.1 that keeps every message; it offers AUTH (without TLS) for `login`/`password`."""

    def __init__(self, login: str = "horae", password: str = "s3cret") -> None:
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._credentials = (login.encode(), password.encode())
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, authenticator=self._authenticate, auth_require_tls=False
        )

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == self._credentials
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        received = ReceivedMail(
            sender=envelope.mail_from,
            recipients=list(envelope.rcpt_tos),
            subject=str(message["Subject"]),
            body=message.get_content().replace("\r\n", "\n"),  # as sent, not as on the wire
            login=login,
            headers={key: str(value) for key, value in message.items()},
        )
        with self._lock:
            self.messages.append(received)
        return "250 OK"

    def to(self, address: str) -> list[ReceivedMail]:
        with self._lock:
            return [m for m in self.messages if address in m.recipients]

    def __enter__(self) -> MailSink:
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.stop()


@dataclass
class HookRequest:
    path: str
    headers: dict[str, str]  # names in lower case
    body: str
    answered: bool = False


class HookReceiver:
    """An HTTP server on 127.0.0.1 that keeps every POST; `/refuse…` answers 500, `/slow…` waits for `release`."""

    def __init__(self) -> None:
        self.requests: list[HookRequest] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = HookRequest(
                    self.path,
                    {key.lower(): value for key, value in self.headers.items()},
                    self.rfile.read(length).decode(),
                )
                with receiver._lock:
                    receiver.requests.append(request)
                if self.path.startswith(SLOW_PREFIX):
                    receiver.release.wait(HOLD_LIMIT_SECONDS)
                status = 500 if self.path.startswith(REFUSE_PREFIX) else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the caller gave up (its timeout)
                    pass
                request.answered = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="hook-receiver", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[HookRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def __enter__(self) -> HookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
