"""Client agents (no --server) join a real 3-server cluster, heartbeat, and run jobs targeted by tags.

Every node is a real `horae agent` process on 127.0.0.1; executions cross the nodes' links to the leader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.agent_process import AgentProcess
from tests.integration.cluster_support import (
    FAILOVER_TIMEOUT,
    FORM_TIMEOUT,
    agreed_leader,
    by_name,
    executions,
    finished,
    start_client,
    start_cluster,
    stop_all,
    wait_status,
)
from tests.support import wait_until

LINK_TIMEOUT = 20.0
RUN_TIMEOUT = 20.0
# The default failure detection is 10 s after the last heartbeat; the leader checks twice a second.
FAILURE_TIMEOUT = 10.0 + 5.0


def shell_job(name: str, command: str, tags: dict[str, str] | None = None) -> dict:
    return {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": command, "shell": "true"},
        "tags": tags or {},
    }


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, AgentProcess]]:
    """3 servers and 3 clients: web-1 and web-2 tagged role=web, db-1 tagged role=db."""
    agents: list[AgentProcess] = []
    try:
        agents = start_cluster(tmp_path, 3)
        agreed_leader(agents, FORM_TIMEOUT)
        servers = list(agents)
        for name, role in (("web-1", "web"), ("web-2", "web"), ("db-1", "db")):
            agents.append(start_client(tmp_path, name, servers, {"role": role, "zone": "a"}))
        for name in ("web-1", "web-2", "db-1"):
            for server in servers:
                wait_status(server, name, "alive", LINK_TIMEOUT)
        yield {agent.node_name: agent for agent in agents}
    finally:
        try:
            stop_all(agents)
        finally:
            for agent in agents:  # shown by pytest only when the test fails
                print(f"----- {agent.node_name} log -----\n{agent.log_text(20000)}")


def post(agent: AgentProcess, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{agent.url}{path}", json=body, timeout=10.0)


def test_clients_are_members_and_jobs_go_where_their_tags_say(nodes: dict[str, AgentProcess]) -> None:
    s1 = nodes["s1"]
    member = wait_status(s1, "web-1", "alive", LINK_TIMEOUT)
    assert member["role"] == "client"
    assert member["Tags"]["role"] == "client"  # Dkron's meaning of the role tag in /v1/members
    assert member["last_heartbeat"]

    # role=web without a count: every matching node runs it.
    assert post(s1, "/v1/jobs", shell_job("on-web", "echo $HOSTNAME ran", {"role": "web"})).status_code == 201
    assert post(nodes["s2"], "/v1/jobs/on-web").status_code == 202  # a run asked of a follower
    ran = finished(s1, "on-web", 2, RUN_TIMEOUT)
    assert sorted(e["node_name"] for e in ran) == ["web-1", "web-2"]
    assert all(e["success"] for e in ran), ran

    # "web:1": one of them, at random.
    assert post(s1, "/v1/jobs", shell_job("one-web", "true", {"role": "web:1", "zone": "a"})).status_code == 201
    assert post(s1, "/v1/jobs/one-web").status_code == 202
    ran = finished(s1, "one-web", 1, RUN_TIMEOUT)
    assert len(ran) == 1 and ran[0]["node_name"] in ("web-1", "web-2")

    # All tags must match.
    assert post(s1, "/v1/jobs", shell_job("db-only", "echo db", {"role": "db", "zone": "a"})).status_code == 201
    assert post(s1, "/v1/jobs/db-only").status_code == 202
    ran = finished(s1, "db-only", 1, RUN_TIMEOUT)
    assert [e["node_name"] for e in ran] == ["db-1"]
    assert ran[0]["output"].strip() == "db"

    # No tags: ONE node, not every node (the deliberate difference from Dkron).
    assert post(s1, "/v1/jobs", shell_job("anywhere", "true")).status_code == 201
    assert post(s1, "/v1/jobs/anywhere").status_code == 202
    finished(s1, "anywhere", 1, RUN_TIMEOUT)
    assert len(executions(s1, "anywhere")) == 1

    # Nothing matches: the run is refused and says why.
    assert post(s1, "/v1/jobs", shell_job("nowhere", "true", {"role": "mainframe"})).status_code == 201
    refused = post(s1, "/v1/jobs/nowhere")
    assert refused.status_code == 409
    assert "mainframe" in refused.text and "no alive node" in refused.text


def test_live_output_of_a_remote_execution_reaches_the_leader(nodes: dict[str, AgentProcess]) -> None:
    leader = by_name(list(nodes.values())[:3], agreed_leader(list(nodes.values())[:3], FORM_TIMEOUT))
    script = "echo first-line; sleep 30"
    assert post(leader, "/v1/jobs", shell_job("chatty", script, {"role": "db"})).status_code == 201
    assert post(leader, "/v1/jobs/chatty").status_code == 202

    def busy_with_output() -> dict | None:
        response = httpx.get(f"{leader.url}/v1/busy", timeout=2.0)
        running = [e for e in response.json() if e["job_name"] == "chatty"]
        return running[0] if running and "first-line" in running[0]["output"] else None

    running = wait_until(busy_with_output, RUN_TIMEOUT, 0.1, "the remote execution's output on the leader")
    assert running["node_name"] == "db-1"
    stop = post(leader, f"/v1/jobs/chatty/executions/{running['id']}/stop")
    assert stop.status_code in (200, 202), stop.text
    ran = finished(leader, "chatty", 1, RUN_TIMEOUT)
    assert ran[0]["success"] is False


def test_a_dead_client_is_failed_and_so_is_what_it_ran(nodes: dict[str, AgentProcess]) -> None:
    s1 = nodes["s1"]
    assert post(s1, "/v1/jobs", shell_job("long-db", "sleep 60", {"role": "db"})).status_code == 201
    assert post(s1, "/v1/jobs/long-db").status_code == 202
    wait_until(lambda: executions(s1, "long-db") or None, RUN_TIMEOUT, 0.1, "the execution to start")

    nodes["db-1"].kill()
    wait_status(s1, "db-1", "failed", FAILURE_TIMEOUT)
    ran = finished(s1, "long-db", 1, RUN_TIMEOUT)
    assert ran[0]["success"] is False
    assert "db-1 failed" in ran[0]["output"], ran[0]

    # A client that stops cleanly leaves.
    assert nodes["web-2"].stop() == 0
    wait_status(s1, "web-2", "left", LINK_TIMEOUT)


def test_a_result_finished_after_the_leader_died_reaches_the_new_leader(nodes: dict[str, AgentProcess]) -> None:
    servers = [nodes[name] for name in ("s1", "s2", "s3")]
    leader = by_name(servers, agreed_leader(servers, FORM_TIMEOUT))
    marker = "finished-under-the-next-leader"
    assert post(leader, "/v1/jobs", shell_job("survivor", f"sleep 3; echo {marker}", {"role": "db"})).status_code == 201
    assert post(leader, "/v1/jobs/survivor").status_code == 202
    wait_until(lambda: executions(leader, "survivor") or None, RUN_TIMEOUT, 0.1, "the execution to start")

    leader.kill()
    survivors = [server for server in servers if server is not leader]
    new_leader = by_name(survivors, agreed_leader(survivors, FAILOVER_TIMEOUT))
    ran = finished(new_leader, "survivor", 1, RUN_TIMEOUT)
    assert len(ran) == 1, ran
    assert ran[0]["success"] is True, ran[0]
    assert marker in ran[0]["output"]
    assert ran[0]["node_name"] == "db-1"
