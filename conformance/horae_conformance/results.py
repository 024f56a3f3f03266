"""What a case can conclude, and how a case says it: return a note, or raise CaseFailed/CaseSkipped."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class CaseFailed(Exception):
    """The plugin broke the protocol; the message says how, in words a plugin author can act on."""


class CaseSkipped(Exception):
    """The case could not run (a config is missing) or only warns; the message says why."""


@dataclass(frozen=True)
class CaseResult:
    name: str
    status: Status
    reason: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Summary:
    passed: int
    failed: int
    skipped: int

    @classmethod
    def of(cls, results: Iterable[CaseResult]) -> Summary:
        statuses = [result.status for result in results]
        return cls(
            passed=statuses.count(Status.PASSED),
            failed=statuses.count(Status.FAILED),
            skipped=statuses.count(Status.SKIPPED),
        )

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped

    def line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
