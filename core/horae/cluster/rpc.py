"""Inter-node gRPC (`horae.agent.v1.Agent`): Hello and Join for cluster formation, Submit for writes,
RunJob and StopRun asked of the leader, FetchHistory between servers (`history`).

The server answers from a `Directory` (the servers this node knows) and the node's RaftNode once
it runs; the client keeps one channel per peer and puts a deadline on every call. With a cluster
key (`--encrypt`) every call carries a credential derived from it, checked by the server (`auth`);
with TLS settings (`tls`) both sides speak TLS.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from horae.cluster import auth, membership
from horae.cluster.history import serve_history
from horae.cluster.links import NodeLinks
from horae.cluster.raft import CommandOutcomeUnknown, MembershipBusy, NotLeader, RaftNode
from horae.cluster.state import ClusterState, Command, CommandResult
from horae.cluster.tls import RpcTls, TlsRefusal, diagnose
from horae.errors import Conflict, NotFound
from horae.logs import fields
from horae.store import ExecutionStore
from horae_sdk.proto.horae.agent.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger("horae.cluster.rpc")

DEFAULT_RPC_TIMEOUT = 5.0
SERVER_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class ServerInfo:
    node_name: str
    raft_address: str
    rpc_address: str
    tags: dict[str, str] = field(default_factory=dict)

    def to_proto(self) -> agent_pb2.ServerInfo:
        return agent_pb2.ServerInfo(
            node_name=self.node_name, raft_address=self.raft_address, rpc_address=self.rpc_address, tags=self.tags
        )

    @classmethod
    def from_proto(cls, message: agent_pb2.ServerInfo) -> ServerInfo:
        return cls(message.node_name, message.raft_address, message.rpc_address, dict(message.tags))

    def record(self) -> dict[str, Any]:
        """The member record committed with `put_member`."""
        return {
            "name": self.node_name,
            "raft_address": self.raft_address,
            "rpc_address": self.rpc_address,
            "role": "server",
            "tags": dict(self.tags),
        }


@dataclass
class ClusterView:
    servers: list[ServerInfo]
    formed: bool = False
    leader_raft_address: str = ""
    raft_members: list[str] = field(default_factory=list)

    @classmethod
    def from_proto(cls, message: agent_pb2.ClusterView) -> ClusterView:
        return cls(
            [ServerInfo.from_proto(s) for s in message.servers],
            message.formed,
            message.leader_raft_address,
            list(message.raft_members),
        )


class Directory:
    """The servers this node knows, by Raft address: from Hello/Join and from the member records."""

    def __init__(self, me: ServerInfo, state: ClusterState) -> None:
        self.me = me
        self.state = state
        self._heard: dict[str, ServerInfo] = {me.raft_address: me}

    def learn(self, server: ServerInfo) -> bool:
        """Remember a server; True when it was new (or its addresses changed)."""
        if not server.raft_address or self._heard.get(server.raft_address) == server:
            return False
        self._heard[server.raft_address] = server
        return True

    def servers(self) -> list[ServerInfo]:
        found = dict(self._heard)
        for record in list(self.state.members.values()):
            if record.get("role", "server") != "server" or not record.get("raft_address"):
                continue
            found[record["raft_address"]] = ServerInfo(
                record["name"], record["raft_address"], record["rpc_address"], dict(record.get("tags") or {})
            )
        return sorted(found.values(), key=lambda s: s.raft_address)

    def rpc_address(self, raft_address: str) -> str | None:
        for record in list(self.state.members.values()):
            if record.get("raft_address") == raft_address:
                return record["rpc_address"]
        server = self._heard.get(raft_address)
        return server.rpc_address if server is not None else None


class AgentServicer(agent_pb2_grpc.AgentServicer):
    def __init__(self, directory: Directory, client: RpcClient) -> None:
        self.directory = directory
        self.client = client
        # Set once formation is done and the Raft member runs.
        self.raft: RaftNode | None = None
        self.links: NodeLinks | None = None
        # The leader's Dispatcher.run_now: (job name) -> execution id.
        self.run_job: Callable[[str], Awaitable[str]] | None = None
        # The leader's HoraeService.stop_on_leader: (job name, execution id, reason) -> the execution.
        self.stop_run: Callable[[str, str, str], Awaitable[dict[str, Any]]] | None = None
        # This server's store, whose history FetchHistory streams to a peer restored from a snapshot.
        self.store: ExecutionStore | None = None

    def view(self) -> agent_pb2.ClusterView:
        raft = self.raft
        leader = raft.leader_address if raft is not None else None
        return agent_pb2.ClusterView(
            servers=[s.to_proto() for s in self.directory.servers()],
            formed=leader is not None,
            leader_raft_address=leader or "",
            raft_members=raft.raft_members() if raft is not None else [],
        )

    async def Hello(self, request: agent_pb2.ServerInfo, context: grpc.aio.ServicerContext) -> agent_pb2.ClusterView:
        server = ServerInfo.from_proto(request)
        if server.raft_address and self.directory.learn(server):  # a client agent has no Raft address
            log.info("server said hello", extra=fields(peer=server.node_name, raft=server.raft_address))
        return self.view()

    async def Join(self, request: agent_pb2.ServerInfo, context: grpc.aio.ServicerContext) -> agent_pb2.ClusterView:
        server = ServerInfo.from_proto(request)
        raft = self.raft
        if raft is None or raft.leader_address is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this server has no Raft leader yet")
        if not raft.is_leader:
            target = self.directory.rpc_address(raft.leader_address)
            if target is None:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the leader's RPC address is not known yet")
            view = await self.client.join(target, server)
            return agent_pb2.ClusterView(
                servers=[s.to_proto() for s in view.servers],
                formed=view.formed,
                leader_raft_address=view.leader_raft_address,
                raft_members=view.raft_members,
            )
        self.directory.learn(server)
        try:
            await raft.add_server(server.raft_address)
        except NotLeader as error:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        except MembershipBusy as error:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        except CommandOutcomeUnknown as error:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
        log.info("server joined", extra=fields(peer=server.node_name, raft=server.raft_address))
        return self.view()

    async def Connect(self, request_iterator, context: grpc.aio.ServicerContext) -> None:
        if self.links is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the leader")
        await self.links.serve(context)

    async def RunJob(
        self, request: agent_pb2.RunJobRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.RunJobReply:
        raft = self.raft
        if raft is None or not raft.is_leader or self.run_job is None:
            return agent_pb2.RunJobReply(error="not_leader", reason="this server is not the leader")
        try:
            return agent_pb2.RunJobReply(execution_id=await self.run_job(request.job_name))
        except LookupError as error:
            return agent_pb2.RunJobReply(error="not_found", reason=str(error).strip("'\""))
        except NotLeader as error:
            return agent_pb2.RunJobReply(error="not_leader", reason=str(error))
        except (RuntimeError, CommandOutcomeUnknown) as error:
            return agent_pb2.RunJobReply(error="conflict", reason=str(error))

    async def StopRun(
        self, request: agent_pb2.StopRunRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.StopRunReply:
        raft = self.raft
        if raft is None or not raft.is_leader or self.stop_run is None:
            return agent_pb2.StopRunReply(error="not_leader", reason="this server is not the leader")
        try:
            execution = await self.stop_run(request.job_name, request.execution_id, request.reason)
        except NotFound as error:
            return agent_pb2.StopRunReply(error="not_found", reason=str(error))
        except Conflict as error:
            return agent_pb2.StopRunReply(error="finished", reason=str(error))
        except Exception as error:  # Unavailable (the node is not linked) and anything unexpected
            return agent_pb2.StopRunReply(error="unreachable", reason=str(error))
        return agent_pb2.StopRunReply(execution_json=json.dumps(execution, default=str).encode())

    async def FetchHistory(self, request: agent_pb2.FetchHistoryRequest, context: grpc.aio.ServicerContext):
        if self.store is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this node keeps no history")
        async for page in serve_history(self.store, request.page_size):
            yield page

    async def Submit(self, request: agent_pb2.CommandBatch, context: grpc.aio.ServicerContext) -> agent_pb2.ResultBatch:
        raft = self.raft
        if raft is None or not raft.is_leader:
            return agent_pb2.ResultBatch(
                results=[agent_pb2.Result(error="not_leader", reason="not the leader")] * len(request.commands_json)
            )
        timeout = request.timeout_seconds or DEFAULT_RPC_TIMEOUT
        commands = [json.loads(raw) for raw in request.commands_json]
        outcomes = await asyncio.gather(
            *(raft.submit(command, timeout, forward=False) for command in commands), return_exceptions=True
        )
        return agent_pb2.ResultBatch(
            results=[_result_message(outcome) for outcome in outcomes], commit_index=raft.commit_index
        )

    async def RemovePeer(
        self, request: agent_pb2.RemovePeerRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.RemovePeerReply:
        raft = self.raft
        if raft is None or raft.leader_address is None:
            return agent_pb2.RemovePeerReply(error="not_leader", reason="this server has no Raft leader yet")
        if not raft.is_leader:
            target = self.directory.rpc_address(raft.leader_address)
            if target is None:
                return agent_pb2.RemovePeerReply(error="not_leader", reason="the leader's RPC address is not known yet")
            return await self.client.remove_peer_call(target, request)
        try:
            forget = self.links.heartbeats.forget if self.links is not None else None
            name, address = await membership.remove_peer(
                raft, self.directory.state, request.peer_id, request.leaving, forget
            )
        except membership.PeerNotFound as error:
            return agent_pb2.RemovePeerReply(error="not_found", reason=str(error).strip("'\""))
        except membership.IsLeader as error:
            return agent_pb2.RemovePeerReply(error="is_leader", reason=str(error))
        except MembershipBusy as error:
            return agent_pb2.RemovePeerReply(error="busy", reason=str(error))
        except NotLeader as error:
            return agent_pb2.RemovePeerReply(error="not_leader", reason=str(error))
        except CommandOutcomeUnknown as error:
            return agent_pb2.RemovePeerReply(error="unknown", reason=str(error))
        return agent_pb2.RemovePeerReply(node_name=name, raft_address=address)


class StopRefused(RuntimeError):
    """The leader did not stop the execution; `code` is the StopRunReply error ("finished", "unreachable")."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class PeerRemovalError(RuntimeError):
    """The leader did not remove the peer; `code` is the RemovePeerReply error."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _result_message(outcome: CommandResult | BaseException) -> agent_pb2.Result:
    if isinstance(outcome, NotLeader):
        return agent_pb2.Result(error="not_leader", reason=str(outcome))
    if isinstance(outcome, BaseException):
        return agent_pb2.Result(error="unknown", reason=str(outcome))
    value = json.dumps(outcome.value, default=str).encode()
    return agent_pb2.Result(ok=outcome.ok, reason=outcome.reason, value_json=value)


def _outcome(message: agent_pb2.Result) -> CommandResult | Exception:
    if message.error == "not_leader":
        return NotLeader(f"the leader refused the command: {message.reason}")
    if message.error:
        return CommandOutcomeUnknown(f"the leader could not confirm the command: {message.reason}")
    value = json.loads(message.value_json) if message.value_json else None
    return CommandResult(message.ok, message.reason, value)


class RpcClient:
    """Calls other servers' Agent service: one channel per address, reused; a deadline on every call."""

    def __init__(self, timeout: float = DEFAULT_RPC_TIMEOUT, key: str | None = None, tls: RpcTls | None = None) -> None:
        self.timeout = timeout
        self._tls = tls
        # The cluster key's credential, sent with every call (`auth`); none without a key.
        self._metadata = auth.call_metadata(auth.token(key) if key else None)
        self._stubs: dict[str, tuple[grpc.aio.Channel, agent_pb2_grpc.AgentStub]] = {}
        self._refusals_logged: set[tuple[str, str]] = set()

    def _stub(self, address: str) -> agent_pb2_grpc.AgentStub:
        found = self._stubs.get(address)
        if found is None:
            if self._tls is None:
                channel = grpc.aio.insecure_channel(address)
            else:
                channel = grpc.aio.secure_channel(address, self._tls.channel_credentials(), self._tls.channel_options())
            found = self._stubs[address] = (channel, agent_pb2_grpc.AgentStub(channel))
        return found[1]

    async def _call(self, address: str, method: str, request: Any, timeout: float, check_tls: bool = False) -> Any:
        """One unary call with the credential; a refused key is logged as an error (once per server and reason).

        `check_tls` (Hello and Join, by which a node enters a cluster): a failure caused by a TLS setting unlike
        the server's is logged and raised as TlsRefusal, which retrying cannot cure.
        """
        try:
            return await getattr(self._stub(address), method)(request, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                self._refused(address, error.details() or "")
                raise
            # A TLS setting that differs from the server's fails like an unreachable server: say which it is.
            problem = await diagnose(address, error, self._tls) if check_tls else None
            if problem is None:
                raise
            if (address, problem) not in self._refusals_logged:
                self._refusals_logged.add((address, problem))
                log.error("inter-node TLS mismatch", extra=fields(server=address, reason=problem))
            raise TlsRefusal(problem) from None

    def _refused(self, address: str, reason: str) -> None:
        if (address, reason) not in self._refusals_logged:
            self._refusals_logged.add((address, reason))
            log.error("refused by server: cluster key does not match", extra=fields(server=address, reason=reason))

    async def hello(self, address: str, me: ServerInfo, timeout: float | None = None) -> ClusterView:
        answer = await self._call(address, "Hello", me.to_proto(), timeout or self.timeout, check_tls=True)
        return ClusterView.from_proto(answer)

    async def join(self, address: str, me: ServerInfo, timeout: float | None = None) -> ClusterView:
        answer = await self._call(address, "Join", me.to_proto(), timeout or self.timeout, check_tls=True)
        return ClusterView.from_proto(answer)

    def connect(self, address: str) -> grpc.aio.StreamStreamCall:
        """Open this node's link to the leader at `address` (Agent.Connect); no deadline: it lives long."""
        return self._stub(address).Connect(metadata=self._metadata)

    async def submit(
        self, address: str, commands: list[Command], timeout: float
    ) -> tuple[list[CommandResult | Exception], int]:
        """Results per command and the leader's commit index; raises CommandOutcomeUnknown on transport errors."""
        batch = agent_pb2.CommandBatch(
            commands_json=[json.dumps(command).encode() for command in commands], timeout_seconds=timeout
        )
        try:
            # A little longer than the leader's own timeout, so its per-command answers win the race.
            answer = await self._call(address, "Submit", batch, timeout + 1.0)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                # Most likely never delivered (connection refused); with grpc one cannot be sure.
                raise CommandOutcomeUnknown(f"leader at {address} unreachable: {error.details()}") from None
            raise CommandOutcomeUnknown(f"forwarding to {address}: {error.code().name} {error.details()}") from None
        return [_outcome(message) for message in answer.results], answer.commit_index

    async def run_job(self, address: str, job_name: str) -> str:
        """Ask the leader to run a job now; raises NotLeader, LookupError or RuntimeError as the leader's run_now."""
        try:
            reply = await self._call(address, "RunJob", agent_pb2.RunJobRequest(job_name=job_name), self.timeout)
        except grpc.aio.AioRpcError as error:
            raise NotLeader(f"the leader at {address} did not answer: {error.code().name}") from None
        if reply.error == "not_leader":
            raise NotLeader(reply.reason)
        if reply.error == "not_found":
            raise LookupError(reply.reason)
        if reply.error:
            raise RuntimeError(reply.reason)
        return reply.execution_id

    async def stop_run(self, address: str, job_name: str, execution_id: str, reason: str) -> dict[str, Any]:
        """Ask the leader to stop an execution wherever it runs; the execution as it was when stopped.

        Raises NotLeader (no answer, or not the leader), LookupError (unknown), StopRefused (finished or
        its node unreachable).
        """
        request = agent_pb2.StopRunRequest(job_name=job_name, execution_id=execution_id, reason=reason)
        try:
            reply = await self._call(address, "StopRun", request, self.timeout)
        except grpc.aio.AioRpcError as error:
            raise NotLeader(f"the leader at {address} did not answer: {error.code().name}") from None
        if reply.error == "not_leader":
            raise NotLeader(reply.reason)
        if reply.error == "not_found":
            raise LookupError(reply.reason)
        if reply.error:
            raise StopRefused(reply.error, reply.reason)
        return json.loads(reply.execution_json)

    def fetch_history(self, address: str, page_size: int) -> grpc.aio.UnaryStreamCall:
        """Stream the history of the server at `address` (Agent.FetchHistory); the caller bounds the time."""
        request = agent_pb2.FetchHistoryRequest(page_size=page_size)
        return self._stub(address).FetchHistory(request, metadata=self._metadata)

    async def remove_peer(self, address: str, peer_id: str, leaving: bool = False) -> tuple[str, str]:
        """Ask the server at `address` (forwarded to the leader) to remove a Raft peer; (name, Raft address).

        Raises PeerRemovalError with the leader's error code ("not_leader" too when no server answered).
        """
        reply = await self.remove_peer_call(address, agent_pb2.RemovePeerRequest(peer_id=peer_id, leaving=leaving))
        if reply.error:
            raise PeerRemovalError(reply.error, reply.reason)
        return reply.node_name, reply.raft_address

    async def remove_peer_call(self, address: str, request: agent_pb2.RemovePeerRequest) -> agent_pb2.RemovePeerReply:
        try:
            # Longer than the leader's own timeout for the change, so its answer wins the race.
            return await self._call(address, "RemovePeer", request, self.timeout * 2)
        except grpc.aio.AioRpcError as error:
            return agent_pb2.RemovePeerReply(
                error="not_leader" if error.code() == grpc.StatusCode.UNAVAILABLE else "unknown",
                reason=f"{address} did not answer: {error.code().name} {error.details()}",
            )

    async def close(self) -> None:
        stubs, self._stubs = self._stubs, {}
        for channel, _ in stubs.values():
            await channel.close()


class LeaderForwarder:
    """RaftNode's Forwarder: maps the leader's Raft address to its RPC address and Submits there."""

    def __init__(self, client: RpcClient, rpc_address_of: Callable[[str], str | None]) -> None:
        self.client = client
        self.rpc_address_of = rpc_address_of

    async def forward(
        self, leader_raft_address: str, commands: list[Command], timeout: float
    ) -> tuple[list[CommandResult | Exception], int]:
        address = self.rpc_address_of(leader_raft_address)
        if address is None:
            raise NotLeader(f"the RPC address of leader {leader_raft_address} is not known yet")
        return await self.client.submit(address, commands, timeout)


class RpcServer:
    """The Agent service on bind_addr:rpc_port (grpc.aio, in the agent's loop)."""

    def __init__(
        self, servicer: AgentServicer, address: str, key: str | None = None, tls: RpcTls | None = None
    ) -> None:
        self.servicer = servicer
        self.address = address
        self._key = key or None
        self._tls = tls
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server(interceptors=[auth.ServerAuth(self._key)])
        agent_pb2_grpc.add_AgentServicer_to_server(self.servicer, server)
        if self._tls is None:
            port = server.add_insecure_port(self.address)
        else:
            port = server.add_secure_port(self.address, self._tls.server_credentials())
        if port == 0:
            raise OSError(f"cannot listen for inter-node RPC on {self.address}")
        await server.start()
        self._server = server
        tls = "off" if self._tls is None else self._tls.describe()
        log.info("inter-node rpc listening", extra=fields(rpc=self.address, tls=tls))

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(SERVER_GRACE_SECONDS)
            self._server = None
