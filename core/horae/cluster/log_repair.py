"""A fix for pysyncobj 0.3.17's log repair, which can livelock: a follower with a divergent log never catches up.

A leader cut off by a partition keeps appending entries nobody commits. After the heal the new leader must walk
back to where the two logs agree. pysyncobj's leader sends a burst of AppendEntries per tick, moving its `nextIndex`
optimistically to the end; the follower answers the first with "mismatch at k" (go back to k) and each later one
with "my log ends at n" (go to n + 1). The last answer wins, so `nextIndex` jumps back to n + 1 every tick and never
reaches the agreement point: the follower stays behind for good, its elections keep deposing the leader, and with
one more server down the cluster cannot commit at all (seen with `python -m tests.bench chaos`).

`NextIndexFloor` keeps, per follower and term, the lowest index refused since the last success; a refusal answer
never moves `nextIndex` above it. `RepairingSyncObj` applies it to the leader's incoming answers.
"""

from __future__ import annotations

from typing import Any

from pysyncobj import SyncObj


class NextIndexFloor:
    """The lowest `next_node_idx` a follower refused (`reset`, not `success`) in this term since its last success."""

    def __init__(self) -> None:
        self._floors: dict[Any, tuple[int, int]] = {}  # node -> (term, floor)

    def answer(self, node: Any, term: int, next_index: int, success: bool, reset: bool) -> int:
        """The `next_node_idx` the leader should act on for this answer."""
        if success:
            self._floors.pop(node, None)
            return next_index
        if not reset:
            return next_index
        held = self._floors.get(node)
        if held is not None and held[0] == term:
            next_index = min(next_index, held[1])
        self._floors[node] = (term, next_index)
        return next_index


class RepairingSyncObj(SyncObj):
    """SyncObj whose leader repairs a divergent follower's log instead of livelocking (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._next_index_floor = NextIndexFloor()
        super().__init__(*args, **kwargs)

    # pysyncobj registers `self.__onMessageReceived` with its transport: this name is what that resolves to.
    def _SyncObj__onMessageReceived(self, node: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "next_node_idx" and self._isLeader():
            term = self._SyncObj__raftCurrentTerm  # type: ignore[attr-defined]
            repaired = self._next_index_floor.answer(
                node, term, message["next_node_idx"], bool(message.get("success")), bool(message.get("reset"))
            )
            if repaired != message["next_node_idx"]:
                message = {**message, "next_node_idx": repaired}
        super()._SyncObj__onMessageReceived(node, message)  # type: ignore[misc]
