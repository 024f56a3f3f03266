"""This node's link to the leader: it registers, heartbeats, runs what the leader sends, reports results.

Every node but the leader keeps one (client agents have nothing else). A result stays here until
a leader acknowledges it, and goes to the next leader when the link breaks, so a leader change
mid-run loses nothing and re-runs nothing: a run request for an execution this node already runs
or ran is answered with what it has, never run twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import grpc

from horae.cluster.links import ExecutionKey, key_of, ref
from horae.cluster.rpc import RpcClient
from horae.logs import fields
from horae.runner import ExecutionOrder, ExecutionRunner
from horae.running import RunningExecutions
from horae_sdk.proto.horae.agent.v1 import agent_pb2

log = logging.getLogger("horae.worker")

# Executions acknowledged by a leader are remembered this long (by count), to refuse a repeated run request.
RECENTLY_DONE = 10_000
RECONNECT_SECONDS = 0.05
MAX_RECONNECT_SECONDS = 1.0
# While no leader is known: a client asks a server over the network, so less often than a server asks itself.
NO_LEADER_POLL_SECONDS = 0.25

LeaderFinder = Callable[[], Awaitable[str | None]]


class Worker:
    def __init__(
        self,
        node: agent_pb2.NodeInfo,
        runner: ExecutionRunner,
        running: RunningExecutions,
        client: RpcClient,
        find_leader: LeaderFinder,
        heartbeat_seconds: float = 3.0,
        also_live: Callable[[], set[ExecutionKey]] | None = None,
        no_leader_poll_seconds: float = NO_LEADER_POLL_SECONDS,
    ) -> None:
        self.node = node
        self._runner = runner
        self._running = running
        self._client = client
        self._find_leader = find_leader
        self.heartbeat_seconds = heartbeat_seconds
        # On a server: executions its dispatcher ran itself whose results are still on their way.
        self._also_live = also_live
        self.booted_at_ms = int(time.time() * 1000)
        self._no_leader_poll_seconds = no_leader_poll_seconds
        self._executing: dict[ExecutionKey, asyncio.Task] = {}
        self._unreported: dict[ExecutionKey, agent_pb2.ExecutionResult] = {}
        self._recently_done: OrderedDict[ExecutionKey, None] = OrderedDict()
        self._outbox: asyncio.Queue | None = None
        self._stopping = False
        self.linked = asyncio.Event()
        self.leader_address: str | None = None

    # -- the link --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Stay linked to the leader until `stop`: find it, link, and link again when the link breaks."""
        delay = RECONNECT_SECONDS
        while not self._stopping:
            address = await self._find_leader()
            if address is None:
                # An election is on: look again soon, the new leader waits for its nodes to link.
                await asyncio.sleep(self._no_leader_poll_seconds)
                continue
            try:
                await self._link(address)
                delay = RECONNECT_SECONDS
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as error:
                log.debug("link to leader failed", extra=fields(leader=address, error=error.code().name))
            except Exception as error:
                log.warning("link to leader broke", extra=fields(leader=address, error=repr(error)))
            if self._stopping:
                return
            # Backing off only when the leader we know refuses or fails, not while none is known.
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RECONNECT_SECONDS)

    async def _link(self, address: str) -> None:
        call = self._client.connect(address)
        outbox: asyncio.Queue = asyncio.Queue()
        await call.write(self._register_message())
        for result in list(self._unreported.values()):
            outbox.put_nowait(agent_pb2.NodeMessage(result=result))
        writer = asyncio.create_task(self._write(call, outbox))
        beats = asyncio.create_task(self._beat(outbox))
        try:
            async for message in call:
                body = message.WhichOneof("body")
                if body == "welcome":
                    self._outbox = outbox
                    self.leader_address = address
                    self.heartbeat_seconds = message.welcome.heartbeat_seconds or self.heartbeat_seconds
                    self.linked.set()
                    log.info("linked to leader", extra=fields(leader=message.welcome.leader_name, address=address))
                elif body == "run":
                    self._start(message.run)
                elif body == "stop":
                    self._running.stop(*key_of(message.stop.execution), reason=message.stop.reason or "stopped")
                elif body == "recorded":
                    self._acknowledged(key_of(message.recorded.execution))
        finally:
            self.linked.clear()
            if self._outbox is outbox:
                self._outbox = None
            beats.cancel()
            writer.cancel()
            await asyncio.gather(beats, writer, return_exceptions=True)
            call.cancel()

    def _register_message(self) -> agent_pb2.NodeMessage:
        me = self.node.node_name
        running = {(r.job_name, r.execution_id) for r in self._running if r.node_name == me}
        running |= set(self._executing)
        if self._also_live is not None:
            running |= self._also_live()
        return agent_pb2.NodeMessage(
            register=agent_pb2.Register(
                node=self.node,
                running=[ref(key) for key in running],
                unreported=[ref(key) for key in self._unreported],
                booted_at_ms=self.booted_at_ms,
            )
        )

    async def _beat(self, outbox: asyncio.Queue) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            outbox.put_nowait(agent_pb2.NodeMessage(heartbeat=agent_pb2.Heartbeat()))

    @staticmethod
    async def _write(call: grpc.aio.StreamStreamCall, outbox: asyncio.Queue) -> None:
        while True:
            await call.write(await outbox.get())

    def _send(self, message: agent_pb2.NodeMessage) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(message)

    # -- executions ------------------------------------------------------------------------------
    def _start(self, run: agent_pb2.RunExecution) -> None:
        key = key_of(run.execution)
        if key in self._executing or key in self._recently_done:
            return
        if key in self._unreported:
            self._send(agent_pb2.NodeMessage(result=self._unreported[key]))
            return
        order = ExecutionOrder(json.loads(run.job_json), key[1], run.group, run.attempt, run.slot_ms, run.kind)
        self._executing[key] = asyncio.create_task(self._execute(key, order))

    async def _execute(self, key: ExecutionKey, order: ExecutionOrder) -> None:
        def output(chunk: bytes, stderr: bool) -> None:
            self._send(agent_pb2.NodeMessage(output=agent_pb2.ExecutionOutput(execution=ref(key), chunk=chunk)))

        def started(started_at: float) -> None:
            message = agent_pb2.ExecutionStarted(execution=ref(key), started_at_ms=int(started_at * 1000))
            self._send(agent_pb2.NodeMessage(started=message))

        try:
            execution, finished_at_ms = await self._runner.run(order, on_output=output, on_started=started)
        finally:
            self._executing.pop(key, None)
        result = agent_pb2.ExecutionResult(execution_json=json.dumps(execution).encode(), finished_at_ms=finished_at_ms)
        self._unreported[key] = result
        self._send(agent_pb2.NodeMessage(result=result))

    def _acknowledged(self, key: ExecutionKey) -> None:
        self._unreported.pop(key, None)
        self._recently_done[key] = None
        while len(self._recently_done) > RECENTLY_DONE:
            self._recently_done.popitem(last=False)

    def unreported(self) -> int:
        return len(self._unreported)

    async def stop(self, grace: float, report_within: float = 5.0) -> None:
        """Let executions finish within `grace` (then stop them), report their results, say goodbye."""
        tasks = list(self._executing.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for key in list(self._executing):
            self._running.stop(*key, reason="the agent stopped")
        await asyncio.gather(*self._executing.values(), return_exceptions=True)
        deadline = time.monotonic() + report_within
        while self._unreported and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._unreported:
            log.warning("results not reported before stopping", extra=fields(count=len(self._unreported)))
        self._stopping = True
        self._send(agent_pb2.NodeMessage(leaving=agent_pb2.Leaving()))
        if self._outbox is not None:
            deadline = time.monotonic() + 1.0
            while not self._outbox.empty() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)


def describe_node(
    name: str,
    role: str,
    tags: dict[str, str],
    executors: list[str],
    rpc_address: str = "",
    raft_address: str = "",
    config_schemas: dict[str, str] | None = None,
) -> agent_pb2.NodeInfo:
    """What a node tells the leader about itself; `config_schemas` is PluginHost.config_schemas()."""
    return agent_pb2.NodeInfo(
        node_name=name,
        role=role,
        tags=tags,
        executors=executors,
        rpc_address=rpc_address,
        raft_address=raft_address,
        config_schemas=config_schemas or {},
    )
