"""Prometheus metrics of one server agent: what `/metrics` serves, in a registry of its own.

Executions are counted by the leader when it commits their result, so every execution counts once
in the cluster (client agents serve no HTTP; their executions appear on the leader's `/metrics`).
Gauges (Raft, members, plugins, running executions) are read from the node's parts at scrape time.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from horae.cluster.state import Command, CommandResult, execution_key
from horae.logs import fields
from horae.model import parse_time

if TYPE_CHECKING:
    from horae.service import HoraeService

log = logging.getLogger("horae.metrics")

# What Prometheus' text exposition format 0.0.4 is served as.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("succeeded", "failed")
# pysyncobj's _RAFT_STATE numbers.
RAFT_STATES = {0: "follower", 1: "candidate", 2: "leader"}
MEMBER_STATUSES = ("alive", "leaving", "left", "failed")
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Open scheduled intents remembered for lateness; beyond this something is wrong: forget them rather than grow.
MAX_TRACKED_INTENTS = 200_000
# getStatus() iterates pysyncobj dicts that its thread may change meanwhile: read it again this many times.
RAFT_STATUS_ATTEMPTS = 3

# The `_created` series double every counter's and histogram's lines for no use to Prometheus' text
# format; the agent process has no other prometheus_client user.
disable_created_metrics()

StateListener = Callable[[Command, CommandResult], None]


@dataclass(frozen=True)
class Sample:
    """What the scrape-time metrics read from the node, taken on the event loop."""

    raft_state: str = ""
    raft_term: int = 0
    raft_commit_index: int = 0
    raft_last_applied: int = 0
    members: dict[str, int] = field(default_factory=dict)
    # (kind, name, restarts, healthy)
    plugins: tuple[tuple[str, str, int, bool], ...] = ()
    running: int = 0
    jobs: int = 0


class Metrics:
    """The metrics of one agent; counting methods are cheap and safe to call from the Raft thread."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        self._clock = clock
        # Results committed before this process started are replayed from the Raft log: not counted again.
        self._since_ms = int(clock() * 1000)
        self._sample = Sample()
        # execution_key -> slot in ms, of open scheduled intents (Raft thread only): their lateness is measured.
        self._scheduled: dict[str, int] = {}
        self.executions = Counter(
            "horae_executions",
            "Finished executions by job and outcome (succeeded, failed), counted by the leader that commits "
            "their result: sum over the servers for the cluster's total.",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "horae_execution_duration_seconds",
            "Time from an execution's start to its end, observed by the leader that commits its result.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.lateness = Histogram(
            "horae_schedule_lateness_seconds",
            "Time from a scheduled slot (catch-ups included; not manual runs, retries or dependents) to the "
            "start of its execution, observed by the leader that commits its result.",
            buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.leader_changes = Counter(
            "horae_leader_changes",
            'Times this server became (change="gained") or stopped being (change="lost") the Raft leader.',
            ["change"],
            registry=self.registry,
        )
        for change in ("gained", "lost"):
            self.leader_changes.labels(change=change)
        self.registry.register(_SampledCollector(self))

    # -- counting (Raft thread) -------------------------------------------------------------------
    def counting(self, inner: StateListener | None, is_leader: Callable[[], bool]) -> StateListener:
        """A ClusterState listener that calls `inner`, then counts what the command changed.

        `is_leader` is asked on the Raft thread as the command applies: only the leader counts results.
        """

        def listener(applied: Command, result: CommandResult) -> None:
            if inner is not None:
                inner(applied, result)
            try:
                self.applied(applied, result, is_leader)
            except Exception as error:  # never let a metric break the state machine
                log.warning("metrics: command not counted", extra=fields(op=applied.get("op"), error=error))

        return listener

    def applied(self, applied: Command, result: CommandResult, is_leader: Callable[[], bool]) -> None:
        op = applied.get("op")
        if op == "result":
            self._result(applied, result, is_leader)
        elif op == "intent" and result.ok:
            self._track(applied.get("intents") or [applied["intent"]])
        elif op == "delete_job" and result.ok and result.reason != "already gone":
            self._forget_job(applied["name"])

    def _track(self, intents: list[dict[str, Any]]) -> None:
        if len(self._scheduled) > MAX_TRACKED_INTENTS:
            self._scheduled.clear()
        for intent in intents:
            if intent.get("kind") == "scheduled" and intent.get("attempt") == 1:
                self._scheduled[execution_key(intent["job"], intent["id"])] = int(intent["slot_ms"])

    def _result(self, applied: Command, result: CommandResult, is_leader: Callable[[], bool]) -> None:
        execution = applied["execution"]
        slot_ms = self._scheduled.pop(execution_key(execution["job_name"], execution["id"]), None)
        # "already recorded" (a duplicate) and refusals change nothing; a follower leaves counting to the leader.
        if not result.ok or result.reason or not is_leader():
            return
        finished_ms = applied.get("finished_at_ms") or 0
        if finished_ms < self._since_ms:
            return
        outcome = OUTCOMES[0] if execution["success"] else OUTCOMES[1]
        self.executions.labels(job=execution["job_name"], outcome=outcome).inc()
        started_ms = _unix_ms(execution.get("started_at"))
        if started_ms is None:  # never started (no node, plugin missing): no duration, no lateness
            return
        self.duration.observe(max(0.0, finished_ms - started_ms) / 1000)
        if slot_ms is not None:
            self.lateness.observe(max(0.0, started_ms - slot_ms) / 1000)

    def _forget_job(self, name: str) -> None:
        """A deleted job's series go (an ephemeral job per run would otherwise grow them without end)."""
        for outcome in OUTCOMES:
            with contextlib.suppress(KeyError):
                self.executions.remove(name, outcome)
        for key in [key for key in self._scheduled if key.startswith(name + "\x00")]:
            del self._scheduled[key]

    # -- leadership (event loop) ------------------------------------------------------------------
    def leadership_listener(self, inner: Callable[[bool], None]) -> Callable[[bool], None]:
        """Wraps the Raft node's leadership callback: counts the change, then hands it on."""

        def changed(leading: bool) -> None:
            self.leader_changes.labels(change="gained" if leading else "lost").inc()
            inner(leading)

        return changed

    # -- scraping ---------------------------------------------------------------------------------
    def sample(self, service: HoraeService) -> None:
        """Read the gauges from the node's parts; call on the event loop (they belong to it), before `render`."""
        raft_status = self._raft_status(service)
        members = dict.fromkeys(MEMBER_STATUSES, 0)
        for member in service.members():
            status = member.get("statusText") or "alive"
            members[status] = members.get(status, 0) + 1
        node = service.config.node_name
        self._sample = Sample(
            raft_state=RAFT_STATES.get(raft_status.get("state", -1), "") if raft_status else self._sample.raft_state,
            raft_term=raft_status.get("raft_term", 0) if raft_status else self._sample.raft_term,
            raft_commit_index=raft_status.get("commit_idx", 0) if raft_status else self._sample.raft_commit_index,
            raft_last_applied=raft_status.get("last_applied", 0) if raft_status else self._sample.raft_last_applied,
            members=members,
            plugins=tuple(
                (status.kind, status.name, status.restarts, status.state == "healthy")
                for status in service.host.statuses()
            ),
            running=sum(1 for running in service.running if running.node_name == node),
            jobs=len(service.state.jobs),
        )

    @staticmethod
    def _raft_status(service: HoraeService) -> dict[str, Any] | None:
        for _ in range(RAFT_STATUS_ATTEMPTS):
            try:
                return service.raft.status()
            except RuntimeError:  # the Raft thread changed a dict getStatus() iterates: read again
                continue
        return None

    def render(self) -> bytes:
        """The text exposition of every metric; may run in a worker thread (it reads no loop-owned state)."""
        return generate_latest(self.registry)


class _SampledCollector:
    """Serves the latest `Sample` as metric families."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        sample = self._metrics._sample
        state = GaugeMetricFamily(
            "horae_raft_state",
            "This server's Raft state: 1 for the state it is in (leader, follower, candidate), 0 for the others.",
            labels=["state"],
        )
        for name in RAFT_STATES.values():
            state.add_metric([name], 1.0 if sample.raft_state == name else 0.0)
        yield state
        yield GaugeMetricFamily("horae_raft_term", "This server's current Raft term.", value=sample.raft_term)
        yield GaugeMetricFamily(
            "horae_raft_commit_index", "The highest Raft log index known committed.", value=sample.raft_commit_index
        )
        yield GaugeMetricFamily(
            "horae_raft_last_applied", "The highest Raft log index applied here.", value=sample.raft_last_applied
        )
        members = GaugeMetricFamily(
            "horae_members",
            "Cluster members (servers and clients) by status, as this server sees them.",
            labels=["status"],
        )
        for status, count in sorted(sample.members.items()):
            members.add_metric([status], count)
        yield members
        restarts = CounterMetricFamily(
            "horae_plugin_restarts",
            "Times this agent restarted a plugin process (it died or stopped answering health checks).",
            labels=["kind", "plugin"],
        )
        up = GaugeMetricFamily(
            "horae_plugin_up", "1 when the plugin process is running and healthy, else 0.", labels=["kind", "plugin"]
        )
        for kind, name, count, healthy in sample.plugins:
            restarts.add_metric([kind, name], count)
            up.add_metric([kind, name], 1.0 if healthy else 0.0)
        yield restarts
        yield up
        yield GaugeMetricFamily(
            "horae_executions_running", "Executions running now on this node's executors.", value=sample.running
        )
        yield GaugeMetricFamily("horae_jobs", "Jobs defined in the cluster.", value=sample.jobs)


def _unix_ms(text: str | None) -> float | None:
    if not text:
        return None
    moment: datetime.datetime | None = parse_time(text)
    return None if moment is None else moment.timestamp() * 1000
