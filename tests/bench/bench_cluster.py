"""Cluster figures (issue 4): failover time, throughput on 3 servers + 2 clients, leader CPU with 1,000 agents.

Every process is real and shares this machine's cores: three `horae agent --server`, two client agents,
and for the heartbeat figure one process that holds 1,000 agents' links (`link_simulator.py`).
Measured, not asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from horae.scheduler import DEFAULT_LEAD_SECONDS
from horae.table import format_table
from tests.bench.bench_scheduler import create_all, delete_all, executions_of, ms_of, percentile, steady
from tests.integration.agent_process import AgentProcess
from tests.integration.cluster_support import (
    agreed_leader,
    by_name,
    doubled_and_missing,
    every_second_job,
    slot_ledger,
    start_client,
    start_cluster,
    stop_all,
    wait_status,
)

KILLS = 20
# Each kill follows this long with all three servers up.
SETTLE_S = 3.0
FAILOVER_JOBS = 20  # @every 1s each: some slot falls due every 50 ms
RATES = (300, 500)
SIMULATED_AGENTS = 1000
CPU_WINDOW_S = 20.0
TIMEOUT_S = 60.0


def restart_like(agent: AgentProcess) -> AgentProcess:
    """The same node again: its data dir, ports and flags."""
    again = AgentProcess(agent.data_dir, node_name=agent.node_name, dev=False)
    again.http_port, again.raft_port, again.rpc_port, again.url = (
        agent.http_port,
        agent.raft_port,
        agent.rpc_port,
        agent.url,
    )
    again.extra_args = agent.extra_args
    return again


async def first_fire_after(http: httpx.AsyncClient, names: list[str], killed_ms: int) -> float | None:
    """When the new leader's first execution started: the earliest start of a slot the old leader cannot
    have dispatched (it hands a slot to Raft DEFAULT_LEAD_SECONDS before it is due)."""
    first_slot_ms = killed_ms + DEFAULT_LEAD_SECONDS * 1000
    started = [
        ms_of(e["started_at"])
        for e in await executions_of(http, names)
        if e.get("started_at") and e.get("slot") and ms_of(e["slot"]) >= first_slot_ms
    ]
    return min(started) if started else None


async def failover(root: Path) -> list[tuple]:
    cluster = await asyncio.to_thread(start_cluster, root, 3)
    names = [f"fo-{i}" for i in range(FAILOVER_JOBS)]
    gaps: list[float] = []
    try:
        leader = by_name(cluster, await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S))
        await create_all(leader.url, [every_second_job(name) for name in names])
        await asyncio.sleep(3)
        for _ in range(KILLS):
            leader = by_name(cluster, await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S))
            killed_ms = int(time.time() * 1000)
            leader.kill()
            survivors = [agent for agent in cluster if agent is not leader]
            new_leader = by_name(survivors, await asyncio.to_thread(agreed_leader, survivors, TIMEOUT_S))
            async with httpx.AsyncClient(base_url=new_leader.url, timeout=10.0) as http:
                first: float | None = None
                deadline = time.monotonic() + TIMEOUT_S
                while first is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    first = await first_fire_after(http, names, killed_ms)
            if first is not None:
                gaps.append(first - killed_ms)
            again = restart_like(leader)
            cluster[cluster.index(leader)] = again
            await asyncio.to_thread(again.start, TIMEOUT_S)
            await asyncio.to_thread(wait_status, new_leader, again.node_name, "alive", TIMEOUT_S)
            await asyncio.sleep(SETTLE_S)  # a restarted server catches up before the next kill
        leader = by_name(cluster, await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S))
        await asyncio.sleep(3)  # intents of killed leaders close when their heartbeat deadline passes
        ledger = await asyncio.to_thread(slot_ledger, leader, names)
        doubled, missing = doubled_and_missing(ledger)
        runs = sum(len(slots) for slots in ledger.values())
        await delete_all(leader.url, names)
    finally:
        await asyncio.to_thread(stop_all, cluster)
    return [
        (
            f"failover, kill -9 of the leader → next fire (p50) over {len(gaps)} kills",
            f"{percentile(gaps, 0.5):.0f} ms",
            "",
            "3 servers",
        ),
        ("failover p99", f"{percentile(gaps, 0.99):.0f} ms", "≤ 1,500 ms", f"max {max(gaps):.0f} ms"),
        (
            "failover ledger: slots run / doubled / missed",
            f"{runs} / {len(doubled)} / {len(missing)}",
            "0 doubled",
            f"{FAILOVER_JOBS} x @every 1s, catchup 30s",
        ),
    ]


async def throughput(root: Path) -> list[tuple]:
    cluster = await asyncio.to_thread(start_cluster, root, 3)
    agents = list(cluster)
    rows: list[tuple] = []
    try:
        leader = by_name(cluster, await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S))
        for name in ("client-1", "client-2"):
            agents.append(await asyncio.to_thread(start_client, root, name, cluster, {"role": "worker"}))
            await asyncio.to_thread(wait_status, leader, name, "alive", TIMEOUT_S)
        leader_process = psutil.Process(leader.process.pid)
        async with httpx.AsyncClient(base_url=leader.url, timeout=30.0) as http:
            for rate in RATES:
                leader_process.cpu_percent()
                result, names = await asyncio.wait_for(steady(http, rate, f"rate{rate}"), TIMEOUT_S)
                cpu = leader_process.cpu_percent()
                nodes = {e["node_name"] for e in await executions_of(http, names[:50])}
                await delete_all(leader.url, names)
                late = result["late"]
                rows += [
                    (
                        f"{rate} x @every 1s on 3 servers + 2 clients: executions finished",
                        f"{result['rate']:,.0f} /s",
                        "≥ 300 /s",
                        f"{result['count']}/{result['expected']} slots started; {result['failed']} failed; "
                        f"{len(nodes)} nodes ran them",
                    ),
                    (
                        "  lateness p50 / p99 / max",
                        f"{percentile(late, 0.5):.0f} / {percentile(late, 0.99):.0f} / {max(late):.0f} ms",
                        "p99 ≤ 50 ms",
                        f"leader CPU {cpu:.0f} % of a core",
                    ),
                ]
    finally:
        await asyncio.to_thread(stop_all, agents)
    return rows


async def heartbeats(root: Path) -> list[tuple]:
    cluster = await asyncio.to_thread(start_cluster, root, 3)
    simulator: subprocess.Popen | None = None
    try:
        leader = by_name(cluster, await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S))
        simulator = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.link_simulator", leader.rpc_address, str(SIMULATED_AGENTS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert simulator.stdout is not None
        linked = await asyncio.to_thread(simulator.stdout.readline)  # "linked N" once all are linked
        async with httpx.AsyncClient(base_url=leader.url, timeout=30.0) as http:
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline:
                alive = sum(1 for m in (await http.get("/v1/members")).json() if m["statusText"] == "alive")
                if alive >= SIMULATED_AGENTS + 3:
                    break
                await asyncio.sleep(0.5)
        process = psutil.Process(leader.process.pid)
        before = process.cpu_times()
        started = time.monotonic()
        await asyncio.sleep(CPU_WINDOW_S)
        after = process.cpu_times()
        busy = (after.user + after.system - before.user - before.system) / (time.monotonic() - started)
        async with httpx.AsyncClient(base_url=leader.url, timeout=30.0) as http:
            failed = sum(1 for m in (await http.get("/v1/members")).json() if m["statusText"] == "failed")
    finally:
        if simulator is not None:
            simulator.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                simulator.wait(10)
        await asyncio.to_thread(stop_all, cluster)
    return [
        (
            f"leader CPU, {SIMULATED_AGENTS} agents heartbeating every 3 s",
            f"{busy * 100:.1f} % of a core",
            "< 25 %",
            f"{linked.strip()}; {alive} alive, {failed} failed after {CPU_WINDOW_S:g} s",
        )
    ]


async def run() -> None:
    rows: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="hb-cluster-", dir="/tmp") as data_dir:
        root = Path(data_dir)
        rows += await failover(root / "failover")
        rows += await throughput(root / "throughput")
        rows += await heartbeats(root / "heartbeats")
    print("\ncluster, real processes on 127.0.0.1, noop executor")
    print(format_table(("figure", "measured", "target", "note"), rows))
