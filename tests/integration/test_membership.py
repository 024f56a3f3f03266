"""Raft membership with real `horae agent --server` processes: leave, remove-peer, list-peers, members, --encrypt.

Every node is a real agent on 127.0.0.1 and the CLI runs as a real `horae` command; waits poll with deadlines.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
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
    member_names,
    noop_job,
    start_client,
    start_cluster,
    stop_all,
    wait_status,
)
from tests.support import REPO_ROOT, wait_until

EXIT_TIMEOUT = 30.0
LINK_TIMEOUT = 20.0


def horae(*args: str) -> subprocess.CompletedProcess:
    """Run the real `horae` command line."""
    return subprocess.run(
        [sys.executable, "-m", "horae.cli", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )


def raft_peers(agent: AgentProcess) -> list[dict]:
    response = get(agent, "/v1/raft/peers")
    return response.json() if response is not None and response.status_code == 200 else []


def peer_nodes(agent: AgentProcess) -> list[str]:
    return sorted(peer["node"] for peer in raft_peers(agent))


def wait_peers(agent: AgentProcess, names: list[str]) -> None:
    wait_until(lambda: peer_nodes(agent) == names, REPLICATION_TIMEOUT, 0.1, f"raft peers {names} on {agent.node_name}")


def wait_exit(agent: AgentProcess) -> int:
    assert agent.process is not None
    try:
        return agent.process.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{agent.node_name} still runs after leaving:\n{agent.log_text()}") from None


def write_works(agents: list[AgentProcess], name: str) -> None:
    """A write through every server (followers forward it) reaches all of them.

    503 means "no leader right now, retry" (an election under load): retried until FAILOVER_TIMEOUT.
    """
    for index, agent in enumerate(agents):
        job = f"{name}-{index}"

        def accepted(agent: AgentProcess = agent, job: str = job) -> bool:
            response = httpx.post(f"{agent.url}/v1/jobs", json=noop_job(job), timeout=10.0)
            assert response.status_code in (201, 503), response.text
            return response.status_code == 201

        wait_until(accepted, FAILOVER_TIMEOUT, 0.2, f"{job} accepted by {agent.node_name}")
        for other in agents:
            wait_until(lambda o=other, j=job: has_job(o, j), REPLICATION_TIMEOUT, 0.05, f"{job} on {other.node_name}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    agents: list[AgentProcess] = []
    try:
        agents = start_cluster(tmp_path, 3)
        agreed_leader(agents, FORM_TIMEOUT)
        for agent in agents:
            wait_peers(agent, ["s1", "s2", "s3"])
        yield agents
    finally:
        try:
            stop_all(agents)
        finally:
            for agent in agents:  # shown by pytest only when the test fails
                print(f"----- {agent.node_name} log -----\n{agent.log_text(20000)}")


def test_a_follower_leaves_and_the_two_others_carry_on(cluster: list[AgentProcess]) -> None:
    leader = by_name(cluster, agreed_leader(cluster, FORM_TIMEOUT))
    leaving = next(agent for agent in cluster if agent is not leader)
    remaining = [agent for agent in cluster if agent is not leaving]

    done = horae("leave", "--address", leaving.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "ROLE", "STATUS", "TAGS", "LAST", "HEARTBEAT"]
    row = next(line.split() for line in lines if line.startswith(leaving.node_name))
    assert row[2:4] == ["server", "left"]
    assert wait_exit(leaving) == 0, leaving.log_text()

    for agent in remaining:
        wait_peers(agent, sorted(a.node_name for a in remaining))
        wait_status(agent, leaving.node_name, "left", REPLICATION_TIMEOUT)
    assert agreed_leader(remaining, FAILOVER_TIMEOUT) == leader.node_name
    write_works(remaining, "after-follower-left")
    # A server that left is no Raft peer any more; remove-peer forgets its member record.
    forgotten = horae("raft", "remove-peer", "--peer-id", leaving.node_name, "--address", leader.url, "--json")
    assert forgotten.returncode == 0, forgotten.stderr
    for agent in remaining:
        wait_until(lambda a=agent: leaving.node_name not in member_names(a), REPLICATION_TIMEOUT, 0.1, "record gone")

    # Two servers are a full cluster now: the leader hands over and leaves too, the last one elects itself.
    handed = httpx.post(f"{leader.url}/v1/leave", timeout=30.0)
    assert handed.status_code == 200, handed.text
    assert wait_exit(leader) == 0, leader.log_text()
    last = next(agent for agent in remaining if agent is not leader)
    assert agreed_leader([last], FAILOVER_TIMEOUT) == last.node_name
    wait_peers(last, [last.node_name])
    write_works([last], "alone")


def test_the_leader_hands_over_leaves_and_exits(cluster: list[AgentProcess]) -> None:
    leader = by_name(cluster, agreed_leader(cluster, FORM_TIMEOUT))
    others = [agent for agent in cluster if agent is not leader]

    started = time.monotonic()
    response = httpx.post(f"{leader.url}/v1/leave", timeout=30.0)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    statuses = {member["Name"]: member["statusText"] for member in response.json()}
    assert statuses[leader.node_name] == "left"
    assert wait_exit(leader) == 0, leader.log_text()
    assert "leadership handed over" in leader.log_text()
    print(f"leader leave answered in {took:.3f}s")

    new_leader = agreed_leader(others, FAILOVER_TIMEOUT)
    assert new_leader != leader.node_name
    for agent in others:
        wait_peers(agent, sorted(a.node_name for a in others))
        wait_status(agent, leader.node_name, "left", REPLICATION_TIMEOUT)
    write_works(others, "after-leader-left")

    # Started again on the same data dir, it does not reuse its old membership: it joins as a new server.
    leader.start(wait_healthy=False)
    leader.wait_healthy(FORM_TIMEOUT)
    assert "starting as a new server" in leader.log_text()
    for agent in cluster:
        wait_peers(agent, ["s1", "s2", "s3"])
    wait_status(others[0], leader.node_name, "alive", REPLICATION_TIMEOUT)
    wait_until(lambda: has_job(leader, "after-leader-left-0"), REPLICATION_TIMEOUT, 0.05, "jobs on the rejoined server")


def test_list_peers_members_and_remove_peer_of_a_killed_server(cluster: list[AgentProcess]) -> None:
    leader = by_name(cluster, agreed_leader(cluster, FORM_TIMEOUT))
    followers = [agent for agent in cluster if agent is not leader]
    for agent in cluster:
        wait_until(lambda a=agent: member_names(a) == ["s1", "s2", "s3"], REPLICATION_TIMEOUT, 0.1, "3 members")

    listed = horae("raft", "list-peers", "--address", followers[0].url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["Node", "ID", "Address", "State", "Voter"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == ["s1", "s2", "s3"]
    for agent in cluster:
        state = "leader" if agent is leader else "follower"
        assert rows[agent.node_name][1:] == [agent.raft_address, agent.raft_address, state, "true"]

    shown = horae("members", "--address", leader.url)
    assert shown.returncode == 0, shown.stderr
    member_lines = shown.stdout.splitlines()
    assert member_lines[0].split() == ["NAME", "ADDRESS", "ROLE", "STATUS", "TAGS", "LAST", "HEARTBEAT"]
    member_rows = {line.split()[0]: line.split() for line in member_lines[1:]}
    assert sorted(member_rows) == ["s1", "s2", "s3"]
    for agent in cluster:
        assert member_rows[agent.node_name][1:4] == [agent.raft_address, "server", "alive"]

    # The leader cannot remove itself: the operator is told to make it leave.
    refused = horae("raft", "remove-peer", "--peer-id", leader.node_name, "--address", followers[0].url)
    assert refused.returncode == 1
    assert "409" in refused.stderr and "leave" in refused.stderr, refused.stderr
    missing = horae("raft", "remove-peer", "--peer-id", "nobody", "--address", leader.url)
    assert missing.returncode == 1 and "404" in missing.stderr, missing.stderr

    dead, survivor = followers
    dead.kill()
    removed = horae("raft", "remove-peer", "--peer-id", dead.raft_address, "--address", survivor.url)
    assert removed.returncode == 0, removed.stderr
    assert sorted(line.split()[0] for line in removed.stdout.splitlines()[1:]) == sorted(
        [leader.node_name, survivor.node_name]
    )
    remaining = [leader, survivor]
    for agent in remaining:
        wait_peers(agent, sorted(a.node_name for a in remaining))
        wait_until(
            lambda a=agent: dead.node_name not in member_names(a), REPLICATION_TIMEOUT, 0.1, "dead member forgotten"
        )
    write_works(remaining, "after-remove-peer")
    cluster.remove(dead)  # SIGKILLed: the fixture stops the others


def test_keygen_prints_a_dkron_style_key() -> None:
    first, second = horae("keygen"), horae("keygen")
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert first.stdout == key + "\n"
    assert len(base64.b64decode(key, validate=True)) == 32
    assert key != second.stdout.strip()


def test_a_bad_key_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    result = horae("agent", "--server", "--data-dir", str(tmp_path), "--encrypt", "not-a-key!")
    assert result.returncode == 2
    assert "--encrypt" in result.stderr and "setting encrypt" in result.stderr and "base64" in result.stderr
    assert "not-a-key!" not in result.stderr


def test_an_encrypted_cluster_works_and_refuses_nodes_with_another_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = horae("keygen").stdout.strip()
    wrong = horae("keygen").stdout.strip()
    monkeypatch.setenv("HORAE_ENCRYPT", key)  # the agents inherit it: the environment-variable path
    agents: list[AgentProcess] = []
    try:
        agents = start_cluster(tmp_path, 3)
        leader = by_name(agents, agreed_leader(agents, FORM_TIMEOUT))
        assert get(leader, "/v1/").json()["serf"]["encrypted"] == "true"
        write_works(agents, "encrypted")
        # A client agent with the key links to the leader (the Connect stream carries the credential too).
        agents.append(start_client(tmp_path, "c-good", agents[:3], {"role": "web"}))
        wait_status(leader, "c-good", "alive", LINK_TIMEOUT)

        # A server with another key is refused by every server and stops with a clear message.
        intruder = AgentProcess(tmp_path / "s4", node_name="s4", dev=False)
        intruder.extra_args = ["--server", "--join", agents[0].rpc_address, "--encrypt", wrong]
        intruder.start(wait_healthy=False)
        assert intruder.process is not None
        assert intruder.process.wait(EXIT_TIMEOUT) == 1, intruder.log_text()
        assert "every server refused this server's cluster key" in intruder.log_text()
        assert "wrong cluster key" in intruder.log_text()
        # A server without a key is refused as well (a keyed cluster needs it).
        open_server = AgentProcess(tmp_path / "s5", node_name="s5", dev=False)
        open_server.extra_args = ["--server", "--join", agents[0].rpc_address]
        monkeypatch.delenv("HORAE_ENCRYPT")
        open_server.start(wait_healthy=False)
        assert open_server.process is not None
        assert open_server.process.wait(EXIT_TIMEOUT) == 1, open_server.log_text()
        assert "no cluster key" in open_server.log_text()

        # A client agent with another key says why it cannot link, and never becomes a member.
        monkeypatch.setenv("HORAE_ENCRYPT", wrong)
        bad_client = start_client(tmp_path, "c-bad", agents[:3], {"role": "web"})
        agents.append(bad_client)
        wait_until(
            lambda: "refused by server: cluster key does not match" in bad_client.log_text(),
            LINK_TIMEOUT,
            0.1,
            "the client with the wrong key to log the refusal",
        )
        assert "wrong cluster key" in bad_client.log_text()
        assert "c-bad" not in member_names(leader)
        for agent in agents[:3]:
            assert peer_nodes(agent) == ["s1", "s2", "s3"]
            assert "s4" not in member_names(agent) and "s5" not in member_names(agent)
        assert "inter-node call refused" in leader.log_text() + agents[0].log_text()
    finally:
        try:
            stop_all(agents)
        finally:
            for agent in agents:
                print(f"----- {agent.node_name} log -----\n{agent.log_text(20000)}")
