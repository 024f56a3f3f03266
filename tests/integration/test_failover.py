"""Failover on a real 3-server cluster: no slot runs twice and none is missed within its catch-up window.

The jobs are `@every 1s` with a 30 s `catchup`, so every slot from a job's first run to its last must
appear exactly once in its executions, whatever happened to the leader in between.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.integration.agent_process import AgentProcess
from tests.integration.cluster_support import (
    FAILOVER_TIMEOUT,
    FORM_TIMEOUT,
    REPLICATION_TIMEOUT,
    agreed_leader,
    by_name,
    doubled_and_missing,
    every_second_job,
    executions,
    has_job,
    running_cluster,
    slot_ledger,
    slot_ms,
    start_cluster,
    stop_all,
)
from tests.support import wait_until

JOBS = [f"tick-{i}" for i in range(8)]
RUN_TIMEOUT = 20.0


def create_jobs(agent: AgentProcess) -> None:
    for name in JOBS:
        response = httpx.post(f"{agent.url}/v1/jobs", json=every_second_job(name), timeout=10.0)
        assert response.status_code == 201, response.text


def every_job_ran_after(agent: AgentProcess, moment_ms: int, timeout: float) -> None:
    """Wait until every job has an execution whose slot is after `moment_ms`, in the settled ledger."""

    def done() -> bool:
        ledger = slot_ledger(agent, JOBS)
        return all(slots and slots[-1] > moment_ms for slots in ledger.values())

    wait_until(done, timeout, 0.2, f"every job to run a slot after {moment_ms}")


def assert_each_slot_once(agent: AgentProcess) -> dict[str, list[int]]:
    ledger = slot_ledger(agent, JOBS)
    doubled, missing = doubled_and_missing(ledger)
    assert not doubled, f"slots run twice: {doubled}"
    assert not missing, f"slots never run: {missing}"
    return ledger


def test_leader_sigkill_runs_no_slot_twice_and_misses_none(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        leader = by_name(cluster, agreed_leader(cluster, FORM_TIMEOUT))
        create_jobs(leader)
        every_job_ran_after(leader, int(time.time() * 1000) + 1500, RUN_TIMEOUT)

        killed_at_ms = int(time.time() * 1000)
        leader.kill()
        survivors = [agent for agent in cluster if agent is not leader]
        new_leader = by_name(survivors, agreed_leader(survivors, FAILOVER_TIMEOUT))
        every_job_ran_after(new_leader, int(time.time() * 1000) + 2000, RUN_TIMEOUT)

        ledger = assert_each_slot_once(new_leader)
        assert all(slots[0] < killed_at_ms < slots[-1] for slots in ledger.values()), ledger


def test_a_stopped_old_leader_runs_nothing_after_losing_leadership(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        leader = by_name(cluster, agreed_leader(cluster, FORM_TIMEOUT))
        create_jobs(leader)
        every_job_ran_after(leader, int(time.time() * 1000) + 1500, RUN_TIMEOUT)

        assert leader.process is not None
        stopped_at_ms = int(time.time() * 1000)
        os.kill(leader.process.pid, signal.SIGSTOP)
        try:
            others = [agent for agent in cluster if agent is not leader]
            new_leader = by_name(others, agreed_leader(others, FAILOVER_TIMEOUT))
            every_job_ran_after(new_leader, stopped_at_ms + 2000, RUN_TIMEOUT)
            wait_until(lambda: time.time() * 1000 >= stopped_at_ms + 5000, 10, 0.05, "5 s of SIGSTOP")
        finally:
            os.kill(leader.process.pid, signal.SIGCONT)
        continued_at_ms = int(time.time() * 1000)
        # The old leader learns it lost and becomes a follower of the new one.
        agreed_leader(cluster, FAILOVER_TIMEOUT)
        every_job_ran_after(new_leader, int(time.time() * 1000) + 2000, RUN_TIMEOUT)

        assert_each_slot_once(new_leader)
        # Slots that fell due while it was stopped were run by the new leader, on another node:
        # the old leader dispatched none of them when it woke up believing it still led.
        for job in JOBS:
            for execution in executions(new_leader, job):
                if stopped_at_ms + 500 < slot_ms(execution) < continued_at_ms:
                    assert execution["node_name"] != leader.node_name, execution


def test_the_whole_cluster_stopped_and_started_keeps_every_job_and_execution(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        leader = by_name(cluster, agreed_leader(cluster, FORM_TIMEOUT))
        create_jobs(leader)
        every_job_ran_after(leader, int(time.time() * 1000) + 2000, RUN_TIMEOUT)
        before = slot_ledger(leader, JOBS)
    finally:
        stop_all(cluster)
    # Every server comes back with its stored peers; the cluster elects a leader again.
    restarted = [AgentProcess(agent.data_dir, node_name=agent.node_name, dev=False) for agent in cluster]
    try:
        for old, new in zip(cluster, restarted, strict=True):
            new.http_port, new.raft_port, new.rpc_port = old.http_port, old.raft_port, old.rpc_port
            new.url = old.url
            new.extra_args = old.extra_args
            new.start(wait_healthy=False)
        for agent in restarted:
            agent.wait_healthy(FORM_TIMEOUT)
        leader = by_name(restarted, agreed_leader(restarted, FORM_TIMEOUT))
        for agent in restarted:
            wait_until(lambda a=agent: all(has_job(a, job) for job in JOBS), REPLICATION_TIMEOUT, 0.1, "jobs")
            after = slot_ledger(agent, JOBS)
            for job in JOBS:
                assert set(before[job]) <= set(after[job]), (agent.node_name, job)
        every_job_ran_after(leader, int(time.time() * 1000) + 1000, RUN_TIMEOUT)
    finally:
        try:
            stop_all(restarted)
        finally:
            for agent in restarted:
                print(f"----- {agent.node_name} log -----\n{agent.log_text(20000)}")
