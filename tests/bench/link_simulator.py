"""Many agents' links to the leader from one process, for the heartbeat-cost figure of bench_cluster.

`python -m tests.bench.link_simulator LEADER_RPC_ADDRESS COUNT`: opens COUNT `Agent.Connect` streams
(spread over a few channels, as COUNT separate agents would open COUNT), registers `sim-<i>` on each,
prints `linked COUNT` once every one is welcomed, and heartbeats every 3 s per agent until killed.
"""

from __future__ import annotations

import asyncio
import random
import sys

import grpc

from horae_sdk.proto.horae.agent.v1 import agent_pb2, agent_pb2_grpc

STREAMS_PER_CHANNEL = 100
HEARTBEAT_SECONDS = 3.0


async def agent(stub: agent_pb2_grpc.AgentStub, index: int, welcomed: asyncio.Event, counter: list[int], total: int):
    call = stub.Connect()
    node = agent_pb2.NodeInfo(node_name=f"sim-{index}", role="client", tags={"sim": "1"}, executors=["noop"])
    await call.write(agent_pb2.NodeMessage(register=agent_pb2.Register(node=node)))
    first = await call.read()
    if first is grpc.aio.EOF or first.WhichOneof("body") != "welcome":
        raise RuntimeError(f"sim-{index} was not welcomed: {first}")
    counter[0] += 1
    if counter[0] == total:
        welcomed.set()
    await asyncio.sleep(random.uniform(0, HEARTBEAT_SECONDS))
    while True:
        await call.write(agent_pb2.NodeMessage(heartbeat=agent_pb2.Heartbeat()))
        await asyncio.sleep(HEARTBEAT_SECONDS)


async def main(address: str, count: int) -> None:
    channels = [
        grpc.aio.insecure_channel(address) for _ in range((count + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL)
    ]
    welcomed = asyncio.Event()
    counter = [0]
    tasks = [
        asyncio.create_task(
            agent(agent_pb2_grpc.AgentStub(channels[i // STREAMS_PER_CHANNEL]), i, welcomed, counter, count)
        )
        for i in range(count)
    ]
    await welcomed.wait()
    print(f"linked {count}", flush=True)
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
