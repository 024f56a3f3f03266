"""Fault harness: random faults against a real 3-server cluster running 100 `@every 1s` jobs, then a ledger.

Each round hits one server (the leader half of the time) with one fault: `kill -9` and a restart,
SIGSTOP for a few seconds then SIGCONT, or a clean restart (SIGTERM). After the last round the
ledger of every job's slots is checked: each slot from a job's first run to its last must have run
exactly once (the jobs' 60 s catch-up window covers every gap a single fault makes).

    python -m tests.bench.chaos [--rounds N] [--seed S]     (make bench runs 10 rounds)

Network partitions with `ip netns` are not among the faults yet: every node shares 127.0.0.1 here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path

from horae.table import format_table
from tests.bench.bench_scheduler import create_all
from tests.integration.agent_process import AgentProcess
from tests.integration.cluster_support import (
    agreed_leader,
    by_name,
    doubled_and_missing,
    every_second_job,
    slot_ledger,
    start_cluster,
    stop_all,
)

JOBS = 100
DEFAULT_ROUNDS = 10
TIMEOUT_S = 60.0
FAULTS = ("kill -9, restart", "stop, continue", "clean restart")
# Intents of a killed node close when its heartbeat deadline passes (10 s by default).
SETTLE_S = 15.0


def same_node(agent: AgentProcess) -> AgentProcess:
    again = AgentProcess(agent.data_dir, node_name=agent.node_name, dev=False)
    again.http_port, again.raft_port, again.rpc_port = agent.http_port, agent.raft_port, agent.rpc_port
    again.url, again.extra_args = agent.url, agent.extra_args
    return again


async def fault(cluster: list[AgentProcess], rng: random.Random) -> str:
    leader_name = await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S)
    target = by_name(cluster, leader_name) if rng.random() < 0.5 else rng.choice(cluster)
    kind = rng.choice(FAULTS)
    pause = rng.uniform(1.0, 5.0)
    assert target.process is not None
    if kind == "stop, continue":
        os.kill(target.process.pid, signal.SIGSTOP)
        await asyncio.sleep(pause)
        os.kill(target.process.pid, signal.SIGCONT)
    else:
        if kind == "kill -9, restart":
            target.kill()
        else:
            await asyncio.to_thread(target.stop)
        await asyncio.sleep(pause)
        again = same_node(target)
        cluster[cluster.index(target)] = again
        await asyncio.to_thread(again.start, TIMEOUT_S)
    role = "leader" if target.node_name == leader_name else "follower"
    return f"{kind} of {role} {target.node_name} ({pause:.1f} s)"


async def chaos(root: Path, rounds: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    cluster = await asyncio.to_thread(start_cluster, root, 3)
    names = [f"chaos-{i}" for i in range(JOBS)]
    events: list[str] = []
    try:
        leader = by_name(cluster, await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S))
        await create_all(leader.url, [every_second_job(name, catchup="60s") for name in names])
        await asyncio.sleep(3)
        for number in range(1, rounds + 1):
            moment = time.strftime("%H:%M:%S", time.gmtime())
            events.append(f"round {number} at {moment}Z: {await fault(cluster, rng)}")
            print(events[-1], flush=True)
            await asyncio.sleep(rng.uniform(2.0, 5.0))
        await asyncio.sleep(SETTLE_S)
        leader = by_name(cluster, await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S))
        ledger = await asyncio.to_thread(slot_ledger, leader, names)
    finally:
        await asyncio.to_thread(stop_all, cluster)
    doubled, missing = doubled_and_missing(ledger)
    expected = sum((slots[-1] - slots[0]) // 1000 + 1 for slots in ledger.values() if slots)
    ran = sum(len(set(slots)) for slots in ledger.values())
    once = ran - len({pair for pair in doubled})
    return [
        (f"chaos, {rounds} rounds (seed {seed}): slots expected", f"{expected:,}", "", f"{JOBS} x @every 1s"),
        ("  run exactly once", f"{once:,}", "all", ""),
        ("  run twice or more", f"{len(set(doubled)):,}", "0", ", ".join(f"{j}@{s}" for j, s in doubled[:5])),
        ("  missed", f"{len(missing):,}", "0", ", ".join(f"{j}@{s}" for j, s in missing[:5])),
    ]


async def run(rounds: int = DEFAULT_ROUNDS, seed: int | None = None) -> None:
    seed = int(time.time()) if seed is None else seed
    data_dir = tempfile.mkdtemp(prefix="hb-chaos-", dir="/tmp")
    rows = await chaos(Path(data_dir), rounds, seed)
    if all(row[1] == "0" for row in rows[2:]):
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        print(f"the nodes' data dirs and logs are kept in {data_dir}")
    print("\nchaos, 3 servers on 127.0.0.1, noop executor")
    print(format_table(("figure", "measured", "target", "note"), rows))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.chaos")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's faults (printed in its table)")
    args = parser.parse_args()
    asyncio.run(run(args.rounds, args.seed))


if __name__ == "__main__":
    main()
