"""Raft through pysyncobj: the replicated ClusterState, and a bridge from asyncio to the Raft thread.

Commands are gathered and submitted many per Raft entry (one `apply_batch` per loop turn), each
with a timeout; a timeout is an unknown outcome, which is safe because commands are idempotent
(PYSYNCOBJ.md traps 1 and 5). Callbacks arrive on the Raft thread and are handed to the loop.
On a follower, writes go to the leader through a `Forwarder` (inter-node gRPC), not through
pysyncobj's own forwarding, whose callbacks get lost when a link drops.
"""

from __future__ import annotations

import _socket
import asyncio
import logging
import os
import queue
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pysyncobj import SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.syncobj import _RAFT_STATE, FAIL_REASON

from horae.cluster.log_repair import RepairingSyncObj
from horae.cluster.state import ClusterState, Command, CommandResult
from horae.logs import fields

log = logging.getLogger("horae.cluster.raft")

# pysyncobj (win_inet_pton.py) replaces socket.inet_ntop with a Windows-only version on every OS, which
# breaks whatever else in the process formats an address (psutil, for one): put the real one back.
socket.inet_ntop = _socket.inet_ntop

DEFAULT_COMMAND_TIMEOUT = 5.0
# At most this many commands go into one Raft entry.
MAX_BATCH = 2000
# How often a follower checks whether it has applied a forwarded write (read-your-writes).
APPLY_POLL_SECONDS = 0.002
# How long a leader keeps asking pysyncobj to hand leadership over (a follower must be caught up), and
# how often it looks whether another server leads.
TRANSFER_TIMEOUT = 10.0
TRANSFER_POLL_SECONDS = 0.02
# Commands that change the finished-execution history each server's store holds.
HISTORY_OPS = frozenset({"result", "clear_executions", "delete_job"})
SNAPSHOT_HISTORY_KEY = "history_seq"
# Compact the Raft log into a snapshot once it holds this many entries (pysyncobj's minimum is 2).
DEFAULT_SNAPSHOT_THRESHOLD = 20000


class CommandOutcomeUnknown(TimeoutError):
    """The command may or may not have been applied (lost callback, leader change, timeout)."""


class NotLeader(RuntimeError):
    """Writes need a leader and there is none reachable."""


class MembershipBusy(RuntimeError):
    """The leader refused a membership change: another one is not committed yet (one at a time)."""


class Forwarder(Protocol):
    """Sends commands to the leader's Raft member.

    Returns one result or exception per command, in order, and the leader's commit index after them.
    """

    async def forward(
        self, leader_raft_address: str, commands: list[Command], timeout: float
    ) -> tuple[list[CommandResult | Exception], int]: ...


class HistoryLedger(Protocol):
    """Where the history position goes (the store): see `horae.store` and `horae.cluster.history`."""

    def history_applied(self, seq: int) -> None: ...

    def history_snapshot_loaded(self, seq: int) -> None: ...


class ReplicatedState(SyncObjConsumer):
    """The pysyncobj consumer: one replicated method, and snapshots taken from ClusterState.

    It also counts the applied commands that change the stored history (`history_seq`, the same on
    every server at the same log position, carried in snapshots): a server that loads a snapshot
    past what its store applied knows its history has a gap to copy from a peer.
    """

    def __init__(self, state: ClusterState, history: HistoryLedger | None = None) -> None:
        super().__init__()
        self.state = state
        self.history = history
        self.history_seq = 0

    @replicated
    def apply_batch(self, commands: list[Command]) -> list[CommandResult]:
        results = [self.state.apply(command) for command in commands]
        changed = sum(1 for command in commands if command.get("op") in HISTORY_OPS)
        if changed:
            self.history_seq += changed
            if self.history is not None:
                self.history.history_applied(self.history_seq)
        if self.state.sink is not None:
            self.state.sink.flush()  # one store commit per Raft entry, queued, not waited for
        return results

    def _serialize(self) -> dict:
        return {**self.state.snapshot(), SNAPSHOT_HISTORY_KEY: self.history_seq}

    def _deserialize(self, data: dict) -> None:
        self.state.restore(data)
        self.history_seq = data.get(SNAPSHOT_HISTORY_KEY, 0)  # 0 in a snapshot from before the count
        if self.history is not None:
            self.history.history_snapshot_loaded(self.history_seq)


@dataclass(frozen=True)
class RaftSettings:
    """Timings tuned for fast single-round elections (PYSYNCOBJ.md trap 3); `multiplier` scales them."""

    multiplier: float = 1.0
    password: str | None = None
    snapshot_threshold: int = DEFAULT_SNAPSHOT_THRESHOLD

    def conf(self, data_dir: str, on_state_changed: Callable[[int, int], None]) -> SyncObjConf:
        m = self.multiplier
        return SyncObjConf(
            raftMinTimeout=0.2 * m,
            raftMaxTimeout=0.5 * m,
            appendEntriesPeriod=0.05 * m,
            connectionTimeout=60.0,
            leaderFallbackTimeout=2.0 * m,
            appendEntriesUseBatch=False,
            autoTickPeriod=0.01,
            journalFile=os.path.join(data_dir, "raft.journal"),
            fullDumpFile=os.path.join(data_dir, "raft.snapshot"),
            useFork=False,
            dynamicMembershipChange=True,
            onStateChanged=on_state_changed,
            password=self.password,
            logCompactionMinEntries=max(2, self.snapshot_threshold),
            logCompactionMinTime=300,
        )


class RaftNode:
    """One server's Raft member, used from the event loop."""

    def __init__(
        self,
        self_address: str,
        peer_addresses: Sequence[str],
        state: ClusterState,
        data_dir: str,
        settings: RaftSettings = RaftSettings(),
        on_leadership: Callable[[bool], None] | None = None,
        forwarder: Forwarder | None = None,
        history: HistoryLedger | None = None,
    ) -> None:
        self.state = state
        self._loop = asyncio.get_running_loop()
        self._on_leadership = on_leadership
        self._forwarder = forwarder
        self._consumer = ReplicatedState(state, history)
        # (command, future, may be forwarded to the leader)
        self._pending: list[tuple[Command, asyncio.Future, bool]] = []
        self._forwards: set[asyncio.Task] = set()
        self._flush_scheduled = False
        self._destroyed = False
        os.makedirs(data_dir, exist_ok=True)
        conf = settings.conf(data_dir, self._state_changed)
        # Calls that must run in pysyncobj's tick thread (its internals are not thread-safe).
        self._raft_calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        # One membership change at a time (PYSYNCOBJ.md trap 7).
        self._membership_lock = asyncio.Lock()
        self._sync = RepairingSyncObj(self_address, list(peer_addresses), conf=conf, consumers=[self._consumer])
        self._sync.addOnTickCallback(self._run_raft_calls)

    def _run_raft_calls(self) -> None:  # Raft thread, every tick
        while True:
            try:
                call = self._raft_calls.get_nowait()
            except queue.Empty:
                return
            call()

    # -- leadership ----------------------------------------------------------------------------
    def _state_changed(self, old: int, new: int) -> None:  # Raft thread
        if self._on_leadership is not None and (old == _RAFT_STATE.LEADER) != (new == _RAFT_STATE.LEADER):
            self._loop.call_soon_threadsafe(self._on_leadership, new == _RAFT_STATE.LEADER)

    @property
    def is_leader(self) -> bool:
        return self._sync._isLeader()

    @property
    def leader_address(self) -> str | None:
        leader = self._sync._getLeader()
        return leader.id if leader is not None else None

    @property
    def ready(self) -> bool:
        return self._sync.isReady()

    def status(self) -> dict:
        return self._sync.getStatus()

    @property
    def commit_index(self) -> int:
        return self._sync.raftCommitIndex

    async def wait_applied(self, index: int, timeout: float) -> bool:
        """Wait until this member has applied the log up to `index`; False on timeout."""
        deadline = self._loop.time() + timeout
        while self._sync.raftLastApplied < index:
            if self._destroyed or self._loop.time() >= deadline:
                return False
            await asyncio.sleep(APPLY_POLL_SECONDS)
        return True

    @property
    def self_address(self) -> str:
        return self._sync.selfNode.id

    def raft_members(self) -> list[str]:
        """The Raft membership as this node sees it, itself included (sorted)."""
        return sorted({self._sync.selfNode.id, *(node.id for node in self._sync.otherNodes)})

    # -- membership ------------------------------------------------------------------------------
    async def add_server(self, raft_address: str, timeout: float = DEFAULT_COMMAND_TIMEOUT) -> None:
        """Add a server to the Raft membership (leader only); a server already in it is left alone."""
        async with self._membership_lock:
            if self._destroyed or not self.is_leader:
                raise NotLeader("only the leader changes the membership")
            if raft_address in self.raft_members():
                return
            await self._change_membership(self._sync.addNodeToCluster, raft_address, "adding", timeout)

    async def remove_server(self, raft_address: str, timeout: float = DEFAULT_COMMAND_TIMEOUT) -> None:
        """Remove another server from the Raft membership (leader only); one not in it is left alone."""
        if raft_address == self.self_address:
            raise ValueError("the leader cannot remove itself from the Raft membership: transfer leadership first")
        async with self._membership_lock:
            if self._destroyed or not self.is_leader:
                raise NotLeader("only the leader changes the membership")
            if raft_address not in self.raft_members():
                return
            remaining = [address for address in self.raft_members() if address != raft_address]
            if not await self._wait_quorum_caught_up(remaining, timeout):
                raise MembershipBusy(
                    f"removing {raft_address} now would leave no connected, caught-up majority among "
                    f"{', '.join(remaining)}; retry once the other servers are up"
                )
            await self._change_membership(self._sync.removeNodeFromCluster, raft_address, "removing", timeout)

    async def _wait_quorum_caught_up(self, members: list[str], timeout: float) -> bool:
        """Wait until a majority of `members` (this leader included) is connected and has the committed log.

        The new membership must commit the removal at once: a removed server that hears nothing
        starts elections, and a follower that has not yet seen the removal would still vote for it.
        """
        deadline = self._loop.time() + timeout
        while True:
            try:
                status = self._sync.getStatus()
            except RuntimeError:  # read while the Raft thread changed a dict it iterates: look again
                status = {"commit_idx": 0}
            commit = status["commit_idx"]
            ready = 1 + sum(
                1
                for address in members
                if address != self.self_address
                and status.get("partner_node_status_server_" + address) == 2
                and status.get("match_idx_server_" + address, 0) >= commit
            )
            if ready > len(members) / 2:
                return True
            if self._loop.time() >= deadline:
                return False
            await asyncio.sleep(TRANSFER_POLL_SECONDS)

    async def _change_membership(self, change: Callable, raft_address: str, doing: str, timeout: float) -> None:
        future = self._loop.create_future()

        def done(result, error) -> None:  # Raft thread
            self._loop.call_soon_threadsafe(_set_once, future, error)

        change(raft_address, callback=done)  # queued for the Raft thread by pysyncobj
        try:
            async with asyncio.timeout(timeout):
                error = await asyncio.shield(future)
        except TimeoutError:
            raise CommandOutcomeUnknown(f"{doing} {raft_address} got no answer within {timeout:g}s") from None
        if error == FAIL_REASON.SUCCESS:
            return
        if error in (FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER):
            raise NotLeader(f"{doing} {raft_address}: this server lost the leadership")
        if error == FAIL_REASON.REQUEST_DENIED:
            raise MembershipBusy(f"{doing} {raft_address}: another membership change is not committed yet; retry")
        raise CommandOutcomeUnknown(f"{doing} {raft_address}: Raft answered {_reason_name(error)}")

    async def transfer_leadership(self, timeout: float = TRANSFER_TIMEOUT) -> str:
        """Hand leadership to the most caught-up follower (Raft TimeoutNow); returns the new leader's address.

        pysyncobj denies the request while no connected follower has the whole log, so it is asked
        again until `timeout`; then this waits until another server leads.
        """
        deadline = self._loop.time() + timeout
        while self.is_leader:
            if self._destroyed or self._loop.time() >= deadline:
                raise CommandOutcomeUnknown(f"leadership not handed over within {timeout:g}s")
            future = self._loop.create_future()

            def done(result, error, future=future) -> None:  # Raft thread
                self._loop.call_soon_threadsafe(_set_once, future, error)

            self._raft_calls.put(lambda done=done: self._sync.transferLeadership(callback=done))
            try:
                async with asyncio.timeout_at(deadline):
                    error = await asyncio.shield(future)
            except TimeoutError:
                continue
            if error == FAIL_REASON.NOT_LEADER:
                break
            # Sent (SUCCESS) or denied for now: look for a new leader for a moment, then ask again.
            wait_until = min(deadline, self._loop.time() + (1.0 if error == FAIL_REASON.SUCCESS else 0.05))
            while self.is_leader and self._loop.time() < wait_until:
                await asyncio.sleep(TRANSFER_POLL_SECONDS)
        while True:
            leader = self.leader_address
            if leader is not None and leader != self.self_address and not self.is_leader:
                return leader
            if self._loop.time() >= deadline:
                raise CommandOutcomeUnknown(f"no new leader known within {timeout:g}s")
            await asyncio.sleep(TRANSFER_POLL_SECONDS)

    # -- writes ----------------------------------------------------------------------------------
    async def submit(
        self, command: Command, timeout: float = DEFAULT_COMMAND_TIMEOUT, forward: bool = True
    ) -> CommandResult:
        """Apply one command through Raft; commands submitted in the same loop turn share an entry.

        On a follower the command goes to the leader over the forwarder; with `forward=False`
        (a command the leader received from a follower) a follower refuses it with NotLeader.
        """
        if self._destroyed:
            raise NotLeader("this node's Raft member has stopped")
        future = self._loop.create_future()
        self._pending.append((command, future, forward))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise CommandOutcomeUnknown(f"no answer from Raft within {timeout:g}s for {command.get('op')}") from None

    async def submit_many(self, commands: Sequence[Command], timeout: float = DEFAULT_COMMAND_TIMEOUT):
        return await asyncio.gather(*(self.submit(c, timeout) for c in commands), return_exceptions=True)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        if self._destroyed:
            _fail(pending, NotLeader("this node's Raft member has stopped"))
            return
        if self._forwarder is not None and not self._sync._isLeader():
            self._send_to_leader(pending)
            return
        for start in range(0, len(pending), MAX_BATCH):
            batch = pending[start : start + MAX_BATCH]
            futures = [future for _, future, _ in batch]
            self._consumer.apply_batch([command for command, _, _ in batch], callback=self._callback(futures))

    def _send_to_leader(self, pending: list[tuple[Command, asyncio.Future, bool]]) -> None:
        leader = self.leader_address
        local = [entry for entry in pending if not entry[2]]
        _fail(local, NotLeader("this server is not the leader"))
        remote = [entry for entry in pending if entry[2]]
        if not remote:
            return
        if leader is None:
            _fail(remote, NotLeader("no Raft leader is known"))
            return
        for start in range(0, len(remote), MAX_BATCH):
            task = self._loop.create_task(self._forward(leader, remote[start : start + MAX_BATCH]))
            self._forwards.add(task)
            task.add_done_callback(self._forwards.discard)

    async def _forward(self, leader: str, batch: list[tuple[Command, asyncio.Future, bool]]) -> None:
        assert self._forwarder is not None
        try:
            outcomes, commit_index = await self._forwarder.forward(
                leader, [command for command, _, _ in batch], DEFAULT_COMMAND_TIMEOUT
            )
        except Exception as error:  # the forwarder maps transport errors; anything else is unknown
            if not isinstance(error, NotLeader | CommandOutcomeUnknown):
                error = CommandOutcomeUnknown(f"forwarding to the leader failed: {error}")
            _fail(batch, error)
            return
        if not await self.wait_applied(commit_index, DEFAULT_COMMAND_TIMEOUT):
            log.warning("forwarded write not applied here yet", extra=fields(commit_index=commit_index))
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _callback(self, futures: list[asyncio.Future]) -> Callable:
        def done(results, error) -> None:  # Raft thread
            self._loop.call_soon_threadsafe(_resolve, futures, results, error)

        return done

    def destroy(self) -> None:
        self._destroyed = True
        self._sync.destroy()


def _set_once(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _fail(entries: list[tuple[Command, asyncio.Future, bool]], error: Exception) -> None:
    for _, future, _ in entries:
        if not future.done():
            future.set_exception(error)


def _resolve(futures: list[asyncio.Future], results, error) -> None:
    for index, future in enumerate(futures):
        if future.done():
            continue
        if error == FAIL_REASON.SUCCESS:
            future.set_result(results[index])
        elif error in (FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER):
            future.set_exception(NotLeader("no Raft leader is reachable"))
        else:
            log.warning("raft command failed", extra=fields(reason=_reason_name(error)))
            future.set_exception(CommandOutcomeUnknown(f"Raft refused the command: {_reason_name(error)}"))


def _reason_name(error: int) -> str:
    for name in dir(FAIL_REASON):
        if not name.startswith("_") and getattr(FAIL_REASON, name) == error:
            return name
    return str(error)
