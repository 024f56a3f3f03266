"""The operations the API and the CLI offer, over the node's parts: one place for each rule.

Reads come from the local state (fast, possibly stale on a follower); writes go through Raft.
Job JSON in and out is Dkron's shape; validation lives in `horae.model`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from horae.cluster import formation, membership
from horae.cluster.heartbeat import Heartbeats
from horae.cluster.raft import CommandOutcomeUnknown, MembershipBusy, NotLeader, RaftNode
from horae.cluster.rpc import Directory, PeerRemovalError, RpcClient, StopRefused
from horae.cluster.state import ClusterState, JobRuntime, execution_key
from horae.config import AgentConfig
from horae.config_check import PluginConfigs
from horae.dispatch import Dispatcher, command
from horae.errors import BadRequest, Conflict, FieldProblem, NotFound, Unavailable
from horae.host.supervisor import PluginHost
from horae.leader import Leadership
from horae.logs import fields
from horae.metrics import Metrics
from horae.model import READ_ONLY_FIELDS, Job, ValidationError, format_ms
from horae.model.member import SERF_PROTOCOL, STATUS_ALIVE, STATUS_BY_TEXT
from horae.notifier import unsendable_email
from horae.running import STOP_REASON, RunningExecutions
from horae.schedule import ScheduleError, parse_schedule
from horae.schedule_book import ScheduleBook
from horae.store import ExecutionStore

MAX_PREVIEW = 100
# How long a follower waits to see a peer removal it asked the leader for in its own Raft membership.
PEER_REMOVAL_SEEN_SECONDS = 5.0
# A leaving server retries its steps this long (within the CLI's 30 s HTTP timeout), this often.
LEAVE_TIMEOUT = 20.0
LEAVE_RETRY_SECONDS = 0.2

log = logging.getLogger("horae.service")


class HoraeService:
    # Set by the agent: stops it (after this node left its cluster).
    stop_agent: Callable[[], None] | None = None
    # Set by the agent: what `/metrics` serves.
    metrics: Metrics | None = None

    def __init__(
        self,
        config: AgentConfig,
        state: ClusterState,
        store: ExecutionStore,
        raft: RaftNode,
        host: PluginHost,
        schedules: ScheduleBook,
        running: RunningExecutions,
        dispatcher: Dispatcher,
        leadership: Leadership,
        heartbeats: Heartbeats,
        rpc_client: RpcClient,
        directory: Directory,
    ) -> None:
        self.config = config
        self.state = state
        self.store = store
        self.raft = raft
        self.host = host
        self.schedules = schedules
        self.running = running
        self.dispatcher = dispatcher
        self.leadership = leadership
        self.heartbeats = heartbeats
        self.rpc_client = rpc_client
        self.directory = directory
        self.started_at = time.time()
        # Jobs' executor and processor settings are checked against the schemas the alive nodes' plugins serve.
        self.plugin_configs = PluginConfigs(state, config.node_name, host.config_schemas())

    # -- jobs: reads ---------------------------------------------------------------------------
    def jobs(self) -> list[dict[str, Any]]:
        # list() copies the names at once: the Raft thread may add or remove jobs meanwhile.
        views = (self._job_view(name) for name in list(self.state.jobs))
        return [view for view in views if view is not None]

    def job(self, name: str) -> dict[str, Any]:
        view = self._job_view(name)
        if view is None:
            raise NotFound(f"job {name!r} not found")
        return view

    def _job_view(self, name: str) -> dict[str, Any] | None:
        stored = self.state.jobs.get(name)
        if stored is None:
            return None
        job = dict(stored)
        runtime = self.state.runtime.get(name) or JobRuntime()
        job.update(
            id=name,
            success_count=runtime.success_count,
            error_count=runtime.error_count,
            last_success=format_ms(runtime.last_success_ms),
            last_error=format_ms(runtime.last_error_ms),
            status=runtime.status,
            next=format_ms(runtime.next_fire_ms),
            missed_count=runtime.missed_count,
        )
        job.setdefault("dependent_jobs", [])
        return job

    # -- jobs: writes --------------------------------------------------------------------------
    async def put_job(self, data: Any, strict: bool = True) -> tuple[dict[str, Any], bool, list[str]]:
        """Create or replace a job; returns (job view, created, warnings)."""
        job_json, warnings = self._validate(data, strict)
        name = job_json["name"]
        created = name not in self.state.jobs
        now_ms = int(time.time() * 1000)
        next_ms = self.schedules.next_fire_ms(job_json, now_ms)
        result = await self._submit(command("put_job", job=job_json, next_fire_ms=next_ms))
        if not result.ok:
            problems = [FieldProblem("parent_job", result.reason)] if "parent" in result.reason else []
            raise BadRequest(result.reason, problems)
        return self.job(name), created, warnings

    def _validate(self, data: Any, strict: bool) -> tuple[dict[str, Any], list[str]]:
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object describing a job")
        clean = {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
        try:
            warnings: list[str] = []
            job = Job.from_json(clean, strict=strict, warnings=warnings, check=self.plugin_configs.check)
        except ValidationError as error:
            raise BadRequest(str(error), [FieldProblem(e.field, e.message) for e in error.errors]) from None
        stored = job.to_json()
        for key in READ_ONLY_FIELDS:
            stored.pop(key, None)
        if (problem := unsendable_email(stored, self.config)) is not None:
            if strict:
                raise BadRequest(f"notify.email: {problem}", [FieldProblem("notify.email", problem)])
            warnings.append(f"notify.email: {problem} (accepted on import)")
        return stored, warnings

    async def delete_job(self, name: str) -> dict[str, Any]:
        view = self.job(name)
        result = await self._submit(command("delete_job", name=name))
        if not result.ok:
            raise Conflict(result.reason)
        return view

    async def toggle(self, name: str) -> dict[str, Any]:
        job = self.job(name)
        result = await self._submit(command("set_disabled", job=name, disabled=not job.get("disabled", False)))
        if not result.ok:
            raise NotFound(result.reason)
        return self.job(name)

    async def run(self, name: str) -> dict[str, Any]:
        self.job(name)
        try:
            if self.raft.is_leader:
                await self.dispatcher.run_now(name)
            else:
                await self._run_on_leader(name)
        except LookupError as error:
            raise NotFound(str(error).strip("'\"")) from None
        except NotLeader:
            raise Unavailable("no leader: the cluster cannot start runs right now; retry shortly") from None
        except CommandOutcomeUnknown as error:
            raise Unavailable(f"{error}; the run may or may not have started") from None
        except RuntimeError as error:
            raise Conflict(str(error)) from None
        return self.job(name)

    async def _run_on_leader(self, name: str) -> str:
        """Only the leader picks nodes and sends executions: a follower asks it."""
        leader = self.raft.leader_address
        address = self.directory.rpc_address(leader) if leader else None
        if address is None:
            raise NotLeader("no leader is known")
        return await self.rpc_client.run_job(address, name)

    async def restore(self, jobs: Any) -> tuple[list[str], list[str]]:
        """Import many jobs (a Dkron dump or `horae jobs export`); unknown keys are warnings.

        Jobs are saved concurrently, so their commands share Raft entries; a parent is saved in an
        earlier wave than its children, so parent_job always refers to a job that exists.
        """
        if not isinstance(jobs, list):
            raise BadRequest("restore takes a JSON array of jobs")
        restored, warnings = [], []
        for wave in _parent_waves(jobs):
            outcomes = await asyncio.gather(
                *(self.put_job(data, strict=False) for data in wave), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
                view, _, job_warnings = outcome
                restored.append(view["name"])
                warnings.extend(f"{view['name']}: {w}" for w in job_warnings)
        return restored, warnings

    async def _submit(self, cmd: dict[str, Any]):
        try:
            return await self.raft.submit(cmd)
        except NotLeader:
            raise Unavailable("no leader: the cluster cannot accept writes right now; retry shortly") from None
        except CommandOutcomeUnknown as error:
            raise Unavailable(f"{error}; the change may or may not have been applied") from None

    # -- executions ----------------------------------------------------------------------------
    async def clear_executions(self, name: str) -> dict[str, Any]:
        """Delete a job's finished executions on every server (through Raft) and reset its counters."""
        self.job(name)
        result = await self._submit(command("clear_executions", job=name))
        if not result.ok:
            raise NotFound(result.reason)
        return self.job(name)

    async def executions(self, name: str) -> list[dict[str, Any]]:
        self.job(name)
        stored = await asyncio.to_thread(self.store.executions, name)
        live = [self._running_view(r) for r in self.running.for_job(name)]
        known = {view["id"] for view in live}
        # Executions running elsewhere, as the committed intents show them (a follower has no live view).
        started = [
            self._intent_view(intent)
            for intent in list(self.state.intents.values())
            if intent["job"] == name and intent["id"] not in known
        ]
        return stored + live + started

    async def execution(self, name: str, execution_id: str) -> dict[str, Any]:
        running = self.running.get(name, execution_id)
        if running is not None:
            return self._running_view(running)
        stored = await asyncio.to_thread(self.store.execution, name, execution_id)
        if stored is not None:
            return stored
        intent = self.state.intents.get(execution_key(name, execution_id))
        if intent is not None:  # running elsewhere: a follower has no live view of it
            return self._intent_view(intent)
        raise NotFound(f"execution {execution_id!r} of job {name!r} not found")

    async def stop(self, name: str, execution_id: str) -> dict[str, Any]:
        """Stop a running execution wherever it runs: only the leader knows every node's link.

        The execution then ends as failed, its output saying why; what follows a failure (a retry,
        the next slot) follows as usual. A follower asks the leader (`StopRun`); when no leader
        answers, an execution running on this very node is still stopped here (its result reaches
        whoever leads next), anything else is 503.
        """
        self.job(name)
        if self.raft.is_leader:
            return await self.stop_on_leader(name, execution_id)
        leader = self.raft.leader_address
        address = self.directory.rpc_address(leader) if leader else None
        try:
            if address is None:
                raise NotLeader("no leader is known")
            return await self.rpc_client.stop_run(address, name, execution_id, STOP_REASON)
        except LookupError as error:
            raise NotFound(str(error).strip("'\"")) from None
        except StopRefused as error:
            raise (Conflict if error.code == "finished" else Unavailable)(str(error)) from None
        except NotLeader as error:
            running = self.running.get(name, execution_id)
            if running is not None and self.running.stop(name, execution_id, STOP_REASON):
                log.info("execution stopped here: no leader answered", extra=fields(job=name, execution=execution_id))
                return self._running_view(running)
            raise Unavailable(
                f"the leader cannot be reached ({error}); only the leader can stop an execution running on "
                "another node: retry shortly"
            ) from None

    async def stop_on_leader(self, name: str, execution_id: str, reason: str = "") -> dict[str, Any]:
        """On the leader: stop the execution on the node that runs it (here, or down that node's link)."""
        reason = reason or STOP_REASON
        self.job(name)
        intent = self.state.intents.get(execution_key(name, execution_id))
        running = self.running.get(name, execution_id)
        if intent is None:
            if running is not None and self.running.stop(name, execution_id, reason):
                return self._running_view(running)  # not committed yet or already closed: stop what runs
            stored = await asyncio.to_thread(self.store.execution, name, execution_id)
            if stored is not None:
                raise Conflict(f"execution {execution_id!r} of job {name!r} already finished: nothing to stop")
            raise NotFound(f"execution {execution_id!r} of job {name!r} not found")
        node = intent.get("node") or self.config.node_name
        if node == self.config.node_name:
            if running is None or not self.running.stop(name, execution_id, reason):
                raise Conflict(f"execution {execution_id!r} of job {name!r} has not started yet; retry in a moment")
        else:
            links = self.leadership.links
            if links is None or not links.stop_execution(node, (name, execution_id), reason):
                raise Unavailable(
                    f"node {node} running execution {execution_id!r} is not linked to the leader; retry shortly "
                    "(a node that stays away is failed, and its executions with it)"
                )
        log.info("execution stop sent", extra=fields(job=name, execution=execution_id, node=node, reason=reason))
        return self._running_view(running) if running is not None else self._intent_view(intent)

    @staticmethod
    def _intent_view(intent: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": intent["id"],
            "job_name": intent["job"],
            "started_at": None,
            "finished_at": None,
            "success": False,
            "output": "",
            "node_name": intent.get("node") or "",
            "group": intent["group"],
            "attempt": intent["attempt"],
            "slot": format_ms(intent["slot_ms"]),
            "running": True,
        }

    def busy(self) -> list[dict[str, Any]]:
        return [self._running_view(r) for r in self.running]

    def _running_view(self, running) -> dict[str, Any]:
        return {
            "id": running.execution_id,
            "job_name": running.job_name,
            "started_at": format_ms(running.started_at * 1000),
            "finished_at": None,
            "success": False,
            "output": running.output_tail().decode(errors="replace"),
            "node_name": running.node_name,
            "group": running.group,
            "attempt": running.attempt,
            "slot": format_ms(running.slot_ms),
            "running": True,
        }

    # -- cluster and scheduler -----------------------------------------------------------------
    def member(self) -> dict[str, Any]:
        """This node, in Dkron's member shape."""
        record = {
            "name": self.config.node_name,
            "raft_address": self.config.raft_address,
            "rpc_address": "",
            "role": "server" if self.config.server else "client",
            "tags": self.config.tags,
            "status": "alive",
        }
        return self._record_view(record, time.time())

    def _record_view(self, record: dict[str, Any], last_heartbeat: float | None = None) -> dict[str, Any]:
        """Dkron's member shape; a client has no Raft address, so its Addr/Port come from its RPC address (or none)."""
        address = record.get("raft_address") or record.get("rpc_address") or ""
        host, _, port = address.rpartition(":")
        role = record.get("role", "server")
        status = record.get("status", "alive")
        if last_heartbeat is None and record.get("status_changed_ms"):
            last_heartbeat = record["status_changed_ms"] / 1000
        return {
            "Name": record["name"],
            "Addr": host,
            "Port": int(port) if port.isdigit() else 0,
            "Tags": {**(record.get("tags") or {}), "role": "dkron" if role == "server" else "client"},
            "Status": STATUS_BY_TEXT.get(status, STATUS_ALIVE),
            **SERF_PROTOCOL,  # Dkron's member fields (Serf's protocol versions), for its clients' parsers
            "statusText": status,
            "role": role,
            "last_heartbeat": format_ms(last_heartbeat * 1000) if last_heartbeat else None,
        }

    def members(self) -> list[dict[str, Any]]:
        """Every member record (servers commit their own, the leader a client's), this node at least.

        On the leader, `last_heartbeat` is the node's last beat; elsewhere, when its status last changed.
        """
        beats = self.heartbeats.last_beat_unix if self.raft.is_leader else {}
        now = time.time()
        records = {}
        for name, record in list(self.state.members.items()):
            beat = now if name == self.config.node_name else beats.get(name)
            records[name] = self._record_view(record, beat)
        if self.config.node_name not in records:
            records[self.config.node_name] = self.member()
        return [records[name] for name in sorted(records)]

    def leader(self) -> dict[str, Any] | None:
        if self.raft.is_leader:
            return self.member()
        address = self.raft.leader_address
        if address is None:
            return None
        for record in list(self.state.members.values()):
            if record["raft_address"] == address:
                return self._record_view(record)
        return None

    def is_leader(self) -> bool:
        return self.raft.is_leader

    async def set_paused(self, paused: bool) -> bool:
        result = await self._submit(command("pause", paused=paused))
        return bool(result.value)

    def plugins(self) -> list[dict[str, Any]]:
        return [status.__dict__ | {} for status in self.host.statuses()]

    def preview(self, schedule: str, timezone: str = "", count: int = 5) -> list[str]:
        if not 1 <= count <= MAX_PREVIEW:
            raise BadRequest(f"count must be between 1 and {MAX_PREVIEW}", [FieldProblem("count", "1..100")])
        try:
            parsed = parse_schedule(schedule, timezone, "preview")
        except ScheduleError as error:
            raise BadRequest(str(error), [FieldProblem("schedule", str(error))]) from None
        after = datetime.datetime.now(datetime.UTC)
        times = []
        for _ in range(count):
            moment = parsed.next_fire_time(after)
            if moment is None:
                break
            times.append(moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"))
            after = moment
        return times

    # -- Raft membership and leaving -----------------------------------------------------------
    def raft_peers(self) -> list[dict[str, Any]]:
        """The Raft membership as this server sees it (`horae raft list-peers`)."""
        return [peer.view() for peer in membership.peers(self.raft, self.state)]

    async def remove_raft_peer(self, peer_id: str) -> list[dict[str, Any]]:
        """Remove a (dead) server from the Raft membership through the leader and forget its member record."""
        _, address = await self._remove_on_leader(peer_id, leaving=False)
        deadline = time.monotonic() + PEER_REMOVAL_SEEN_SECONDS
        while address in self.raft.raft_members() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # a follower applies the change shortly after the leader commits it
        return self.raft_peers()

    async def _remove_on_leader(self, peer_id: str, leaving: bool) -> tuple[str, str]:
        try:
            if self.raft.is_leader:
                return await membership.remove_peer(self.raft, self.state, peer_id, leaving, self.heartbeats.forget)
            leader = self.raft.leader_address
            address = self.directory.rpc_address(leader) if leader else None
            if address is None:
                raise NotLeader("no leader is known")
            return await self.rpc_client.remove_peer(address, peer_id, leaving)
        except membership.PeerNotFound as error:
            raise NotFound(str(error).strip("'\"")) from None
        except (membership.IsLeader, MembershipBusy) as error:
            raise Conflict(str(error)) from None
        except NotLeader:
            raise Unavailable("no leader: the Raft membership cannot change right now; retry shortly") from None
        except CommandOutcomeUnknown as error:
            raise Unavailable(f"{error}; the peer may or may not have been removed") from None
        except PeerRemovalError as error:
            kind = {"not_found": NotFound, "is_leader": Conflict, "busy": Conflict}.get(error.code, Unavailable)
            raise kind(str(error)) from None

    async def leave(self) -> tuple[list[dict[str, Any]], bool]:
        """This server leaves its cluster: hand leadership over if it leads, be marked left, leave Raft.

        Returns the members and whether it left; the agent is then stopped with `stop_after_leave`.
        Every step is idempotent, so a step that fails for a passing reason (a leader change, a
        membership change in progress) starts the sequence again, for up to LEAVE_TIMEOUT seconds.
        A single server is the whole cluster and has nowhere to go: it stays, and only answers.
        """
        name = self.config.node_name
        me = self.raft.self_address
        if not [address for address in self.raft.raft_members() if address != me]:
            log.info("leave requested; a single server has no cluster to leave", extra=fields(node=name))
            return self.members(), False
        deadline = time.monotonic() + LEAVE_TIMEOUT
        while True:
            try:
                await self._leave_once(name, me)
                break
            except (Unavailable, Conflict) as error:
                if time.monotonic() >= deadline:
                    raise
                log.info("leaving not done yet; retrying", extra=fields(error=str(error)))
                await asyncio.sleep(LEAVE_RETRY_SECONDS)
        formation.mark_left(os.path.join(self.config.data_dir, "raft"))
        log.info("left the cluster", extra=fields(node=name, raft=me))
        return self.members(), True

    async def _leave_once(self, name: str, me: str) -> None:
        try:
            if self.raft.is_leader:
                started = time.monotonic()
                new_leader = await self.raft.transfer_leadership()
                log.info(
                    "leadership handed over",
                    extra=fields(new_leader=new_leader, ms=round((time.monotonic() - started) * 1000)),
                )
            await membership.mark_left(self.raft, name)
        except NotLeader:
            raise Unavailable("no leader: this server cannot leave right now; retry shortly") from None
        except CommandOutcomeUnknown as error:
            raise Unavailable(f"leaving failed: {error}; retry") from None
        await self._remove_on_leader(me, leaving=True)

    def stop_after_leave(self) -> None:
        if self.stop_agent is not None:
            self.stop_agent()

    def health(self) -> dict[str, Any]:
        return {
            "ready": self.raft.ready and self.raft.leader_address is not None,
            "node": self.config.node_name,
            "leader": self.raft.leader_address,
            "uptime_seconds": round(time.time() - self.started_at, 3),
        }


def _parent_waves(jobs: list[Any]) -> list[list[Any]]:
    """Jobs grouped by how many of their ancestors are in the same import (0 first)."""
    # Only text names count: anything else (absent, a list...) is for validation to refuse, not to crash on.
    by_name = {j["name"]: j for j in jobs if isinstance(j, dict) and isinstance(j.get("name"), str)}

    def depth(job: Any) -> int:
        seen: set[str] = set()
        while isinstance(job, dict):
            parent = job.get("parent_job")
            if not isinstance(parent, str) or parent not in by_name or parent in seen:
                break
            seen.add(parent)
            job = by_name[parent]
        return len(seen)

    waves: dict[int, list[Any]] = {}
    for job in jobs:
        waves.setdefault(depth(job), []).append(job)
    return [waves[level] for level in sorted(waves)]
