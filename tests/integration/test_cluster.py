"""Several real `horae agent --server` processes form one Raft cluster, forward writes, fail over, and join.

Each server runs on 127.0.0.1 with its own ports and data dir; every wait polls with a deadline.
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
    REPLICATION_TIMEOUT,
    agreed_leader,
    by_name,
    get,
    has_job,
    leader_name,
    member_names,
    noop_job,
    start_cluster,
    stop_all,
)
from tests.support import wait_until


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    agents: list[AgentProcess] = []
    try:
        agents = start_cluster(tmp_path, 3)
        yield agents
    finally:
        try:
            stop_all(agents)
        finally:
            for agent in agents:  # shown by pytest only when the test fails
                print(f"----- {agent.node_name} log -----\n{agent.log_text(20000)}")


def test_three_servers_form_forward_and_fail_over(cluster: list[AgentProcess]) -> None:
    leader = by_name(cluster, agreed_leader(cluster, FORM_TIMEOUT))
    followers = [agent for agent in cluster if agent is not leader]
    assert get(leader, "/v1/isleader").status_code == 200
    assert all(get(agent, "/v1/isleader").status_code == 404 for agent in followers)
    for agent in cluster:
        wait_until(lambda a=agent: member_names(a) == ["s1", "s2", "s3"], REPLICATION_TIMEOUT, 0.1, "3 members")

    # A write on a follower is forwarded to the leader and replicated everywhere.
    response = httpx.post(f"{followers[0].url}/v1/jobs", json=noop_job("via-follower"), timeout=10.0)
    assert response.status_code == 201, response.text
    for agent in cluster:
        wait_until(lambda a=agent: has_job(a, "via-follower"), REPLICATION_TIMEOUT, 0.05, f"job on {agent.node_name}")

    # The leader dies: the two others elect a new one, keep the job, and accept writes.
    leader.kill()
    survivors = followers
    new_leader = by_name(survivors, agreed_leader(survivors, FAILOVER_TIMEOUT))
    assert new_leader is not leader
    assert all(has_job(agent, "via-follower") for agent in survivors)
    response = httpx.post(f"{new_leader.url}/v1/jobs", json=noop_job("after-failover"), timeout=10.0)
    assert response.status_code == 201, response.text
    other = next(agent for agent in survivors if agent is not new_leader)
    wait_until(lambda: has_job(other, "after-failover"), REPLICATION_TIMEOUT, 0.05, "job after failover")
    # A write through the surviving follower reaches the new leader too.
    response = httpx.post(f"{other.url}/v1/jobs", json=noop_job("follower-after-failover"), timeout=10.0)
    assert response.status_code == 201, response.text
    wait_until(lambda: has_job(new_leader, "follower-after-failover"), REPLICATION_TIMEOUT, 0.05, "forwarded job")


def test_fourth_server_joins_running_cluster(cluster: list[AgentProcess], tmp_path: Path) -> None:
    agreed_leader(cluster, FORM_TIMEOUT)
    response = httpx.post(f"{cluster[1].url}/v1/jobs", json=noop_job("before-join"), timeout=10.0)
    assert response.status_code == 201, response.text

    fourth = AgentProcess(tmp_path / "s4", node_name="s4", dev=False)
    fourth.extra_args = ["--server", "--join", cluster[0].rpc_address]
    cluster.append(fourth)  # the fixture stops it too
    fourth.start(timeout=FORM_TIMEOUT)
    wait_until(lambda: has_job(fourth, "before-join"), REPLICATION_TIMEOUT, 0.05, "existing job on the new server")
    for agent in cluster:
        wait_until(lambda a=agent: member_names(a) == ["s1", "s2", "s3", "s4"], REPLICATION_TIMEOUT, 0.1, "4 members")
    assert len({leader_name(agent) for agent in cluster}) == 1
    response = httpx.post(f"{fourth.url}/v1/jobs", json=noop_job("from-fourth"), timeout=10.0)
    assert response.status_code == 201, response.text
    for agent in cluster:
        wait_until(lambda a=agent: has_job(a, "from-fourth"), REPLICATION_TIMEOUT, 0.05, "job from the new server")
