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
"""

from __future__ import annotations

import threading
from typing import Any

from sqlitedict import SqliteDict

from horae.cluster.state import execution_key

DEFAULT_MAX_EXECUTIONS = 100
EXECUTION_PREFIX = "execution:"
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
