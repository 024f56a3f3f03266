"""horae's OpenAPI document: it covers every `/v1` route, Dkron's paths and fields, and the model's fields.

The running agent is checked against the document by tests/integration/test_openapi.py (schemathesis);
these tests catch the drift that needs no agent: a route, a model field or a Dkron field left out.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import jsonschema_rs
import pytest
from starlette.routing import Mount, Route

from horae.model import Execution, Job, Member, Notify, Webhook
from horae.model.execution import EXECUTION_FIELDS
from horae.model.job import JOB_FIELDS
from horae.model.member import MEMBER_FIELDS
from horae_web import app as web_app
from horae_web.openapi import document

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# Dkron's /v1 as reference/dkron-openapi.yaml (beside DESIGN.md) lists it, less its ACL policies
# (Dkron Pro's; horae's tokens are another design). Paths relative to /v1, as Dkron's servers entry.
DKRON_OPERATIONS = {
    ("get", "/"),
    ("get", "/jobs"),
    ("post", "/jobs"),
    ("patch", "/jobs"),
    ("get", "/jobs/{}"),
    ("post", "/jobs/{}"),
    ("delete", "/jobs/{}"),
    ("post", "/jobs/{}/toggle"),
    ("post", "/restore"),
    ("get", "/members"),
    ("get", "/leader"),
    ("get", "/isleader"),
    ("post", "/leave"),
    ("get", "/jobs/{}/executions"),
    ("delete", "/jobs/{}/executions"),
    ("get", "/jobs/{}/executions/{}"),
    ("get", "/busy"),
    ("get", "/pause"),
    ("post", "/pause"),
    ("post", "/unpause"),
}
DKRON_FIELDS = {
    "Job": [
        "name",
        "displayname",
        "schedule",
        "timezone",
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
        "parent_job",
        "dependent_jobs",
        "processors",
        "concurrency",
        "executor",
        "executor_config",
        "status",
        "next",
        "starts_at",
        "expires_at",
    ],
    "Execution": ["job_name", "started_at", "finished_at", "success", "output", "node_name"],
    "Member": [
        "Name",
        "Addr",
        "Port",
        "Tags",
        "Status",
        "ProtocolMin",
        "ProtocolMax",
        "ProtocolCur",
        "DelegateMin",
        "DelegateMax",
        "DelegateCur",
    ],
    "Status": ["agent", "serf", "tags"],
}
# Dkron's job query parameters (getJobs) and createOrUpdateJob's.
DKRON_JOB_LIST_PARAMETERS = {"metadata", "_sort", "_order", "q", "_start", "_end"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def _template(path: str) -> str:
    """A path with its parameter names blanked: `/v1/jobs/{name}` and `/v1/jobs/{job_name}` are one path."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def _routes(routes: list, prefix: str = "") -> set[tuple[str, str]]:
    found = set()
    for route in routes:
        if isinstance(route, Mount):
            found |= _routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":  # Starlette adds HEAD to every GET
                    found.add((method.lower(), _template(prefix + route.path)))
    return found


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, _template(path)) for path, item in doc["paths"].items() for method in item if method in HTTP_METHODS
    }


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["components"]["schemas"][name]


def test_every_v1_route_is_documented_and_nothing_else(doc: dict[str, Any]) -> None:
    served = {(method, path) for method, path in _routes(web_app.ROUTES) if path.startswith("/v1")}
    documented = _documented(doc)
    assert served - documented == set(), "routes of horae_web.app missing from horae_web/openapi.py"
    assert documented - served == set(), "operations in horae_web/openapi.py that the app does not serve"


def test_dkron_operations_are_all_there(doc: dict[str, Any]) -> None:
    ours = {(method, path.removeprefix("/v1")) for method, path in _documented(doc)}
    assert DKRON_OPERATIONS - ours == set()
    parameters = {p["name"] for p in doc["paths"]["/v1/jobs"]["get"]["parameters"] if "name" in p}
    assert parameters >= DKRON_JOB_LIST_PARAMETERS
    assert {p["name"] for p in doc["paths"]["/v1/jobs"]["post"]["parameters"] if "name" in p} >= {"runoncreate"}


@pytest.mark.parametrize("name", sorted(DKRON_FIELDS))
def test_dkron_fields_are_all_there(doc: dict[str, Any], name: str) -> None:
    assert set(DKRON_FIELDS[name]) - set(_schema(doc, name)["properties"]) == set()


def _full_job() -> Job:
    now = datetime.datetime(2026, 5, 1, 10, 0, tzinfo=datetime.UTC)
    webhook = Webhook(url="https://hooks.example.com/x", headers={"A": "b"}, payload="{}")
    return Job(
        name="full",
        schedule="@every 1m",
        executor="noop",
        timeout=30.0,
        starts_at=now,
        expires_at=now + datetime.timedelta(days=1),
        last_success=now,
        next=now,
        notify=Notify(on=["failure"], email=["ops@example.com"], webhook=webhook),
    )


def test_job_schema_has_the_model_fields(doc: dict[str, Any]) -> None:
    answer = _full_job().to_json()
    job = _schema(doc, "Job")
    assert set(job["properties"]) == set(answer) == JOB_FIELDS.names
    assert set(job["required"]) == set(answer)
    assert set(_schema(doc, "JobInput")["properties"]) == JOB_FIELDS.names


def test_execution_schema_has_the_model_fields(doc: dict[str, Any]) -> None:
    slot = datetime.datetime(2026, 5, 1, 10, 0, tzinfo=datetime.UTC)
    answer = Execution.for_slot("job", slot, "node1").to_json()
    execution = _schema(doc, "Execution")
    # Beyond the model: `running` (a running one), `output_truncated` (in lists), and `error`, which
    # the runner and the dispatcher record with a finished execution.
    assert set(execution["properties"]) == set(answer) | {"running", "output_truncated", "error"}
    assert set(answer) == EXECUTION_FIELDS.names
    assert set(execution["required"]) <= set(answer)


def test_member_schema_has_the_model_fields(doc: dict[str, Any]) -> None:
    answer = Member(name="node1", addr="127.0.0.1", port=8946).to_json()
    member = _schema(doc, "Member")
    assert set(member["properties"]) == set(answer) | {"id"}  # /v1/members adds `id` (the name)
    assert set(answer) == MEMBER_FIELDS.names


def _validator(doc: dict[str, Any], name: str) -> jsonschema_rs.Draft202012Validator:
    """A validator for one component schema, its $refs resolved within the document (schemathesis' validator)."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def test_model_answers_are_valid(doc: dict[str, Any]) -> None:
    slot = datetime.datetime(2026, 5, 1, 10, 0, tzinfo=datetime.UTC)
    finished = Execution.for_slot("job", slot, "node1")
    finished.started_at, finished.finished_at, finished.exit_code = slot, slot, 3
    cases = {
        "Job": [_full_job().to_json(), Job(name="bare", schedule="@manually").to_json()],
        "Execution": [finished.to_json()],
        "Member": [Member(name="node1", addr="127.0.0.1", port=8946).to_json()],
    }
    for name, answers in cases.items():
        for answer in answers:
            errors = [error.message for error in _validator(doc, name).iter_errors(answer)]
            assert errors == [], f"{name}: {errors}"
    # The JSON a GET answers can be sent back as a job body.
    assert list(_validator(doc, "JobInput").iter_errors(_full_job().to_json())) == []


def test_schemas_are_valid_json_schema_and_refs_resolve(doc: dict[str, Any]) -> None:
    for name, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
        _validator(doc, name)  # raises on a $ref that does not resolve
    text = repr(doc)
    for target in set(re.findall(r"#/components/(\w+)/([\w-]+)", text)):
        kind, name = target
        assert name in doc["components"][kind], f"dangling $ref #/components/{kind}/{name}"


def test_operation_ids_are_unique_and_path_parameters_declared(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    parameters = doc["components"]["parameters"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            declared = set()
            for parameter in op["parameters"]:
                if "$ref" in parameter:
                    parameter = parameters[parameter["$ref"].rsplit("/", 1)[1]]
                if parameter["in"] == "path":
                    declared.add(parameter["name"])
            assert declared == set(re.findall(r"\{([^}]*)\}", path)), f"{method} {path}"
