"""A job's `notify` block (beyond Dkron): who hears about its executions, and when.

`{"on": ["failure"], "email": ["ops@example.com"], "webhook": {"url": ..., "headers": {...},
"payload": ...}}`. Dkron notifies through agent-wide settings only; horae lets each job say so.
The model only checks the shape; sending lives with the notifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from horae.model.errors import Problems
from horae.model.reading import FieldNames, child, describe, item, own_keys, string_list, string_map, text
from horae.model.rules import EMAIL

NOTIFY_ON = ("failure", "success", "always")
NOTIFY_FIELDS = FieldNames("notify block", ("on", "email", "webhook"))
WEBHOOK_FIELDS = FieldNames("webhook", ("url", "headers", "payload"))


@dataclass(slots=True)
class Webhook:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    # The request body; a template the notifier fills in. Empty: the notifier's default JSON.
    payload: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "headers": dict(self.headers), "payload": self.payload}


@dataclass(slots=True)
class Notify:
    on: list[str] = field(default_factory=lambda: ["failure"])
    email: list[str] = field(default_factory=list)
    webhook: Webhook | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "on": list(self.on),
            "email": list(self.email),
            "webhook": self.webhook.to_json() if self.webhook is not None else None,
        }


def read_notify(problems: Problems, path: str, value: Any) -> Notify | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.error(path, f'must be an object such as {{"on": ["failure"], "email": [...]}}, got {describe(value)}')
        return None
    data = own_keys(problems, path, value, NOTIFY_FIELDS)
    on = _read_on(problems, child(path, "on"), data.get("on"))
    email = string_list(problems, child(path, "email"), data.get("email"))
    for index, address in enumerate(email):
        if not EMAIL.fullmatch(address):
            problems.error(item(child(path, "email"), index), f"{describe(address)} is not an email address")
    webhook = _read_webhook(problems, child(path, "webhook"), data.get("webhook"))
    if not email and webhook is None:
        problems.error(path, 'says whom to tell: give "email" addresses, a "webhook", or both')
    return Notify(on=on, email=email, webhook=webhook)


def _read_on(problems: Problems, path: str, value: Any) -> list[str]:
    if value is None:
        return ["failure"]
    accepted = " or ".join(f'"{when}"' for when in NOTIFY_ON)
    if not isinstance(value, list) or not value:
        problems.error(path, f'must be a non-empty list of {accepted}, e.g. ["failure"], got {describe(value)}')
        return ["failure"]
    result = []
    for index, when in enumerate(value):
        if when in NOTIFY_ON:
            if when not in result:
                result.append(when)
        else:
            problems.error(item(path, index), f"must be {accepted}, got {describe(when)}")
    return result


def _read_webhook(problems: Problems, path: str, value: Any) -> Webhook | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        example = '{"url": "https://hooks.example.com/x"}'
        problems.error(path, f"must be an object such as {example}, got {describe(value)}")
        return None
    data = own_keys(problems, path, value, WEBHOOK_FIELDS)
    url = text(problems, child(path, "url"), data.get("url"))
    if not _is_web_url(url):
        problems.error(child(path, "url"), f"must be an http:// or https:// URL, got {describe(url)}")
    headers = string_map(problems, child(path, "headers"), data.get("headers"), "headers", '{"Authorization": "..."}')
    payload = text(problems, child(path, "payload"), data.get("payload"))
    return Webhook(url=url, headers=headers, payload=payload)


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
