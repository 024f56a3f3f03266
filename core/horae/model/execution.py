"""One run of a job on one node, its identity, and the job status that runs add up to.

Identity is deterministic so that a new leader, a retry or a replayed Raft entry names the same
execution the same way: `slot` is the scheduled instant (for a manual run, the instant it was asked
for); `group` is the slot in Unix nanoseconds, shared by the trigger's fan-out to several nodes and
by its retries, as Dkron's group; `id` is `<group>-<node_name>-<attempt>`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from horae.model.errors import Problems
from horae.model.reading import FieldNames, describe, flag, moment, number, own_keys, text, whole
from horae.model.times import format_time, require_aware

STATUS_NOT_SET = ""
STATUS_SUCCESS = "success"
STATUS_FAILED = "failed"
STATUS_PARTIALLY_FAILED = "partially_failed"
JOB_STATUSES = (STATUS_NOT_SET, STATUS_SUCCESS, STATUS_FAILED, STATUS_PARTIALLY_FAILED)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_NS_PER_SECOND = 1_000_000_000
EXECUTION_FIELDS = FieldNames(
    "execution",
    (
        "id",
        "job_name",
        "started_at",
        "finished_at",
        "success",
        "output",
        "node_name",
        "group",
        "attempt",
        "exit_code",
        "cpu_seconds",
        "max_rss_bytes",
        "slot",
    ),
)


def execution_group(slot: datetime.datetime) -> int:
    """The slot in Unix nanoseconds, computed exactly (no float rounding)."""
    require_aware(slot, "an execution's slot")
    since = slot - _EPOCH
    return (since.days * 86_400 + since.seconds) * _NS_PER_SECOND + since.microseconds * 1_000


def slot_of_group(group: int) -> datetime.datetime:
    """The slot a group stands for, in UTC (to the microsecond, Python's resolution)."""
    return _EPOCH + datetime.timedelta(microseconds=group // 1_000)


def execution_id(group: int, node_name: str, attempt: int) -> str:
    return f"{group}-{node_name}-{attempt}"


@dataclass(slots=True)
class Execution:
    """Dkron's execution fields plus horae's exit_code, resource use and slot."""

    job_name: str
    node_name: str
    group: int
    attempt: int = 1
    id: str = ""  # filled from group, node_name and attempt when left empty
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None  # None while it runs
    success: bool = False
    output: str = ""
    exit_code: int | None = None  # None when the executor has no process (or it never started)
    cpu_seconds: float = 0.0
    max_rss_bytes: int = 0
    slot: datetime.datetime | None = None

    def __post_init__(self) -> None:
        if not self.id:
            self.id = execution_id(self.group, self.node_name, self.attempt)

    @classmethod
    def for_slot(cls, job_name: str, slot: datetime.datetime, node_name: str, attempt: int = 1) -> Execution:
        """A new execution of `job_name` for `slot` on `node_name`, with its deterministic identity."""
        return cls(job_name=job_name, node_name=node_name, group=execution_group(slot), attempt=attempt, slot=slot)

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @classmethod
    def from_json(cls, data: Any, strict: bool = True, warnings: list[str] | None = None) -> Execution:
        problems = Problems(strict)
        if not isinstance(data, dict):
            problems.error("", f"an execution is a JSON object, got {describe(data)}")
            problems.raise_if_any("execution")
        data = own_keys(problems, "", data, EXECUTION_FIELDS)
        get = data.get
        exit_code = get("exit_code")
        execution = cls(
            job_name=text(problems, "job_name", get("job_name")),
            node_name=text(problems, "node_name", get("node_name")),
            group=whole(problems, "group", get("group"), 0),
            attempt=whole(problems, "attempt", get("attempt"), 1, default=1),
            id=text(problems, "id", get("id")),
            started_at=moment(problems, "started_at", get("started_at")),
            finished_at=moment(problems, "finished_at", get("finished_at")),
            success=flag(problems, "success", get("success")),
            output=text(problems, "output", get("output")),
            exit_code=None if exit_code is None else whole(problems, "exit_code", exit_code, -(2**31)),
            cpu_seconds=number(problems, "cpu_seconds", get("cpu_seconds")),
            max_rss_bytes=whole(problems, "max_rss_bytes", get("max_rss_bytes"), 0),
            slot=moment(problems, "slot", get("slot")),
        )
        if not execution.job_name:
            problems.error("job_name", "required: the name of the job this execution ran")
        if warnings is not None:
            warnings.extend(problems.warnings)
        problems.raise_if_any("execution")
        return execution

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_name": self.job_name,
            "started_at": format_time(self.started_at),
            "finished_at": format_time(self.finished_at),
            "success": self.success,
            "output": self.output,
            "node_name": self.node_name,
            "group": self.group,
            "attempt": self.attempt,
            "exit_code": self.exit_code,
            "cpu_seconds": self.cpu_seconds,
            "max_rss_bytes": self.max_rss_bytes,
            "slot": format_time(self.slot),
        }


# -- job status ------------------------------------------------------------------------------------
def status_from_counts(succeeded: int, failed: int) -> str:
    """Dkron's rule over the executions of the job's last group (dkron/store.go computeStatus)."""
    if failed == 0:
        return STATUS_SUCCESS if succeeded else STATUS_NOT_SET
    return STATUS_PARTIALLY_FAILED if succeeded else STATUS_FAILED


def group_status(executions: Iterable[Execution]) -> str:
    """The job's status from the finished executions of its last group.

    Unlike Dkron, which counts a failed attempt even when its retry then succeeded (and so reports
    `partially_failed` for a job that in the end ran fine), only each node's latest attempt counts:
    a retry stands in for the attempt it retries.
    """
    latest: dict[str, Execution] = {}
    for execution in executions:
        if execution.finished_at is None:
            continue
        known = latest.get(execution.node_name)
        if known is None or execution.attempt > known.attempt:
            latest[execution.node_name] = execution
    succeeded = sum(1 for execution in latest.values() if execution.success)
    return status_from_counts(succeeded, len(latest) - succeeded)
