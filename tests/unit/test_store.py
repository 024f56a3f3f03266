from horae.store import ExecutionStore


def test_executions_are_kept_per_job_capped_and_deleted_without_touching_similar_names(tmp_path):
    store = ExecutionStore(str(tmp_path / "horae.db"), max_executions=3)
    try:
        for number in range(5):
            for job in ("foo", "foo-bar"):
                store.put_execution({"job_name": job, "id": f"{number}-n1-1", "output": f"{job} {number}"})
        assert [e["id"] for e in store.executions("foo")] == ["2-n1-1", "3-n1-1", "4-n1-1"]
        # The same id in two jobs is two executions.
        assert store.execution("foo", "4-n1-1")["output"] == "foo 4"
        assert store.execution("foo-bar", "4-n1-1")["output"] == "foo-bar 4"
        store.put_execution({"job_name": "foo", "id": "4-n1-1", "output": "replaced"})
        assert len(store.executions("foo")) == 3
        store.delete_job_executions("foo")
        assert store.executions("foo") == []
        assert len(store.executions("foo-bar")) == 3
    finally:
        store.close()
