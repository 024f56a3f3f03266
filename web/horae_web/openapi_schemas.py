"""The JSON Schemas of `/v1`'s bodies (OpenAPI 3.1 `components.schemas`), kept beside the model they describe.

Field names and enums come from `horae.model` so the document cannot drift silently: the unit tests
compare every property list here with the model's fields and with what the API returns. Response
schemas are closed (`additionalProperties: false`) so a field the API starts returning without a word
here makes schemathesis' conformance check fail.
"""

from __future__ import annotations

from typing import Any

from horae.host.supervisor import PluginState
from horae.model import CONCURRENCY, JOB_STATUSES, MAX_RETRIES, NOTIFY_ON, READ_ONLY_FIELDS, STATUS_TEXT
from horae.model.rules import MAX_NAME_LENGTH

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
STRING_LIST: Schema = {"type": "array", "items": {"type": "string"}}
# RFC 3339 as Go writes it; null when unset (Dkron writes Go's zero time or null).
TIME_OR_NULL: Schema = {"type": ["string", "null"], "format": "date-time"}
# What a job body may give where a duration belongs: "90s", "1h30m", or a number of seconds.
DURATION_IN: Schema = {"type": ["string", "number", "null"], "examples": ["30s", "1h30m", 90]}
# A job name a client may send: Dkron's rule (Unicode lower-case letters are accepted too).
JOB_NAME_IN: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": "^[a-z0-9_-]+$",
    "description": 'Lower-case letters, digits, "_" and "-" (any Unicode lower-case letter is accepted too).',
    "examples": ["nightly-backup"],
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def array_of(name: str) -> Schema:
    return {"type": "array", "items": ref(name)}


def closed(properties: dict[str, Schema], required: list[str] | None = None, description: str = "") -> Schema:
    """An object schema that allows no other properties; every property is required unless told."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


# -- jobs ------------------------------------------------------------------------------------------
WEBHOOK = closed(
    {
        "url": {"type": "string", "description": "http:// or https:// URL to POST to."},
        "headers": STRING_MAP,
        "payload": {"type": "string", "description": "Request body template; empty = horae's default JSON."},
    },
    required=["url"],
)
NOTIFY = closed(
    {
        "on": {"type": "array", "items": {"enum": list(NOTIFY_ON)}, "minItems": 1, "default": ["failure"]},
        "email": STRING_LIST,
        "webhook": {"anyOf": [ref("Webhook"), {"type": "null"}]},
    },
    required=[],
    description="horae: whom to tell about the job's executions, and when (beyond Dkron).",
)

# The job as the API answers it: Dkron's fields, then horae's. Keys: `Job.to_json()`.
JOB_PROPERTIES: dict[str, Schema] = {
    "id": {"type": "string", "description": "Dkron's copy of the name.", "readOnly": True},
    "name": {"type": "string", "minLength": 1, "examples": ["nightly-backup"]},
    "displayname": STRING,
    "timezone": {
        "type": "string",
        "description": 'IANA zone of the schedule; "" = UTC.',
        "examples": ["Europe/Berlin"],
    },
    "schedule": {
        "type": "string",
        "description": "5- or 6-field cron, @daily…, @every <duration>, @at <RFC 3339>, @manually; "
        'may be "" for a job that only runs after its parent_job.',
        "examples": ["@every 10m", "0 30 2 * * *"],
    },
    "owner": STRING,
    "owner_email": STRING,
    "success_count": {**INTEGER, "readOnly": True},
    "error_count": {**INTEGER, "readOnly": True},
    "last_success": {**TIME_OR_NULL, "readOnly": True},
    "last_error": {**TIME_OR_NULL, "readOnly": True},
    "disabled": BOOLEAN,
    "tags": {**STRING_MAP, "description": 'Target nodes: {"role": "web"} all of them, {"role": "web:2"} two.'},
    "metadata": STRING_MAP,
    "retries": {"type": "integer", "minimum": 0},
    "dependent_jobs": {**STRING_LIST, "readOnly": True},
    "parent_job": STRING,
    "processors": {
        "type": "object",
        "additionalProperties": STRING_MAP,
        "description": "Processor plugin name → settings, run in this order.",
    },
    "concurrency": {"enum": list(CONCURRENCY)},
    "executor": {"type": "string", "examples": ["shell", "http"]},
    "executor_config": STRING_MAP,
    "status": {"enum": list(JOB_STATUSES), "readOnly": True},
    "next": {**TIME_OR_NULL, "readOnly": True},
    "ephemeral": BOOLEAN,
    "starts_at": TIME_OR_NULL,
    "expires_at": TIME_OR_NULL,
    "retry_backoff": {"type": "number", "minimum": 0, "description": "horae: seconds before the first retry."},
    "timeout": {"type": ["string", "null"], "description": "horae: the execution's time limit, e.g. 30m."},
    "catchup": {"type": "string", "description": "horae: how late a missed run may still start, e.g. 1h."},
    "missed_count": {**INTEGER, "readOnly": True},
    "notify": {"anyOf": [ref("Notify"), {"type": "null"}]},
}
JOB = closed(JOB_PROPERTIES, description="A job as horae answers it: Dkron's job, plus horae's fields.")


def _job_input_properties() -> dict[str, Schema]:
    """What a job body may hold: the answer's fields (so a GET can be posted back), with looser input types."""
    properties = {
        **JOB_PROPERTIES,
        "name": JOB_NAME_IN,
        "displayname": {"type": ["string", "null"]},
        "timezone": {"type": ["string", "null"], "examples": ["", "Europe/Berlin"]},
        "schedule": {**JOB_PROPERTIES["schedule"], "type": ["string", "null"]},
        "disabled": {"type": ["boolean", "null"]},
        "retries": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_RETRIES},
        "concurrency": {"enum": [*CONCURRENCY, "", None]},
        "retry_backoff": {**DURATION_IN, "description": "Seconds (a number) or a duration text; 0 = retry at once."},
        "timeout": {**DURATION_IN, "description": "The execution's time limit (more than 0); null = none."},
        "catchup": {**DURATION_IN, "description": "How late a missed run may still start."},
        "starts_at": {"type": ["string", "null"], "description": "RFC 3339 time; null or empty = unset."},
        "expires_at": {"type": ["string", "null"], "description": "RFC 3339 time; null or empty = unset."},
    }
    for field in READ_ONLY_FIELDS:  # accepted so a GET's body can be sent back, and ignored
        properties[field] = {"readOnly": True, "description": "Computed by the server; ignored on input."}
    return properties


JOB_INPUT = {
    "type": "object",
    "properties": _job_input_properties(),
    "additionalProperties": False,
    "description": "A job to create or replace. Unknown fields are refused (400) with the closest known one named.",
    "examples": [
        {
            "name": "nightly-backup",
            "schedule": "@manually",
            "executor": "noop",
            "executor_config": {"text": "hello"},
            "metadata": {"team": "data"},
        }
    ],
}
JOB_CREATE = {"allOf": [ref("JobInput"), {"required": ["name"]}]}

# -- executions ------------------------------------------------------------------------------------
EXECUTION_PROPERTIES: dict[str, Schema] = {
    "id": {"type": "string", "description": "<group>-<node_name>-<attempt>."},
    "job_name": STRING,
    "started_at": {**TIME_OR_NULL, "description": "null while the run is only intended (not started yet)."},
    "finished_at": {**TIME_OR_NULL, "description": "null while it runs."},
    "success": BOOLEAN,
    "output": STRING,
    "error": {"type": "string", "description": "Why a finished execution failed, beyond its output; may be empty."},
    "node_name": STRING,
    "group": {"type": "integer", "description": "The slot in Unix nanoseconds, shared by a run's fan-out."},
    "attempt": {"type": "integer", "minimum": 1},
    "exit_code": {"type": ["integer", "null"], "description": "null when the executor runs no process."},
    "cpu_seconds": {"type": "number", "minimum": 0},
    "max_rss_bytes": {"type": "integer", "minimum": 0},
    "slot": {**TIME_OR_NULL, "description": "The scheduled instant this execution is for."},
    "running": {"type": "boolean", "description": "Present (true) while the execution runs."},
    "output_truncated": {"type": "boolean", "description": "In lists: output cut to output_size_limit bytes."},
}
# A running execution has no exit_code or resource figures yet; only lists add output_truncated.
EXECUTION = closed(
    EXECUTION_PROPERTIES,
    required=["id", "job_name", "started_at", "finished_at", "success", "output", "node_name", "group", "attempt"],
    description="One run of a job on one node: Dkron's execution, plus horae's identity, exit code and resources.",
)

# -- cluster ---------------------------------------------------------------------------------------
MEMBER_PROPERTIES: dict[str, Schema] = {
    "Name": STRING,
    "Addr": STRING,
    "Port": {"type": "integer", "minimum": 0, "maximum": 65535},
    "Tags": STRING_MAP,
    "Status": {"enum": sorted(STATUS_TEXT), "description": "Serf's MemberStatus number."},
    "ProtocolMin": INTEGER,
    "ProtocolMax": INTEGER,
    "ProtocolCur": INTEGER,
    "DelegateMin": INTEGER,
    "DelegateMax": INTEGER,
    "DelegateCur": INTEGER,
    "statusText": {"enum": list(STATUS_TEXT.values())},
    "role": {"enum": ["server", "client"]},
    "last_heartbeat": TIME_OR_NULL,
    "id": {"type": "string", "description": "In /v1/members: the node name."},
}
MEMBER = closed(
    MEMBER_PROPERTIES,
    required=[name for name in MEMBER_PROPERTIES if name != "id"],
    description="A cluster member in Dkron's (Serf's) shape, plus horae's role and last_heartbeat.",
)
STRING_VALUES: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
STATUS = closed(
    {"agent": STRING_VALUES, "serf": STRING_VALUES, "raft": STRING_VALUES, "tags": STRING_MAP},
    description="This node: Dkron's status object (horae has no Serf: `serf` holds membership counts).",
)
PEER = closed(
    {
        "node": STRING,
        "id": STRING,
        "address": STRING,
        "state": {"enum": ["leader", "follower"]},
        "leader": BOOLEAN,
        "voter": BOOLEAN,
    },
    description="A Raft peer as this server sees it.",
)
PLUGIN = closed(
    {
        "kind": {"enum": ["executor", "processor"]},
        "name": STRING,
        "source": STRING,
        "state": {"enum": [state.value for state in PluginState]},
        "error": STRING,
        "pid": {"type": ["integer", "null"]},
        "restarts": {"type": "integer", "minimum": 0},
        "version": STRING,
    }
)
PAUSE = closed({"paused": BOOLEAN}, description="Whether the scheduler is paused cluster-wide.")
RESTORE_RESULT = closed(
    {"restored": STRING_LIST, "warnings": STRING_LIST},
    description="horae: the jobs restored, and what was ignored or converted (Dkron: a string list).",
)
PREVIEW = closed(
    {"schedule": STRING, "timezone": STRING, "next": {"type": "array", "items": {"type": "string"}}},
    description="The next fire times of a schedule (empty when it never fires again).",
)
ERROR = closed(
    {
        "error": {"type": "string", "description": "What went wrong and how to fix it."},
        "fields": {"type": "array", "items": closed({"field": STRING, "message": STRING})},
    },
    required=["error"],
    description="Every error of the API.",
)

SCHEMAS: dict[str, Schema] = {
    "Job": JOB,
    "JobInput": JOB_INPUT,
    "JobCreate": JOB_CREATE,
    "Notify": NOTIFY,
    "Webhook": WEBHOOK,
    "Execution": EXECUTION,
    "Member": MEMBER,
    "Status": STATUS,
    "Peer": PEER,
    "Plugin": PLUGIN,
    "Pause": PAUSE,
    "RestoreResult": RESTORE_RESULT,
    "SchedulePreview": PREVIEW,
    "Error": ERROR,
}
