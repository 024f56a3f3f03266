"""Several real `horae agent --server` processes form one Raft cluster, forward writes, fail over, and join.

Each server runs on 127.0.0.1 with its own ports and data dir; every wait polls with a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.agent_process import AgentProcess
from tests.support import wait_until

FORM_TIMEOUT = 45.0
FAILOVER_TIMEOUT = 20.0
REPLICATION_TIMEOUT = 10.0


def noop_job(name: str) -> dict:
    return {"name": name, "schedule": "@manually", "executor": "noop", "executor_config": {"text": "hi"}}


def get(agent: AgentProcess, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{agent.url}{path}", timeout=2.0)
    except httpx.HTTPError:
        return None


def leader_name(agent: AgentProcess) -> str | None:
    response = get(agent, "/v1/leader")
    return response.json()["Name"] if response is not None and response.status_code == 200 else None


def member_names(agent: AgentProcess) -> list[str]:
    response = get(agent, "/v1/members")
    return sorted(m["Name"] for m in response.json()) if response is not None and response.status_code == 200 else []


def agreed_leader(agents: list[AgentProcess], timeout: float) -> str:
    """The leader every agent reports, once they all report the same one, and it is one of them."""
    alive = {agent.node_name for agent in agents}

    def agreed() -> str | None:
        names = {leader_name(agent) for agent in agents}
        return names.pop() if len(names) == 1 and names <= alive else None

    return wait_until(agreed, timeout, 0.1, "all servers to report the same leader")  # type: ignore[return-value]


def has_job(agent: AgentProcess, name: str) -> bool:
    response = get(agent, f"/v1/jobs/{name}")
    return response is not None and response.status_code == 200


def start_cluster(root: Path, count: int) -> list[AgentProcess]:
    agents = [AgentProcess(root / f"s{i}", node_name=f"s{i}", dev=False) for i in range(1, count + 1)]
    for agent in agents:
        others = [a.rpc_address for a in agents if a is not agent]
        joins = [arg for address in others for arg in ("--join", address)]
        agent.extra_args = ["--server", "--bootstrap-expect", str(count), *joins]
    for agent in agents:
        agent.start(wait_healthy=False)
    for agent in agents:
        agent.wait_healthy(FORM_TIMEOUT)
    return agents


def stop_all(agents: list[AgentProcess]) -> None:
    problems = []
    for agent in agents:
        if agent.process is not None and agent.process.poll() is None:
            code = agent.stop()
            if code != 0:
                problems.append(f"{agent.node_name} exited with {code}:\n{agent.log_text()}")
    assert not problems, "\n".join(problems)


def by_name(agents: list[AgentProcess], name: str) -> AgentProcess:
    return next(agent for agent in agents if agent.node_name == name)


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
