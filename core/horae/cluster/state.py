"""The replicated state and the commands that change it — pure Python, no Raft, no I/O.

Every server applies the same commands in the same order (the Raft log) to a `ClusterState`.
Commands are plain dicts carrying a format version `v`, an `op`, and the keys that make them
idempotent: applying a command twice (a replay after restart, a retried submission whose first
outcome was unknown) changes nothing the second time. `apply` returns a `CommandResult` that the
submitter receives. Finished executions are handed to an `ExecutionSink` (the sqlite store) and
are not part of the state, which keeps snapshots small.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from horae.model.execution import status_from_counts

COMMAND_FORMAT_VERSION = 1

Command = dict[str, Any]


def execution_key(job_name: str, execution_id: str) -> str:
    """Execution ids are unique per job (Dkron's `<group>-<node>-<attempt>`): jobs due together share them."""
    return f"{job_name}\x00{execution_id}"


@dataclass(frozen=True, slots=True)
class CommandResult:
    ok: bool
    reason: str = ""
    value: Any = None


class ExecutionSink(Protocol):
    """Where finished executions go when a result command is applied (the store)."""

    def put_execution(self, execution: dict[str, Any]) -> None: ...

    def delete_job_executions(self, job_name: str) -> None: ...


@dataclass(slots=True)
class JobRuntime:
    """What the servers keep about a job besides its definition: counters and the next fire time."""

    next_fire_ms: int | None = None
    success_count: int = 0
    error_count: int = 0
    last_success_ms: int | None = None
    last_error_ms: int | None = None
    status: str = ""
    missed_count: int = 0
    # The latest scheduled slot with a committed intent: a scheduled intent at or before it is refused.
    last_scheduled_slot_ms: int | None = None
    # `status` comes from the latest execution group seen: node_name -> its latest attempt succeeded.
    last_group: int | None = None
    group_outcomes: dict[str, bool] = field(default_factory=dict)


@dataclass
class ClusterState:
    """Jobs, their runtime figures, open execution intents, the scheduler's pause switch, and the servers."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    runtime: dict[str, JobRuntime] = field(default_factory=dict)
    # execution_key(job, id) -> intent (id, job, slot_ms, group, attempt, node, kind)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    paused: bool = False
    # node name -> member record (name, raft_address, rpc_address, role, tags, executors, status,
    # status_changed_ms, config_schemas): servers commit their own, the leader a client's when it registers.
    # `config_schemas` maps `kind:name` of each plugin to a digest in `schemas` ("" = it serves none); a
    # record from before plugins reported schemas has no such key.
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    # schema digest -> the JSON Schema text (horae.cluster.schemas): each distinct schema once, however
    # many members report it; dropped when no member refers to it any more.
    schemas: dict[str, str] = field(default_factory=dict)
    # Bumped whenever `members` changes, so readers can cache what they derive from it.
    members_version: int = field(default=0, repr=False, compare=False)
    # Bumped whenever a job is added or removed: the API's sorted list of names is rebuilt only then.
    jobs_version: int = field(default=0, repr=False, compare=False)
    sink: ExecutionSink | None = field(default=None, repr=False, compare=False)
    # Called after each applied command (on the Raft thread): the scheduler's change feed.
    listener: Callable[[Command, CommandResult], None] | None = field(default=None, repr=False, compare=False)

    def apply(self, command: Command) -> CommandResult:
        version = command.get("v")
        if version != COMMAND_FORMAT_VERSION:
            return CommandResult(False, f"command format version {version!r} is not understood by this server")
        handler = _HANDLERS.get(command.get("op", ""))
        if handler is None:
            return CommandResult(False, f"unknown command {command.get('op')!r}")
        result = handler(self, command)
        if self.listener is not None:
            self.listener(command, result)
        return result

    # -- snapshot: everything but the sink and listener -------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "format": COMMAND_FORMAT_VERSION,
            "jobs": copy.deepcopy(self.jobs),
            "runtime": {
                name: dataclasses.replace(runtime, group_outcomes=dict(runtime.group_outcomes))
                for name, runtime in self.runtime.items()
            },
            "intents": copy.deepcopy(self.intents),
            "paused": self.paused,
            "members": copy.deepcopy(self.members),
            "schemas": dict(self.schemas),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.jobs = snapshot["jobs"]
        self.runtime = snapshot["runtime"]
        for runtime in self.runtime.values():
            _fill_missing_fields(runtime)
        self.intents = snapshot["intents"]
        self.paused = snapshot["paused"]
        self.members = snapshot.get("members", {})
        self.schemas = snapshot.get("schemas", {})
        self.members_version += 1
        self.jobs_version += 1


def _fill_missing_fields(runtime: JobRuntime) -> None:
    """A snapshot pickled before a JobRuntime field existed lacks that slot: give it its default."""
    for spec in dataclasses.fields(JobRuntime):
        if not hasattr(runtime, spec.name):
            default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
            setattr(runtime, spec.name, default)


def _put_job(state: ClusterState, command: Command) -> CommandResult:
    job = command["job"]
    name = job["name"]
    previous = state.jobs.get(name)
    parent = job.get("parent_job") or ""
    if parent and parent not in state.jobs:
        return CommandResult(False, f"parent_job {parent!r} does not exist")
    if parent and _is_ancestor(state, name, parent):
        return CommandResult(False, f"parent_job {parent!r} would make a cycle of dependent jobs")
    if previous is not None and (previous.get("parent_job") or "") != parent:
        _unlink_child(state, previous.get("parent_job") or "", name)
    stored = dict(job)
    stored["dependent_jobs"] = previous.get("dependent_jobs", []) if previous else []
    state.jobs[name] = stored
    if previous is None:
        state.jobs_version += 1
    if parent and name not in state.jobs[parent]["dependent_jobs"]:
        state.jobs[parent]["dependent_jobs"] = [*state.jobs[parent]["dependent_jobs"], name]
    runtime = state.runtime.setdefault(name, JobRuntime())
    if "next_fire_ms" in command:
        runtime.next_fire_ms = command["next_fire_ms"]
    return CommandResult(True, value=name)


def _is_ancestor(state: ClusterState, name: str, candidate_parent: str) -> bool:
    """True when `name` is `candidate_parent` or one of its ancestors."""
    seen = set()
    current = candidate_parent
    while current and current not in seen:
        if current == name:
            return True
        seen.add(current)
        current = (state.jobs.get(current) or {}).get("parent_job") or ""
    return False


def _unlink_child(state: ClusterState, parent: str, child: str) -> None:
    if parent in state.jobs:
        state.jobs[parent]["dependent_jobs"] = [n for n in state.jobs[parent]["dependent_jobs"] if n != child]


def _delete_job(state: ClusterState, command: Command) -> CommandResult:
    name = command["name"]
    job = state.jobs.get(name)
    if job is None:
        return CommandResult(True, "already gone")
    if job.get("dependent_jobs"):
        return CommandResult(
            False, f"job {name!r} has dependent jobs {job['dependent_jobs']}: delete or re-parent them first"
        )
    _unlink_child(state, job.get("parent_job") or "", name)
    del state.jobs[name]
    state.jobs_version += 1
    state.runtime.pop(name, None)
    for key in [key for key, intent in state.intents.items() if intent["job"] == name]:
        del state.intents[key]
    if state.sink is not None:
        state.sink.delete_job_executions(name)
    return CommandResult(True, value=job)


def _set_next_fire(state: ClusterState, command: Command) -> CommandResult:
    runtime = state.runtime.get(command["job"])
    if runtime is None:
        return CommandResult(False, f"job {command['job']!r} does not exist")
    runtime.next_fire_ms = command["next_fire_ms"]
    runtime.missed_count += command.get("missed", 0)
    return CommandResult(True)


def _set_disabled(state: ClusterState, command: Command) -> CommandResult:
    job = state.jobs.get(command["job"])
    if job is None:
        return CommandResult(False, f"job {command['job']!r} does not exist")
    job["disabled"] = bool(command["disabled"])
    return CommandResult(True, value=job["disabled"])


def _intent(state: ClusterState, command: Command) -> CommandResult:
    """Record that executions of one job and slot are about to start, one per target node.

    `intents` holds them (`intent`, a single one, is the older form). A scheduled slot is accepted
    once: a second command for the same (job, scheduled slot) is refused, whichever nodes it names.
    """
    intents = command.get("intents") or [command["intent"]]
    first = intents[0]
    job_name = first["job"]
    if job_name not in state.jobs:
        return CommandResult(False, f"job {job_name!r} does not exist")
    keys = [execution_key(job_name, intent["id"]) for intent in intents]
    for key in keys:
        if key in state.intents:
            return CommandResult(False, "duplicate", value=state.intents[key])
    runtime = state.runtime[job_name]
    if first["kind"] == "scheduled" and first["attempt"] == 1:
        last = runtime.last_scheduled_slot_ms
        if last is not None and first["slot_ms"] <= last:
            return CommandResult(False, f"slot {first['slot_ms']} of job {job_name!r} already has an execution")
        runtime.last_scheduled_slot_ms = first["slot_ms"]
    for key, intent in zip(keys, intents, strict=True):
        state.intents[key] = dict(intent)
    return CommandResult(True, value=intents if "intents" in command else first)


def _result(state: ClusterState, command: Command) -> CommandResult:
    """An execution finished: close its intent, update the job's counters, hand it to the store."""
    execution = command["execution"]
    intent = state.intents.pop(execution_key(execution["job_name"], execution["id"]), None)
    runtime = state.runtime.get(execution["job_name"])
    if runtime is None:
        return CommandResult(False, f"job {execution['job_name']!r} no longer exists")
    if intent is None and not command.get("unplanned", False):
        return CommandResult(True, "already recorded")
    finished_ms = command.get("finished_at_ms") or 0
    if execution["success"]:
        runtime.success_count += 1
        runtime.last_success_ms = finished_ms
    else:
        runtime.error_count += 1
        runtime.last_error_ms = finished_ms
    _update_status(runtime, execution)
    if state.sink is not None:
        state.sink.put_execution(execution)
    return CommandResult(True, value=execution)


def _update_status(runtime: JobRuntime, execution: dict[str, Any]) -> None:
    """Status reflects each node's latest attempt in the latest group, so a fan-out can be partial.

    Results apply in attempt order per node (a retry starts after the attempt it retries finished),
    so the latest result for a node in the group is its latest attempt. An older group is ignored.
    """
    group = execution.get("group")
    if group is not None and runtime.last_group is not None and group < runtime.last_group:
        return
    if group is None or group != runtime.last_group:
        runtime.last_group = group
        runtime.group_outcomes = {}
    runtime.group_outcomes[execution.get("node_name") or ""] = bool(execution["success"])
    succeeded = sum(runtime.group_outcomes.values())
    runtime.status = status_from_counts(succeeded, len(runtime.group_outcomes) - succeeded)


def _clear_executions(state: ClusterState, command: Command) -> CommandResult:
    """Forget a job's finished executions and the figures drawn from them (Dkron's DELETE …/executions).

    Scheduling state (next fire, missed count, last scheduled slot) and open intents are kept:
    running executions still report their results, which then count afresh.
    """
    name = command["job"]
    runtime = state.runtime.get(name)
    if name not in state.jobs or runtime is None:
        return CommandResult(False, f"job {name!r} does not exist")
    runtime.success_count = runtime.error_count = 0
    runtime.last_success_ms = runtime.last_error_ms = None
    runtime.status = ""
    runtime.last_group = None
    runtime.group_outcomes = {}
    if state.sink is not None:
        state.sink.delete_job_executions(name)
    return CommandResult(True, value=name)


def _pause(state: ClusterState, command: Command) -> CommandResult:
    state.paused = bool(command["paused"])
    return CommandResult(True, value=state.paused)


def _put_member(state: ClusterState, command: Command) -> CommandResult:
    """Record a node (name, addresses, role, tags, executors, status, config schema digests); the same
    record again changes nothing.

    Servers commit their own record; the leader commits a client's when its link registers. The command
    carries (in `schemas`, digest -> text) the schemas the record names that the submitter did not see
    in the state; a schema already held is kept as it is (a digest names one text).
    """
    member = command["member"]
    previous = state.members.get(member["name"]) or {}
    record = {
        "name": member["name"],
        "raft_address": member.get("raft_address", ""),
        "rpc_address": member.get("rpc_address", ""),
        "role": member.get("role", "server"),
        "tags": dict(member.get("tags") or {}),
        "executors": sorted(member.get("executors") or previous.get("executors") or []),
        "status": member.get("status") or previous.get("status") or "alive",
        "status_changed_ms": previous.get("status_changed_ms"),
    }
    if record["status"] != previous.get("status"):
        record["status_changed_ms"] = command.get("at_ms")
    # Absent from a command of a node that does not report schemas: the record keeps what it had.
    refs = member.get("config_schemas", previous.get("config_schemas"))
    if refs is not None:
        record["config_schemas"] = dict(refs)
    added = _add_schemas(state, command.get("schemas") or {}, record.get("config_schemas") or {})
    if previous == record and not added:
        return CommandResult(True, "unchanged", value=record)
    state.members[record["name"]] = record
    if previous.get("config_schemas") != record.get("config_schemas"):
        _drop_unused_schemas(state)
    state.members_version += 1
    return CommandResult(True, value=record)


def _add_schemas(state: ClusterState, schemas: dict[str, str], refs: dict[str, str]) -> bool:
    """Keep the schemas `refs` names that the state lacks; True when any was added."""
    added = False
    for digest in set(refs.values()):
        if digest and digest not in state.schemas and digest in schemas:
            state.schemas[digest] = schemas[digest]
            added = True
    return added


def _drop_unused_schemas(state: ClusterState) -> None:
    """Forget schemas no member names any more (a plugin upgraded everywhere, a node removed)."""
    if not state.schemas:
        return
    used = {digest for record in state.members.values() for digest in (record.get("config_schemas") or {}).values()}
    for digest in [digest for digest in state.schemas if digest not in used]:
        del state.schemas[digest]


def _set_member_status(state: ClusterState, command: Command) -> CommandResult:
    """A node's status changed (alive, failed, left): the only heartbeat news that is committed."""
    record = state.members.get(command["name"])
    if record is None:
        return CommandResult(False, f"node {command['name']!r} is not a member")
    if record.get("status") == command["status"]:
        return CommandResult(True, "unchanged", value=record)
    state.members[command["name"]] = {**record, "status": command["status"], "status_changed_ms": command.get("at_ms")}
    state.members_version += 1
    return CommandResult(True, value=state.members[command["name"]])


def _remove_member(state: ClusterState, command: Command) -> CommandResult:
    """Forget a node (after `raft remove-peer`, or a left client that an operator removes)."""
    state.members_version += 1
    removed = state.members.pop(command["name"], None)
    if removed is not None and removed.get("config_schemas"):
        _drop_unused_schemas(state)
    return CommandResult(True, value=removed)


_HANDLERS: dict[str, Callable[[ClusterState, Command], CommandResult]] = {
    "put_job": _put_job,
    "delete_job": _delete_job,
    "set_next_fire": _set_next_fire,
    "set_disabled": _set_disabled,
    "intent": _intent,
    "result": _result,
    "clear_executions": _clear_executions,
    "pause": _pause,
    "put_member": _put_member,
    "set_member_status": _set_member_status,
    "remove_member": _remove_member,
}
