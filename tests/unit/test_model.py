"""horae.model: Dkron's job JSON in and out, every rule naming its field, execution identity, members."""

from __future__ import annotations

import copy
import datetime

import pytest

from horae.durations import parse_duration
from horae.model import (
    Execution,
    FieldError,
    Job,
    Member,
    ValidationError,
    execution_group,
    execution_id,
    group_status,
    parse_time,
    slot_of_group,
    split_tag,
    status_from_counts,
    target_tags,
)

UTC = datetime.UTC

# A job as Dkron's GET /v1/jobs/{name} returns it (fields and examples from Dkron's OpenAPI document).
DKRON_JOB = {
    "id": "job1",
    "name": "job1",
    "displayname": "Job one",
    "timezone": "Europe/Berlin",
    "schedule": "@every 10s",
    "owner": "Platform Team",
    "owner_email": "platform@example.com",
    "success_count": 12,
    "error_count": 1,
    "last_success": "2024-05-01T10:00:00Z",
    "last_error": None,
    "disabled": False,
    "tags": {"server": "true:1"},
    "metadata": {"office": "Barcelona"},
    "retries": 2,
    "dependent_jobs": ["dependent_job"],
    "parent_job": "parent_job",
    "processors": {"files": {"forward": "true"}, "log": {}},
    "concurrency": "forbid",
    "executor": "shell",
    "executor_config": {"command": "echo 'Hello from Dkron'"},
    "status": "success",
    "next": "2024-05-01T12:00:10+02:00",
    "ephemeral": False,
    "starts_at": "2024-05-01T00:00:00Z",
    "expires_at": "2030-01-01T00:00:00.5-05:00",
}


def minimal(**extra: object) -> dict:
    job = {"name": "backup", "schedule": "@daily", "executor": "shell", "executor_config": {"command": "true"}}
    return {**job, **extra}


def problems_of(data: object, strict: bool = True) -> dict[str, str]:
    """field -> message of every problem found in `data` (the test fails if there is none)."""
    with pytest.raises(ValidationError) as caught:
        Job.from_json(data, strict=strict)
    return {error.field: error.message for error in caught.value.errors}


# -- the job: round trips --------------------------------------------------------------------------
def test_a_full_dkron_job_round_trips() -> None:
    job = Job.from_json(copy.deepcopy(DKRON_JOB))
    out = job.to_json()

    assert {key: out[key] for key in DKRON_JOB} == DKRON_JOB
    assert list(out)[: len(DKRON_JOB) - 2] == list(DKRON_JOB)[:-2]  # Dkron's key order first
    assert Job.from_json(out) == job
    assert job.id == "job1"
    assert job.next == datetime.datetime(2024, 5, 1, 10, 0, 10, tzinfo=UTC)
    assert job.starts_at is not None and job.starts_at.tzinfo is not None


def test_horae_fields_have_defaults_and_round_trip() -> None:
    out = Job.from_json(minimal()).to_json()
    assert out["timeout"] is None
    assert parse_duration(out["catchup"]) == 0
    assert out["retry_backoff"] == 0
    assert out["missed_count"] == 0
    assert out["notify"] is None
    assert out["concurrency"] == "allow"
    assert out["dependent_jobs"] == []
    assert out["last_success"] is None and out["next"] is None

    job = Job.from_json(
        minimal(
            timeout="90s",
            catchup="1h",
            retry_backoff=5,
            notify={"on": ["failure", "success"], "email": ["ops@example.com"]},
        )
    )
    assert (job.timeout, job.catchup, job.retry_backoff) == (90.0, 3600.0, 5.0)
    again = Job.from_json(job.to_json())
    assert again == job
    assert again.to_json()["notify"] == {"on": ["failure", "success"], "email": ["ops@example.com"], "webhook": None}


def test_nulls_mean_unset_as_in_go() -> None:
    job = Job.from_json(
        minimal(dependent_jobs=None, expires_at=None, tags=None, retries=None, owner=None, processors=None)
    )
    assert (job.dependent_jobs, job.expires_at, job.tags, job.retries, job.owner, job.processors) == (
        [],
        None,
        {},
        0,
        "",
        {},
    )


def test_times_keep_their_offset_and_go_zero_time_is_unset() -> None:
    job = Job.from_json(minimal(starts_at="2024-05-01T12:00:00.5+02:00", next="0001-01-01T00:00:00Z"))
    assert job.to_json()["starts_at"] == "2024-05-01T12:00:00.5+02:00"
    assert job.starts_at == datetime.datetime(2024, 5, 1, 10, 0, 0, 500_000, tzinfo=UTC)
    assert job.next is None
    # Go writes nanoseconds; Python keeps microseconds.
    assert parse_time("2024-05-01T10:00:00.123456789Z") == datetime.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)


def test_processors_keep_their_order() -> None:
    job = Job.from_json(minimal(processors={"syslog": {}, "files": {"forward": "true"}, "log": None}))
    assert list(job.to_json()["processors"]) == ["syslog", "files", "log"]
    assert job.processors["log"] == {}


def test_unicode_lower_case_names_are_accepted_as_in_dkron() -> None:
    assert Job.from_json(minimal(name="sauvegarde-été_2")).name == "sauvegarde-été_2"


def test_a_job_with_a_parent_may_have_no_schedule() -> None:
    job = Job.from_json(minimal(schedule="", parent_job="nightly"))
    assert (job.schedule, job.parent_job) == ("", "nightly")
    assert "schedule" in problems_of(minimal(schedule=""))


# -- the job: every invalid input names its field --------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"name": "Backup Job"}, "name", 'use lower-case letters, digits, "_" and "-"'),
        ({"name": "UPPER"}, "name", '"UPPER" is not a valid job name'),
        ({"name": ""}, "name", "required"),
        ({"name": 5}, "name", "must be a string"),
        ({"name": "a" * 256}, "name", "at most 255"),
        ({"schedule": "every tuesday-ish"}, "schedule", ""),
        ({"schedule": 5}, "schedule", "must be a string"),
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"timezone": "Europe/Berln"}, "timezone", '"Europe/Berlin"'),
        ({"concurrency": "sometimes"}, "concurrency", '"allow"'),
        ({"retries": -1}, "retries", "from 0 to 100"),
        ({"retries": "three"}, "retries", '"three" (a string)'),
        ({"retries": 101}, "retries", "from 0 to 100"),
        ({"retries": True}, "retries", "whole number"),
        ({"disabled": "yes"}, "disabled", "true or false"),
        ({"starts_at": "2024-05-01T10:00:00"}, "starts_at", 'add "Z"'),
        ({"starts_at": "yesterday"}, "starts_at", "RFC 3339"),
        ({"starts_at": "2024-02-30T10:00:00Z"}, "starts_at", "not a real date"),
        ({"expires_at": 1714557600}, "expires_at", "RFC 3339"),
        ({"starts_at": "2024-06-01T00:00:00Z", "expires_at": "2024-05-01T00:00:00Z"}, "expires_at", "after starts_at"),
        ({"executor_config": {"command": "true", "timeout": 30}}, "executor_config.timeout", 'write "30"'),
        ({"executor_config": "not an object"}, "executor_config", "object"),
        ({"tags": {"role": 5}}, "tags.role", "must be a string"),
        ({"tags": {"role": "web:x"}}, "tags.role", "number of nodes"),
        ({"tags": {"role": "web:0"}}, "tags.role", "at least 1"),
        ({"metadata": ["a"]}, "metadata", "object"),
        ({"metadata": {"a.b": {"nested": "x"}}}, 'metadata["a.b"]', "plain text"),
        ({"processors": {"files": {"forward": True}}}, "processors.files.forward", 'write "true"'),
        ({"processors": ["log"]}, "processors", "object"),
        ({"parent_job": "backup"}, "parent_job", "itself"),
        ({"parent_job": "Not Valid"}, "parent_job", "not a valid job name"),
        ({"owner_email": "the ops team"}, "owner_email", "email"),
        ({"timeout": "0s"}, "timeout", "more than 0"),
        ({"timeout": "soon"}, "timeout", ""),
        ({"timeout": -5}, "timeout", "negative"),
        ({"catchup": [1]}, "catchup", "duration"),
        ({"executor": ""}, "executor", "required"),
        ({"notify": {"on": ["never"], "email": ["ops@example.com"]}}, "notify.on[0]", '"failure"'),
        ({"notify": {"email": ["ops@example.com", "nobody"]}}, "notify.email[1]", "email"),
        ({"notify": {"on": ["failure"]}}, "notify", "email"),
        ({"notify": {"webhook": {"url": "ftp://example.com"}}}, "notify.webhook.url", "https://"),
        ({"dependent_jobs": "child"}, "dependent_jobs", "list"),
    ],
)
def test_invalid_input_names_its_field(change: dict, field: str, says: str) -> None:
    problems = problems_of(minimal(**change))
    assert field in problems, problems
    assert says in problems[field]


def test_the_name_message_says_what_is_accepted() -> None:
    with pytest.raises(ValidationError) as caught:
        Job.from_json(minimal(name="Backup Job"))
    expected = 'name: "Backup Job" is not a valid job name: use lower-case letters, digits, "_" and "-"'
    assert str(caught.value) == expected


def test_an_unknown_key_is_refused_with_the_closest_known_one() -> None:
    data = minimal()
    data["schedul"] = data.pop("schedule")
    problems = problems_of(data)
    assert problems["schedul"] == 'unknown field; did you mean "schedule"?'
    assert problems_of(minimal(Name="backup"))["Name"] == 'unknown field; did you mean "name"?'
    assert "executor_config" in problems_of(minimal(command="echo hi"))["command"]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        Job.from_json({"name": "Bad Name", "schedule": "@daily", "executor": "shell", "retries": -1, "owner": 3})
    error = caught.value
    assert [e.field for e in error.errors] == ["name", "owner", "retries"]
    assert str(error).startswith("3 problems in the job: name: ")
    assert error.to_json()["fields"][2] == {"field": "retries", "message": error.errors[2].message}
    assert isinstance(error, ValueError)
    assert str(FieldError("tags.role", "x")) == "tags.role: x"


@pytest.mark.parametrize("body", [None, [], "a job", 42])
def test_a_body_that_is_not_an_object_is_refused(body: object) -> None:
    assert "JSON object" in problems_of(body)[""]


# -- the job: lenient mode (restore, import) -------------------------------------------------------
def test_lenient_mode_leaves_unknown_keys_out_and_warns() -> None:
    data = minimal(shell=True, comand="echo", Schedule="@hourly", owner_email="ops team", retries=250)
    del data["schedule"]
    data["executor_config"] = {"command": "true", "nice": 10, "verbose": True}
    warnings: list[str] = []

    job = Job.from_json(data, strict=False, warnings=warnings)

    assert job.schedule == "@hourly"  # Go matches keys case-insensitively
    assert job.executor_config == {"command": "true", "nice": "10", "verbose": "true"}
    assert (job.owner_email, job.retries) == ("ops team", 250)  # Dkron accepted these
    assert "shell" not in job.to_json() and "comand" not in job.to_json()
    fields = sorted(w.split(":", 1)[0] for w in warnings)
    assert fields == [
        "Schedule",
        "comand",
        "executor_config.nice",
        "executor_config.verbose",
        "owner_email",
        "retries",
        "shell",
    ]
    assert any('did you mean "command"' in w for w in warnings)


def test_lenient_mode_still_refuses_what_dkron_refuses() -> None:
    problems = problems_of(minimal(name="Bad Name", concurrency="sometimes", extra=1), strict=False)
    assert set(problems) == {"name", "concurrency"}


def test_strict_mode_collects_no_warnings() -> None:
    warnings: list[str] = []
    Job.from_json(minimal(), warnings=warnings)
    assert warnings == []


# -- tags ------------------------------------------------------------------------------------------
def test_tag_counts_follow_the_last_colon() -> None:
    assert split_tag("web") == ("web", None)
    assert split_tag("web:2") == ("web", 2)
    assert split_tag("10.0.0.1:2:3") == ("10.0.0.1:2", 3)
    with pytest.raises(ValueError, match="not a number"):
        split_tag("eu:west")
    assert target_tags({"role": "web:2", "dc": "eu:3", "os": "linux"}) == (
        {"role": "web", "dc": "eu", "os": "linux"},
        2,
    )
    assert target_tags({"role": "web"}) == ({"role": "web"}, None)


# -- executions ------------------------------------------------------------------------------------
def test_execution_group_is_the_slot_in_unix_nanoseconds() -> None:
    slot = datetime.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    group = execution_group(slot)
    assert group == 1_714_557_600_123_456_000
    same_instant = slot.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert execution_group(same_instant) == group
    assert slot_of_group(group) == slot
    assert execution_group(datetime.datetime(1970, 1, 1, tzinfo=UTC)) == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        execution_group(datetime.datetime(2024, 5, 1))


def test_execution_id_names_group_node_and_attempt() -> None:
    assert execution_id(1_714_557_600_000_000_000, "node-1", 2) == "1714557600000000000-node-1-2"
    slot = datetime.datetime(2024, 5, 1, 10, tzinfo=UTC)
    first = Execution.for_slot("backup", slot, "node-1")
    retry = Execution.for_slot("backup", slot, "node-1", attempt=2)
    other_node = Execution.for_slot("backup", slot, "node-2")
    assert first.id == "1714557600000000000-node-1-1"
    assert first.group == retry.group == other_node.group
    assert len({first.id, retry.id, other_node.id}) == 3
    assert first.slot == slot and first.running


def test_execution_json_round_trips() -> None:
    data = {
        "id": "1714557600000000000-node-1-1",
        "job_name": "backup",
        "started_at": "2024-05-01T10:00:00.002Z",
        "finished_at": "2024-05-01T10:00:03Z",
        "success": False,
        "output": "disk full\n",
        "node_name": "node-1",
        "group": 1_714_557_600_000_000_000,
        "attempt": 1,
        "exit_code": 1,
        "cpu_seconds": 0.25,
        "max_rss_bytes": 10_485_760,
        "slot": "2024-05-01T10:00:00Z",
    }
    execution = Execution.from_json(data)
    assert execution.to_json() == data
    assert not execution.running
    running = Execution.from_json({**data, "finished_at": None, "exit_code": None})
    assert running.running and running.to_json()["finished_at"] is None
    with pytest.raises(ValidationError) as caught:
        Execution.from_json({**data, "attempt": 0, "success": "no"})
    assert {e.field for e in caught.value.errors} == {"attempt", "success"}


def _finished(node: str, attempt: int, success: bool) -> Execution:
    execution = Execution.for_slot("backup", datetime.datetime(2024, 5, 1, tzinfo=UTC), node, attempt)
    execution.finished_at = datetime.datetime(2024, 5, 1, 0, 1, tzinfo=UTC)
    execution.success = success
    return execution


def test_job_status_from_the_last_group() -> None:
    assert group_status([]) == ""
    assert group_status([_finished("a", 1, True), _finished("b", 1, True)]) == "success"
    assert group_status([_finished("a", 1, False), _finished("b", 1, False)]) == "failed"
    assert group_status([_finished("a", 1, True), _finished("b", 1, False)]) == "partially_failed"
    # a retry stands in for the attempt it retries
    assert group_status([_finished("a", 1, False), _finished("a", 2, True)]) == "success"
    assert group_status([_finished("a", 2, True), _finished("a", 1, False)]) == "success"
    still_running = Execution.for_slot("backup", datetime.datetime(2024, 5, 1, tzinfo=UTC), "b")
    assert group_status([_finished("a", 1, True), still_running]) == "success"
    assert [status_from_counts(*c) for c in ((0, 0), (3, 0), (0, 2), (1, 1))] == [
        "",
        "success",
        "failed",
        "partially_failed",
    ]


# -- members ---------------------------------------------------------------------------------------
def test_member_json_has_dkrons_shape_plus_role_and_heartbeat() -> None:
    heartbeat = datetime.datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC)
    member = Member("node-1", "10.0.0.5", 8946, {"dc": "eu"}, role="server", last_heartbeat=heartbeat)
    out = member.to_json()
    assert {k: out[k] for k in ("Name", "Addr", "Port", "Tags", "Status", "statusText")} == {
        "Name": "node-1",
        "Addr": "10.0.0.5",
        "Port": 8946,
        "Tags": {"dc": "eu"},
        "Status": 1,
        "statusText": "alive",
    }
    assert (out["role"], out["last_heartbeat"]) == ("server", "2024-05-01T10:00:05Z")
    assert {"ProtocolMin", "ProtocolMax", "ProtocolCur", "DelegateMin", "DelegateMax", "DelegateCur"} <= set(out)
    assert Member.from_json(out) == member

    member.status = 4
    assert member.to_json()["statusText"] == "failed"
    with pytest.raises(ValidationError) as caught:
        Member.from_json({**out, "Status": "alive", "role": "leader", "Port": 70000})
    assert {e.field for e in caught.value.errors} == {"Status", "role", "Port"}
