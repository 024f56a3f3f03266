"""The pysyncobj bridge on one member: batched submits, and a restart that replays the journal."""

import asyncio

from horae.cluster.raft import RaftNode
from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState
from tests.integration.agent_process import free_port
from tests.support import async_wait_until


def put(name):
    return {"v": COMMAND_FORMAT_VERSION, "op": "put_job", "job": {"name": name}, "next_fire_ms": 1}


async def start(address, data_dir):
    state = ClusterState()
    leading = asyncio.Event()
    node = RaftNode(address, [], state, str(data_dir), on_leadership=lambda is_leader: is_leader and leading.set())
    await asyncio.wait_for(leading.wait(), 10)
    return node, state


async def test_many_commands_share_entries_and_survive_a_restart(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    node, state = await start(address, tmp_path)
    results = await node.submit_many([put(f"job-{i}") for i in range(2000)])
    assert all(r.ok for r in results)
    assert len(state.jobs) == 2000
    node.destroy()

    node, state = await start(address, tmp_path)
    try:
        await async_wait_until(lambda: len(state.jobs) == 2000, timeout=10, what="the journal to replay")
        assert state.runtime["job-1999"].next_fire_ms == 1
    finally:
        node.destroy()
