"""Tells people about finished executions: each job's `notify` block, and Dkron's global --mail-*/--webhook-* flags.

The leader's Dispatcher calls `Notifier.execution_recorded` for every result it records first. The
Notifier decides at once who hears of it and sends in background tasks that no execution awaits:
their number is bounded (past it a notification is dropped, and that is logged), mail goes through
smtplib in threads of its own, webhooks through one shared httpx client, each with a timeout, and
every failure is one log line with the job and execution ids. See docs/notifications.md.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import partial
from typing import Any

import httpx

from horae.config import AgentConfig
from horae.logs import fields
from horae.notify_templates import (
    default_payload,
    execution_values,
    is_json_payload,
    render,
    render_payload,
    report,
    subject,
    used_variables,
)

log = logging.getLogger("horae.notify")

SEND_TIMEOUT_SECONDS = 10.0
# Executions whose notifications are on their way; a result past this is not notified (logged).
MAX_PENDING = 256
MAX_CONCURRENT_WEBHOOKS = 16
MAIL_THREADS = 2
# When the agent stops, notifications on their way get this long to go out.
STOP_GRACE_SECONDS = 3.0
SMTPS_PORT = 465
# An SMTP server here may take a password without TLS (Go's smtp.PlainAuth, which Dkron uses, allows the same).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    why: str  # "notify.email" or "owner_email"


@dataclass(frozen=True)
class Webhook:
    url: str
    headers: tuple[tuple[str, str], ...]
    payload: str  # a template; "" for the default JSON document
    why: str  # "notify.webhook" or "webhook-endpoint"


Delivery = Mail | Webhook


def wanted(on: list[str], success: bool, final: bool) -> bool:
    """A job's `notify.on`: "failure" is a failed execution no retry follows; "always" is either outcome."""
    if not final:
        return False
    return "always" in on or ("success" if success else "failure") in on


def parse_headers(headers: list[str]) -> tuple[tuple[str, str], ...]:
    """Dkron's `--webhook-headers` ("Name: value" each; a value may hold colons)."""
    pairs = []
    for header in headers:
        name, _, value = header.partition(":")
        if name.strip():
            pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def unsendable_email(job: Mapping[str, Any], config: AgentConfig) -> str | None:
    """Why this agent cannot send a job's `notify.email` (it has no mail server), or None."""
    notify = job.get("notify") or {}
    if notify.get("email") and not config.mail_host:
        return (
            "this agent sends no email; start it with --mail-host (the SMTP server; also "
            "--mail-port and --mail-from), the same on every server, or remove notify.email"
        )
    return None


class Notifier:
    def __init__(
        self,
        config: AgentConfig,
        executions: Callable[[str], list[dict[str, Any]]] | None = None,
        timeout: float = SEND_TIMEOUT_SECONDS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        """`executions(job_name)` (blocking) gives the job's stored executions, for the report's group lines."""
        self._config = config
        self._executions = executions
        self._timeout = timeout
        self._max_pending = max_pending
        self._reporting_node = config.node_name
        self._sender = config.mail_from or f"horae@{socket.gethostname()}"
        self._global_headers = parse_headers(config.webhook_headers)
        self._tasks: set[asyncio.Task] = set()
        self._webhook_slots = asyncio.Semaphore(MAX_CONCURRENT_WEBHOOKS)
        self._client: httpx.AsyncClient | None = None
        self._mail_threads: ThreadPoolExecutor | None = None
        # httpx logs every request at info; "notification sent" already says it, with the job and execution.
        logging.getLogger("httpx").setLevel(logging.WARNING)

    # -- deciding (on the loop, at once) --------------------------------------------------------
    def plan(self, execution: Mapping[str, Any], job: Mapping[str, Any], final: bool) -> list[Delivery]:
        """Who hears of this result: the job's notify block (per its `on`), its owner_email, the global webhook."""
        config = self._config
        deliveries: list[Delivery] = []
        notify = job.get("notify") or {}
        told: set[str] = set()
        if notify and wanted(notify.get("on") or ["failure"], bool(execution.get("success")), final):
            if notify.get("email"):
                if config.mail_host:
                    deliveries.append(Mail(tuple(notify["email"]), "notify.email"))
                    told.update(notify["email"])
                else:
                    self._failed(execution, "email", "notify.email", "this agent has no --mail-host")
            if (hook := notify.get("webhook")) is not None:
                headers = tuple((hook.get("headers") or {}).items())
                deliveries.append(Webhook(hook["url"], headers, hook.get("payload") or "", "notify.webhook"))
        # Dkron's global notifications: every execution, retried attempts included.
        owner = job.get("owner_email") or ""
        if config.mail_host and owner and owner not in told:
            deliveries.append(Mail((owner,), "owner_email"))
        if config.webhook_endpoint:
            deliveries.append(
                Webhook(config.webhook_endpoint, self._global_headers, config.webhook_payload, "webhook-endpoint")
            )
        return deliveries

    def execution_recorded(self, execution: dict[str, Any], job: dict[str, Any], final: bool) -> None:
        """The Dispatcher's result observer: returns at once and never raises."""
        try:
            deliveries = self.plan(execution, job, final)
            if not deliveries:
                return
            if len(self._tasks) >= self._max_pending:
                log.warning(
                    "notification dropped: too many on their way",
                    extra=fields(job=execution["job_name"], execution=execution["id"], pending=len(self._tasks)),
                )
                return
            task = asyncio.get_running_loop().create_task(self._send_all(execution, final, deliveries))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        except Exception as error:
            self._failed(execution, "any", "", repr(error))

    # -- sending (in the background) ------------------------------------------------------------
    async def _send_all(self, execution: dict[str, Any], final: bool, deliveries: list[Delivery]) -> None:
        values = execution_values(execution, final, self._reporting_node)
        templates = [
            (self._config.mail_payload or "{{report}}") if isinstance(d, Mail) else d.payload for d in deliveries
        ]
        if "report" in used_variables(*templates):
            values["report"] = report(values, await self._group_of(execution))
        await asyncio.gather(*(self._send(execution, final, delivery, values) for delivery in deliveries))

    async def _send(self, execution: dict[str, Any], final: bool, delivery: Delivery, values: dict[str, str]) -> None:
        channel = "email" if isinstance(delivery, Mail) else "webhook"
        target = ", ".join(delivery.to) if isinstance(delivery, Mail) else delivery.url
        try:
            if isinstance(delivery, Mail):
                await self._send_mail(delivery, values)
            else:
                await self._call_webhook(delivery, values, execution, final)
        except asyncio.CancelledError:
            self._failed(execution, channel, target, "the agent stopped before it was sent")
            raise
        except Exception as error:
            self._failed(execution, channel, target, _describe(error), delivery.why)
            return
        log.info(
            "notification sent",
            extra=fields(
                job=execution["job_name"], execution=execution["id"], channel=channel, to=target, why=delivery.why
            ),
        )

    async def _group_of(self, execution: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._executions is None:
            return []
        try:
            stored = await asyncio.to_thread(self._executions, execution["job_name"])
        except Exception as error:  # the report goes out without its group lines
            log.warning("execution group not read", extra=fields(job=execution["job_name"], error=repr(error)))
            return []
        return [other for other in stored if other.get("group") == execution.get("group")]

    async def _send_mail(self, mail: Mail, values: dict[str, str]) -> None:
        config = self._config
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = ", ".join(mail.to)
        message["Subject"] = subject(config.mail_subject_prefix, values)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2] or None)
        message.set_content(render(config.mail_payload, values) if config.mail_payload else values["report"])
        if self._mail_threads is None:
            self._mail_threads = ThreadPoolExecutor(MAIL_THREADS, thread_name_prefix="horae-mail")
        send = partial(
            deliver_mail, config.mail_host, config.mail_port, config.mail_username, config.mail_password, message
        )
        refused = await asyncio.get_running_loop().run_in_executor(self._mail_threads, send, self._timeout)
        if refused:
            raise MailError(f"the server refused {', '.join(sorted(refused))}")

    async def _call_webhook(
        self, hook: Webhook, values: dict[str, str], execution: dict[str, Any], final: bool
    ) -> None:
        headers = dict(hook.headers)
        if hook.payload:
            body = render_payload(hook.payload, values, headers)
            is_json = is_json_payload(hook.payload, headers)
        else:
            body, is_json = default_payload(execution, final, self._reporting_node), True
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json" if is_json else "text/plain; charset=utf-8"
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, headers={"User-Agent": "horae-notifier"})
        async with self._webhook_slots:
            # One deadline for the whole call: httpx's timeout bounds each read, not a server that trickles.
            response = await asyncio.wait_for(
                self._client.post(hook.url, content=body.encode(), headers=headers), self._timeout
            )
        if not response.is_success:
            raise WebhookError(f"answered {response.status_code}: {response.text[:200]!r}")

    def _failed(self, execution: Mapping[str, Any], channel: str, target: str, error: str, why: str = "") -> None:
        log.warning(
            "notification failed",
            extra=fields(
                job=execution.get("job_name"),
                execution=execution.get("id"),
                channel=channel,
                to=target,
                why=why,
                error=error,
            ),
        )

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Give notifications on their way `grace` seconds, then cancel them and close the clients."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        rest = [task for task in self._tasks if not task.done()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        if self._mail_threads is not None:
            self._mail_threads.shutdown(wait=False, cancel_futures=True)


class MailError(Exception):
    pass


class WebhookError(Exception):
    pass


def deliver_mail(
    host: str, port: int, username: str, password: str, message: EmailMessage, timeout: float
) -> dict[str, Any]:
    """Send one message (blocking: run it in a thread); returns the recipients the server refused.

    STARTTLS when the server offers it, as Go's smtp.SendMail (Dkron's) does; port 465 is TLS from the
    start. A password is sent only over TLS, or to a server on this host.
    """
    implicit_tls = port == SMTPS_PORT
    context = ssl.create_default_context()
    if implicit_tls:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        smtp.ehlo_or_helo_if_needed()
        secure = implicit_tls
        if not secure and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
            secure = True
        if username and password:
            if not secure and host not in LOCAL_HOSTS:
                raise MailError(f"{host} offers no STARTTLS: the password is not sent in clear")
            smtp.login(username, password)
        return smtp.send_message(message)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return "timed out"
    text = str(error) or type(error).__name__
    return text if isinstance(error, MailError | WebhookError) else f"{type(error).__name__}: {text}"
