"""A real `horae agent --dev` against its own OpenAPI document: served, rendered, and fuzzed by schemathesis.

schemathesis generates requests for every operation of `horae_web.openapi` (examples, coverage and
fuzzing phases, MAX_EXAMPLES per operation) and checks each answer: no 5xx, a documented status and
content type, a body that matches the documented schema. A job named like the document's example is
seeded and run (and put back when a generated DELETE removed it) so the generated requests reach a
real job, not only 404s; explicit cases then cover answers that generation cannot reach by chance (a stored
and a running execution, a job with every optional block).

Nothing is excluded: `POST /v1/leave` on a single server only answers (it has no cluster to leave),
and `DELETE /v1/raft/peers/{id}` refuses to remove the leader.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from horae_web.openapi import document
from tests.integration.agent_process import AgentProcess
from tests.support import wait_until

# Per operation and phase; ~25 operations. Enough to find shape bugs, bounded for `make test`.
MAX_EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
NODE_NAME = "openapi-node"
JSON = "application/json"
# The document's example job name, so generated requests find it.
SEED = {
    "name": "nightly-backup",
    "schedule": "@manually",
    "executor": "noop",
    "executor_config": {"text": "seeded"},
}
FULL_JOB = {
    "name": "openapi-full",
    "displayname": "Every field",
    "schedule": "@every 1h",
    "timezone": "Europe/Berlin",
    "owner": "ops",
    "owner_email": "ops@example.com",
    "tags": {"role": "dkron"},
    "metadata": {"team": "data"},
    "retries": 2,
    "retry_backoff": "5s",
    "concurrency": "forbid",
    "executor": "noop",
    "executor_config": {"text": "full"},
    "processors": {"log": {}},
    "starts_at": "2026-01-01T00:00:00Z",
    "expires_at": "2099-01-01T00:00:00Z",
    "timeout": "10m",
    "catchup": "1h",
    "notify": {"on": ["failure"], "webhook": {"url": "https://hooks.example.com/x", "headers": {"X-Team": "data"}}},
}
SLOW_JOB = {
    "name": "openapi-slow",
    "schedule": "@manually",
    "executor": "shell",
    "executor_config": {"shell": "true", "command": "echo started; sleep 30"},
}

# Set when a generated request deleted the seed job: the next request gets it back.
SEED_DELETED = threading.Event()
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "positive", "database": "none"},
        # Stateful sequences need OpenAPI links, which the document does not declare.
        "phases": {"stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_dict(document(), config=CONFIG)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("openapi-agent"), node_name=NODE_NAME).start()
    try:
        with process.client() as http:
            _put(http, SEED)
            _put(http, FULL_JOB)
            assert http.post(f"/v1/jobs/{SEED['name']}/run").status_code == 202
            wait_until(lambda: _finished(http, SEED["name"]), timeout=20, what="the seed job's execution to finish")
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"agent exited with {code} on SIGTERM:\n{process.log_text()}"


def _put(http: httpx.Client, job: dict) -> dict:
    response = http.put(f"/v1/jobs/{job['name']}", json=job)
    assert response.status_code == 201, response.text
    return response.json()


def _finished(http: httpx.Client, name: str) -> list[dict]:
    executions = http.get(f"/v1/jobs/{name}/executions").json()
    return [execution for execution in executions if execution["finished_at"]]


@schema.parametrize()
def test_api_matches_its_document(case, agent: AgentProcess) -> None:
    if SEED_DELETED.is_set():  # an earlier DELETE /v1/jobs/nightly-backup
        with agent.client() as http:
            _put(http, SEED)
        SEED_DELETED.clear()
    if case.method == "DELETE" and case.path_parameters == {"job_name": SEED["name"]}:
        SEED_DELETED.set()
    case.call_and_validate(base_url=agent.url, checks=CHECKS)


def _check(agent: AgentProcess, path: str, method: str, **data) -> httpx.Response:
    """One explicit request, checked like the generated ones."""
    case = schema[path][method].Case(**data)
    return case.call_and_validate(base_url=agent.url, checks=CHECKS)


def test_answers_with_real_data_match(agent: AgentProcess) -> None:
    with agent.client() as http:
        _put(http, SEED)
        _put(http, FULL_JOB)
        assert http.post(f"/v1/jobs/{SEED['name']}/run").status_code == 202
        stored = wait_until(lambda: _finished(http, SEED["name"]), timeout=20, what="the seed job's run")[0]
        _put(http, SLOW_JOB)
        assert http.post(f"/v1/jobs/{SLOW_JOB['name']}/run").status_code == 202
        wait_until(lambda: http.get("/v1/busy").json(), timeout=20, what="the slow job to be running")
    seed, full, slow = (
        {"job_name": SEED["name"]},
        {"job_name": FULL_JOB["name"]},
        {"job_name": SLOW_JOB["name"]},
    )
    try:
        saved = _check(agent, "/v1/jobs/{job_name}", "PUT", path_parameters=full, body=FULL_JOB, media_type=JSON)
        assert saved.status_code == 201 and saved.json()["notify"]["on"] == ["failure"]
        created = _check(agent, "/v1/jobs", "POST", query={"runoncreate": "true"}, body=SEED, media_type=JSON)
        assert created.status_code == 201
        assert _check(agent, "/v1/jobs/{job_name}/toggle", "POST", path_parameters=full).json()["disabled"] is True
        jobs = _check(agent, "/v1/jobs", "GET", query={"_sort": "next", "_order": "DESC"}).json()
        assert {job["name"] for job in jobs} >= {SEED["name"], FULL_JOB["name"], SLOW_JOB["name"]}
        assert _check(agent, "/v1/jobs/{job_name}", "GET", path_parameters=full).json()["notify"]["webhook"]
        one = {**seed, "execution": stored["id"]}
        assert (
            _check(agent, "/v1/jobs/{job_name}/executions/{execution}", "GET", path_parameters=one).json()["id"]
            == stored["id"]
        )
        listed = _check(agent, "/v1/jobs/{job_name}/executions", "GET", path_parameters=seed).json()
        assert listed and all(e["output_truncated"] is False for e in listed)
        running = _check(agent, "/v1/busy", "GET").json()
        assert [e["job_name"] for e in running] == [SLOW_JOB["name"]] and running[0]["running"] is True
        slow_executions = _check(agent, "/v1/jobs/{job_name}/executions", "GET", path_parameters=slow).json()
        assert any(e.get("running") for e in slow_executions)
        stop = {**slow, "execution": running[0]["id"]}
        _check(agent, "/v1/jobs/{job_name}/executions/{execution}", "GET", path_parameters=stop)
        _check(agent, "/v1/jobs/{job_name}/executions/{execution}/stop", "POST", path_parameters=stop)
        for path in ("/v1", "/v1/members", "/v1/leader", "/v1/isleader", "/v1/plugins", "/v1/raft/peers"):
            _check(agent, path, "GET")
        preview = {"schedule": "0 30 2 * * *", "timezone": "Europe/Berlin", "count": 3}
        assert len(_check(agent, "/v1/schedule/preview", "GET", query=preview).json()["next"]) == 3
        restored = _check(agent, "/v1/restore", "POST", body=[SEED], media_type=JSON).json()
        assert restored["restored"] == [SEED["name"]]
        assert (
            _check(agent, "/v1/jobs/{job_name}/executions", "DELETE", path_parameters=seed).json()["success_count"] == 0
        )
    finally:
        with agent.client() as http:
            http.delete(f"/v1/jobs/{SLOW_JOB['name']}")


def test_document_is_served_and_rendered(agent: AgentProcess) -> None:
    with agent.client() as http:
        served = http.get("/v1/openapi.json")
        assert served.status_code == 200 and served.headers["content-type"] == "application/json"
        assert served.json() == document()
        page = http.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        # Every asset the page names is served from the agent itself (no CDN).
        for asset in ("static/swagger-ui/swagger-ui.css", "static/swagger-ui/swagger-ui-bundle.js", "static/docs.js"):
            assert asset in page.text
            response = http.get("/" + asset)
            assert response.status_code == 200 and len(response.content) > 100, asset
        assert "SwaggerUIBundle" in http.get("/static/docs.js").text


@pytest.mark.parametrize("jobs", [[{}], [{"name": ["a"], "parent_job": ["b"]}], [{"parent_job": {}}]])
def test_restore_of_malformed_jobs_is_a_400(agent: AgentProcess, jobs: list) -> None:
    """schemathesis found these answered with a 500 (restore ordered parents before validating names)."""
    response = _check(agent, "/v1/restore", "POST", body=jobs, media_type=JSON)
    assert response.status_code == 400, response.text
