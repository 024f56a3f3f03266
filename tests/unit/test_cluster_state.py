from horae.cluster.state import COMMAND_FORMAT_VERSION, ClusterState


class RecordingSink:
    def __init__(self):
        self.executions, self.deleted = {}, []

    def put_execution(self, execution):
        self.executions[execution["id"]] = execution

    def delete_job_executions(self, job_name):
        self.deleted.append(job_name)


def cmd(op, **payload):
    return {"v": COMMAND_FORMAT_VERSION, "op": op, **payload}


def intent(job, slot_ms, attempt=1, kind="scheduled"):
    group = slot_ms * 1_000_000
    return {
        "id": f"{group}-n1-{attempt}",
        "job": job,
        "slot_ms": slot_ms,
        "group": group,
        "attempt": attempt,
        "kind": kind,
        "node": "n1",
    }


def test_a_second_intent_for_the_same_scheduled_slot_is_refused():
    state = ClusterState()
    assert state.apply(cmd("put_job", job={"name": "backup"}, next_fire_ms=1000)).ok
    assert state.apply(cmd("intent", intent=intent("backup", 1000))).ok
    again = state.apply(cmd("intent", intent=intent("backup", 1000)))
    assert not again.ok
    # Even once the first has finished, an earlier or equal slot is never run again.
    state.apply(cmd("result", execution={"id": intent("backup", 1000)["id"], "job_name": "backup", "success": True}))
    other_node = {**intent("backup", 1000), "id": "1000000000-n2-1"}
    assert not state.apply(cmd("intent", intent=other_node)).ok
    assert state.apply(cmd("intent", intent=intent("backup", 2000))).ok
    # A retry of the same slot is a new attempt, and accepted.
    assert state.apply(cmd("intent", intent=intent("backup", 1000, attempt=2, kind="retry"))).ok


def test_results_are_idempotent_and_reach_the_sink_once_counted():
    sink = RecordingSink()
    state = ClusterState(sink=sink)
    state.apply(cmd("put_job", job={"name": "a"}))
    state.apply(cmd("intent", intent=intent("a", 5000)))
    execution = {"id": intent("a", 5000)["id"], "job_name": "a", "success": False}
    assert state.apply(cmd("result", execution=execution, finished_at_ms=6000)).ok
    assert state.apply(cmd("result", execution=execution, finished_at_ms=6000)).reason == "already recorded"
    runtime = state.runtime["a"]
    assert (runtime.error_count, runtime.status, runtime.last_error_ms) == (1, "failed", 6000)
    assert list(sink.executions) == [execution["id"]]


def test_dependent_jobs_are_kept_by_the_server_and_cycles_refused():
    state = ClusterState()
    state.apply(cmd("put_job", job={"name": "parent"}))
    assert state.apply(cmd("put_job", job={"name": "child", "parent_job": "parent"})).ok
    assert state.jobs["parent"]["dependent_jobs"] == ["child"]
    assert not state.apply(cmd("put_job", job={"name": "parent", "parent_job": "child"})).ok
    assert not state.apply(cmd("delete_job", name="parent")).ok
    assert state.apply(cmd("delete_job", name="child")).ok
    assert state.jobs["parent"]["dependent_jobs"] == []


def test_unknown_format_versions_are_refused_and_snapshots_round_trip():
    state = ClusterState()
    assert not state.apply({"v": 99, "op": "put_job", "job": {"name": "x"}}).ok
    state.apply(cmd("put_job", job={"name": "x"}, next_fire_ms=42))
    state.apply(cmd("intent", intent=intent("x", 42)))
    copy = ClusterState()
    copy.restore(state.snapshot())
    assert copy.jobs == state.jobs and copy.intents == state.intents
    assert copy.runtime["x"].next_fire_ms == 42


def test_jobs_due_at_the_same_instant_each_get_their_intent_and_result():
    sink = RecordingSink()
    state = ClusterState(sink=sink)
    for name in ("a", "b"):
        state.apply(cmd("put_job", job={"name": name}))
    # Execution ids are unique per job only: both jobs' first runs of this slot share "<group>-n1-1".
    assert state.apply(cmd("intent", intent=intent("a", 7000))).ok
    assert state.apply(cmd("intent", intent=intent("b", 7000))).ok
    for name in ("a", "b"):
        execution = {"id": intent(name, 7000)["id"], "job_name": name, "success": True}
        assert state.apply(cmd("result", execution=execution, finished_at_ms=8000)).value == execution
    assert state.runtime["a"].success_count == state.runtime["b"].success_count == 1
    assert state.intents == {}
