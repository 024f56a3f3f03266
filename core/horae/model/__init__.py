"""horae's data model: Job, Execution and Member with Dkron's JSON names, validated on the way in.

The API, the CLI, restore and the state machine all read jobs through `Job.from_json`, so every
rule lives here once. The package is split by concern; import from `horae.model`.
"""

from horae.model.errors import FieldError, ValidationError
from horae.model.execution import (
    JOB_STATUSES,
    STATUS_FAILED,
    STATUS_NOT_SET,
    STATUS_PARTIALLY_FAILED,
    STATUS_SUCCESS,
    Execution,
    execution_group,
    execution_id,
    group_status,
    slot_of_group,
    status_from_counts,
)
from horae.model.job import CONCURRENCY, MAX_RETRIES, READ_ONLY_FIELDS, Job
from horae.model.member import STATUS_TEXT, Member
from horae.model.notify import NOTIFY_ON, Notify, Webhook
from horae.model.rules import job_name_problem, split_tag, target_tags, timezone_problem
from horae.model.times import format_ms, format_time, parse_time

__all__ = [
    "CONCURRENCY",
    "JOB_STATUSES",
    "MAX_RETRIES",
    "NOTIFY_ON",
    "READ_ONLY_FIELDS",
    "STATUS_FAILED",
    "STATUS_NOT_SET",
    "STATUS_PARTIALLY_FAILED",
    "STATUS_SUCCESS",
    "STATUS_TEXT",
    "Execution",
    "FieldError",
    "Job",
    "Member",
    "Notify",
    "ValidationError",
    "Webhook",
    "execution_group",
    "execution_id",
    "format_ms",
    "format_time",
    "group_status",
    "job_name_problem",
    "parse_time",
    "slot_of_group",
    "split_tag",
    "status_from_counts",
    "target_tags",
    "timezone_problem",
]
