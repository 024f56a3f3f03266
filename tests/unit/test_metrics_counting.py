"""horae.metrics: which applied commands count, on which server, and what they observe."""

from __future__ import annotations

from typing import Any

from horae.cluster.state import CommandResult
from horae.dispatch import command
from horae.metrics import Metrics
from horae.model import format_ms

START_MS = 1_800_000_000_000  # the process starts here


def leader() -> bool:
    return True


def follower() -> bool:
    return False


def intent(job: str, execution_id: str, slot_ms: int, kind: str = "scheduled", attempt: int = 1) -> dict[str, Any]:
    return {"id": execution_id, "job": job, "slot_ms": slot_ms, "group": 1, "attempt": attempt, "kind": kind}


def result(job: str, execution_id: str, started_ms: int | None, finished_ms: int, success: bool = True) -> dict:
    execution = {
        "id": execution_id,
        "job_name": job,
        "success": success,
        "started_at": format_ms(started_ms),
        "finished_at": format_ms(finished_ms),
    }
    return command("result", execution=execution, finished_at_ms=finished_ms, unplanned=False)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def new_metrics() -> Metrics:
    return Metrics(clock=lambda: START_MS / 1000)


def test_the_leader_counts_a_result_its_duration_and_a_scheduled_slots_lateness() -> None:
    metrics = new_metrics()
    slot = START_MS + 10_000
    metrics.applied(command("intent", intents=[intent("a", "e1", slot)]), CommandResult(True), leader)
    metrics.applied(result("a", "e1", slot + 20, slot + 1520), CommandResult(True), leader)
    assert sample(metrics, "horae_executions_total", job="a", outcome="succeeded") == 1
    assert sample(metrics, "horae_execution_duration_seconds_sum") == 1.5
    assert sample(metrics, "horae_schedule_lateness_seconds_count") == 1
    assert sample(metrics, "horae_schedule_lateness_seconds_sum") == 0.02


def test_manual_runs_and_retries_have_no_lateness() -> None:
    metrics = new_metrics()
    slot = START_MS + 10_000
    intents = [intent("m", "e1", slot, kind="manual"), intent("m", "e2", slot, kind="retry", attempt=2)]
    metrics.applied(command("intent", intents=intents), CommandResult(True), leader)
    for execution_id in ("e1", "e2"):
        metrics.applied(result("m", execution_id, slot + 500, slot + 600, False), CommandResult(True), leader)
    assert sample(metrics, "horae_executions_total", job="m", outcome="failed") == 2
    assert sample(metrics, "horae_execution_duration_seconds_count") == 2
    assert sample(metrics, "horae_schedule_lateness_seconds_count") == 0


def test_followers_duplicates_refusals_and_replays_count_nothing() -> None:
    metrics = new_metrics()
    fresh = START_MS + 1000
    metrics.applied(result("j", "f", fresh, fresh + 1), CommandResult(True), follower)
    metrics.applied(result("j", "d", fresh, fresh + 1), CommandResult(True, "already recorded"), leader)
    metrics.applied(result("j", "r", fresh, fresh + 1), CommandResult(False, "job 'j' no longer exists"), leader)
    # Committed before this process started: the Raft log replaying it after a restart.
    metrics.applied(result("j", "old", START_MS - 5000, START_MS - 4000), CommandResult(True), leader)
    assert sample(metrics, "horae_executions_total", job="j", outcome="succeeded") is None
    assert sample(metrics, "horae_execution_duration_seconds_count") == 0


def test_a_result_that_never_started_counts_without_a_duration() -> None:
    metrics = new_metrics()
    metrics.applied(result("n", "x", None, START_MS + 1, False), CommandResult(True), leader)
    assert sample(metrics, "horae_executions_total", job="n", outcome="failed") == 1
    assert sample(metrics, "horae_execution_duration_seconds_count") == 0


def test_deleting_a_job_drops_its_series() -> None:
    metrics = new_metrics()
    metrics.applied(result("gone", "x", START_MS + 1, START_MS + 2), CommandResult(True), leader)
    metrics.applied(result("kept", "x", START_MS + 1, START_MS + 2), CommandResult(True), leader)
    metrics.applied(command("delete_job", name="gone"), CommandResult(True, value={}), follower)
    assert sample(metrics, "horae_executions_total", job="gone", outcome="succeeded") is None
    assert sample(metrics, "horae_executions_total", job="kept", outcome="succeeded") == 1


def test_the_listener_calls_the_next_one_and_never_raises() -> None:
    metrics = new_metrics()
    seen = []
    listener = metrics.counting(lambda applied, outcome: seen.append(applied["op"]), leader)
    broken = command("result", execution={"id": "x", "job_name": "b", "success": True, "started_at": "yesterday"})
    listener(broken, CommandResult(True))  # a bad time: logged, not raised into the state machine
    assert seen == ["result"]


def test_leadership_changes_are_counted_and_handed_on() -> None:
    metrics = new_metrics()
    handed = []
    changed = metrics.leadership_listener(handed.append)
    changed(True)
    changed(False)
    changed(True)
    assert handed == [True, False, True]
    assert sample(metrics, "horae_leader_changes_total", change="gained") == 2
    assert sample(metrics, "horae_leader_changes_total", change="lost") == 1
