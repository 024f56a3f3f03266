"""Jinja2 templates of the UI and the filters they use (times, durations, sizes, URL parts)."""

from __future__ import annotations

import datetime
import json
import urllib.parse
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

import horae
from horae_web.secrets import SECRET_KEY
from horae_web.ui.settings import caller, ui_settings

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "ui"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def short_time(text: Any) -> str:
    """An RFC 3339 time as `2026-12-03 12:57:40` (UTC), or "" when unset."""
    moment = parse_time(text)
    if moment is None:
        return ""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(execution: dict[str, Any]) -> str:
    started, finished = parse_time(execution.get("started_at")), parse_time(execution.get("finished_at"))
    if started is None:
        return ""
    end = finished or datetime.datetime.now(datetime.UTC)
    seconds = max(0.0, (end - started).total_seconds())
    text = f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return text if finished is not None else text + " so far"


def size(value: Any) -> str:
    if not isinstance(value, int | float) or value <= 0:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def quote(value: Any) -> str:
    """A URL path segment (job names and execution ids)."""
    return urllib.parse.quote(str(value), safe="")


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


templates.env.filters.update(short_time=short_time, duration=duration, size=size, q=quote, as_json=as_json)
# `{% if key is secret %}`: a setting masked for non-admins is typed into a password input.
templates.env.tests["secret"] = lambda key: bool(SECRET_KEY.search(str(key)))


def render(request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200) -> Response:
    """A page (or fragment) with what every template needs: the UI's base path, the caller and this node."""
    settings = ui_settings(request)
    service = request.app.state.service
    values = {
        "base": settings.base,
        "login_on": settings.tokens is not None,
        "token": caller(request),
        "node": service.config.node_name,
        "version": horae.__version__,
        **(context or {}),
    }
    return templates.TemplateResponse(request, f"ui/{name}", values, status_code=status)
