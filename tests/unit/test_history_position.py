"""The history position: counted by the state machine, carried in snapshots, recorded by the store.

A snapshot loaded past what the store applied opens a gap; executions copied from a peer fill it
without replacing what the log applied, and without bringing back what the log cleared.
"""

import asyncio
import json

from horae.cluster.history import serve_history
from horae.cluster.raft import ReplicatedState
from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState
from horae.store import ExecutionStore

GROUP = 1_700_000_000_000_000_000


def execution(job: str, n: int, output: str = "") -> dict:
    return {"job_name": job, "id": f"{GROUP + n}-n1-1", "group": GROUP + n, "output": output or f"{job} {n}"}


def command(op: str, **payload) -> dict:
    return {"v": COMMAND_FORMAT_VERSION, "op": op, **payload}


def test_a_snapshot_past_the_store_opens_a_gap_that_survives_reopening_until_filled(tmp_path):
    path = str(tmp_path / "horae.db")
    store = ExecutionStore(path)
    store.history_applied(3)
    store.history_snapshot_loaded(2)  # the same server restarting: it applied that far itself
    assert store.history_gap is None
    opened = []
    store.on_gap = lambda: opened.append(True)
    store.history_snapshot_loaded(10)
    assert store.history_gap == 10 and opened == [True]
    assert store.history_applied_seq == 10
    store.close()

    reopened = ExecutionStore(path)
    try:
        assert (reopened.history_gap, reopened.history_applied_seq) == (10, 10)
        reopened.begin_fetch()
        reopened.end_fetch(None)  # a failed copy leaves the gap open
        assert reopened.history_gap == 10
        reopened.history_snapshot_loaded(12)  # a newer snapshot while the gap was open widens it
        reopened.begin_fetch()
        reopened.end_fetch(10)  # a copy made for the older gap does not close the newer one
        assert reopened.history_gap == 12
        reopened.begin_fetch()
        reopened.end_fetch(12)
        assert reopened.history_gap is None
    finally:
        reopened.close()
    assert ExecutionStore(path).history_gap is None


def test_copied_executions_never_replace_applied_ones_nor_return_after_a_clear(tmp_path):
    store = ExecutionStore(str(tmp_path / "horae.db"), max_executions=3)
    try:
        store.put_execution(execution("a", 4, "from the log"))
        store.flush()
        store.begin_fetch()
        store.delete_job_executions("cleared")  # the log clears a job while the copy runs
        copied = [execution("a", n, "copied") for n in range(5)] + [execution("cleared", 1)]
        assert store.put_fetched(copied) == 5
        assert store.put_fetched(copied) == 5  # the same page twice changes nothing
        store.end_fetch(1)
        # Capped at 3, newest kept; the execution applied from the log was not replaced.
        assert [(e["group"] - GROUP, e["output"]) for e in store.executions("a")] == [
            (2, "copied"),
            (3, "copied"),
            (4, "from the log"),
        ]
        assert store.executions("cleared") == []
    finally:
        store.close()


def test_history_pages_cover_every_job_in_key_order_and_skip_the_position_keys(tmp_path):
    store = ExecutionStore(str(tmp_path / "horae.db"))
    try:
        for job in ("b", "a", "a-b"):
            for n in range(3):
                store.put_execution(execution(job, n))
        store.history_applied(9)
        store.flush()
        seen, after, pages = [], None, 0
        while True:
            page = store.history_page(after, 4)
            seen += [(e["job_name"], e["group"] - GROUP) for _, e in page]
            pages += 1
            if len(page) < 4:
                break
            after = page[-1][0]
        assert pages == 3
        assert seen == [(job, n) for job in ("a", "a-b", "b") for n in range(3)]
    finally:
        store.close()


class Ledger:
    def __init__(self) -> None:
        self.applied: list[int] = []
        self.loaded: list[int] = []

    def history_applied(self, seq: int) -> None:
        self.applied.append(seq)

    def history_snapshot_loaded(self, seq: int) -> None:
        self.loaded.append(seq)


def test_the_state_machine_counts_history_commands_and_carries_the_count_in_snapshots():
    ledger = Ledger()
    consumer = ReplicatedState(ClusterState(), ledger)
    job = {"name": "j", "schedule": "@manually", "executor": "noop"}
    consumer.apply_batch([command("put_job", job=job), command("pause", paused=False)], _doApply=True)
    assert consumer.history_seq == 0 and ledger.applied == []
    consumer.apply_batch(
        [command("clear_executions", job="j"), command("result", execution=execution("j", 1))], _doApply=True
    )
    assert consumer.history_seq == 2 and ledger.applied == [2]

    snapshot = consumer._serialize()
    restored_ledger = Ledger()
    restored = ReplicatedState(ClusterState(), restored_ledger)
    restored._deserialize(snapshot)
    assert restored.history_seq == 2 and restored_ledger.loaded == [2]
    assert "j" in restored.state.jobs


def test_history_is_served_in_pages_bounded_in_count_and_size(tmp_path):
    store = ExecutionStore(str(tmp_path / "horae.db"))
    try:
        for n in range(7):
            store.put_execution(execution("small", n))
        for n in range(3):
            store.put_execution(execution("big", n, "x" * 700_000))  # two do not fit in one page
        store.history_applied(10)
        store.flush()

        async def pages() -> list:
            return [page async for page in serve_history(store, 5)]

        header, *rest = asyncio.run(pages())
        assert (header.applied_seq, header.has_gap, list(header.executions_json)) == (10, False, [])
        sizes = [len(page.executions_json) for page in rest]
        assert sizes == [1, 1, 5, 3], sizes  # key order: "big" first; the third big one shares a page
        served = [json.loads(raw) for page in rest for raw in page.executions_json]
        assert sorted((e["job_name"], e["group"] - GROUP) for e in served) == sorted(
            [("small", n) for n in range(7)] + [("big", n) for n in range(3)]
        )
    finally:
        store.close()
