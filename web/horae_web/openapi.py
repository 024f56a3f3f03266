"""horae's OpenAPI 3.1 document of `/v1`, written as data, and `GET /v1/openapi.json` that serves it.

Paths and field names are Dkron's (`reference/dkron-openapi.yaml`), with horae's additions and the
differences each handler's docstring gives. Every `/v1` route of `horae_web.app` must appear here:
a unit test compares the two, and schemathesis checks the running agent against this document.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

import horae
from horae_web.openapi_schemas import JOB_NAME_IN, SCHEMAS, Schema, array_of, ref
from horae_web.responses import json_response

JSON = "application/json"


# -- building blocks -------------------------------------------------------------------------------
def _json(schema: Schema) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def ok(description: str, schema: Schema, counted: bool = False) -> dict[str, Any]:
    """A JSON answer; `counted` lists carry X-Total-Count (the length before paging)."""
    response: dict[str, Any] = {"description": description, "content": _json(schema)}
    if counted:
        response["headers"] = {"X-Total-Count": {"$ref": "#/components/headers/X-Total-Count"}}
    return response


def errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"$ref": f"#/components/responses/{ERROR_RESPONSES[code][0]}"} for code in codes}


ERROR_RESPONSES = {
    400: ("BadRequest", "The request is invalid; `error` says what to fix and `fields` which field."),
    404: ("NotFound", "No such job, execution, peer or leader (or no such endpoint)."),
    409: ("Conflict", "The change conflicts with the cluster's state (e.g. removing the leader)."),
    413: ("PayloadTooLarge", "The body is larger than the endpoint accepts."),
    503: ("Unavailable", "No leader, or Raft did not answer in time: retry shortly."),
}


def param(name: str, where: str, schema: Schema, description: str, required: bool = False, **extra: Any) -> Schema:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema, **extra}


# Not "." or "..": a client would resolve those as path segments and call another endpoint.
PEER_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_:-][A-Za-z0-9_.:-]*$", "examples": ["node2"]}
JOB_NAME = {"$ref": "#/components/parameters/job_name"}
EXECUTION_ID = {"$ref": "#/components/parameters/execution"}
EXECUTION_ID_IN: Schema = {
    "type": "string",
    "pattern": "^[0-9]+-.+-[0-9]+$",
    "examples": ["1714557600000000000-node1-1"],
}
PRETTY = {"$ref": "#/components/parameters/pretty"}
START = param("_start", "query", {"type": "integer", "minimum": 0}, "First item of the page (from 0).")
END = param("_end", "query", {"type": "integer", "minimum": 0}, "End of the page (exclusive).")
ORDER = param("_order", "query", {"enum": ["ASC", "DESC", "asc", "desc"]}, "Sort order.")
RUN_ON_CREATE = param(
    "runoncreate",
    "query",
    {"type": "string"},
    "Run the job once saved, unless the value is false, 0 or no (Dkron: any value).",
)


def operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Any],
    parameters: list[Schema] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "parameters": [*(parameters or []), PRETTY],
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = body
    return op


def job_body(schema_name: str, required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "description": "Dkron's job JSON (any content type: the bytes must be JSON).",
        "content": _json(ref(schema_name)),
    }


JOB_ANSWER = ok("The job.", ref("Job"))
SAVED = {"201": ok("The job as saved (Location names it; X-Horae-Warnings lists what was ignored).", ref("Job"))}
WRITE_ERRORS = errors(400, 413, 503)

# -- paths -----------------------------------------------------------------------------------------
STATUS = operation(
    "status",
    "cluster",
    "This node: agent, membership and Raft figures, tags.",
    {
        "200": ok("This node.", ref("Status")),
    },
)
PATHS: dict[str, dict[str, Any]] = {
    "/v1": {"get": STATUS},
    "/v1/": {"get": {**STATUS, "operationId": "statusSlash"}},
    "/v1/openapi.json": {
        "get": operation(
            "openapi",
            "cluster",
            "This document.",
            {
                "200": ok("horae's OpenAPI document.", {"type": "object"}),
            },
        )
    },
    "/v1/members": {
        "get": operation(
            "getMembers",
            "cluster",
            "Every member of the cluster.",
            {
                "200": ok("The members, by name.", array_of("Member"), counted=True),
            },
        )
    },
    "/v1/leader": {
        "get": operation(
            "getLeader",
            "cluster",
            "The leader, as a member.",
            {
                "200": ok("The leader.", ref("Member")),
                **errors(404),
            },
        )
    },
    "/v1/isleader": {
        "get": operation(
            "getIsLeader",
            "cluster",
            "Whether this node leads.",
            {
                "200": ok("This node leads.", {"const": "I am a leader"}),
                "404": ok("This node follows.", {"const": "I am a follower"}),
            },
        )
    },
    "/v1/leave": {
        "post": operation(
            "leave",
            "cluster",
            "This server leaves its cluster, then stops (a single server only answers).",
            {"200": ok("The members, as the node left them.", array_of("Member")), **errors(404, 409, 503)},
        )
    },
    "/v1/raft/peers": {
        "get": operation(
            "getRaftPeers",
            "cluster",
            "The Raft membership (`horae raft list-peers`).",
            {
                "200": ok("The peers.", array_of("Peer"), counted=True),
            },
        )
    },
    "/v1/raft/peers/{peer_id}": {
        "delete": operation(
            "removeRaftPeer",
            "cluster",
            "Remove a server from the Raft membership (`horae raft remove-peer`).",
            {"200": ok("The peers left.", array_of("Peer"), counted=True), **errors(404, 409, 503)},
            [param("peer_id", "path", PEER_ID, "The server's node name or Raft address.", True)],
        )
    },
    "/v1/busy": {
        "get": operation(
            "busy",
            "executions",
            "The executions running on this node.",
            {
                "200": ok("Running executions, oldest first.", array_of("Execution"), counted=True),
            },
        )
    },
    "/v1/pause": {
        "get": operation(
            "pauseStatus", "cluster", "Whether the scheduler is paused.", {"200": ok("The pause state.", ref("Pause"))}
        ),
        "post": operation(
            "pause",
            "cluster",
            "Pause the scheduler cluster-wide (runs on demand still start).",
            {
                "200": ok("Paused.", ref("Pause")),
                **errors(503),
            },
        ),
    },
    "/v1/unpause": {
        "post": operation(
            "unpause",
            "cluster",
            "Resume the scheduler.",
            {
                "200": ok("Resumed.", ref("Pause")),
                **errors(503),
            },
        )
    },
    "/v1/plugins": {
        "get": operation(
            "getPlugins",
            "cluster",
            "The executor and processor plugins of this node.",
            {
                "200": ok("The plugins.", array_of("Plugin"), counted=True),
            },
        )
    },
    "/v1/restore": {
        "post": operation(
            "restore",
            "jobs",
            "Import many jobs: a Dkron `GET /v1/jobs` dump or `horae jobs export`.",
            {"200": ok("The jobs restored.", ref("RestoreResult")), **WRITE_ERRORS},
            body={
                "required": True,
                "description": "Dkron's upload (form field `file`) or, beyond Dkron, the JSON array itself.",
                "content": {
                    JSON: {"schema": {"type": "array", "items": {"type": "object"}}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                },
            },
        )
    },
    "/v1/schedule/preview": {
        "get": operation(
            "previewSchedule",
            "jobs",
            "The next fire times of a schedule, to check it before saving a job.",
            {"200": ok("The next fire times (RFC 3339).", ref("SchedulePreview")), **errors(400)},
            [
                param("schedule", "query", {"type": "string", "examples": ["@every 10m"]}, "The schedule.", True),
                param("timezone", "query", {"type": "string", "examples": ["Europe/Berlin"]}, 'IANA zone; "" = UTC.'),
                param("count", "query", {"type": "integer", "minimum": 1, "maximum": 100}, "How many (default 5)."),
            ],
        )
    },
    "/v1/jobs": {
        "get": operation(
            "getJobs",
            "jobs",
            "List jobs, filtered, sorted and paged (react-admin style, as Dkron).",
            {"200": ok("A page of jobs.", array_of("Job"), counted=True), **errors(400)},
            [
                param(
                    "metadata",
                    "query",
                    {"type": "object", "additionalProperties": {"type": "string"}},
                    "Keep jobs whose metadata has each key with that value: metadata[team]=data.",
                    style="deepObject",
                    explode=True,
                ),
                param("q", "query", {"type": "string"}, "Text in the name or display name (any case)."),
                param(
                    "status",
                    "query",
                    {"enum": ["success", "failed", "partially_failed", "untriggered"]},
                    "Keep jobs with this status (untriggered: never ran).",
                ),
                param("disabled", "query", {"enum": ["true", "false"]}, "Keep disabled (or enabled) jobs only."),
                param("_sort", "query", {"type": "string", "examples": ["name", "next"]}, "A job field to sort by."),
                ORDER,
                START,
                END,
            ],
        ),
        "post": operation(
            "createOrUpdateJob",
            "jobs",
            "Create or replace a job.",
            {**SAVED, **WRITE_ERRORS},
            [RUN_ON_CREATE],
            job_body("JobCreate"),
        ),
        "patch": operation(
            "createOrUpdateJobPatch",
            "jobs",
            "Create or replace a job (as POST).",
            {**SAVED, **WRITE_ERRORS},
            [RUN_ON_CREATE],
            job_body("JobCreate"),
        ),
    },
    "/v1/jobs/{job_name}": {
        "get": operation("showJobByName", "jobs", "Show a job.", {"200": JOB_ANSWER, **errors(404)}, [JOB_NAME]),
        "put": operation(
            "putJob",
            "jobs",
            "Create or replace the job named in the path (horae).",
            {**SAVED, **WRITE_ERRORS},
            [JOB_NAME, RUN_ON_CREATE],
            job_body("JobInput"),
        ),
        "post": operation(
            "runJob",
            "jobs",
            "Without a body: run the job now (Dkron). With a body: save it under this name, like PUT.",
            {
                **SAVED,
                "202": ok("The run is started; the job.", ref("Job")),
                **errors(400, 404, 409, 413, 503),
            },
            [JOB_NAME, RUN_ON_CREATE],
            job_body("JobInput", required=False),
        ),
        "delete": operation(
            "deleteJob",
            "jobs",
            "Delete a job; answers with it.",
            {"200": JOB_ANSWER, **errors(404, 409, 503)},
            [JOB_NAME],
        ),
    },
    "/v1/jobs/{job_name}/run": {
        "post": operation(
            "runJobNow",
            "jobs",
            "Run the job now (horae's explicit form of POST /v1/jobs/{job_name}).",
            {"202": ok("The run is started; the job.", ref("Job")), **errors(404, 409, 503)},
            [JOB_NAME],
        )
    },
    "/v1/jobs/{job_name}/toggle": {
        "post": operation(
            "toggleJob",
            "jobs",
            "Enable a disabled job, or disable an enabled one.",
            {"200": JOB_ANSWER, **errors(404, 503)},
            [JOB_NAME],
        )
    },
    "/v1/jobs/{job_name}/executions": {
        "get": operation(
            "listExecutionsByJob",
            "executions",
            "The job's executions (stored and running), newest first by default.",
            {"200": ok("A page of executions.", array_of("Execution"), counted=True), **errors(400, 404)},
            [
                JOB_NAME,
                param("_sort", "query", {"type": "string", "examples": ["started_at"]}, "Field (id = started_at)."),
                ORDER,
                START,
                END,
                param(
                    "output_size_limit",
                    "query",
                    {"type": "integer", "minimum": 0},
                    "Keep the last N bytes of each output (output_truncated says so).",
                ),
            ],
        ),
        "delete": operation(
            "deleteExecutionsByJob",
            "executions",
            "Forget the job's finished executions and reset its counters (Dkron 4).",
            {"200": ok("The job with its counters reset.", ref("Job")), **errors(404, 503)},
            [JOB_NAME],
        ),
    },
    "/v1/jobs/{job_name}/executions/{execution}": {
        "get": operation(
            "showExecutionByID",
            "executions",
            "One execution (running or stored).",
            {"200": ok("The execution.", ref("Execution")), **errors(404)},
            [JOB_NAME, EXECUTION_ID],
        )
    },
    "/v1/jobs/{job_name}/executions/{execution}/stop": {
        "post": operation(
            "stopExecution",
            "executions",
            "Stop an execution running on this node; it is then recorded as failed (horae).",
            {"202": ok("The stop is requested; the execution.", ref("Execution")), **errors(404)},
            [JOB_NAME, EXECUTION_ID],
        )
    },
}

COMPONENTS: dict[str, Any] = {
    "schemas": SCHEMAS,
    "parameters": {
        "job_name": param("job_name", "path", JOB_NAME_IN, "The job's name.", True),
        "execution": param(
            "execution", "path", EXECUTION_ID_IN, "The execution's id, as listed: <group>-<node>-<attempt>.", True
        ),
        "pretty": param("pretty", "query", {"type": "string"}, "Indent the JSON answer (any value, as Dkron)."),
    },
    "headers": {
        "X-Total-Count": {"description": "How many items there are before paging.", "schema": {"type": "string"}}
    },
    "responses": {
        name: {"description": description, "content": _json(ref("Error"))}
        for name, description in ERROR_RESPONSES.values()
    },
}


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "horae API",
            "version": horae.__version__,
            "description": "Dkron's `/v1` API as horae serves it, plus horae's additions. Add `?pretty` to "
            'indent an answer. Errors are `{"error": …}` saying what to fix. Every answer carries '
            "`X-Whom`, the node that answered.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "jobs", "description": "Jobs: create, list, run, toggle, restore."},
            {"name": "executions", "description": "Runs of jobs."},
            {"name": "cluster", "description": "This node, its cluster and its plugins."},
        ],
        "paths": PATHS,
        "components": COMPONENTS,
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a copy: callers may change it)."""
    return copy.deepcopy(_document())


async def openapi_json(request: Request) -> Response:
    return json_response(request, _document())
