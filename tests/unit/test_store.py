from horae.store import ExecutionStore


def execution(job: str, group: int, output: str = "") -> dict:
    return {"job_name": job, "id": f"{group}-n1-1", "group": group, "output": output or f"{job} {group}"}


def test_executions_are_kept_per_job_capped_and_deleted_without_touching_similar_names(tmp_path):
    store = ExecutionStore(str(tmp_path / "horae.db"), max_executions=3)
    try:
        for group in range(1_700_000_000_000_000_000, 1_700_000_000_000_000_005):
            for job in ("foo", "foo-bar"):
                store.put_execution(execution(job, group))
        # Reads see queued writes at once; the cap applies when the Raft entry is flushed.
        assert len(store.executions("foo")) == 5
        store.flush()
        assert [e["group"] % 10 for e in store.executions("foo")] == [2, 3, 4]
        # The same id in two jobs is two executions.
        assert store.execution("foo", "1700000000000000004-n1-1")["output"] == "foo 1700000000000000004"
        assert store.execution("foo-bar", "1700000000000000004-n1-1")["output"].startswith("foo-bar")
        store.put_execution(execution("foo", 1_700_000_000_000_000_004, "replaced"))
        store.flush()
        assert [e["output"] for e in store.executions("foo")][-1] == "replaced"
        assert len(store.executions("foo")) == 3
        store.delete_job_executions("foo")
        assert store.executions("foo") == []
        assert len(store.executions("foo-bar")) == 3
    finally:
        store.close()


def test_history_survives_reopening_and_is_in_slot_order(tmp_path):
    path = str(tmp_path / "horae.db")
    store = ExecutionStore(path)
    for group in (1_700_000_000_000_000_300, 1_700_000_000_000_000_100, 1_700_000_000_000_000_200):
        store.put_execution(execution("job", group))
    store.close()
    reopened = ExecutionStore(path)
    try:
        assert [e["group"] % 1000 for e in reopened.executions("job")] == [100, 200, 300]
    finally:
        reopened.close()
