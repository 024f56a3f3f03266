"""Validation errors that name the offending field, and the collector that gathers them.

A job body usually has more than one mistake; an operator fixing them one 400 at a time is
annoyed. So readers never raise on the first problem: they record a `FieldError` in a `Problems`
collector and carry on, and the caller raises one `ValidationError` listing them all. The API turns
it into `400 {"error": "...", "fields": [{"field": ..., "message": ...}]}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem: `field` is a JSON path (`executor_config.timeout`, `tags.role`, `notify.email[1]`)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ValidationError(ValueError):
    """Raised with every problem found in one JSON object, not just the first."""

    def __init__(self, errors: list[FieldError], subject: str = "job") -> None:
        self.errors = list(errors)
        self.subject = subject
        super().__init__(_summary(self.errors, subject))

    def to_json(self) -> dict[str, object]:
        return {"error": str(self), "fields": [error.to_json() for error in self.errors]}


def _summary(errors: list[FieldError], subject: str) -> str:
    if len(errors) == 1:
        return str(errors[0])
    return f"{len(errors)} problems in the {subject}: " + "; ".join(str(error) for error in errors)


@dataclass(slots=True)
class Problems:
    """Collects errors and warnings while one object is read.

    `strict` decides the fate of things Dkron itself would have let through (unknown keys, an
    owner_email that is not an address, a number where a setting string belongs): errors when a
    user writes a job, warnings when a dump is restored, so that every Dkron export imports.
    """

    strict: bool = True
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(str(FieldError(path, message)))

    def beyond_dkron(self, path: str, message: str) -> None:
        """A rule horae adds where Dkron accepts the value: an error, or a warning in lenient mode."""
        if self.strict:
            self.error(path, message)
        else:
            self.warn(path, message + " (accepted on import)")

    def has_error(self, path: str) -> bool:
        return any(error.field == path for error in self.errors)

    def raise_if_any(self, subject: str) -> None:
        if self.errors:
            raise ValidationError(self.errors, subject)
