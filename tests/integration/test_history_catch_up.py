"""A server that loads a Raft snapshot copies the recent history it lacks from a peer.

Finished executions are not in snapshots (each server applies them from the log into its own
store). With a low `raft_snapshot_threshold` the servers compact their logs, so a 4th server that
joins gets the leader's snapshot instead of the log, and a server restarted without its horae.db
loads its own snapshot: both must still show the history. Real servers on 127.0.0.1.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.agent_process import AgentProcess
from tests.integration.cluster_support import (
    FORM_TIMEOUT,
    REPLICATION_TIMEOUT,
    agreed_leader,
    by_name,
    executions,
    finished,
    noop_job,
    running_cluster,
)
from tests.support import wait_until

JOBS = ("alpha", "beta", "alpha-beta")
RUNS = 4
RUN_TIMEOUT = 30.0
CATCH_UP_TIMEOUT = 30.0


def snapshot_file(agent: AgentProcess) -> Path:
    return agent.data_dir / "raft" / "raft.snapshot"


def history(agent: AgentProcess) -> dict[str, list[str]]:
    return {job: sorted(e["id"] for e in executions(agent, job) if e.get("finished_at")) for job in JOBS}


def wait_history(agent: AgentProcess, expected: dict[str, list[str]]) -> None:
    wait_until(lambda: history(agent) == expected, CATCH_UP_TIMEOUT, 0.1, f"the history on {agent.node_name}")


@pytest.fixture
def compacting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every server started in the test compacts its Raft log once it holds 20 entries."""
    monkeypatch.setenv("HORAE_RAFT_SNAPSHOT_THRESHOLD", "20")


def test_servers_restored_from_a_snapshot_fetch_the_history_from_a_peer(tmp_path: Path, compacting: None) -> None:
    with running_cluster(tmp_path, 3) as servers:
        leader = by_name(servers, agreed_leader(servers, FORM_TIMEOUT))
        with leader.client(timeout=15.0) as http:
            for job in JOBS:
                assert http.post("/v1/jobs", json=noop_job(job)).status_code == 201
            for run in range(RUNS):
                for job in JOBS:
                    assert http.post(f"/v1/jobs/{job}").status_code == 202
                for job in JOBS:
                    finished(leader, job, run + 1, RUN_TIMEOUT)
            expected = history(leader)
            assert all(len(ids) == RUNS for ids in expected.values()), expected
            for server in servers:
                wait_history(server, expected)

            # Compactions after the last result: the snapshots hold every result, the logs none.
            results_done = time.time()
            for _ in range(30):
                assert http.post(f"/v1/jobs/{JOBS[0]}/toggle").status_code == 200

            def compacted() -> bool:
                return all(
                    snapshot_file(s).exists() and snapshot_file(s).stat().st_mtime > results_done for s in servers
                )

            wait_until(compacted, REPLICATION_TIMEOUT, 0.1, "every server to snapshot after the last result")

        # A new server joins: the leader's log starts after the results, so it sends its snapshot.
        fourth = AgentProcess(tmp_path / "s4", node_name="s4", dev=False)
        fourth.extra_args = ["--server", "--join", servers[0].rpc_address]
        servers.append(fourth)  # running_cluster stops it too
        fourth.start(timeout=FORM_TIMEOUT)
        wait_history(fourth, expected)
        assert "history catch-up done" in fourth.log_text(50000), fourth.log_text()

        # A follower restarted without its horae.db loads its own snapshot, then copies the history.
        follower = next(s for s in servers[:3] if s is not leader)
        assert follower.stop() == 0
        for path in follower.data_dir.glob("horae.db*"):
            os.remove(path)
        follower.start(timeout=FORM_TIMEOUT)
        wait_history(follower, expected)
        log = follower.log_text(50000)
        assert log.count("history catch-up done") == 1, log

        # New results still reach every server, and the copied history is not doubled.
        response = httpx.post(f"{follower.url}/v1/jobs/{JOBS[1]}", timeout=15.0)
        assert response.status_code == 202, response.text
        for server in servers:
            wait_until(
                lambda s=server: len(history(s)[JOBS[1]]) == RUNS + 1,
                REPLICATION_TIMEOUT,
                0.1,
                f"the new result on {server.node_name}",
            )
            assert len(history(server)[JOBS[2]]) == RUNS
