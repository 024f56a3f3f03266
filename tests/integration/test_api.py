"""The `/v1` HTTP API of a real `horae agent --dev`, driven over HTTP as Dkron's clients drive it.

One agent serves the whole module; each test uses its own job names. Every response is checked for
`X-Whom` by an httpx event hook, and the agent must exit 0 on SIGTERM at the end.
"""

from __future__ import annotations

import datetime
import itertools
import json
import zoneinfo
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.agent_process import AgentProcess
from tests.support import wait_until

NODE_NAME = "api-test-node"
RUN_TIMEOUT = 20.0
SLEEP = {"shell": "true", "command": "echo started; sleep 5"}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("api-agent"), node_name=NODE_NAME).start()
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"agent exited with {code} on SIGTERM:\n{process.log_text()}"


def _check_whom(response: httpx.Response) -> None:
    assert response.headers.get("X-Whom") == NODE_NAME, f"no X-Whom on {response.request.method} {response.url}"


@pytest.fixture
def http(agent: AgentProcess) -> Iterator[httpx.Client]:
    with agent.client(event_hooks={"response": [_check_whom]}) as client:
        yield client


def noop_job(name: str, text: str = "hi", schedule: str = "@manually", **extra: object) -> dict:
    return {"name": name, "schedule": schedule, "executor": "noop", "executor_config": {"text": text}, **extra}


def create(http: httpx.Client, job: dict) -> dict:
    response = http.post("/v1/jobs", json=job)
    assert response.status_code == 201, response.text
    return response.json()


def executions(http: httpx.Client, name: str, **params: object) -> list[dict]:
    response = http.get(f"/v1/jobs/{name}/executions", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def finished(http: httpx.Client, name: str, count: int = 1) -> list[dict]:
    """Poll until the job has at least `count` finished executions; returns them, newest first."""

    def done() -> list[dict] | None:
        found = [e for e in executions(http, name) if e.get("finished_at")]
        return found if len(found) >= count else None

    return wait_until(done, timeout=RUN_TIMEOUT, interval=0.05, what=f"{count} finished execution(s) of {name}")


def error_fields(response: httpx.Response) -> set[str]:
    return {problem["field"] for problem in response.json().get("fields", [])}


# -- the node ----------------------------------------------------------------------------------


def test_health_index_and_cluster_endpoints(http: httpx.Client) -> None:
    health = http.get("/health")
    assert health.status_code == 200
    assert health.json()["ready"] is True

    for path in ("/v1/", "/v1"):
        index = http.get(path)
        assert index.status_code == 200
        assert index.json()["agent"]["name"] == NODE_NAME
        assert set(index.json()) >= {"agent", "serf", "tags"}

    members = http.get("/v1/members")
    assert members.status_code == 200
    assert [m["Name"] for m in members.json()] == [NODE_NAME]
    assert members.headers["X-Total-Count"] == "1"

    assert http.get("/v1/leader").json()["Name"] == NODE_NAME
    is_leader = http.get("/v1/isleader")
    assert (is_leader.status_code, is_leader.json()) == (200, "I am a leader")

    leave = http.post("/v1/leave")
    assert leave.status_code == 200
    assert [m["Name"] for m in leave.json()] == [NODE_NAME]


def test_unknown_routes_and_methods_are_json_errors(http: httpx.Client) -> None:
    missing = http.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert "/v1/nothing-here" in missing.json()["error"]

    wrong_method = http.delete("/v1/members")
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.json()["error"]


def test_plugins_lists_this_agents_plugins(http: httpx.Client) -> None:
    response = http.get("/v1/plugins")
    assert response.status_code == 200
    plugins = {(p["kind"], p["name"]): p for p in response.json()}
    noop = plugins[("executor", "noop")]
    assert noop["state"] == "healthy"
    assert isinstance(noop["pid"], int)
    assert set(noop) >= {"kind", "name", "source", "state", "error", "pid", "restarts", "version"}


# -- jobs --------------------------------------------------------------------------------------


def test_create_get_update_put_and_toggle(http: httpx.Client) -> None:
    response = http.post("/v1/jobs", json=noop_job("crud-one", displayname="CRUD one"))
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == "/v1/jobs/crud-one"
    created = response.json()
    assert created["name"] == "crud-one"
    assert created["displayname"] == "CRUD one"
    assert created["success_count"] == 0

    shown = http.get("/v1/jobs/crud-one")
    assert shown.status_code == 200
    assert shown.json()["executor_config"] == {"text": "hi"}

    updated = http.post("/v1/jobs", json=noop_job("crud-one", text="changed"))
    assert updated.status_code == 201
    assert http.get("/v1/jobs/crud-one").json()["executor_config"] == {"text": "changed"}

    patched = http.patch("/v1/jobs", json=noop_job("crud-one", text="patched"))
    assert patched.status_code == 201
    assert http.get("/v1/jobs/crud-one").json()["executor_config"] == {"text": "patched"}

    # PUT and POST with a body save under the path's name; a body without a name takes it.
    job = noop_job("crud-two")
    del job["name"]
    put = http.put("/v1/jobs/crud-two", json=job)
    assert put.status_code == 201, put.text
    assert put.json()["name"] == "crud-two"
    post = http.post("/v1/jobs/crud-two", json=noop_job("crud-two", text="via post"))
    assert post.status_code == 201
    assert http.get("/v1/jobs/crud-two").json()["executor_config"] == {"text": "via post"}

    mismatch = http.put("/v1/jobs/crud-two", json=noop_job("crud-other"))
    assert mismatch.status_code == 400
    assert "name" in error_fields(mismatch)
    assert http.get("/v1/jobs/crud-other").status_code == 404

    toggled = http.post("/v1/jobs/crud-one/toggle")
    assert toggled.status_code == 200
    assert toggled.json()["disabled"] is True
    assert http.get("/v1/jobs/crud-one").json()["disabled"] is True
    assert http.post("/v1/jobs/crud-one/toggle").json()["disabled"] is False


def test_list_filters_sort_and_paging(http: httpx.Client) -> None:
    specs = [
        ("lst-a", "Alpha", {"team": "red", "tier": "1"}, False),
        ("lst-b", "Bravo", {"team": "red", "tier": "2"}, True),
        ("lst-c", "Charlie", {"team": "blue", "tier": "1"}, False),
        ("lst-d", "delta nightly", {"team": "blue", "tier": "2"}, True),
        ("lst-e", "Echo", {"team": "red", "tier": "1"}, False),
    ]
    for name, display, metadata, disabled in specs:
        create(http, noop_job(name, displayname=display, metadata=metadata, disabled=disabled))

    def names(**params: object) -> tuple[list[str], int]:
        response = http.get("/v1/jobs", params={"q": "lst-", **params})
        assert response.status_code == 200, response.text
        return [job["name"] for job in response.json()], int(response.headers["X-Total-Count"])

    assert names() == (["lst-a", "lst-b", "lst-c", "lst-d", "lst-e"], 5)
    assert names(_order="DESC") == (["lst-e", "lst-d", "lst-c", "lst-b", "lst-a"], 5)
    assert names(_sort="id", _order="desc")[0][0] == "lst-e"
    assert names(_sort="displayname", _order="ASC")[0] == ["lst-a", "lst-b", "lst-c", "lst-e", "lst-d"]
    assert names(_start=1, _end=3) == (["lst-b", "lst-c"], 5)
    assert names(_start=4, _end=100) == (["lst-e"], 5)
    assert names(_start=9, _end=12) == ([], 5)
    assert names(**{"metadata[team]": "red"}) == (["lst-a", "lst-b", "lst-e"], 3)
    assert names(**{"metadata[team]": "red", "metadata[tier]": "1"}) == (["lst-a", "lst-e"], 2)
    assert names(**{"metadata[team]": "green"}) == ([], 0)
    assert names(disabled="true") == (["lst-b", "lst-d"], 2)
    assert names(disabled="false", _start=0, _end=1) == (["lst-a"], 3)

    # q matches the display name too, in any case
    everything = http.get("/v1/jobs", params={"q": "NIGHTLY"}).json()
    assert [job["name"] for job in everything] == ["lst-d"]

    # status: untriggered until a run, then success
    assert names(status="untriggered")[1] == 5
    assert http.post("/v1/jobs/lst-c/run").status_code == 202
    finished(http, "lst-c")
    wait_until(lambda: http.get("/v1/jobs/lst-c").json()["status"] == "success", timeout=RUN_TIMEOUT)
    assert names(status="success") == (["lst-c"], 1)
    assert names(status="untriggered")[1] == 4
    assert names(_sort="success_count", _order="DESC")[0][0] == "lst-c"

    for params, field in (
        ({"_start": "x"}, "_start"),
        ({"_end": "-1"}, "_end"),
        ({"_order": "sideways"}, "_order"),
        ({"_sort": "no_such_field"}, "_sort"),
        ({"disabled": "maybe"}, "disabled"),
    ):
        response = http.get("/v1/jobs", params=params)
        assert response.status_code == 400, (params, response.text)
        assert field in error_fields(response)


def test_every_second_job_runs_and_records_output(http: httpx.Client) -> None:
    create(http, {"name": "n1", "schedule": "@every 1s", "executor": "noop", "executor_config": {"text": "hi"}})

    def succeeded() -> dict | None:
        return next((e for e in executions(http, "n1") if e.get("success") and e.get("output") == "hi"), None)

    execution = wait_until(succeeded, timeout=RUN_TIMEOUT, what="a successful execution of n1")
    assert execution["job_name"] == "n1"
    assert execution["node_name"] == NODE_NAME
    wait_until(lambda: http.get("/v1/jobs/n1").json()["success_count"] >= 1, timeout=RUN_TIMEOUT)
    assert http.delete("/v1/jobs/n1").status_code == 200


def test_run_executions_paging_and_execution_by_id(http: httpx.Client) -> None:
    create(http, noop_job("runner", text="hello world"))
    run = http.post("/v1/jobs/runner/run")
    assert run.status_code == 202
    assert run.json()["name"] == "runner"
    finished(http, "runner", 1)
    # Dkron's POST /v1/jobs/{name} without a body runs the job as well
    assert http.post("/v1/jobs/runner").status_code == 202
    finished(http, "runner", 2)
    assert http.post("/v1/jobs/runner/run").status_code == 202
    finished(http, "runner", 3)

    response = http.get("/v1/jobs/runner/executions")
    assert response.headers["X-Total-Count"] == "3"
    newest_first = response.json()
    started = [e["started_at"] for e in newest_first]
    assert started == sorted(started, reverse=True)
    assert all(e["success"] and e["output"] == "hello world" for e in newest_first)

    oldest_first = executions(http, "runner", _order="ASC")
    assert [e["id"] for e in oldest_first] == [e["id"] for e in reversed(newest_first)]

    paged = http.get("/v1/jobs/runner/executions", params={"_start": 1, "_end": 3})
    assert paged.headers["X-Total-Count"] == "3"
    assert [e["id"] for e in paged.json()] == [e["id"] for e in newest_first[1:3]]

    truncated = executions(http, "runner", output_size_limit=5)
    assert all(e["output"] == "world" and e["output_truncated"] for e in truncated)
    assert not any(e["output_truncated"] for e in executions(http, "runner", output_size_limit=100))

    one = http.get(f"/v1/jobs/runner/executions/{newest_first[0]['id']}")
    assert one.status_code == 200
    assert one.json()["id"] == newest_first[0]["id"]
    assert one.json()["output"] == "hello world"

    assert http.get("/v1/jobs/runner/executions/no-such-id").status_code == 404
    bad_limit = http.get("/v1/jobs/runner/executions", params={"output_size_limit": "lots"})
    assert bad_limit.status_code == 400
    assert "output_size_limit" in error_fields(bad_limit)


def test_runoncreate_runs_the_job_at_once(http: httpx.Client) -> None:
    response = http.post("/v1/jobs", params={"runoncreate": "true"}, json=noop_job("eager", text="at once"))
    assert response.status_code == 201
    assert finished(http, "eager")[0]["output"] == "at once"


def test_delete_returns_the_job_and_keeps_a_prefix_siblings_executions(http: httpx.Client) -> None:
    for name in ("foo", "foo-bar"):
        create(http, noop_job(name, text=name))
        assert http.post(f"/v1/jobs/{name}/run").status_code == 202
    finished(http, "foo")
    finished(http, "foo-bar")

    deleted = http.delete("/v1/jobs/foo")
    assert deleted.status_code == 200
    assert deleted.json()["name"] == "foo"
    assert http.get("/v1/jobs/foo").status_code == 404
    assert http.get("/v1/jobs/foo/executions").status_code == 404

    remaining = executions(http, "foo-bar")
    assert len(remaining) == 1
    assert remaining[0]["output"] == "foo-bar"


def test_delete_executions_clears_the_history_and_counters_of_that_job_only(http: httpx.Client) -> None:
    for name in ("wipe", "wipe-bar"):
        create(http, noop_job(name, text=name))
        assert http.post(f"/v1/jobs/{name}/run").status_code == 202
    finished(http, "wipe")
    finished(http, "wipe-bar")
    before = http.get("/v1/jobs/wipe").json()
    assert (before["success_count"], before["status"]) == (1, "success")
    assert before["last_success"] is not None

    cleared = http.delete("/v1/jobs/wipe/executions")
    assert cleared.status_code == 200, cleared.text
    view = cleared.json()
    assert view["name"] == "wipe"
    assert (view["success_count"], view["error_count"], view["status"]) == (0, 0, "")
    assert view["last_success"] is None and view["last_error"] is None
    assert executions(http, "wipe") == []
    assert http.get("/v1/jobs/wipe").json()["success_count"] == 0

    # "wipe-bar" shares the prefix "wipe" in the store: its history and counters stay.
    remaining = executions(http, "wipe-bar")
    assert [e["output"] for e in remaining] == ["wipe-bar"]
    assert http.get("/v1/jobs/wipe-bar").json()["success_count"] == 1

    # The job runs and counts afresh afterwards.
    assert http.post("/v1/jobs/wipe/run").status_code == 202
    assert len(finished(http, "wipe")) == 1
    assert http.get("/v1/jobs/wipe").json()["success_count"] == 1


def test_unknown_job_is_404_naming_it(http: httpx.Client) -> None:
    for method, path in (
        ("GET", "/v1/jobs/ghost"),
        ("DELETE", "/v1/jobs/ghost"),
        ("POST", "/v1/jobs/ghost/run"),
        ("POST", "/v1/jobs/ghost"),
        ("POST", "/v1/jobs/ghost/toggle"),
        ("GET", "/v1/jobs/ghost/executions"),
        ("DELETE", "/v1/jobs/ghost/executions"),
        ("GET", "/v1/jobs/ghost/executions/some-id"),
        ("POST", "/v1/jobs/ghost/executions/some-id/stop"),
    ):
        response = http.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert "ghost" in response.json()["error"], (method, path)


def test_invalid_jobs_are_400_naming_the_field(http: httpx.Client) -> None:
    bad_name = http.post("/v1/jobs", json=noop_job("Not A Valid Name!"))
    assert bad_name.status_code == 400
    assert "name" in error_fields(bad_name)

    bad_schedule = http.post("/v1/jobs", json=noop_job("bad-schedule", schedule="every tuesday-ish"))
    assert bad_schedule.status_code == 400
    assert "schedule" in error_fields(bad_schedule)

    job = noop_job("typo")
    job["schedul"] = job.pop("schedule")
    unknown_key = http.post("/v1/jobs", json=job)
    assert unknown_key.status_code == 400
    assert "schedul" in unknown_key.text
    assert "'schedule'" in unknown_key.text or '"schedule"' in unknown_key.text or "schedule?" in unknown_key.text

    wrong_type = http.post("/v1/jobs", json=noop_job("wrong-type", retries="three"))
    assert wrong_type.status_code == 400
    assert "retries" in error_fields(wrong_type)

    malformed = http.post(
        "/v1/jobs", content=b'{"name": "broken", "schedule": }', headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert "line 1 column" in malformed.json()["error"]

    for body in (b"", b"null", b"[]", b'"a job"', b"42", b"\xff\xfe not text"):
        response = http.post("/v1/jobs", content=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]

    for problem, field in (
        ({"name": 5}, "name"),
        ({"schedule": 5}, "schedule"),
        ({"executor_config": "not an object"}, "executor_config"),
        ({"metadata": ["a"]}, "metadata"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"parent_job": "no-such-parent"}, "parent_job"),
    ):
        response = http.post("/v1/jobs", json={**noop_job("odd-one"), **problem})
        assert response.status_code == 400, (problem, response.text)
        assert field in error_fields(response), (problem, response.text)

    for name in ("typo", "wrong-type", "odd-one"):
        assert http.get(f"/v1/jobs/{name}").status_code == 404


# -- scheduler and node state ------------------------------------------------------------------


def test_pause_and_unpause(http: httpx.Client) -> None:
    assert http.get("/v1/pause").json() == {"paused": False}
    try:
        paused = http.post("/v1/pause")
        assert (paused.status_code, paused.json()) == (200, {"paused": True})
        assert http.get("/v1/pause").json() == {"paused": True}
    finally:
        unpaused = http.post("/v1/unpause")
    assert (unpaused.status_code, unpaused.json()) == (200, {"paused": False})
    assert http.get("/v1/pause").json() == {"paused": False}


def test_busy_shows_a_running_shell_job_and_stop_ends_it(http: httpx.Client) -> None:
    create(http, {"name": "sleeper", "schedule": "@manually", "executor": "shell", "executor_config": SLEEP})
    assert http.post("/v1/jobs/sleeper/run").status_code == 202

    def running() -> dict | None:
        response = http.get("/v1/busy")
        assert response.status_code == 200
        return next((e for e in response.json() if e["job_name"] == "sleeper"), None)

    def started() -> dict | None:
        execution = running()
        return execution if execution is not None and "started" in execution["output"] else None

    execution = wait_until(started, timeout=RUN_TIMEOUT, what="sleeper in /v1/busy, its output streaming")
    assert http.get("/v1/busy").headers["X-Total-Count"] == str(len(http.get("/v1/busy").json()))
    live = http.get(f"/v1/jobs/sleeper/executions/{execution['id']}")
    assert live.status_code == 200
    assert live.json()["finished_at"] is None

    stop = http.post(f"/v1/jobs/sleeper/executions/{execution['id']}/stop")
    assert stop.status_code == 202, stop.text
    assert stop.json()["id"] == execution["id"]

    wait_until(lambda: running() is None, timeout=4.0, what="sleeper to leave /v1/busy")
    recorded = finished(http, "sleeper")[0]
    assert recorded["id"] == execution["id"]
    assert recorded["success"] is False
    assert "started" in recorded["output"]
    assert "stopped" in recorded["output"]
    again = http.post(f"/v1/jobs/sleeper/executions/{execution['id']}/stop")
    assert again.status_code == 409  # already finished


def test_a_run_stopped_on_purpose_is_not_retried(http: httpx.Client) -> None:
    job = {"name": "stubborn", "schedule": "@manually", "executor": "shell", "executor_config": SLEEP, "retries": 2}
    create(http, job)
    assert http.post("/v1/jobs/stubborn/run").status_code == 202

    def started() -> dict | None:
        busy = [e for e in http.get("/v1/busy").json() if e["job_name"] == "stubborn"]
        return busy[0] if busy and "started" in busy[0]["output"] else None

    execution = wait_until(started, timeout=RUN_TIMEOUT, what="stubborn running")
    assert http.post(f"/v1/jobs/stubborn/executions/{execution['id']}/stop").status_code == 202
    stopped = finished(http, "stubborn")[0]
    assert stopped["success"] is False and "stopped by request" in stopped["output"]
    # A retry would start at once (no backoff): by the time a later run has finished, it would be there.
    create(http, {**job, "executor_config": {"command": "true"}})
    assert http.post("/v1/jobs/stubborn/run").status_code == 202
    finished(http, "stubborn", 2)
    runs = http.get("/v1/jobs/stubborn/executions").json()
    assert [r["attempt"] for r in runs if r["group"] == stopped["group"]] == [1], runs


def test_restore_a_dkron_dump(http: httpx.Client) -> None:
    def dkron_job(name: str, parent: str = "") -> dict:
        """A job as Dkron's GET /v1/jobs returns it, computed fields and nulls included."""
        return {
            "id": name,
            "name": name,
            "displayname": "",
            "timezone": "",
            "schedule": "@every 1h",
            "owner": "ops",
            "owner_email": "ops@example.com",
            "success_count": 12,
            "error_count": 1,
            "last_success": "2024-05-01T10:00:00Z",
            "last_error": None,
            "disabled": True,
            "tags": {},
            "metadata": {"origin": "dkron"},
            "retries": 2,
            "dependent_jobs": None,
            "parent_job": parent,
            "processors": {},
            "concurrency": "forbid",
            "executor": "shell",
            "executor_config": {"command": f"echo {name}"},
            "status": "success",
            "next": "2024-05-01T11:00:00Z",
            "ephemeral": False,
            "expires_at": None,
        }

    # the child comes first: the restore must create the parent before it
    dump = [dkron_job("dk-child", parent="dk-parent"), dkron_job("dk-parent")]
    upload = http.post("/v1/restore", files={"file": ("jobs.json", json.dumps(dump).encode(), "application/json")})
    assert upload.status_code == 200, upload.text
    assert sorted(upload.json()["restored"]) == ["dk-child", "dk-parent"]
    assert isinstance(upload.json()["warnings"], list)

    child = http.get("/v1/jobs/dk-child").json()
    assert child["parent_job"] == "dk-parent"
    assert child["executor_config"] == {"command": "echo dk-child"}
    assert child["metadata"] == {"origin": "dkron"}
    assert child["success_count"] == 0  # counters come from this cluster, not from the dump
    assert http.get("/v1/jobs/dk-parent").json()["dependent_jobs"] == ["dk-child"]

    raw = http.post("/v1/restore", json=[dkron_job("dk-raw")])
    assert raw.status_code == 200, raw.text
    assert raw.json()["restored"] == ["dk-raw"]

    not_a_list = http.post("/v1/restore", json={"name": "x"})
    assert not_a_list.status_code == 400
    wrong_field = http.post("/v1/restore", files={"upload": ("jobs.json", b"[]", "application/json")})
    assert wrong_field.status_code == 400
    assert "file" in wrong_field.json()["error"]
    broken = http.post("/v1/restore", files={"file": ("jobs.json", b"[{", "application/json")})
    assert broken.status_code == 400
    assert "line 1" in broken.json()["error"]


def test_schedule_preview(http: httpx.Client) -> None:
    response = http.get("/v1/schedule/preview", params={"schedule": "@every 1h", "count": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schedule"] == "@every 1h"
    times = [datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in body["next"]]
    assert len(times) == 3
    assert [b - a for a, b in itertools.pairwise(times)] == [datetime.timedelta(hours=1)] * 2

    berlin = http.get("/v1/schedule/preview", params={"schedule": "0 30 3 * * *", "timezone": "Europe/Berlin"})
    assert berlin.status_code == 200, berlin.text
    assert berlin.json()["timezone"] == "Europe/Berlin"
    local = [
        datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
        for t in berlin.json()["next"]
    ]
    assert len(local) == 5
    assert all((moment.hour, moment.minute) == (3, 30) for moment in local)

    for params, field in (
        ({"schedule": "whenever"}, "schedule"),
        ({}, "schedule"),
        ({"schedule": "@daily", "count": "0"}, "count"),
        ({"schedule": "@daily", "count": "many"}, "count"),
        ({"schedule": "@daily", "count": "1000"}, "count"),
        ({"schedule": "@daily", "timezone": "Mars/Base"}, "timezone"),
    ):
        response = http.get("/v1/schedule/preview", params=params)
        assert response.status_code == 400, (params, response.text)
        assert field in error_fields(response)
