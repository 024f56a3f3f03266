"""Fault harness: random faults against a real 3-server cluster running 100 `@every 1s` jobs, then a ledger.

Each round hits one server (the leader half of the time) with one fault: `kill -9` and a restart,
SIGSTOP for a few seconds then SIGCONT, a clean restart (SIGTERM), or — where the machine allows
network namespaces (root, `ip netns`) — a network partition: the leader, or a follower, is cut off
from the other two for a few seconds while the harness still reaches every node, then healed. After
the last round the ledger of every job's slots is checked: each slot from a job's first run to its
last must have run exactly once (the jobs' 60 s catch-up window covers every gap a single fault makes).

    python -m tests.bench chaos [--rounds N] [--seed S] [--no-partitions] [--keep-data]
    (make bench runs 10 rounds)

With partitions each server runs in its own namespace (tests/bench/netns.py); without, all share 127.0.0.1.
The data dir (kept when a slot doubled or went missing, or a server had to be killed) holds each
node's log and `leaders.log`: every change in what each node answered to GET /v1/leader.
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from horae.table import format_table
from tests.bench.bench_scheduler import bounded, create_all, executions_of
from tests.bench.netns import Netns, NetnsUnavailable
from tests.integration.agent_process import AgentProcess
from tests.integration.cluster_support import (
    agreed_leader,
    by_name,
    doubled_and_missing,
    every_second_job,
    noop_job,
    slot_ledger,
    slot_ms,
    start_cluster,
)

JOBS = 100
SERVERS = 3
DEFAULT_ROUNDS = 10
TIMEOUT_S = 60.0
FAULTS = ("kill -9, restart", "stop, continue", "clean restart")
PARTITIONS = ("partition the leader", "partition a follower")
# Long enough for the old leader's fallback (2 s) and a new election; sometimes past a node's
# heartbeat deadline (10 s), after which the leader marks it failed.
PARTITION_S = (3.0, 12.0)
POLL_S = 0.1
# Intents of a killed node close when its heartbeat deadline passes (10 s by default).
SETTLE_S = 15.0
# The ledger leaves out the last 3 s; a job whose last run is older than this (3 s + 7 s) stopped running.
STALLED_AFTER_MS = 10_000


@dataclass
class Partition:
    """What one partition looked like from outside: who was cut off, when, and what each side said."""

    node: str
    was_leader: bool
    start_ms: int
    end_ms: int = 0
    old_leader_claims_s: float | None = None  # last moment the cut-off leader still named itself
    new_leader_s: float | None = None  # the majority agreed on another leader
    write: str = ""  # a job created through the cut-off node during the partition
    probe: str = ""  # that job's name
    seen: set[str] = field(default_factory=set)  # what the cut-off node answered to GET /v1/leader


def same_node(agent: AgentProcess) -> AgentProcess:
    again = AgentProcess(
        agent.data_dir, node_name=agent.node_name, dev=False, host=agent.host, command_prefix=agent.command_prefix
    )
    again.http_port, again.raft_port, again.rpc_port = agent.http_port, agent.raft_port, agent.rpc_port
    again.url, again.extra_args = agent.url, agent.extra_args
    return again


async def named_leader(http: httpx.AsyncClient, agent: AgentProcess) -> str:
    try:
        response = await http.get(f"{agent.url}/v1/leader", timeout=1.0)
    except httpx.HTTPError as error:
        return type(error).__name__
    return response.json().get("Name", "?") if response.status_code == 200 else f"HTTP {response.status_code}"


async def write_through(agent: AgentProcess, name: str, timeout: float) -> str:
    """Create a job through `agent`: the status (or error) and how long the answer took."""
    began = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.post(f"{agent.url}/v1/jobs", json=noop_job(name))
        outcome = f"HTTP {response.status_code} {response.text[:60]!r}"
    except httpx.HTTPError as error:
        outcome = type(error).__name__
    return f"{outcome} after {time.monotonic() - began:.1f} s"


async def partition(
    cluster: list[AgentProcess], net: Netns, target: AgentProcess, leader_name: str, seconds: float, probe: str
) -> Partition:
    """Cut `target` off for `seconds`, watching both sides' idea of the leader, then heal."""
    node = cluster.index(target)
    others = [agent for agent in cluster if agent is not target]
    record = Partition(target.node_name, target.node_name == leader_name, round(time.time() * 1000), probe=probe)
    await asyncio.to_thread(net.isolate, node)
    began = time.monotonic()
    write = asyncio.create_task(write_through(target, probe, seconds))
    try:
        async with httpx.AsyncClient() as http:
            while (elapsed := time.monotonic() - began) < seconds:
                answers = await asyncio.gather(*(named_leader(http, agent) for agent in cluster))
                mine, majority = answers[node], {answer for i, answer in enumerate(answers) if i != node}
                record.seen.add(mine)
                if mine == target.node_name and record.was_leader:
                    record.old_leader_claims_s = elapsed
                if record.new_leader_s is None and len(majority) == 1 and majority <= {a.node_name for a in others}:
                    record.new_leader_s = elapsed
                await asyncio.sleep(POLL_S)
        record.write = await write
    finally:
        write.cancel()
        await asyncio.to_thread(net.heal)
        record.end_ms = round(time.time() * 1000)
    return record


async def fault(
    cluster: list[AgentProcess], rng: random.Random, net: Netns | None, partitions: list[Partition], number: int
) -> str:
    leader_name = await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S)
    kind = rng.choice(FAULTS + (PARTITIONS if net is not None else ()))
    if kind == "partition the leader":
        target = by_name(cluster, leader_name)
    elif kind == "partition a follower":
        target = rng.choice([agent for agent in cluster if agent.node_name != leader_name])
    else:
        target = by_name(cluster, leader_name) if rng.random() < 0.5 else rng.choice(cluster)
    pause = rng.uniform(*PARTITION_S) if kind in PARTITIONS else rng.uniform(1.0, 5.0)
    assert target.process is not None
    role = "leader" if target.node_name == leader_name else "follower"
    if kind in PARTITIONS:
        assert net is not None
        record = await partition(cluster, net, target, leader_name, pause, f"chaos-probe-{number}")
        partitions.append(record)
        return f"{kind} {target.node_name} ({pause:.1f} s): {describe(record)}"
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
    return f"{kind} of {role} {target.node_name} ({pause:.1f} s)"


def stop_each(cluster: list[AgentProcess]) -> list[str]:
    """SIGTERM every server; the names of those that had to be killed (their logs say why), not an exception:
    the ledger was read before, and the table is still worth printing."""
    unclean = []
    for agent in cluster:
        try:
            if agent.process is not None and agent.stop() != 0:
                unclean.append(f"{agent.node_name} (exit {agent.returncode})")
        except AssertionError:
            unclean.append(f"{agent.node_name} (killed)")
    return unclean


async def watch_leaders(cluster: list[AgentProcess], path: Path) -> None:
    """Write each node's answer to GET /v1/leader whenever one changes (Raft's view, for reading the logs)."""
    last: list[str] = []
    async with httpx.AsyncClient() as http:
        with path.open("a") as out:
            while True:
                answers = await asyncio.gather(*(named_leader(http, agent) for agent in cluster))
                if answers != last:
                    moment = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
                    pairs = " ".join(
                        f"{agent.node_name}={answer}" for agent, answer in zip(cluster, answers, strict=True)
                    )
                    out.write(f"{moment} {pairs}\n")
                    out.flush()
                    last = answers
                await asyncio.sleep(0.25)


def describe(record: Partition) -> str:
    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f} s"

    parts = [f"majority agreed on a new leader after {seconds(record.new_leader_s)}"] if record.was_leader else []
    if record.was_leader:
        parts.append(f"cut-off node last named itself leader at {seconds(record.old_leader_claims_s)}")
    parts.append(f"it answered /v1/leader with {sorted(record.seen)}")
    parts.append(f"a job created through it: {record.write}")
    return "; ".join(parts)


async def failure_reasons(http: httpx.AsyncClient, runs: list[dict]) -> str:
    """The commonest first lines of failed executions' output, e.g. "3x node s3 failed", for the table."""
    failed = {run["id"] for run in runs if run.get("finished_at") and not run.get("success")}
    jobs = sorted({run["job_name"] for run in runs if run["id"] in failed})

    async def outputs(job: str) -> list[str]:
        response = await http.get(f"/v1/jobs/{job}/executions")
        return [(e.get("output") or "").strip().splitlines()[:1] for e in response.json() if e["id"] in failed]

    reasons = Counter(
        (line[0] if line else "(no output)")[:70] for batch in await bounded(jobs, outputs) for line in batch
    )
    return "; ".join(f"{count}x {reason}" for reason, count in reasons.most_common(3))


def inside(runs: list[dict], records: list[Partition]) -> Counter:
    """Executions on a cut-off node for slots inside its partition, by when they started and how they ended."""
    seen: Counter = Counter()
    for run in runs:
        for record in records:
            if run["node_name"] == record.node and record.start_ms <= slot_ms(run) <= record.end_ms:
                started = run.get("started_at")
                after = started is not None and moment_ms(started) > record.end_ms
                ended = "ok" if run.get("success") else "failed"
                seen[f"{ended} {'after heal' if after else 'during'}"] += 1
    return seen


def moment_ms(text: str) -> int:
    return slot_ms({"slot": text})


async def chaos(root: Path, rounds: int, seed: int, net: Netns | None) -> list[tuple]:
    rng = random.Random(seed)
    places = [(net.address(i), net.prefix(i)) for i in range(SERVERS)] if net is not None else ()
    cluster = await asyncio.to_thread(start_cluster, root, SERVERS, places)
    names = [f"chaos-{i}" for i in range(JOBS)]
    partitions: list[Partition] = []
    watcher = asyncio.create_task(watch_leaders(cluster, root / "leaders.log"))
    try:
        leader = by_name(cluster, await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S))
        await create_all(leader.url, [every_second_job(name, catchup="60s") for name in names])
        await asyncio.sleep(3)
        for number in range(1, rounds + 1):
            moment = time.strftime("%H:%M:%S", time.gmtime())
            print(f"round {number} at {moment}Z: {await fault(cluster, rng, net, partitions, number)}", flush=True)
            await asyncio.sleep(rng.uniform(2.0, 5.0))
        await asyncio.sleep(SETTLE_S)
        leader = by_name(cluster, await asyncio.to_thread(agreed_leader, cluster, TIMEOUT_S))
        ledger = await asyncio.to_thread(slot_ledger, leader, names)
        ledger_read_ms = time.time() * 1000
        async with httpx.AsyncClient(base_url=leader.url, timeout=10.0) as http:
            runs = await executions_of(http, names)
            reasons = await failure_reasons(http, runs)
            probes = {r.probe: (await http.get(f"/v1/jobs/{r.probe}")).status_code for r in partitions}
    finally:
        watcher.cancel()
        unclean = await asyncio.to_thread(stop_each, cluster)
    doubled, missing = doubled_and_missing(ledger)
    expected = sum((slots[-1] - slots[0]) // 1000 + 1 for slots in ledger.values() if slots)
    ran = sum(len(set(slots)) for slots in ledger.values())
    once = ran - len(set(doubled))
    failed = sum(1 for run in runs if run.get("finished_at") and not run.get("success"))
    # The ledger checks each job from its first run to its last: a cluster that stopped scheduling altogether
    # would pass it. A job whose last run is older than this stopped running.
    stalled = [job for job, slots in ledger.items() if not slots or ledger_read_ms - slots[-1] > STALLED_AFTER_MS]
    rows = [
        (f"chaos, {rounds} rounds (seed {seed}): slots expected", f"{expected:,}", "", f"{JOBS} x @every 1s"),
        ("  run exactly once", f"{once:,}", "all", ""),
        ("  run twice or more", f"{len(set(doubled)):,}", "0", ", ".join(f"{j}@{s}" for j, s in doubled[:5])),
        ("  missed", f"{len(missing):,}", "0", ", ".join(f"{j}@{s}" for j, s in missing[:5])),
        ("  executions that failed", f"{failed:,}", "", reasons),
        ("servers not exiting within 30 s of SIGTERM", f"{len(unclean)}", "0", ", ".join(unclean)),
        ("jobs whose runs stopped before the end", f"{len(stalled)}", "0", ", ".join(stalled[:5])),
    ]
    if net is not None:
        counts = inside(runs, partitions)
        led = sum(1 for record in partitions if record.was_leader)
        kept = [record for record in partitions if probes[record.probe] == 200]
        rows += [
            ("partitions (leader, follower)", f"{len(partitions)} ({led}, {len(partitions) - led})", "", ""),
            (
                "  runs on a cut-off node, slot inside",
                f"{sum(counts.values())}",
                "",
                ", ".join(f"{n} {what}" for what, n in sorted(counts.items())),
            ),
            (
                "  jobs written through it, exist after",
                f"{len(kept)} of {len(partitions)}",
                "",
                ", ".join(
                    f"{r.probe} via {'leader' if r.was_leader else 'follower'} {r.node}: {r.write}" for r in kept
                ),
            ),
        ]
    return rows


async def run(
    rounds: int = DEFAULT_ROUNDS, seed: int | None = None, partitions: bool = True, keep: bool = False
) -> None:
    seed = int(time.time()) if seed is None else seed
    note = "3 servers on 127.0.0.1, noop executor, no partitions (--no-partitions)"
    net = None
    if partitions:
        try:
            # In the loop's (main) thread, before anything else runs on it: it installs signal handlers.
            net = Netns.create(SERVERS)
            note = f"3 servers in network namespaces ({net.subnet}.0/24), noop executor"
        except NetnsUnavailable as reason:
            note = f"3 servers on 127.0.0.1, noop executor, no partitions: {reason}"
    data_dir = tempfile.mkdtemp(prefix="hb-chaos-", dir="/tmp")
    try:
        rows = await chaos(Path(data_dir), rounds, seed, net)
    finally:
        if net is not None:
            await asyncio.to_thread(net.close)
    if all(row[1] == "0" for row in (rows[2], rows[3], rows[5], rows[6])) and not keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        print(f"the nodes' data dirs and logs are kept in {data_dir}")
    print(f"\nchaos, {note}")
    print(format_table(("figure", "measured", "target", "note"), rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench chaos")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's faults (printed in its table)")
    parser.add_argument("--no-partitions", action="store_true", help="leave network partitions out of the mix")
    parser.add_argument("--keep-data", action="store_true", help="keep the nodes' data dirs and logs")
    args = parser.parse_args(argv)
    asyncio.run(run(args.rounds, args.seed, not args.no_partitions, args.keep_data))


if __name__ == "__main__":
    main()
