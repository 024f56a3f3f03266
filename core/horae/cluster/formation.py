"""Cluster formation: which Raft peers a server starts with (pysyncobj has no auto-join, trap 7).

Rules, checked in this order:
1. Raft data from an earlier run (`<raft dir>/peers.json`): start with the peers stored there; the
   journal replays any membership change made since. A server that left its cluster (`horae leave`)
   wrote a `left` marker: its Raft data is dropped and it forms or joins as a new server.
2. `bootstrap_expect` <= 1 and no `join`: start alone (the --dev path).
3. Otherwise Hello every `join` address and every server learned from the answers, every
   `interval` seconds (`--retry-interval`):
   - when a server answers that it runs Raft with a known leader (the cluster is formed), Join
     through it (a follower forwards to the leader, which adds us with `addNodeToCluster`; a server
     already in the membership is left as is) and start with the membership it returns;
   - else, when `bootstrap_expect` > 1 and this server knows that many servers (itself included),
     start with all of them as peers. Start exactly N servers with `--bootstrap-expect N`: all of
     them then compute the same set. A server with `join` but `bootstrap_expect` <= 1 only joins.
   `timeout` seconds without either outcome raise FormationError (`--retry-max` attempts, or
   FORMATION_TIMEOUT; no limit with `--retry-join` and no `--retry-max`). When every server asked
   refuses this node's cluster key (`--encrypt`) or TLS setting, FormationError is raised at once: this node is the
   odd one out and retrying cannot help (a server refused by some only reports them as unreachable).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence

import grpc

from horae.cluster.raft import CommandOutcomeUnknown, NotLeader, RaftNode
from horae.cluster.rpc import ClusterView, Directory, RpcClient, ServerInfo
from horae.cluster.schemas import schema_refs
from horae.cluster.state import COMMAND_FORMAT_VERSION
from horae.cluster.tls import TlsRefusal
from horae.logs import fields

log = logging.getLogger("horae.cluster.formation")

FORMATION_TIMEOUT = 120.0
RETRY_INTERVAL = 0.5
HELLO_TIMEOUT = 2.0
JOIN_TIMEOUT = 10.0
PEERS_FILE = "peers.json"
LEFT_FILE = "left"
# The Raft journal and snapshot (RaftSettings names them), dropped after the server left its cluster.
RAFT_DATA_PREFIXES = ("raft.journal", "raft.snapshot")
ANNOUNCE_RETRY = 0.2


class FormationError(RuntimeError):
    """The cluster could not be formed or joined in time."""


def stored_peers(raft_dir: str) -> list[str] | None:
    try:
        with open(os.path.join(raft_dir, PEERS_FILE)) as handle:
            return list(json.load(handle)["peers"])
    except FileNotFoundError:
        return None


def mark_left(raft_dir: str) -> None:
    """This server left its cluster: its next start must not rejoin with the old membership."""
    os.makedirs(raft_dir, exist_ok=True)
    with open(os.path.join(raft_dir, LEFT_FILE), "w") as handle:
        handle.write("this server left its cluster; its Raft data is dropped on the next start\n")


def _drop_data_if_left(raft_dir: str) -> None:
    if not os.path.exists(os.path.join(raft_dir, LEFT_FILE)):
        return
    for name in os.listdir(raft_dir):
        if name == PEERS_FILE or name.startswith(RAFT_DATA_PREFIXES):
            os.remove(os.path.join(raft_dir, name))
    os.remove(os.path.join(raft_dir, LEFT_FILE))
    log.info("this server left its cluster before: starting as a new server", extra=fields(raft_dir=raft_dir))


def store_peers(raft_dir: str, peers: Sequence[str]) -> None:
    os.makedirs(raft_dir, exist_ok=True)
    path = os.path.join(raft_dir, PEERS_FILE)
    with open(path + ".tmp", "w") as handle:
        json.dump({"peers": list(peers)}, handle)
    os.replace(path + ".tmp", path)


async def form_cluster(
    directory: Directory,
    client: RpcClient,
    bootstrap_expect: int,
    join: Sequence[str],
    raft_dir: str,
    timeout: float = FORMATION_TIMEOUT,
    interval: float = RETRY_INTERVAL,
) -> list[str]:
    """The Raft addresses of the other servers to start with (see the module's rules)."""
    me = directory.me
    _drop_data_if_left(raft_dir)
    previous = stored_peers(raft_dir)
    if previous is not None:
        log.info("raft data found: restarting with stored peers", extra=fields(peers=",".join(previous) or "-"))
        return previous
    if bootstrap_expect <= 1 and not join:
        log.info("starting as a single server", extra=fields(node=me.node_name))
        store_peers(raft_dir, [])
        return []
    peers = await _discover(directory, client, bootstrap_expect, join, timeout, interval)
    store_peers(raft_dir, peers)
    return peers


async def _discover(
    directory: Directory, client: RpcClient, expect: int, join: Sequence[str], timeout: float, interval: float
) -> list[str]:
    me = directory.me
    deadline = time.monotonic() + timeout
    log.info(
        "forming cluster",
        extra=fields(node=me.node_name, bootstrap_expect=expect, join=",".join(join) or "-"),
    )
    problems: dict[str, str] = {}
    while True:
        targets = sorted(
            {*join, *(s.rpc_address for s in directory.servers() if s.raft_address != me.raft_address)}
            - {me.rpc_address}
        )
        answers = await asyncio.gather(*(client.hello(t, me, HELLO_TIMEOUT) for t in targets), return_exceptions=True)
        _stop_if_every_server_refused(targets, answers)
        formed_at: str | None = None
        for target, answer in zip(targets, answers, strict=True):
            if isinstance(answer, BaseException):
                problems[target] = _describe(answer)
                continue
            problems.pop(target, None)
            for server in answer.servers:
                if directory.learn(server):
                    log.info("learned server", extra=fields(peer=server.node_name, raft=server.raft_address))
            if answer.formed and formed_at is None:
                formed_at = target
        if formed_at is not None:
            peers = await _try_join(client, directory, formed_at)
            if peers is not None:
                return peers
        elif expect > 1:
            known = [s.raft_address for s in directory.servers()]
            if len(known) >= expect:
                peers = [address for address in known if address != me.raft_address]
                log.info("bootstrapping cluster", extra=fields(servers=len(known), peers=",".join(peers)))
                return peers
        if time.monotonic() >= deadline:
            known = ",".join(s.node_name for s in directory.servers())
            unreachable = "; ".join(f"{t}: {p}" for t, p in sorted(problems.items())) or "none"
            raise FormationError(
                f"cluster not formed within {timeout:g}s: know {len(directory.servers())} of "
                f"{expect} expected servers ({known}); unreachable: {unreachable}"
            )
        await asyncio.sleep(interval)


async def _try_join(client: RpcClient, directory: Directory, target: str) -> list[str] | None:
    me = directory.me
    log.info("cluster already formed: joining", extra=fields(via=target))
    try:
        view: ClusterView = await client.join(target, me, JOIN_TIMEOUT)
    except (grpc.aio.AioRpcError, OSError) as error:
        _refuse_if_unauthenticated(target, error)
        log.warning("join failed; retrying", extra=fields(via=target, error=_describe(error)))
        return None
    for server in view.servers:
        directory.learn(server)
    peers = [address for address in view.raft_members if address != me.raft_address]
    log.info("joined cluster", extra=fields(leader=view.leader_raft_address, peers=",".join(peers)))
    return peers


def _stop_if_every_server_refused(targets: list[str], answers: list) -> None:
    """Every server this node knows refused its cluster key: it is the odd one out, and waiting cannot help."""
    refused = [_unauthenticated(answer) for answer in answers]
    if targets and all(refused):
        reasons = "; ".join(f"{t}: {r}" for t, r in zip(targets, refused, strict=True))
        what = "TLS setting" if any(isinstance(a, TlsRefusal) for a in answers) else "cluster key (--encrypt)"
        raise FormationError(f"every server refused this server's {what}: {reasons}")


def _unauthenticated(error: object) -> str | None:
    if isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.UNAUTHENTICATED:
        return error.details() or "UNAUTHENTICATED"
    return None


def _refuse_if_unauthenticated(target: str, error: BaseException) -> None:
    if isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.UNAUTHENTICATED:
        raise FormationError(f"server {target} refused this server: {error.details()}")


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return repr(error)


async def announce_member(
    raft: RaftNode, me: ServerInfo, executors: list[str], config_schemas: Mapping[str, str] | None = None
) -> None:
    """Commit this server's member record, alive, once a leader is known (again if it changed); retries until done.

    `config_schemas` is what its plugins serve (`kind:name` -> schema JSON, see horae.cluster.schemas).
    """
    refs, texts = schema_refs(config_schemas or {})
    record = {**me.record(), "executors": sorted(executors), "status": "alive", "config_schemas": refs}
    command = {"v": COMMAND_FORMAT_VERSION, "op": "put_member", "member": record, "schemas": texts}

    def recorded() -> bool:
        current = raft.state.members.get(me.node_name) or {}
        held = all(digest in raft.state.schemas for digest in refs.values() if digest)
        return held and all(current.get(key) == value for key, value in record.items())

    while not recorded():
        if raft.leader_address is not None:
            try:
                result = await raft.submit({**command, "at_ms": int(time.time() * 1000)})
                if result.ok:
                    log.info("member record committed", extra=fields(node=me.node_name, raft=me.raft_address))
                    return
                log.warning("member record refused", extra=fields(reason=result.reason))
            except (NotLeader, CommandOutcomeUnknown) as error:
                log.debug("member record not committed yet", extra=fields(error=str(error)))
        await asyncio.sleep(ANNOUNCE_RETRY)
