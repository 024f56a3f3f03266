"""A small client for the `/v1` API, used by the CLI (`horae jobs …`). Standard library only."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_ADDRESS = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 30.0


class ApiError(RuntimeError):
    """The API refused the request or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ApiClient:
    def __init__(self, address: str | None = None, token: str | None = None) -> None:
        self.address = (address or os.environ.get("HORAE_ADDR") or DEFAULT_ADDRESS).rstrip("/")
        self.token = token or os.environ.get("HORAE_TOKEN") or ""

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = self.address + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                decoded = json.loads(payload)
                message = decoded.get("error") if isinstance(decoded, dict) else None
            except ValueError:
                decoded, message = payload.decode(errors="replace"), None
            raise ApiError(f"{method} {path}: {error.code} {message or decoded}", error.code, decoded) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(
                f"cannot reach horae at {self.address} ({reason}); is `horae agent` running? "
                "Set --address or HORAE_ADDR"
            ) from None
        return json.loads(payload) if payload else None

    # -- jobs ----------------------------------------------------------------------------------
    def jobs(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/jobs")

    def job(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{_quote(name)}")

    def put_job(self, job: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/v1/jobs", job)

    def delete_job(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/jobs/{_quote(name)}")

    def run(self, name: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/jobs/{_quote(name)}/run")

    def toggle(self, name: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/jobs/{_quote(name)}/toggle")

    def executions(self, name: str, limit: int | None = None) -> list[dict[str, Any]]:
        query = {"_start": 0, "_end": limit} if limit else None
        return self.request("GET", f"/v1/jobs/{_quote(name)}/executions", query=query)

    def stop(self, name: str, execution_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/jobs/{_quote(name)}/executions/{_quote(execution_id)}/stop")

    def restore(self, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        return self.request("POST", "/v1/restore", jobs)


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")
