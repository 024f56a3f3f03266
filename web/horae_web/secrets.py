"""Secrets in a job's settings are shown to admins only, and a write that sends the mask back keeps them.

A secret is a setting whose key looks like one (`password`, `saslPassword`, `token`, `secret`, `apiKey`…) in
`executor_config`, a processor's config, or a notify webhook's headers (`Authorization` too). Without API tokens
every caller may see everything: the agent then serves loopback only.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

MASK = "********"
SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|api[_-]?key|credential|private[_-]?key|authorization", re.I)


def sees_secrets(request: Request) -> bool:
    """True without tokens (no gate ran) or with an admin token."""
    token = request.scope.get("state", {}).get("token", False)
    return token is False or (token is not None and token.allows("admin"))


def shown(request: Request, job: dict[str, Any]) -> dict[str, Any]:
    """The job as this caller may see it."""
    return job if sees_secrets(request) else masked(job)


def masked(job: dict[str, Any]) -> dict[str, Any]:
    """A copy of the job JSON with every secret value replaced by MASK."""
    copy = dict(job)
    if isinstance(job.get("executor_config"), dict):
        copy["executor_config"] = _mask_map(job["executor_config"])
    if isinstance(job.get("processors"), dict):
        copy["processors"] = {
            name: _mask_map(config) if isinstance(config, dict) else config
            for name, config in job["processors"].items()
        }
    webhook = (job.get("notify") or {}).get("webhook") if isinstance(job.get("notify"), dict) else None
    if isinstance(webhook, dict) and isinstance(webhook.get("headers"), dict):
        copy["notify"] = {**job["notify"], "webhook": {**webhook, "headers": _mask_map(webhook["headers"])}}
    return copy


def unmasked(data: Any, stored: dict[str, Any] | None) -> Any:
    """The body of a write with every MASK value that stands for a stored secret put back."""
    if not isinstance(data, dict) or stored is None:
        return data
    result = dict(data)
    if isinstance(data.get("executor_config"), dict):
        result["executor_config"] = _unmask_map(data["executor_config"], stored.get("executor_config"))
    if isinstance(data.get("processors"), dict):
        stored_processors = stored.get("processors") if isinstance(stored.get("processors"), dict) else {}
        result["processors"] = {
            name: _unmask_map(config, stored_processors.get(name)) if isinstance(config, dict) else config
            for name, config in data["processors"].items()
        }
    notify, stored_notify = data.get("notify"), stored.get("notify")
    if isinstance(notify, dict) and isinstance(notify.get("webhook"), dict) and isinstance(stored_notify, dict):
        webhook = notify["webhook"]
        stored_headers = (stored_notify.get("webhook") or {}).get("headers")
        if isinstance(webhook.get("headers"), dict):
            headers = _unmask_map(webhook["headers"], stored_headers)
            result["notify"] = {**notify, "webhook": {**webhook, "headers": headers}}
    return result


def _mask_map(values: dict[str, Any]) -> dict[str, Any]:
    return {key: MASK if SECRET_KEY.search(key) and value not in ("", None) else value for key, value in values.items()}


def _unmask_map(values: dict[str, Any], stored: Any) -> dict[str, Any]:
    if not isinstance(stored, dict):
        return values
    return {
        key: stored[key] if value == MASK and SECRET_KEY.search(key) and key in stored else value
        for key, value in values.items()
    }
