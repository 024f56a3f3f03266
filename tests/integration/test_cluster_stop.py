"""Stopping an execution through any server: a follower asks the leader, which stops it on the node
that runs it (here a client agent); the job goes on. Real servers and a real client agent."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.cluster_support import (
    FORM_TIMEOUT,
    agreed_leader,
    by_name,
    executions,
    running_cluster,
    start_client,
    wait_status,
)
from tests.support import wait_until

RUN_TIMEOUT = 30.0
LINK_TIMEOUT = 20.0


def post(agent, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{agent.url}{path}", json=body, timeout=15.0)


def execution_on(agent, job: str, execution_id: str) -> dict | None:
    response = httpx.get(f"{agent.url}/v1/jobs/{job}/executions/{execution_id}", timeout=5.0)
    return response.json() if response.status_code == 200 else None


def test_a_follower_stops_an_execution_running_on_a_client_and_the_next_slot_runs(tmp_path: Path) -> None:
    marker = tmp_path / "first-run-started"
    # The first run prints, then sleeps for a minute; every later run ends at once.
    script = f"if [ ! -e {marker} ]; then touch {marker}; echo started; sleep 60; fi; echo quick"
    job = {
        "name": "long-once",
        "schedule": "@every 1s",
        "concurrency": "forbid",
        "tags": {"role": "db"},
        "executor": "shell",
        "executor_config": {"command": script, "shell": "true"},
    }
    with running_cluster(tmp_path, 3) as servers:
        leader = by_name(servers, agreed_leader(servers, FORM_TIMEOUT))
        follower, third = [server for server in servers if server is not leader]
        client = start_client(tmp_path, "db-1", servers, {"role": "db"})
        client_exit = None
        try:
            wait_status(follower, "db-1", "alive", LINK_TIMEOUT)
            assert post(follower, "/v1/jobs", job).status_code == 201

            def long_run() -> dict | None:
                running = [e for e in executions(follower, "long-once") if e.get("running")]
                return running[0] if running and marker.exists() else None

            running = wait_until(long_run, RUN_TIMEOUT, 0.1, "the long first run on db-1, seen by a follower")
            assert running["node_name"] == "db-1"
            assert execution_on(follower, "long-once", running["id"])["finished_at"] is None

            def streaming() -> bool:
                live = execution_on(leader, "long-once", running["id"])
                return live is not None and "started" in live["output"]

            wait_until(streaming, RUN_TIMEOUT, 0.1, "the run's output streaming to the leader")

            stop = post(follower, f"/v1/jobs/long-once/executions/{running['id']}/stop")
            assert stop.status_code == 202, stop.text
            assert stop.json()["id"] == running["id"]

            def recorded() -> dict | None:
                found = execution_on(follower, "long-once", running["id"])
                return found if found is not None and found.get("finished_at") else None

            stopped = wait_until(recorded, RUN_TIMEOUT, 0.1, "the stopped execution recorded")
            assert stopped["success"] is False
            assert "started" in stopped["output"] and "stopped by request" in stopped["output"], stopped

            def next_slot_ran() -> bool:
                return any(
                    e.get("finished_at") and e["success"] and e["group"] > stopped["group"]
                    for e in executions(follower, "long-once")
                )

            wait_until(next_slot_ran, RUN_TIMEOUT, 0.1, "a later slot of the job to run and succeed")

            again = post(follower, f"/v1/jobs/long-once/executions/{running['id']}/stop")
            assert again.status_code == 409, again.text
            assert "already finished" in again.json()["error"]
            unknown = post(follower, "/v1/jobs/long-once/executions/no-such-execution/stop")
            assert unknown.status_code == 404, unknown.text
            assert post(follower, "/v1/jobs/ghost/executions/no-such-execution/stop").status_code == 404
            assert post(follower, "/v1/jobs/long-once/toggle").status_code == 200  # quiet from here on
        finally:
            client_exit = client.stop()
        assert client_exit == 0, client.log_text()

        # With no leader left to ask, a follower says so.
        leader.kill()
        third.kill()
        refused = post(follower, f"/v1/jobs/long-once/executions/{running['id']}/stop")
        assert refused.status_code == 503, refused.text
        assert "leader" in refused.json()["error"]
