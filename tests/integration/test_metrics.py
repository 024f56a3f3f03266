"""`GET /metrics` of a real `horae agent --dev`, parsed with prometheus_client's own text parser.

One agent serves the module; each test uses its own job names and compares the figures with what the
`/v1` API reports about the same executions, so a metric that counts wrong fails here.
"""

from __future__ import annotations

import datetime
import os
import signal
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.agent_process import AgentProcess
from tests.support import wait_until

NODE_NAME = "metrics-node"
RUN_TIMEOUT = 20.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("metrics-agent"), node_name=NODE_NAME).start()
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"agent exited with {code} on SIGTERM:\n{process.log_text()}"


@pytest.fixture
def http(agent: AgentProcess) -> Iterator[httpx.Client]:
    with agent.client() as client:
        yield client


# -- helpers -----------------------------------------------------------------------------------


def scrape(http: httpx.Client) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4"), response.headers
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def moment(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def create(http: httpx.Client, job: dict) -> None:
    response = http.post("/v1/jobs", json=job)
    assert response.status_code == 201, response.text


def finished(http: httpx.Client, name: str, count: int) -> list[dict]:
    def done() -> list[dict] | None:
        response = http.get(f"/v1/jobs/{name}/executions")
        assert response.status_code == 200, response.text
        found = [e for e in response.json() if e.get("finished_at")]
        return found if len(found) >= count else None

    return wait_until(done, timeout=RUN_TIMEOUT, interval=0.05, what=f"{count} finished execution(s) of {name}")


def shell(command: str) -> dict:
    return {"shell": "true", "command": command}


# -- tests -------------------------------------------------------------------------------------


def test_a_single_server_reports_itself_leader_alive_and_its_plugins_up(http: httpx.Client) -> None:
    samples = scrape(http)
    assert value(samples, "horae_raft_state", state="leader") == 1.0
    assert value(samples, "horae_raft_state", state="follower") == 0.0
    assert value(samples, "horae_raft_state", state="candidate") == 0.0
    assert (value(samples, "horae_raft_term") or 0) >= 1
    assert (value(samples, "horae_raft_commit_index") or 0) >= 1
    assert value(samples, "horae_leader_changes_total", change="gained") == 1.0
    assert value(samples, "horae_leader_changes_total", change="lost") == 0.0
    assert value(samples, "horae_members", status="alive") == 1.0
    assert value(samples, "horae_members", status="failed") == 0.0
    assert value(samples, "horae_plugin_up", kind="executor", plugin="shell") == 1.0
    assert value(samples, "horae_plugin_restarts_total", kind="executor", plugin="shell") == 0.0
    assert value(samples, "horae_executions_running") == 0.0
    # Outside /v1: a Prometheus server scrapes /metrics as it is.
    assert http.get("/v1/metrics").status_code == 404


def test_executions_count_by_job_and_outcome_with_duration_and_lateness(http: httpx.Client) -> None:
    before = scrape(http)
    slot = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(seconds=3)
    at = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    create(http, {"name": "metrics-ok", "schedule": f"@at {at}", "executor": "shell", "executor_config": shell("true")})
    create(
        http, {"name": "metrics-bad", "schedule": "@manually", "executor": "shell", "executor_config": shell("exit 3")}
    )
    for count in (1, 2):  # one after the other: two manual runs in the same millisecond would share an id
        assert http.post("/v1/jobs/metrics-bad/run").status_code == 202
        bad = finished(http, "metrics-bad", count)
    ok = finished(http, "metrics-ok", 1)
    after = scrape(http)

    assert [e["success"] for e in ok] == [True] and [e["success"] for e in bad] == [False, False]
    assert value(after, "horae_executions_total", job="metrics-ok", outcome="succeeded") == 1.0
    assert value(after, "horae_executions_total", job="metrics-ok", outcome="failed") is None
    assert value(after, "horae_executions_total", job="metrics-bad", outcome="failed") == 2.0
    assert value(after, "horae_executions_total", job="metrics-bad", outcome="succeeded") is None

    def delta(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0.0) - (value(before, name, **labels) or 0.0)

    # Every execution has a duration; only the scheduled one (not the manual runs) a lateness.
    assert delta("horae_execution_duration_seconds_count") == 3
    assert delta("horae_execution_duration_seconds_bucket", le="+Inf") == 3
    durations = sum((moment(e["finished_at"]) - moment(e["started_at"])).total_seconds() for e in ok + bad)
    # The leader counts from the committed finish time in whole milliseconds: under 1 ms off each.
    assert delta("horae_execution_duration_seconds_sum") == pytest.approx(durations, abs=0.003)
    assert delta("horae_schedule_lateness_seconds_count") == 1
    assert ok[0]["slot"] == at
    lateness = (moment(ok[0]["started_at"]) - slot).total_seconds()
    assert delta("horae_schedule_lateness_seconds_sum") == pytest.approx(max(lateness, 0.0), abs=1e-4)
    assert value(after, "horae_jobs") == (value(before, "horae_jobs") or 0) + 2

    # A deleted job's series go with it.
    assert http.delete("/v1/jobs/metrics-bad").status_code == 200
    assert http.delete("/v1/jobs/metrics-ok").status_code == 200
    gone = scrape(http)
    assert value(gone, "horae_executions_total", job="metrics-bad", outcome="failed") is None
    assert value(gone, "horae_executions_total", job="metrics-ok", outcome="succeeded") is None


def test_running_executions_gauge_follows_a_running_job(http: httpx.Client) -> None:
    create(
        http,
        {"name": "metrics-sleeper", "schedule": "@manually", "executor": "shell", "executor_config": shell("sleep 30")},
    )
    try:
        assert http.post("/v1/jobs/metrics-sleeper/run").status_code == 202
        wait_until(
            lambda: value(scrape(http), "horae_executions_running") == 1.0,
            timeout=RUN_TIMEOUT,
            what="horae_executions_running to be 1",
        )
        busy = [e for e in http.get("/v1/busy").json() if e["job_name"] == "metrics-sleeper"]
        assert len(busy) == 1, busy
        stop = http.post(f"/v1/jobs/metrics-sleeper/executions/{busy[0]['id']}/stop")
        assert stop.status_code == 202, stop.text
        wait_until(
            lambda: value(scrape(http), "horae_executions_running") == 0.0,
            timeout=RUN_TIMEOUT,
            what="horae_executions_running back to 0",
        )
        finished(http, "metrics-sleeper", 1)
        assert value(scrape(http), "horae_executions_total", job="metrics-sleeper", outcome="failed") == 1.0
    finally:
        http.delete("/v1/jobs/metrics-sleeper")


def test_a_killed_plugin_is_restarted_and_counted(http: httpx.Client) -> None:
    def noop() -> dict:
        return next(p for p in http.get("/v1/plugins").json() if (p["kind"], p["name"]) == ("executor", "noop"))

    before = noop()
    assert before["state"] == "healthy" and isinstance(before["pid"], int), before
    restarts = value(scrape(http), "horae_plugin_restarts_total", kind="executor", plugin="noop")
    assert restarts == before["restarts"]

    os.kill(before["pid"], signal.SIGKILL)

    def restarted() -> dict | None:
        now = noop()
        return now if now["state"] == "healthy" and now["pid"] not in (None, before["pid"]) else None

    wait_until(restarted, timeout=RUN_TIMEOUT, interval=0.05, what="the noop executor to run again under a new pid")
    samples = scrape(http)
    assert value(samples, "horae_plugin_restarts_total", kind="executor", plugin="noop") == restarts + 1
    assert value(samples, "horae_plugin_up", kind="executor", plugin="noop") == 1.0
