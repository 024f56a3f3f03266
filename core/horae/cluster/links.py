"""The leader's end of every node's link (`Agent.Connect`): one long-lived stream per node.

Up the link come a Register, heartbeats, and the started/output/result news of executions; down it
go executions to run and to stop, and an acknowledgement once a result is committed (the node keeps
a result until then and sends it again to the next leader). Many executions share one stream. A
server that stops leading closes every link, so nodes find the new leader.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from horae.cluster.heartbeat import DEFAULT_HEARTBEAT_SECONDS, Heartbeats
from horae.cluster.raft import CommandOutcomeUnknown, NotLeader, RaftNode
from horae.cluster.schemas import missing_schemas, schema_refs
from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState
from horae.logs import fields
from horae_sdk.proto.horae.agent.v1 import agent_pb2

log = logging.getLogger("horae.cluster.links")

ExecutionKey = tuple[str, str]  # (job name, execution id)


class LinkEvents(Protocol):
    """What the leader does with news from a node (the dispatcher implements it)."""

    async def node_registered(self, node: str, live: set[ExecutionKey], booted_at_ms: int) -> None: ...

    def execution_started(self, node: str, key: ExecutionKey, started_at_ms: int) -> None: ...

    def execution_output(self, node: str, key: ExecutionKey, chunk: bytes) -> None: ...

    async def execution_result(self, node: str, execution: dict[str, Any], finished_at_ms: int) -> bool: ...


def ref(key: ExecutionKey) -> agent_pb2.ExecutionRef:
    return agent_pb2.ExecutionRef(job_name=key[0], execution_id=key[1])


def key_of(message: agent_pb2.ExecutionRef) -> ExecutionKey:
    return (message.job_name, message.execution_id)


def member_record(node: agent_pb2.NodeInfo) -> dict[str, Any]:
    record = {
        "name": node.node_name,
        "raft_address": node.raft_address,
        "rpc_address": node.rpc_address,
        "role": node.role or "client",
        "tags": dict(node.tags),
        "executors": sorted(node.executors),
        "status": "alive",
    }
    # A node that reports no schemas while it has executors predates them: its plugins' schemas are unknown.
    if node.config_schemas or not node.executors:
        record["config_schemas"] = schema_refs(node.config_schemas)[0]
    return record


@dataclass
class NodeLink:
    name: str
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    # The process linking is the one that already left (it is finishing up): it stays left, no deadline.
    departed: bool = False

    def send(self, message: agent_pb2.LeaderMessage) -> None:
        self.outbox.put_nowait(message)

    def close(self) -> None:
        self.closed.set()


class NodeLinks:
    def __init__(
        self,
        raft: RaftNode,
        state: ClusterState,
        heartbeats: Heartbeats,
        leader_name: str,
        heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
    ) -> None:
        self._raft = raft
        self._state = state
        self.heartbeats = heartbeats
        self._leader_name = leader_name
        self._heartbeat_seconds = heartbeat_seconds
        self._links: dict[str, NodeLink] = {}
        # Set while a node is linked: a new leader's first executions wait for their nodes to link.
        self._linked: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task] = set()
        self.events: LinkEvents | None = None
        self.leading = False

    # -- used by the dispatcher ------------------------------------------------------------------
    def connected(self, node: str) -> bool:
        return node in self._links

    def linked_nodes(self) -> set[str]:
        return set(self._links)

    async def wait_linked(self, node: str, timeout: float) -> bool:
        """True once `node` is linked (at once if it is); False after `timeout` seconds."""
        if node in self._links:
            return True
        event = self._linked.setdefault(node, asyncio.Event())
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return node in self._links

    def send(self, node: str, message: agent_pb2.LeaderMessage) -> bool:
        link = self._links.get(node)
        if link is None:
            return False
        link.send(message)
        return True

    def run(self, node: str, job: dict[str, Any], intent: dict[str, Any]) -> bool:
        """Ask a node to run an execution whose intent is committed; False when the node has no link."""
        message = agent_pb2.LeaderMessage(
            run=agent_pb2.RunExecution(
                job_json=json.dumps(job).encode(),
                execution=ref((intent["job"], intent["id"])),
                slot_ms=intent["slot_ms"],
                group=intent["group"],
                attempt=intent["attempt"],
                kind=intent["kind"],
            )
        )
        return self.send(node, message)

    def stop_execution(self, node: str, key: ExecutionKey, reason: str) -> bool:
        return self.send(node, agent_pb2.LeaderMessage(stop=agent_pb2.StopExecution(execution=ref(key), reason=reason)))

    # -- leadership ------------------------------------------------------------------------------
    def start(self) -> None:
        self.leading = True
        self.heartbeats.start()

    async def stop(self) -> None:
        """No longer leading: close every link so its node looks for the new leader."""
        self.leading = False
        for link in list(self._links.values()):
            link.close()
        await self.heartbeats.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the stream ------------------------------------------------------------------------------
    async def serve(self, context: grpc.aio.ServicerContext) -> None:
        """Agent.Connect: runs for as long as the node stays linked to this leader."""
        if not self.leading or self.events is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the leader")
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("body") != "register":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a link starts with Register")
        register = first.register
        name = register.node.node_name
        link = NodeLink(name)
        previous = self._links.pop(name, None)
        if previous is not None:
            previous.close()
        link.departed = self._already_left(register)
        if not link.departed:
            self.heartbeats.beat(name)
        reader = asyncio.create_task(self._read(context, link))
        writer = asyncio.create_task(self._write(context, link))
        try:
            if not link.departed:
                await self._register(register)
            link.send(
                agent_pb2.LeaderMessage(
                    welcome=agent_pb2.Welcome(leader_name=self._leader_name, heartbeat_seconds=self._heartbeat_seconds)
                )
            )
            live = {key_of(r) for r in register.running} | {key_of(r) for r in register.unreported}
            await self.events.node_registered(name, live, register.booted_at_ms)
            self._links[name] = link
            self._linked.setdefault(name, asyncio.Event()).set()
            log.info("node linked", extra=fields(node=name, running=len(register.running)))
            await link.closed.wait()
        finally:
            reader.cancel()
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            if self._links.get(name) is link:
                del self._links[name]
                event = self._linked.get(name)
                if event is not None:
                    event.clear()
            log.info("node unlinked", extra=fields(node=name))

    def _already_left(self, register: agent_pb2.Register) -> bool:
        """True when this node's record says it left after its process started: a late link of a leaving node
        (a leader that handed over and left) must not make it alive again; a restarted one is alive."""
        record = self._state.members.get(register.node.node_name) or {}
        left_at = record.get("status_changed_ms") or 0
        return record.get("status") == "left" and 0 < register.booted_at_ms <= left_at

    async def _register(self, register: agent_pb2.Register) -> None:
        record = member_record(register.node)
        _, texts = schema_refs(register.node.config_schemas)
        schemas = missing_schemas(record.get("config_schemas") or {}, texts, self._state.schemas)
        current = self._state.members.get(record["name"]) or {}
        if all(current.get(key) == value for key, value in record.items()) and not schemas:
            return
        command = {"v": COMMAND_FORMAT_VERSION, "op": "put_member", "member": record, "at_ms": _now_ms()}
        if schemas:
            command["schemas"] = schemas
        try:
            await self._raft.submit(command, forward=False)
        except (NotLeader, CommandOutcomeUnknown) as error:
            log.warning("member record not committed", extra=fields(node=record["name"], error=str(error)))

    async def _read(self, context: grpc.aio.ServicerContext, link: NodeLink) -> None:
        assert self.events is not None
        try:
            while True:
                message = await context.read()
                if message is grpc.aio.EOF:
                    return
                body = message.WhichOneof("body")
                if body == "heartbeat":
                    if not link.departed:
                        self.heartbeats.beat(link.name)
                elif body == "output":
                    self.events.execution_output(link.name, key_of(message.output.execution), message.output.chunk)
                elif body == "started":
                    started = message.started
                    self.events.execution_started(link.name, key_of(started.execution), started.started_at_ms)
                elif body == "result":
                    self._spawn(self._record(link, message.result))
                elif body == "leaving":
                    self.heartbeats.forget(link.name)
                    await self.heartbeats.set_status(link.name, "left")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the node went away, or sent something this leader cannot read
            log.debug("link read ended", extra=fields(node=link.name, error=str(error)))
        finally:
            link.close()

    async def _record(self, link: NodeLink, result: agent_pb2.ExecutionResult) -> None:
        assert self.events is not None
        execution = json.loads(result.execution_json)
        if await self.events.execution_result(link.name, execution, result.finished_at_ms):
            link.send(
                agent_pb2.LeaderMessage(
                    recorded=agent_pb2.ResultRecorded(execution=ref((execution["job_name"], execution["id"])))
                )
            )

    @staticmethod
    async def _write(context: grpc.aio.ServicerContext, link: NodeLink) -> None:
        try:
            while True:
                await context.write(await link.outbox.get())
        except Exception as error:  # the node went away mid-write
            log.debug("link write failed", extra=fields(node=link.name, error=str(error)))
            link.close()

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _now_ms() -> int:
    return int(time.time() * 1000)
