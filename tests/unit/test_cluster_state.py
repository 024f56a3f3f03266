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


def node_intent(job, slot_ms, node, attempt=1, kind="manual"):
    return {**intent(job, slot_ms, attempt, kind), "id": f"{slot_ms * 1_000_000}-{node}-{attempt}", "node": node}


def finish(state, job, slot_ms, node, success, attempt=1, kind="manual"):
    """Open an intent for one node's attempt and apply its result; returns the runtime after it.

    "manual" by default: a fan-out's nodes each open an intent for the same slot.
    """
    opened = node_intent(job, slot_ms, node, attempt, kind)
    state.apply(cmd("intent", intent=opened))
    execution = {
        "id": opened["id"],
        "job_name": job,
        "success": success,
        "node_name": node,
        "group": opened["group"],
        "attempt": attempt,
    }
    assert state.apply(cmd("result", execution=execution, finished_at_ms=slot_ms + 1)).ok
    return state.runtime[job]


def test_a_fan_out_with_one_failed_node_is_partially_failed():
    state = ClusterState()
    state.apply(cmd("put_job", job={"name": "fan"}))
    state.apply(cmd("intent", intent=node_intent("fan", 1000, "n1")))
    assert finish(state, "fan", 1000, "n2", False).status == "failed"
    assert finish(state, "fan", 1000, "n1", True).status == "partially_failed"
    # The next group starts afresh.
    assert finish(state, "fan", 2000, "n1", True).status == "success"
    assert finish(state, "fan", 2000, "n2", True).status == "success"
    runtime = state.runtime["fan"]
    assert (runtime.success_count, runtime.error_count, runtime.last_group) == (3, 1, 2000 * 1_000_000)


def test_a_successful_retry_makes_the_group_a_success():
    state = ClusterState()
    state.apply(cmd("put_job", job={"name": "r"}))
    assert finish(state, "r", 1000, "n1", False).status == "failed"
    runtime = finish(state, "r", 1000, "n1", True, attempt=2, kind="retry")
    assert (runtime.status, runtime.success_count, runtime.error_count) == ("success", 1, 1)
    assert runtime.group_outcomes == {"n1": True}


def test_a_late_result_of_an_older_group_is_counted_but_leaves_the_status():
    state = ClusterState()
    state.apply(cmd("put_job", job={"name": "late"}))
    state.apply(cmd("intent", intent=node_intent("late", 1000, "n1")))
    assert finish(state, "late", 2000, "n1", True).status == "success"
    old = {"id": node_intent("late", 1000, "n1")["id"], "job_name": "late", "success": False}
    old |= {"node_name": "n1", "group": 1000 * 1_000_000, "attempt": 1}
    assert state.apply(cmd("result", execution=old, finished_at_ms=3000)).ok
    runtime = state.runtime["late"]
    assert (runtime.status, runtime.error_count, runtime.last_error_ms) == ("success", 1, 3000)


def test_status_tracking_survives_a_snapshot_taken_before_it_existed():
    state = ClusterState()
    state.apply(cmd("put_job", job={"name": "old"}))
    finish(state, "old", 1000, "n1", True)
    snapshot = state.snapshot()
    assert snapshot["runtime"]["old"].group_outcomes is not state.runtime["old"].group_outcomes
    for name in ("last_group", "group_outcomes"):
        object.__delattr__(snapshot["runtime"]["old"], name)
    copy = ClusterState()
    copy.restore(snapshot)
    assert (copy.runtime["old"].last_group, copy.runtime["old"].group_outcomes) == (None, {})
    assert finish(copy, "old", 2000, "n1", False).status == "failed"


def test_clear_executions_resets_the_history_but_not_scheduling_or_open_intents():
    sink = RecordingSink()
    state = ClusterState(sink=sink)
    state.apply(cmd("put_job", job={"name": "c"}, next_fire_ms=9000))
    finish(state, "c", 1000, "n1", False)
    finish(state, "c", 2000, "n1", True, kind="scheduled")
    state.apply(cmd("set_next_fire", job="c", next_fire_ms=9000, missed=2))
    state.apply(cmd("intent", intent=node_intent("c", 3000, "n1")))
    command = cmd("clear_executions", job="c")
    for _ in range(2):  # idempotent: a replay changes nothing more
        assert state.apply(command).ok
        runtime = state.runtime["c"]
        assert (runtime.success_count, runtime.error_count, runtime.status) == (0, 0, "")
        assert (runtime.last_success_ms, runtime.last_error_ms, runtime.last_group) == (None, None, None)
        assert (runtime.next_fire_ms, runtime.missed_count, runtime.last_scheduled_slot_ms) == (9000, 2, 2000)
        assert list(state.intents) == [f"c\x00{node_intent('c', 3000, 'n1')['id']}"]
    assert sink.deleted == ["c", "c"]
    assert not state.apply(cmd("clear_executions", job="nope")).ok
    assert sink.deleted == ["c", "c"]


def test_one_intent_command_opens_one_execution_per_target_node_and_a_second_is_refused():
    state = ClusterState()
    state.apply(cmd("put_job", job={"name": "fan"}))
    on = [{**intent("fan", 1000), "id": f"1000000000-{node}-1", "node": node} for node in ("a", "b")]
    result = state.apply(cmd("intent", intents=on))
    assert result.ok and [i["node"] for i in result.value] == ["a", "b"]
    assert len(state.intents) == 2
    other = [{**intent("fan", 1000), "id": "1000000000-c-1", "node": "c"}]
    assert not state.apply(cmd("intent", intents=other)).ok  # the slot is taken, whichever node
    assert len(state.intents) == 2


def test_member_status_changes_are_recorded_with_their_time_and_bump_the_version():
    state = ClusterState()
    member = {"name": "web-1", "rpc_address": "", "role": "client", "tags": {"role": "web"}, "executors": ["shell"]}
    assert state.apply(cmd("put_member", member=member, at_ms=10)).ok
    assert state.members["web-1"]["status"] == "alive"
    version = state.members_version
    assert state.apply(cmd("put_member", member=member, at_ms=20)).reason == "unchanged"
    assert state.members_version == version
    assert state.apply(cmd("set_member_status", name="web-1", status="failed", at_ms=30)).ok
    assert (state.members["web-1"]["status"], state.members["web-1"]["status_changed_ms"]) == ("failed", 30)
    assert state.members_version == version + 1
    # Linking again makes it alive; its executors are kept when a record leaves them out.
    assert state.apply(cmd("put_member", member={**member, "executors": [], "status": "alive"}, at_ms=40)).ok
    assert state.members["web-1"]["executors"] == ["shell"] and state.members["web-1"]["status"] == "alive"
    assert not state.apply(cmd("set_member_status", name="nobody", status="failed")).ok
    assert state.apply(cmd("remove_member", name="web-1")).ok and "web-1" not in state.members
