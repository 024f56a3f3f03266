"""Raft membership for operators: list the peers, remove a dead server, and leave cleanly.

pysyncobj changes the membership one server at a time, through the leader, and a leader cannot
remove itself (PYSYNCOBJ.md trap 7): `remove_peer` runs on the leader (followers forward it over
RPC), and a leader that leaves hands its leadership over first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from horae.cluster.raft import NotLeader, RaftNode
from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState
from horae.logs import fields

log = logging.getLogger("horae.cluster.membership")


class PeerNotFound(LookupError):
    """No Raft peer or member record matches the id."""


class IsLeader(RuntimeError):
    """The peer to remove is the leader: it must leave (handing leadership over) instead."""


@dataclass(frozen=True)
class Peer:
    node: str
    raft_address: str
    leader: bool

    def view(self) -> dict[str, Any]:
        """One row of `GET /v1/raft/peers` (Dkron's list-peers: Node, ID, Address, State, Voter)."""
        return {
            "node": self.node,
            "id": self.raft_address,
            "address": self.raft_address,
            "state": "leader" if self.leader else "follower",
            "leader": self.leader,
            "voter": True,  # pysyncobj has no non-voting members
        }


def peers(raft: RaftNode, state: ClusterState) -> list[Peer]:
    """The Raft membership as this server sees it, named from the member records."""
    names = _names_by_address(state)
    leader = raft.leader_address
    return [Peer(names.get(address, ""), address, address == leader) for address in raft.raft_members()]


def _names_by_address(state: ClusterState) -> dict[str, str]:
    return {
        record["raft_address"]: name
        for name, record in list(state.members.items())
        if record.get("raft_address") and record.get("role", "server") == "server"
    }


def resolve(raft: RaftNode, state: ClusterState, peer_id: str) -> tuple[str, str]:
    """(node name, Raft address) of a peer named by either; PeerNotFound when neither matches."""
    names = _names_by_address(state)
    if peer_id in raft.raft_members() or peer_id in names:
        return names.get(peer_id, ""), peer_id
    record = state.members.get(peer_id)
    if record is not None and record.get("raft_address"):
        return peer_id, record["raft_address"]
    known = ", ".join(f"{names.get(a) or '?'} ({a})" for a in raft.raft_members())
    raise PeerNotFound(f"no Raft peer or server named {peer_id!r}; the peers are {known}")


async def remove_peer(
    raft: RaftNode,
    state: ClusterState,
    peer_id: str,
    leaving: bool,
    forget_heartbeats: Callable[[str], None] | None = None,
) -> tuple[str, str]:
    """Remove a server from the Raft membership (leader only); returns its (name, Raft address).

    A server that leaves keeps its member record, marked `left` (it commits that itself first, and
    the leader again after the removal, in case its link re-registered it meanwhile); a server
    removed by an operator is forgotten. Either way the leader stops waiting for its heartbeats,
    so it is not marked failed later. A server no longer in the Raft membership only has its record
    dropped.
    """
    if not raft.is_leader:
        raise NotLeader("only the leader changes the Raft membership")
    name, address = resolve(raft, state, peer_id)
    if address == raft.self_address:
        raise IsLeader(
            f"{name or address} is the leader and cannot remove itself: make it leave instead "
            "(`horae leave` against its HTTP API), which hands leadership to another server first"
        )
    if address in raft.raft_members():
        started = time.monotonic()
        await raft.remove_server(address)
        log.info(
            "server removed from raft",
            extra=fields(
                peer=name or "-", raft=address, leaving=leaving, ms=round((time.monotonic() - started) * 1000)
            ),
        )
    if name and forget_heartbeats is not None:
        forget_heartbeats(name)
    if name and leaving:
        await raft.submit(_left_command(name), forward=False)
    elif name:
        await raft.submit({"v": COMMAND_FORMAT_VERSION, "op": "remove_member", "name": name}, forward=False)
    return name, address


async def mark_left(raft: RaftNode, name: str) -> None:
    """Commit this server's own status `left` (forwarded to the leader; read back locally before it returns)."""
    result = await raft.submit(_left_command(name))
    if not result.ok:
        log.warning("left status not committed", extra=fields(node=name, reason=result.reason))


def _left_command(name: str) -> dict[str, Any]:
    return {
        "v": COMMAND_FORMAT_VERSION,
        "op": "set_member_status",
        "name": name,
        "status": "left",
        "at_ms": int(time.time() * 1000),
    }
