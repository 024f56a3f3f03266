"""The leader's heartbeat timers, Nomad's model: deadlines live in memory, only status changes are committed.

Every node beats on its link to the leader (default every 3 s). A node whose deadline passes
(default 10 s after its last beat) is committed `failed` and `on_failed` runs, which fails the
executions it was running. A new leader gives every alive member a fresh deadline, so nodes have
time to find it before they are declared dead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from horae.cluster.raft import CommandOutcomeUnknown, NotLeader, RaftNode
from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState
from horae.logs import fields

log = logging.getLogger("horae.cluster.heartbeat")

DEFAULT_HEARTBEAT_SECONDS = 3.0
DEFAULT_FAILURE_SECONDS = 10.0
# How often deadlines are checked: a failure is seen at most this late.
CHECK_SECONDS = 0.5


class Heartbeats:
    def __init__(
        self,
        raft: RaftNode,
        state: ClusterState,
        self_name: str,
        on_failed: Callable[[str, str], Awaitable[None]],
        failure_seconds: float = DEFAULT_FAILURE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._raft = raft
        self._state = state
        self._self_name = self_name
        self._on_failed = on_failed
        self.failure_seconds = failure_seconds
        self._clock = clock
        self._deadlines: dict[str, float] = {}
        # Wall-clock time of each node's last beat, for /v1/members (leader only).
        self.last_beat_unix: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Leadership gained: every alive member gets a full deadline, then the checks begin."""
        deadline = self._clock() + self.failure_seconds
        self._deadlines = {
            name: deadline
            for name, record in list(self._state.members.items())
            if record.get("status", "alive") == "alive" and name != self._self_name
        }
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._deadlines.clear()

    def beat(self, name: str) -> None:
        self._deadlines[name] = self._clock() + self.failure_seconds
        self.last_beat_unix[name] = time.time()

    def forget(self, name: str) -> None:
        """The node left cleanly: no deadline any more."""
        self._deadlines.pop(name, None)

    async def set_status(self, name: str, status: str) -> bool:
        """Commit a status change; False when it could not be committed (no longer leading)."""
        command = {
            "v": COMMAND_FORMAT_VERSION,
            "op": "set_member_status",
            "name": name,
            "status": status,
            "at_ms": int(time.time() * 1000),
        }
        try:
            result = await self._raft.submit(command, forward=False)
        except (NotLeader, CommandOutcomeUnknown) as error:
            log.warning("member status not committed", extra=fields(node=name, status=status, error=str(error)))
            return False
        if result.ok and result.reason != "unchanged":
            log.info("member status changed", extra=fields(node=name, status=status))
        return result.ok

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            now = self._clock()
            expired = [name for name, deadline in self._deadlines.items() if deadline <= now]
            for name in expired:
                del self._deadlines[name]
                reason = f"node {name} failed: no heartbeat for {self.failure_seconds:g}s"
                if await self.set_status(name, "failed"):
                    await self._on_failed(name, reason)
