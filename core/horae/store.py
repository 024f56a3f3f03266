"""The application store: finished executions in sqlitedict (`<data-dir>/horae.db`).

Each server applies finished executions from the Raft log into its own store, so history is not
pickled into Raft snapshots. Per job, an index entry lists its execution ids (newest last) and
holds at most `max_executions`; keys are exact (`index:<job>`), so deleting job `foo` never
touches `foo-bar` (Dkron's prefix bug). sqlitedict commits from its own thread; reads go through
that thread too, so callers on the event loop use `asyncio.to_thread` for reads.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlitedict import SqliteDict

from horae.cluster.state import execution_key

DEFAULT_MAX_EXECUTIONS = 100
INDEX_PREFIX = "index:"
EXECUTION_PREFIX = "execution:"


class ExecutionStore:
    def __init__(self, path: str, max_executions: int = DEFAULT_MAX_EXECUTIONS) -> None:
        self.max_executions = max_executions
        # Not durable by design (PYSYNCOBJ.md): the Raft log is what a restart replays.
        self._db = SqliteDict(path, tablename="executions", autocommit=True, journal_mode="WAL")
        self._lock = threading.Lock()
        self._indexes: dict[str, list[str]] = {}

    def put_execution(self, execution: dict[str, Any]) -> None:
        """Insert or replace one execution (idempotent by id), trimming the job's oldest beyond the cap."""
        job_name, execution_id = execution["job_name"], execution["id"]
        with self._lock:
            index = self._index(job_name)
            self._db[EXECUTION_PREFIX + execution_key(job_name, execution_id)] = execution
            if execution_id not in index:
                index.append(execution_id)
                while len(index) > self.max_executions:
                    del self._db[EXECUTION_PREFIX + execution_key(job_name, index.pop(0))]
                self._db[INDEX_PREFIX + job_name] = index

    def delete_job_executions(self, job_name: str) -> None:
        with self._lock:
            for execution_id in self._index(job_name):
                self._db.pop(EXECUTION_PREFIX + execution_key(job_name, execution_id), None)
            self._db.pop(INDEX_PREFIX + job_name, None)
            self._indexes.pop(job_name, None)

    def executions(self, job_name: str) -> list[dict[str, Any]]:
        """The job's stored executions, oldest first. Blocking: call through a thread from the loop."""
        with self._lock:
            ids = list(self._index(job_name))
        found = []
        for execution_id in ids:
            execution = self._db.get(EXECUTION_PREFIX + execution_key(job_name, execution_id))
            if execution is not None:
                found.append(execution)
        return found

    def execution(self, job_name: str, execution_id: str) -> dict[str, Any] | None:
        return self._db.get(EXECUTION_PREFIX + execution_key(job_name, execution_id))

    def _index(self, job_name: str) -> list[str]:
        index = self._indexes.get(job_name)
        if index is None:
            index = list(self._db.get(INDEX_PREFIX + job_name, []))
            self._indexes[job_name] = index
        return index

    def close(self) -> None:
        self._db.close()
