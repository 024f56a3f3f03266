"""The job: every field of Dkron's job JSON (same names, same rules) plus horae's additions.

`Job.from_json` is the one place a job body is checked: types, Dkron's rules, horae's extra ones,
the schedule (through `horae.schedule`) and durations (through `horae.durations`), collecting every
problem into one `ValidationError`. `to_json` writes Dkron's JSON back: RFC 3339 times or null,
string maps, processors in the order given. Computed fields (`id`, counters, `status`, `next`...) are
read and written so a job survives a GET → edit → POST round trip, but the server owns them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from horae.durations import format_duration
from horae.model import rules
from horae.model.errors import Problems
from horae.model.notify import Notify, read_notify
from horae.model.reading import (
    FieldNames,
    child,
    describe,
    flag,
    moment,
    own_keys,
    seconds,
    string_list,
    string_map,
    text,
    whole,
)
from horae.model.times import format_time
from horae.schedule import ScheduleError, parse_schedule

CONCURRENCY_ALLOW = "allow"
CONCURRENCY_FORBID = "forbid"
CONCURRENCY = (CONCURRENCY_ALLOW, CONCURRENCY_FORBID)
MAX_RETRIES = 100

# Fields the server computes; accepted on input (a GET's body may be posted back) and kept by the server.
READ_ONLY_FIELDS = (
    "id",
    "success_count",
    "error_count",
    "last_success",
    "last_error",
    "status",
    "next",
    "dependent_jobs",
    "missed_count",
)
# Dkron 1 fields that moved into the executor; the message says where.
_LEGACY_HINTS = {
    "command": 'a Dkron 1 field: use "executor": "shell" with "executor_config": {"command": "..."}',
    "shell": 'a Dkron 1 field: use "executor": "shell" with "executor_config": {"shell": "true"}',
    "parent_jobs": 'a Dkron 1 field: a job has one "parent_job"',
}
JOB_FIELDS = FieldNames(
    "job",
    (
        "id",
        "name",
        "displayname",
        "timezone",
        "schedule",
        "owner",
        "owner_email",
        "success_count",
        "error_count",
        "last_success",
        "last_error",
        "disabled",
        "tags",
        "metadata",
        "retries",
        "retry_backoff",
        "dependent_jobs",
        "parent_job",
        "processors",
        "concurrency",
        "executor",
        "executor_config",
        "timeout",
        "status",
        "next",
        "ephemeral",
        "starts_at",
        "expires_at",
        "catchup",
        "missed_count",
        "notify",
    ),
    _LEGACY_HINTS,
)
SCHEDULE_EXAMPLES = '"0 30 * * * *", "*/5 * * * *", "@every 10m", "@daily" or "@manually"'


@dataclass(slots=True)
class Job:
    """A job as Dkron's JSON names it. Built by `from_json` (validated) or by code that trusts itself."""

    name: str
    displayname: str = ""
    schedule: str = ""
    timezone: str = ""  # "" = UTC (Dkron: the leader's local time, which moves with leadership)
    owner: str = ""
    owner_email: str = ""
    disabled: bool = False
    tags: dict[str, str] = field(default_factory=dict)  # "role": "web:2" = two nodes tagged role=web
    metadata: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    retry_backoff: float = 0.0  # seconds before the first retry, doubled for each next one; 0 = at once
    parent_job: str = ""
    concurrency: str = CONCURRENCY_ALLOW
    executor: str = ""
    executor_config: dict[str, str] = field(default_factory=dict)
    processors: dict[str, dict[str, str]] = field(default_factory=dict)  # run in this order
    ephemeral: bool = False
    starts_at: datetime.datetime | None = None
    expires_at: datetime.datetime | None = None
    timeout: float | None = None  # seconds; the host cancels the execution after it, whatever the executor
    catchup: float = 0.0  # seconds; missed slots younger than this run late, older ones are skipped
    notify: Notify | None = None
    # Computed by the server.
    dependent_jobs: list[str] = field(default_factory=list)
    success_count: int = 0
    error_count: int = 0
    last_success: datetime.datetime | None = None
    last_error: datetime.datetime | None = None
    status: str = ""
    next: datetime.datetime | None = None
    missed_count: int = 0

    @property
    def id(self) -> str:
        """Dkron's `id` is a copy of the name."""
        return self.name

    @classmethod
    def from_json(
        cls,
        data: Any,
        strict: bool = True,
        warnings: list[str] | None = None,
        check: Callable[[Problems, Job], None] | None = None,
    ) -> Job:
        """A validated job from Dkron's JSON; ValidationError lists every problem.

        strict (the API): unknown fields are errors, with the closest known field suggested.
        lenient (restore and import): unknown fields are left out, Dkron-accepted values that horae
        would refuse are kept, and each is reported as a "field: message" line appended to `warnings`.
        `check` adds what the model cannot know alone: the server passes the check of the executor's
        and processors' settings against the schemas their plugins serve (horae.config_check).
        """
        problems = Problems(strict)
        job = _read_job(problems, data)
        if job is not None and check is not None:
            check(problems, job)
        if warnings is not None:
            warnings.extend(problems.warnings)
        problems.raise_if_any("job")
        assert job is not None
        return job

    def to_json(self) -> dict[str, Any]:
        """Dkron's JSON for this job (in Dkron's key order), then horae's fields."""
        return {
            "id": self.name,
            "name": self.name,
            "displayname": self.displayname,
            "timezone": self.timezone,
            "schedule": self.schedule,
            "owner": self.owner,
            "owner_email": self.owner_email,
            "success_count": self.success_count,
            "error_count": self.error_count,
            "last_success": format_time(self.last_success),
            "last_error": format_time(self.last_error),
            "disabled": self.disabled,
            "tags": dict(self.tags),
            "metadata": dict(self.metadata),
            "retries": self.retries,
            "dependent_jobs": list(self.dependent_jobs),
            "parent_job": self.parent_job,
            "processors": {name: dict(config) for name, config in self.processors.items()},
            "concurrency": self.concurrency,
            "executor": self.executor,
            "executor_config": dict(self.executor_config),
            "status": self.status,
            "next": format_time(self.next),
            "ephemeral": self.ephemeral,
            "starts_at": format_time(self.starts_at),
            "expires_at": format_time(self.expires_at),
            "retry_backoff": self.retry_backoff,
            "timeout": format_duration(self.timeout) if self.timeout is not None else None,
            "catchup": format_duration(self.catchup),
            "missed_count": self.missed_count,
            "notify": self.notify.to_json() if self.notify is not None else None,
        }


def _read_job(problems: Problems, data: Any) -> Job | None:
    if not isinstance(data, dict):
        problems.error("", f"a job is a JSON object with at least a name and a schedule, got {describe(data)}")
        return None
    data = own_keys(problems, "", data, JOB_FIELDS)
    get = data.get
    job = Job(
        name=_job_name(problems, "name", get("name")),
        displayname=text(problems, "displayname", get("displayname")),
        schedule=text(problems, "schedule", get("schedule")),
        timezone=text(problems, "timezone", get("timezone")),
        owner=text(problems, "owner", get("owner")),
        owner_email=text(problems, "owner_email", get("owner_email")),
        disabled=flag(problems, "disabled", get("disabled")),
        tags=_tags(problems, get("tags")),
        metadata=string_map(problems, "metadata", get("metadata"), "metadata values", '{"team": "data"}'),
        retries=_retries(problems, get("retries")),
        retry_backoff=seconds(problems, "retry_backoff", get("retry_backoff"), "30s") or 0.0,
        parent_job=text(problems, "parent_job", get("parent_job")),
        concurrency=_concurrency(problems, get("concurrency")),
        executor=text(problems, "executor", get("executor")),
        executor_config=string_map(
            problems, "executor_config", get("executor_config"), "executor settings", '{"command": "echo hi"}'
        ),
        processors=_processors(problems, get("processors")),
        ephemeral=flag(problems, "ephemeral", get("ephemeral")),
        starts_at=moment(problems, "starts_at", get("starts_at")),
        expires_at=moment(problems, "expires_at", get("expires_at")),
        timeout=_timeout(problems, get("timeout")),
        catchup=seconds(problems, "catchup", get("catchup"), "1h") or 0.0,
        notify=read_notify(problems, "notify", get("notify")),
        dependent_jobs=string_list(problems, "dependent_jobs", get("dependent_jobs")),
        success_count=whole(problems, "success_count", get("success_count"), 0),
        error_count=whole(problems, "error_count", get("error_count"), 0),
        last_success=moment(problems, "last_success", get("last_success")),
        last_error=moment(problems, "last_error", get("last_error")),
        status=text(problems, "status", get("status")),
        next=moment(problems, "next", get("next")),
        missed_count=whole(problems, "missed_count", get("missed_count"), 0),
    )
    text(problems, "id", get("id"))  # computed from the name; only its type is checked
    _check_relations(problems, job)
    return job


# -- single fields ---------------------------------------------------------------------------------
def _job_name(problems: Problems, path: str, value: Any) -> str:
    name = text(problems, path, value)
    if isinstance(value, str) or value is None:
        problem = rules.job_name_problem(name)
        if problem is not None:
            problems.error(path, problem)
    return name


def _tags(problems: Problems, value: Any) -> dict[str, str]:
    tags = string_map(problems, "tags", value, "tag values", '{"role": "web"} or {"role": "web:2"}')
    for key, tag in tags.items():
        where = child("tags", key)
        if not key:
            problems.error(where, "a tag needs a name")
        problem = rules.tag_problem(tag)
        if problem is not None:
            problems.error(where, problem)
    return tags


def _retries(problems: Problems, value: Any) -> int:
    if value is None:
        return 0
    accepted = f"must be a whole number from 0 to {MAX_RETRIES}"
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.error("retries", f"{accepted}, got {describe(value)}")
        return 0
    if value > MAX_RETRIES:  # Dkron has no bound; imported jobs keep theirs
        problems.beyond_dkron("retries", f"{accepted}, got {value}")
    return value


def _concurrency(problems: Problems, value: Any) -> str:
    concurrency = text(problems, "concurrency", value)
    if concurrency == "":  # Dkron treats "" as allow
        return CONCURRENCY_ALLOW
    if concurrency not in CONCURRENCY:
        problems.error(
            "concurrency",
            f'must be "allow" (runs may overlap) or "forbid" (skip a run while one is running), got {describe(value)}',
        )
    return concurrency


def _processors(problems: Problems, value: Any) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.error(
            "processors",
            f'must be an object of processor name → settings, e.g. {{"log": {{}}, "files": {{"forward": "true"}}}}, '
            f"got {describe(value)}",
        )
        return {}
    result = {}
    for name, config in value.items():
        where = child("processors", name)
        if not name:
            problems.error(where, 'a processor needs a name, e.g. "log"')
        result[name] = string_map(problems, where, config, "processor settings", '{"forward": "true"}')
    return result


def _timeout(problems: Problems, value: Any) -> float | None:
    timeout = seconds(problems, "timeout", value, "30m")
    if timeout == 0:
        problems.error("timeout", 'must be more than 0, e.g. "30m"; leave it out (or null) for no timeout')
        return None
    return timeout


# -- rules across fields ---------------------------------------------------------------------------
def _check_relations(problems: Problems, job: Job) -> None:
    if job.owner_email:
        problem = rules.email_problem(job.owner_email)
        if problem is not None:
            problems.beyond_dkron("owner_email", problem)
    if job.parent_job:
        problem = rules.job_name_problem(job.parent_job)
        if problem is not None:
            problems.error("parent_job", problem)
        elif job.parent_job == job.name:
            problems.error("parent_job", "the job can not have itself as parent: name another job, or leave it empty")
    if job.starts_at is not None and job.expires_at is not None and job.expires_at <= job.starts_at:
        starts, expires = format_time(job.starts_at), format_time(job.expires_at)
        problems.error("expires_at", f"must be after starts_at ({starts}), got {expires}")
    # The executor's settings (executor_config) are its plugin's to define: checked against the JSON
    # Schema it serves, by the `check` the server passes to from_json, not here.
    if not job.executor:
        problems.beyond_dkron("executor", 'required: the executor plugin that runs the job, e.g. "shell" or "http"')
    _check_schedule(problems, job)


def _check_schedule(problems: Problems, job: Job) -> None:
    zone_problem = rules.timezone_problem(job.timezone)
    if zone_problem is not None:
        problems.error("timezone", zone_problem)
    if not job.schedule:
        # Dkron allows an empty schedule for a job that only runs after its parent.
        if not job.parent_job and not problems.has_error("schedule"):
            problems.error("schedule", f"required: a schedule such as {SCHEDULE_EXAMPLES}")
        return
    try:
        parse_schedule(job.schedule, "" if zone_problem else job.timezone, job.name)
    except ScheduleError as error:
        problems.error("schedule", str(error))
