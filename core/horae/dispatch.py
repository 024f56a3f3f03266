"""What happens when a job fires: targets, intent, execution, result, retries, dependents.

The leader's Scheduler calls `Dispatcher.fire(job, slot)`. The dispatcher picks the nodes that run
it (cluster/targets.py), commits the job's next fire time and one intent per node through Raft in
one entry (the state machine refuses a second intent for the same slot), waits for the slot, and
runs each execution: itself through the ExecutionRunner, or on another node over that node's link
(cluster/links.py), whose result comes back up the link. Manual runs, retries and dependent jobs
take the same path with their own slot.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from horae.cluster.links import ExecutionKey, NodeLinks
from horae.cluster.raft import DEFAULT_COMMAND_TIMEOUT, CommandOutcomeUnknown, NotLeader, RaftNode
from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState, CommandResult, execution_key
from horae.cluster.targets import Candidate, candidates_from_members, describe_requirements, select_targets
from horae.logs import fields
from horae.model import execution_group, execution_id, format_ms
from horae.runner import ExecutionOrder, ExecutionRunner
from horae.running import STOP_REASON, RunningExecution, RunningExecutions
from horae.schedule_book import ScheduleBook

log = logging.getLogger("horae.dispatch")
UNIX_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

MAX_RETRY_BACKOFF_SECONDS = 3600.0
# A fire whose next fire time was not committed is tried again this much later (while this server leads).
REFIRE_DELAY_SECONDS = 0.25

# Told of every result this leader records first (not a replay): (execution, job, final); `final` is
# False when a retry of it follows. Called on the loop: it must return at once and never raise.
ResultObserver = Callable[[dict[str, Any], dict[str, Any], bool], None]


def _ignore_result(execution: dict[str, Any], job: dict[str, Any], final: bool) -> None:
    pass


def _stopped(execution: dict[str, Any]) -> bool:
    return execution.get("error") == STOP_REASON


def command(op: str, **payload: Any) -> dict[str, Any]:
    return {"v": COMMAND_FORMAT_VERSION, "op": op, **payload}


def group_of_slot(slot_ms: int) -> int:
    """Dkron's group (the slot in Unix nanoseconds) for a slot given in Unix milliseconds."""
    return execution_group(UNIX_EPOCH + datetime.timedelta(milliseconds=slot_ms))


@dataclass(frozen=True)
class Launch:
    job_name: str
    slot_ms: int
    attempt: int
    kind: str  # scheduled | manual | retry | dependent | catchup


@dataclass(frozen=True)
class LocalNode:
    """What the leader knows of itself without its member record: a node is always a candidate for itself."""

    name: str
    tags: dict[str, str]
    executors: frozenset[str]


class Dispatcher:
    def __init__(
        self,
        raft: RaftNode,
        state: ClusterState,
        runner: ExecutionRunner,
        schedules: ScheduleBook,
        running: RunningExecutions,
        me: LocalNode,
        links: NodeLinks,
        reschedule: Callable[[str, int | None], None],
        clock: Callable[[], float] = time.time,
        on_result: ResultObserver = _ignore_result,
    ) -> None:
        self._raft = raft
        self._state = state
        self._runner = runner
        self._schedules = schedules
        self._running = running
        self._me = me
        self._node_name = me.name
        self._links = links
        self._reschedule = reschedule
        self._clock = clock
        self._on_result = on_result
        self._tasks: set[asyncio.Task] = set()
        # Remote executions this leader waits for: their result arrives over the node's link.
        self._waiters: dict[ExecutionKey, asyncio.Future] = {}
        # Executions this leader started and that have not finished, per node: "least busy" for untagged jobs.
        self._busy: Counter[str] = Counter()
        self._candidates: tuple[int, list[Candidate]] = (-1, [])
        self._recording: set[ExecutionKey] = set()

    # -- entry points --------------------------------------------------------------------------
    async def fire(self, job_name: str, slot_ms: int) -> None:
        """A scheduled slot is due (called `lead` before it): commit next fire + intents, then run."""
        job = self._state.jobs.get(job_name)
        if job is None:
            return
        next_ms = self._schedules.next_fire_ms(job, slot_ms)
        launch = Launch(job_name, slot_ms, 1, "scheduled")
        skip = self._skip_reason(job, slot_ms)
        intents = self._intents(job, launch) if skip is None else []
        # forward=False: a server that is no longer the leader must not have its fires committed by the new one.
        submissions = [self._raft.submit(command("set_next_fire", job=job_name, next_fire_ms=next_ms), forward=False)]
        if intents:
            submissions.append(self._raft.submit(command("intent", intents=intents), forward=False))
        results = await asyncio.gather(*submissions, return_exceptions=True)
        if isinstance(results[0], (NotLeader, CommandOutcomeUnknown)):
            # The next fire time was not committed (leadership is moving, or Raft did not answer). Moving past
            # this slot here would let a later fire's commit skip it for good: try the slot again instead. Its
            # intent, if that did commit, is launched below, and a second one for the slot is refused.
            self._fire_again_later(job_name, slot_ms)
        else:
            self._reschedule(job_name, next_ms)
        if skip is not None:
            log.info("slot skipped", extra=fields(job=job_name, slot=format_ms(slot_ms), reason=skip))
            return
        if not intents:
            await self._no_target(job, launch)
            return
        if not self._accepted(results[1], launch):
            return
        try:
            await self._sleep_until(slot_ms)
        except asyncio.CancelledError:
            for intent in intents:
                await self._close_intent(intent, "not started: the agent stopped before the slot")
            raise
        await self._launch(job, launch, intents)

    def _fire_again_later(self, job_name: str, slot_ms: int) -> None:
        async def again() -> None:
            await asyncio.sleep(REFIRE_DELAY_SECONDS)
            runtime = self._state.runtime.get(job_name)
            if runtime is not None and runtime.next_fire_ms == slot_ms:  # nobody moved the job meanwhile
                self._reschedule(job_name, slot_ms)

        log.warning("slot to fire again", extra=fields(job=job_name, slot=format_ms(slot_ms)))
        self._spawn(again())

    async def catch_up(self, job_name: str, slot_ms: int) -> None:
        """Run one missed slot now; the intent dedupes it like any scheduled slot."""
        job = self._state.jobs.get(job_name)
        if job is None:
            return
        launch = Launch(job_name, slot_ms, 1, "scheduled")
        intents = self._intents(job, launch)
        if not intents:
            await self._no_target(job, launch)
            return
        result = await asyncio.gather(
            self._raft.submit(command("intent", intents=intents), forward=False), return_exceptions=True
        )
        if self._accepted(result[0], launch):
            self._spawn(self._launch(job, launch, intents))

    async def run_now(self, job_name: str, kind: str = "manual") -> str:
        """Start a run outside the schedule (`/run`, a dependent job); returns its (first) execution id."""
        slot_ms = int(self._clock() * 1000)
        launch = Launch(job_name, slot_ms, 1, kind)
        job = self._state.jobs.get(job_name)
        if job is None:
            raise LookupError(f"job {job_name!r} does not exist")
        if job.get("concurrency") == "forbid" and self._running_for(job_name):
            raise RuntimeError(f"job {job_name!r} is running and its concurrency is forbid")
        intents = self._intents(job, launch)
        if not intents:
            raise RuntimeError(f"no alive node can run job {job_name!r}: {self._requirements(job)}")
        result = await self._raft.submit(command("intent", intents=intents), forward=False)
        if not result.ok:
            raise RuntimeError(result.reason)
        self._spawn(self._launch(job, launch, intents))
        return intents[0]["id"]

    # -- targets ---------------------------------------------------------------------------------
    def _intents(self, job: dict[str, Any], launch: Launch, prefer: str | None = None) -> list[dict[str, Any]]:
        """One intent per node that runs this launch (none when no alive node qualifies)."""
        candidates = self._alive_candidates()
        if prefer is not None and any(c.name == prefer for c in candidates):
            nodes = [prefer]
        elif len(candidates) == 1 and not job.get("tags"):
            only = candidates[0]
            wanted = job.get("executor") or ""
            nodes = [only.name] if not only.executors or not wanted or wanted in only.executors else []
        else:
            if not job.get("tags"):
                # Untagged: any one node will do, so not one that has yet to link to this leader.
                linked = self._links.linked_nodes() | {self._node_name}
                candidates = [c for c in candidates if c.name in linked] or candidates
            busy = self._busy
            nodes = select_targets(
                job.get("tags") or {},
                job.get("executor") or "",
                [Candidate(c.name, c.tags, c.executors, busy[c.name]) for c in candidates],
            )
        group = group_of_slot(launch.slot_ms)
        return [
            {
                "id": execution_id(group, node, launch.attempt),
                "job": launch.job_name,
                "slot_ms": launch.slot_ms,
                "group": group,
                "attempt": launch.attempt,
                "kind": launch.kind,
                "node": node,
                "created_ms": int(self._clock() * 1000),
            }
            for node in nodes
        ]

    def _alive_candidates(self) -> list[Candidate]:
        """Alive members plus this node (as it knows itself), rebuilt only when the members change.

        A node that is alive but not linked to this leader yet (it just took over) is a candidate
        too: its execution waits for the link (see `_run_remote`).
        """
        version, cached = self._candidates
        if version != self._state.members_version:
            found = {c.name: c for c in candidates_from_members(self._state.members, {})}
            found[self._me.name] = Candidate(self._me.name, self._me.tags, self._me.executors)
            cached = sorted(found.values(), key=lambda c: c.name)
            self._candidates = (self._state.members_version, cached)
        return cached

    def _requirements(self, job: dict[str, Any]) -> str:
        return describe_requirements(job.get("tags") or {}, job.get("executor") or "")

    async def _no_target(self, job: dict[str, Any], launch: Launch) -> None:
        """No alive node qualifies: record a failed execution that says why, rather than run nothing silently."""
        reason = f"no alive node can run it: it needs {self._requirements(job)}"
        group = group_of_slot(launch.slot_ms)
        intent = {
            "id": execution_id(group, "none", launch.attempt),
            "job": job["name"],
            "slot_ms": launch.slot_ms,
            "group": group,
            "attempt": launch.attempt,
            "kind": launch.kind,
            "node": "",
        }
        await self._close_intent(intent, reason, unplanned=True)

    # -- running ---------------------------------------------------------------------------------
    async def _launch(self, job: dict[str, Any], launch: Launch, intents: list[dict[str, Any]]) -> None:
        if len(intents) == 1:
            await self._run_one(job, launch, intents[0])
        else:
            await asyncio.gather(*(self._run_one(job, launch, intent) for intent in intents))

    async def _run_one(self, job: dict[str, Any], launch: Launch, intent: dict[str, Any]) -> None:
        job = self._state.jobs.get(job["name"], job)
        node = intent["node"]
        self._busy[node] += 1
        try:
            if node == self._node_name:
                order = ExecutionOrder(
                    job, intent["id"], intent["group"], intent["attempt"], intent["slot_ms"], launch.kind
                )
                key = (intent["job"], intent["id"])
                self._recording.add(key)
                try:
                    execution, finished_ms = await self._runner.run(order)
                    await self._record(execution, finished_ms)
                finally:
                    self._recording.discard(key)
            else:
                execution = await self._run_remote(job, intent)
                if execution is None:  # stopped here; the node reports to whoever leads then
                    return
        finally:
            self._busy[node] -= 1
            if self._busy[node] <= 0:
                del self._busy[node]
        await self._after(job, launch, node, execution["success"], stopped=_stopped(execution))

    async def _run_remote(self, job: dict[str, Any], intent: dict[str, Any]) -> dict[str, Any] | None:
        key = (intent["job"], intent["id"])
        node = intent["node"]
        waiter = self._waiters[key] = asyncio.get_running_loop().create_future()
        running = RunningExecution(
            intent["id"], intent["job"], node, intent["group"], intent["attempt"], intent["slot_ms"]
        )
        running.task = asyncio.current_task()
        self._running.add(running)
        try:
            # Right after a leader change nodes are still linking: give them their heartbeat deadline.
            linked = await self._links.wait_linked(node, self._links.heartbeats.failure_seconds)
            if not linked or not self._links.run(node, job, intent):
                reason = f"node {node} did not link to the leader within its heartbeat deadline"
                await self._close_intent(intent, reason, final=None)
                return self._failed_record(intent, reason, None, int(self._clock() * 1000))
            return await waiter
        except asyncio.CancelledError:
            if running.stop_reason:
                self._links.stop_execution(node, key, running.stop_reason)
            return None
        finally:
            self._running.remove(intent["job"], intent["id"])
            if self._waiters.get(key) is waiter:
                del self._waiters[key]

    async def _record(self, execution: dict[str, Any], finished_ms: int) -> bool:
        try:
            await self._commit_result(execution, finished_ms, final=None)
        except (CommandOutcomeUnknown, NotLeader) as error:
            log.error(
                "result not recorded", extra=fields(job=execution["job_name"], execution=execution["id"], error=error)
            )
            return False
        return True

    async def _commit_result(
        self,
        execution: dict[str, Any],
        finished_ms: int,
        final: bool | None,
        unplanned: bool = False,
        forward: bool = True,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
    ) -> CommandResult:
        """Commit a result; when this commit recorded it (not a replay), tell the result observer.

        `final`: whether no retry can follow; None when the caller goes on to `_after`, whose rule decides.
        """
        cmd = command("result", execution=execution, finished_at_ms=finished_ms, unplanned=unplanned)
        result = await self._raft.submit(cmd, timeout=timeout, forward=forward)
        job = self._state.jobs.get(execution["job_name"])
        if result.ok and result.reason != "already recorded" and job is not None:
            if final is None:
                attempt = int(execution.get("attempt") or 1)
                final = not self._retry_follows(job, attempt, bool(execution["success"]), _stopped(execution))
            try:
                self._on_result(execution, job, final)
            except Exception:  # an observer's bug must not fail the execution path
                log.exception("result observer failed", extra=fields(job=job["name"], execution=execution["id"]))
        return result

    # -- news from nodes' links (LinkEvents) -----------------------------------------------------
    async def node_registered(self, node: str, live: set[ExecutionKey], booted_at_ms: int) -> None:
        """A node linked: settle its open intents that it neither runs nor has a result for.

        One committed before the node's process started died with an earlier process: it is
        recorded as failed (running it again could run it twice). One committed while this process
        ran never reached it (the leader that sent it died first): it is sent now, late but once.
        """
        if node == self._node_name:
            return
        for intent in [i for i in list(self._state.intents.values()) if i.get("node") == node]:
            key = (intent["job"], intent["id"])
            if key in live or key in self._waiters:
                continue
            created_ms = intent.get("created_ms", intent["slot_ms"] - 1000)
            job = self._state.jobs.get(intent["job"])
            if booted_at_ms and booted_at_ms < created_ms and job is not None:
                log.info("sending an execution that never reached its node", extra=fields(job=key[0], execution=key[1]))
                launch = Launch(intent["job"], intent["slot_ms"], intent["attempt"], intent["kind"])
                self._spawn(self._run_one(job, launch, intent))
            else:
                await self._fail_remote(
                    intent, f"node {node} restarted while this execution ran; its outcome is unknown"
                )

    def results_in_flight(self) -> set[ExecutionKey]:
        """Executions this node ran itself whose results are not committed yet (for its link's Register)."""
        return set(self._recording)

    def execution_started(self, node: str, key: ExecutionKey, started_at_ms: int) -> None:
        running = self._running.get(*key)
        if running is not None:
            running.started_at = started_at_ms / 1000

    def execution_output(self, node: str, key: ExecutionKey, chunk: bytes) -> None:
        running = self._running.get(*key)
        if running is not None:
            running.add_output(chunk)

    async def execution_result(self, node: str, execution: dict[str, Any], finished_at_ms: int) -> bool:
        """Commit a node's result; True once committed (the node may then forget it)."""
        key = (execution["job_name"], execution["id"])
        intent = self._state.intents.get(execution_key(*key))
        try:
            result = await self._commit_result(execution, finished_at_ms, final=None, forward=False)
        except (CommandOutcomeUnknown, NotLeader) as error:
            log.warning("remote result not recorded yet", extra=fields(job=key[0], execution=key[1], error=error))
            return False
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(execution)
        elif intent is not None and result.ok and result.reason != "already recorded":
            # Sent by a previous leader: this one does what follows a result.
            job = self._state.jobs.get(key[0])
            if job is not None:
                launch = Launch(key[0], intent["slot_ms"], intent["attempt"], intent["kind"])
                self._spawn(self._after(job, launch, node, bool(execution["success"]), stopped=_stopped(execution)))
        return True

    async def node_failed(self, node: str, reason: str) -> None:
        """Heartbeats declared a node dead: fail what it was running."""
        for intent in [i for i in list(self._state.intents.values()) if i.get("node") == node]:
            await self._fail_remote(intent, reason)

    async def _fail_remote(self, intent: dict[str, Any], reason: str) -> None:
        key = (intent["job"], intent["id"])
        waiter = self._waiters.pop(key, None)
        record = await self._close_intent(intent, reason, final=None)
        if waiter is not None and not waiter.done():
            waiter.set_result(record)
        elif (job := self._state.jobs.get(intent["job"])) is not None:
            # Sent by a previous leader: this one does what follows a result (a retry, if the job has any).
            launch = Launch(intent["job"], intent["slot_ms"], intent["attempt"], intent["kind"])
            self._spawn(self._after(job, launch, intent.get("node") or "", False))

    async def fail_orphaned_intents(self) -> int:
        """On gaining leadership: close intents that can no longer report.

        Those of this node that do not run here any more (it stopped while they ran; without this a
        `concurrency: forbid` job would wait forever, Dkron #1939), and those of nodes that are not
        alive members. Alive nodes get their heartbeat deadline to link and report.
        """
        alive = {name for name, record in self._state.members.items() if record.get("status", "alive") == "alive"}
        orphans = []
        for intent in list(self._state.intents.values()):
            node = intent.get("node")
            if node == self._node_name:
                if self._running.get(intent["job"], intent["id"]) is None:
                    orphans.append((intent, "the node stopped while this execution ran; its outcome is unknown"))
            elif node not in alive:
                orphans.append((intent, f"node {node} is not alive; the outcome of this execution is unknown"))
        for intent, reason in orphans:
            await self._close_intent(intent, reason, format_ms(intent["slot_ms"]))
        return len(orphans)

    def _failed_record(
        self, intent: dict[str, Any], reason: str, started_at: str | None, now_ms: int
    ) -> dict[str, Any]:
        return {
            "id": intent["id"],
            "job_name": intent["job"],
            "group": intent["group"],
            "attempt": intent["attempt"],
            "node_name": intent.get("node") or "",
            "slot": format_ms(intent["slot_ms"]),
            "started_at": started_at,
            "finished_at": format_ms(now_ms),
            "success": False,
            "output": reason,
            "error": reason,
            "exit_code": -1,
            "cpu_seconds": 0.0,
            "max_rss_bytes": 0,
        }

    async def _close_intent(
        self,
        intent: dict[str, Any],
        reason: str,
        started_at: str | None = None,
        unplanned: bool = False,
        final: bool | None = True,
    ) -> dict[str, Any]:
        """Record a failed result for an intent whose execution will not report, so it never blocks its job.

        `final=None` when the caller goes on to `_after` (a retry may follow).
        """
        now_ms = int(self._clock() * 1000)
        execution = self._failed_record(intent, reason, started_at, now_ms)
        try:
            await self._commit_result(execution, now_ms, final=final, unplanned=unplanned, timeout=2.0)
        except (CommandOutcomeUnknown, NotLeader) as error:
            log.error("result not recorded", extra=fields(job=intent["job"], execution=intent["id"], error=error))
            return execution
        log.warning(reason, extra=fields(job=intent["job"], execution=intent["id"]))
        return execution

    # -- what follows a result -------------------------------------------------------------------
    async def _after(
        self, job: dict[str, Any], launch: Launch, node: str, success: bool, stopped: bool = False
    ) -> None:
        name = job["name"]
        if self._retry_follows(job, launch.attempt, success, stopped):
            backoff = float(job.get("retry_backoff") or 0) * (2 ** (launch.attempt - 1))
            retry = Launch(name, launch.slot_ms, launch.attempt + 1, "retry")
            await asyncio.sleep(min(backoff, MAX_RETRY_BACKOFF_SECONDS))
            # The same node again when it is still alive; otherwise another that qualifies.
            intents = self._intents(job, retry, prefer=node)[:1]
            if not intents:
                await self._no_target(job, retry)
                return
            try:
                result = await self._raft.submit(command("intent", intents=intents), forward=False)
            except (CommandOutcomeUnknown, NotLeader) as error:
                result = error
            if self._accepted(result, retry):
                await self._run_one(job, retry, intents[0])
            return
        if not success:
            return
        for child in list(self._state.jobs.get(name, {}).get("dependent_jobs") or []):
            try:
                await self.run_now(child, kind="dependent")
            except (LookupError, RuntimeError) as error:
                log.warning("dependent job not started", extra=fields(job=child, parent=name, error=error))
        if job.get("ephemeral"):
            await self._raft.submit(command("delete_job", name=name))
            self._reschedule(name, None)

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _retry_follows(job: dict[str, Any], attempt: int, success: bool, stopped: bool = False) -> bool:
        """A failed attempt is retried while the job has retries left, unless someone stopped it on purpose."""
        return not success and not stopped and attempt <= int(job.get("retries") or 0)

    def _skip_reason(self, job: dict[str, Any], slot_ms: int) -> str | None:
        if job.get("disabled"):
            return "job is disabled"
        if self._state.paused:
            return "scheduling is paused"
        if not self._schedules.in_window(job, slot_ms):
            return "outside starts_at/expires_at"
        if job.get("concurrency") == "forbid" and self._running_for(job["name"]):
            return "previous execution still running and concurrency is forbid"
        return None

    def _running_for(self, job_name: str) -> bool:
        return any(intent["job"] == job_name for intent in self._state.intents.values())

    def _accepted(self, result: Any, launch: Launch) -> bool:
        if isinstance(result, BaseException):
            log.error("intent not committed", extra=fields(job=launch.job_name, slot_ms=launch.slot_ms, error=result))
            return False
        if not result.ok:
            log.info("intent refused", extra=fields(job=launch.job_name, slot_ms=launch.slot_ms, reason=result.reason))
            return False
        return True

    async def _sleep_until(self, moment_ms: int) -> None:
        delay = moment_ms / 1000 - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, grace: float, launches: Iterable[asyncio.Task] = ()) -> None:
        """Let running executions finish within `grace` seconds, then cancel them and every launch.

        A launch still waiting for its slot records a failed result rather than leaving an intent
        open, and every result is submitted before this returns (Raft is stopped after it).
        Executions running on other nodes go on; they report to whichever server leads next.
        """
        running = [r.task for r in self._running if r.task is not None and r.node_name == self._node_name]
        if running:
            await asyncio.wait(running, timeout=grace)
        rest = [task for task in {*running, *launches, *self._tasks} if not task.done()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
