"""The application store: finished executions in sqlitedict (`<data-dir>/horae.db`).

Each server applies finished executions from the Raft log into its own store, so history is not
pickled into Raft snapshots. Keys are `execution:<job>\\x00<execution id>`: exact per job, so
deleting job `foo` never touches `foo-bar` (Dkron's prefix bug), and, since an id starts with its
group (the slot in nanoseconds, fixed width), key order is slot order — a job's history is one
range of the primary key and no index is kept in memory.

Writes come from the Raft thread and must not wait for sqlite: they are queued to sqlitedict's
worker thread, and `flush()` (once per Raft entry) queues one commit for all of them. Reads go
through the same worker after the queued writes, so they see every applied execution; they block,
so callers on the event loop use `asyncio.to_thread`.

History position: the Raft state machine counts the commands that change history (a replicated
number, carried in snapshots); the store records how far it has applied (`history:applied`). A
snapshot loaded past that point means the history before it is missing here: the store records a
gap (`history:gap`) until `horae.cluster.history` has copied a peer's recent history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlitedict import SqliteDict

from horae.cluster.state import execution_key

DEFAULT_MAX_EXECUTIONS = 100
EXECUTION_PREFIX = "execution:"
# Just past every execution key (":" + 1): executions of all jobs are the range [prefix, end).
EXECUTIONS_END = "execution;"
HISTORY_APPLIED_KEY = "history:applied"
HISTORY_GAP_KEY = "history:gap"
TABLE = "executions"


def _job_range(job_name: str) -> tuple[str, str]:
    """The [low, high) key range of one job's executions (job names never hold \\x00 or \\x01)."""
    return EXECUTION_PREFIX + job_name + "\x00", EXECUTION_PREFIX + job_name + "\x01"


class ExecutionStore:
    def __init__(self, path: str, max_executions: int = DEFAULT_MAX_EXECUTIONS) -> None:
        self.max_executions = max_executions
        # Not durable by design (PYSYNCOBJ.md): the Raft log is what a restart replays.
        self._db = SqliteDict(path, tablename=TABLE, autocommit=False, journal_mode="WAL", outer_stack=False)
        self._lock = threading.Lock()
        self._to_trim: set[str] = set()
        # How many history commands (a replicated count) the store has applied, and the count of a
        # loaded snapshot whose earlier history is missing here (None: nothing missing).
        self.history_applied_seq: int = self._db.get(HISTORY_APPLIED_KEY, 0)
        self.history_gap: int | None = self._db.get(HISTORY_GAP_KEY)
        # Called (on the Raft thread) when a gap opens: the history catch-up wakes up.
        self.on_gap: Callable[[], None] | None = None
        # While a peer's history is copied, jobs whose executions the log deletes meanwhile: their
        # copied executions are dropped, so a cleared or deleted job's history does not come back.
        self._fetching = False
        self._cleared_while_fetching: set[str] = set()

    def put_execution(self, execution: dict[str, Any]) -> None:
        """Insert or replace one execution (idempotent by id); queued, committed by `flush`."""
        job_name = execution["job_name"]
        self._write(
            f'REPLACE INTO "{TABLE}" (key, value) VALUES (?, ?)',
            (EXECUTION_PREFIX + execution_key(job_name, execution["id"]), self._db.encode(execution)),
        )
        with self._lock:
            self._to_trim.add(job_name)

    def delete_job_executions(self, job_name: str) -> None:
        self._write(f'DELETE FROM "{TABLE}" WHERE key >= ? AND key < ?', _job_range(job_name))
        with self._lock:
            self._to_trim.discard(job_name)
            if self._fetching:
                self._cleared_while_fetching.add(job_name)

    # -- history position (Raft thread) ----------------------------------------------------------
    def history_applied(self, seq: int) -> None:
        """The state machine applied history commands up to count `seq`; committed with the next flush."""
        if seq > self.history_applied_seq:
            self.history_applied_seq = seq
            self._put_meta(HISTORY_APPLIED_KEY, seq)

    def history_snapshot_loaded(self, seq: int) -> None:
        """A Raft snapshot at history count `seq` replaced the state: history before it may be missing."""
        if seq <= self.history_applied_seq:
            return  # this store applied that far itself (a restart of the same server)
        with self._lock:
            self.history_gap = max(self.history_gap or 0, seq)
            self.history_applied_seq = seq
        self._put_meta(HISTORY_GAP_KEY, self.history_gap)
        self._put_meta(HISTORY_APPLIED_KEY, seq)
        self._db.commit(blocking=False)
        if self.on_gap is not None:
            self.on_gap()

    # -- history copied from a peer (called through a thread) -------------------------------------
    def begin_fetch(self) -> None:
        with self._lock:
            self._fetching = True
            self._cleared_while_fetching = set()

    def put_fetched(self, executions: list[dict[str, Any]]) -> int:
        """Insert a peer's executions that are missing here; one applied from the log always wins.

        Returns how many were offered for insertion (those of jobs cleared meanwhile are dropped).
        """
        with self._lock:
            cleared = set(self._cleared_while_fetching)
        written = 0
        for execution in executions:
            job_name = execution["job_name"]
            if job_name in cleared:
                continue
            self._write(
                f'INSERT OR IGNORE INTO "{TABLE}" (key, value) VALUES (?, ?)',
                (EXECUTION_PREFIX + execution_key(job_name, execution["id"]), self._db.encode(execution)),
            )
            written += 1
            with self._lock:
                self._to_trim.add(job_name)
        self.flush()
        return written

    def end_fetch(self, gap: int | None) -> None:
        """The copy is over. With `gap` (the gap it was made for) it succeeded: that gap closes, and
        this blocks until committed. With None it failed: the gap stays open, nothing blocks."""
        with self._lock:
            self._fetching = False
            self._cleared_while_fetching = set()
            closed = gap is not None and self.history_gap is not None and self.history_gap <= gap
            if closed:
                self.history_gap = None
        if closed:
            self._write(f'DELETE FROM "{TABLE}" WHERE key = ?', (HISTORY_GAP_KEY,))
        if gap is not None:
            self._db.commit(blocking=True)

    def history_page(self, after: str | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """Up to `limit` (key, execution) of every job's stored executions, in key order, after key
        `after` (None: from the start); fewer than `limit` means the end. Blocking."""
        rows = self._db.conn.select(
            f'SELECT key, value FROM "{TABLE}" WHERE key > ? AND key < ? ORDER BY key LIMIT ?',
            (after or EXECUTION_PREFIX, EXECUTIONS_END, limit),
        )
        return [(row[0], self._db.decode(row[1])) for row in rows]

    def _put_meta(self, key: str, value: Any) -> None:
        self._write(f'REPLACE INTO "{TABLE}" (key, value) VALUES (?, ?)', (key, self._db.encode(value)))

    def flush(self) -> None:
        """Trim the jobs written since the last flush to `max_executions`, and queue one commit."""
        with self._lock:
            jobs, self._to_trim = self._to_trim, set()
        for job_name in jobs:
            low, high = _job_range(job_name)
            # Keep the newest `max_executions` keys of the range; key order is slot order.
            self._write(
                f'DELETE FROM "{TABLE}" WHERE key >= ? AND key < ? AND key < COALESCE(('
                f'SELECT key FROM "{TABLE}" WHERE key >= ? AND key < ? ORDER BY key DESC LIMIT 1 OFFSET ?), ?)',
                (low, high, low, high, self.max_executions - 1, low),
            )
        self._db.commit(blocking=False)

    def executions(self, job_name: str) -> list[dict[str, Any]]:
        """The job's stored executions, oldest first. Blocking: call through a thread from the loop."""
        low, high = _job_range(job_name)
        rows = self._db.conn.select(f'SELECT value FROM "{TABLE}" WHERE key >= ? AND key < ? ORDER BY key', (low, high))
        return [self._db.decode(row[0]) for row in rows]

    def execution(self, job_name: str, execution_id: str) -> dict[str, Any] | None:
        return self._db.get(EXECUTION_PREFIX + execution_key(job_name, execution_id))

    def _write(self, statement: str, arguments: tuple) -> None:
        self._db.conn.execute(statement, arguments)

    def close(self) -> None:
        self.flush()
        self._db.commit(blocking=True)
        self._db.close()
