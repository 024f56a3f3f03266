"""Errors the core raises for the API to turn into status codes; each message says what to fix."""

from __future__ import annotations

from dataclasses import dataclass


class HoraeError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(HoraeError):
    status = 404


class Conflict(HoraeError):
    status = 409


class Unavailable(HoraeError):
    """No leader, or Raft did not answer in time (the outcome may be unknown)."""

    status = 503


@dataclass
class FieldProblem:
    field: str
    message: str


class BadRequest(HoraeError):
    status = 400

    def __init__(self, message: str, fields: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []
