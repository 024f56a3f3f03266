"""Member records in the replicated state, and the formation rules that need no network."""

from __future__ import annotations

import asyncio
from pathlib import Path

from horae.cluster.formation import form_cluster, store_peers
from horae.cluster.rpc import Directory, RpcClient, ServerInfo
from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState

ME = ServerInfo("s1", "127.0.0.1:8190", "127.0.0.1:6868", {"zone": "a"})


def put_member(record: dict) -> dict:
    return {"v": COMMAND_FORMAT_VERSION, "op": "put_member", "member": record}


def test_put_member_is_idempotent_and_snapshotted() -> None:
    state = ClusterState()
    first = state.apply(put_member(ME.record()))
    again = state.apply(put_member(ME.record()))
    assert first.ok and first.reason == ""
    assert again.ok and again.reason == "unchanged"
    assert state.members["s1"]["rpc_address"] == "127.0.0.1:6868"
    moved = state.apply(put_member({**ME.record(), "rpc_address": "127.0.0.1:7000"}))
    assert moved.ok and state.members["s1"]["rpc_address"] == "127.0.0.1:7000"
    restored = ClusterState()
    restored.restore(state.snapshot())
    assert restored.members == state.members


def test_snapshot_without_members_restores_empty() -> None:
    snapshot = ClusterState().snapshot()
    del snapshot["members"]
    restored = ClusterState()
    restored.restore(snapshot)
    assert restored.members == {}


def test_directory_maps_raft_to_rpc_from_hello_and_records() -> None:
    state = ClusterState()
    directory = Directory(ME, state)
    other = ServerInfo("s2", "127.0.0.1:8191", "127.0.0.1:6869")
    assert directory.learn(other) and not directory.learn(other)
    assert directory.rpc_address("127.0.0.1:8191") == "127.0.0.1:6869"
    state.apply(put_member({**other.record(), "rpc_address": "127.0.0.1:7001"}))
    assert directory.rpc_address("127.0.0.1:8191") == "127.0.0.1:7001"
    assert [s.node_name for s in directory.servers()] == ["s1", "s2"]


def test_single_server_starts_alone_and_restart_uses_stored_peers(tmp_path: Path) -> None:
    async def form(expect: int, join: list[str]) -> list[str]:
        client = RpcClient()
        try:
            return await form_cluster(Directory(ME, ClusterState()), client, expect, join, str(tmp_path / "raft"))
        finally:
            await client.close()

    assert asyncio.run(form(1, [])) == []
    store_peers(str(tmp_path / "raft"), ["127.0.0.1:8191", "127.0.0.1:8192"])
    # Raft data from an earlier run wins over the flags: no network is needed.
    assert asyncio.run(form(3, ["127.0.0.1:1"])) == ["127.0.0.1:8191", "127.0.0.1:8192"]
