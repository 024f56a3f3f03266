"""Scheduling of a real `horae agent`: timed fires, retries, concurrency, dependents, restarts.

One `--dev` agent serves most of the module; each test uses its own job names and deletes its
scheduled jobs when done. The restart test runs its own agents on a data dir it stops and starts
again. Every agent must exit 0 on SIGTERM.
"""

from __future__ import annotations

import datetime
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from horae.schedule.simple import every_offset_ms
from tests.integration.agent_process import AgentProcess
from tests.support import wait_until

RUN_TIMEOUT = 20.0


def stop_cleanly(agent: AgentProcess) -> None:
    code = agent.stop()
    assert code == 0, f"agent exited with {code} on SIGTERM:\n{agent.log_text()}"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("sched-agent"), node_name="sched-node").start()
    try:
        yield process
    finally:
        stop_cleanly(process)


@pytest.fixture
def http(agent: AgentProcess) -> Iterator[httpx.Client]:
    with agent.client() as client:
        yield client


# -- helpers -----------------------------------------------------------------------------------


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def shell(command: str) -> dict:
    return {"shell": "true", "command": command}


def create(http: httpx.Client, job: dict) -> dict:
    response = http.post("/v1/jobs", json=job)
    assert response.status_code == 201, response.text
    return response.json()


def delete(http: httpx.Client, name: str) -> None:
    response = http.delete(f"/v1/jobs/{name}")
    assert response.status_code in (200, 404), response.text


def executions(http: httpx.Client, name: str) -> list[dict]:
    response = http.get(f"/v1/jobs/{name}/executions", params={"_order": "ASC"})
    assert response.status_code == 200, response.text
    return response.json()


def finished(http: httpx.Client, name: str, count: int = 1, timeout: float = RUN_TIMEOUT) -> list[dict]:
    """Poll until the job has at least `count` finished executions; returns them, oldest first."""

    def done() -> list[dict] | None:
        found = [e for e in executions(http, name) if e.get("finished_at")]
        return found if len(found) >= count else None

    return wait_until(done, timeout=timeout, interval=0.05, what=f"{count} finished execution(s) of {name}")


def slots(found: list[dict]) -> list[datetime.datetime]:
    return sorted(parse_time(e["slot"]) for e in found)


# -- timed schedules ---------------------------------------------------------------------------


def test_every_second_fires_one_second_apart_at_the_job_offset(http: httpx.Client) -> None:
    create(http, {"name": "every-1s", "schedule": "@every 1s", "executor": "noop", "executor_config": {"text": "t"}})
    try:
        found = finished(http, "every-1s", 3)
    finally:
        delete(http, "every-1s")
    times = slots(found)
    # The slots sit on the epoch grid plus the offset every leader derives from the job name.
    offset_ms = every_offset_ms("every-1s", 1000)
    assert all(t.microsecond == offset_ms * 1000 for t in times), (offset_ms, times)
    assert all((b - a) == datetime.timedelta(seconds=1) for a, b in itertools.pairwise(times)), times
    assert len({e["id"] for e in found}) == len(found)
    assert all(e["success"] and e["output"] == "t" and e["attempt"] == 1 for e in found)


def test_six_field_cron_fires_on_even_seconds(http: httpx.Client) -> None:
    create(
        http, {"name": "cron-even", "schedule": "*/2 * * * * *", "executor": "noop", "executor_config": {"text": "c"}}
    )
    try:
        found = finished(http, "cron-even", 2)
    finally:
        delete(http, "cron-even")
    times = slots(found)
    assert all(t.second % 2 == 0 and t.microsecond == 0 for t in times), times
    assert all((b - a) == datetime.timedelta(seconds=2) for a, b in itertools.pairwise(times)), times


def test_disabled_job_does_not_fire_but_run_runs_it(http: httpx.Client) -> None:
    job = {"name": "off-job", "schedule": "@every 1s", "executor": "noop", "executor_config": {"text": "manual"}}
    create(http, {**job, "disabled": True})
    try:
        # The scheduler moves a disabled job's `next` on at each slot it skips: let two slots pass.
        seen = {http.get("/v1/jobs/off-job").json()["next"]}

        def two_slots_passed() -> bool:
            seen.add(http.get("/v1/jobs/off-job").json()["next"])
            return len(seen) >= 3

        wait_until(two_slots_passed, timeout=RUN_TIMEOUT, interval=0.05, what="two skipped slots of off-job")
        assert executions(http, "off-job") == []
        assert http.post("/v1/jobs/off-job/run").status_code == 202
        found = finished(http, "off-job", 1)
        assert found[0]["success"] and found[0]["output"] == "manual"
        assert http.get("/v1/jobs/off-job").json()["disabled"] is True
    finally:
        delete(http, "off-job")


def test_retries_run_in_the_same_group_with_rising_attempts(http: httpx.Client) -> None:
    create(
        http,
        {
            "name": "flaky",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": shell("exit 3"),
            "retries": 2,
        },
    )
    assert http.post("/v1/jobs/flaky/run").status_code == 202
    found = finished(http, "flaky", 3)
    assert sorted(e["attempt"] for e in found) == [1, 2, 3]
    assert len({e["group"] for e in found}) == 1
    assert len({e["id"] for e in found}) == 3
    assert all(e["success"] is False and e["exit_code"] == 3 for e in found)
    # no fourth attempt follows
    job = wait_until(lambda: (j := http.get("/v1/jobs/flaky").json())["error_count"] >= 3 and j, timeout=RUN_TIMEOUT)
    assert job["status"] == "failed" or job["error_count"] == 3, job
    assert len(executions(http, "flaky")) == 3


def test_concurrency_forbid_never_overlaps(http: httpx.Client) -> None:
    create(
        http,
        {
            "name": "no-overlap",
            "schedule": "@every 1s",
            "executor": "shell",
            "executor_config": shell("sleep 3"),
            "concurrency": "forbid",
        },
    )
    try:
        found = finished(http, "no-overlap", 2, timeout=30)
    finally:
        delete(http, "no-overlap")
    intervals = sorted((parse_time(e["started_at"]), parse_time(e["finished_at"])) for e in found)
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert start >= end, intervals
    assert all(e["success"] for e in found), found


def test_dependent_job_runs_after_parent_success_only(http: httpx.Client) -> None:
    create(http, {"name": "parent-ok", "schedule": "@manually", "executor": "shell", "executor_config": shell("true")})
    create(
        http,
        {"name": "parent-bad", "schedule": "@manually", "executor": "shell", "executor_config": shell("exit 1")},
    )
    for parent, child in (("parent-ok", "child-ok"), ("parent-bad", "child-bad")):
        create(
            http,
            {
                "name": child,
                "schedule": "@manually",
                "executor": "noop",
                "executor_config": {"text": child},
                "parent_job": parent,
            },
        )
    assert http.get("/v1/jobs/parent-ok").json()["dependent_jobs"] == ["child-ok"]

    assert http.post("/v1/jobs/parent-ok/run").status_code == 202
    parent_run = finished(http, "parent-ok", 1)[0]
    child_run = finished(http, "child-ok", 1)[0]
    assert child_run["success"] and child_run["output"] == "child-ok"
    assert parse_time(child_run["started_at"]) >= parse_time(parent_run["finished_at"])

    assert http.post("/v1/jobs/parent-bad/run").status_code == 202
    assert finished(http, "parent-bad", 1)[0]["success"] is False
    # The failed parent's result is recorded; run the good parent again as a marker and check the
    # bad child still has nothing once the marker's child has run.
    assert http.post("/v1/jobs/parent-ok/run").status_code == 202
    finished(http, "child-ok", 2)
    assert executions(http, "child-bad") == []


def test_ephemeral_job_is_deleted_after_success(http: httpx.Client) -> None:
    create(
        http,
        {
            "name": "one-shot",
            "schedule": "@manually",
            "executor": "noop",
            "executor_config": {"text": "x"},
            "ephemeral": True,
        },
    )
    assert http.post("/v1/jobs/one-shot/run").status_code == 202
    wait_until(lambda: http.get("/v1/jobs/one-shot").status_code == 404, timeout=RUN_TIMEOUT, what="one-shot deleted")


def test_ephemeral_job_is_kept_after_a_failure(http: httpx.Client) -> None:
    create(
        http,
        {
            "name": "one-shot-bad",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": shell("exit 1"),
            "ephemeral": True,
        },
    )
    assert http.post("/v1/jobs/one-shot-bad/run").status_code == 202
    assert finished(http, "one-shot-bad", 1)[0]["success"] is False
    wait_until(lambda: http.get("/v1/jobs/one-shot-bad").json()["error_count"] >= 1, timeout=RUN_TIMEOUT)
    assert http.get("/v1/jobs/one-shot-bad").status_code == 200


def test_job_timeout_fails_the_execution(http: httpx.Client) -> None:
    create(
        http,
        {
            "name": "too-slow",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": shell("sleep 10"),
            "timeout": "1s",
        },
    )
    assert http.post("/v1/jobs/too-slow/run").status_code == 202
    found = finished(http, "too-slow", 1, timeout=9)
    assert found[0]["success"] is False
    assert "timeout" in found[0]["output"].lower() or "timed out" in found[0]["output"].lower(), found[0]


def test_log_processor_with_forward_keeps_the_output(http: httpx.Client) -> None:
    create(
        http,
        {
            "name": "logged",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": shell("echo kept-output"),
            "processors": {"log": {"forward": "true"}},
        },
    )
    assert http.post("/v1/jobs/logged/run").status_code == 202
    found = finished(http, "logged", 1)
    assert found[0]["success"] is True
    assert "kept-output" in found[0]["output"]


# -- restarts ----------------------------------------------------------------------------------


def restarted(previous: AgentProcess, node_name: str) -> AgentProcess:
    """A new agent process (fresh ports) on the same data dir, not in --dev mode."""
    return AgentProcess(
        previous.data_dir, node_name=node_name, extra_args=["--server", "--bootstrap-expect", "1"], dev=False
    )


def test_restart_keeps_jobs_and_execution_history(tmp_path: Path) -> None:
    first = AgentProcess(
        tmp_path / "node", node_name="restart-node", extra_args=["--server", "--bootstrap-expect", "1"], dev=False
    ).start()
    try:
        with first.client() as http:
            create(
                http, {"name": "kept", "schedule": "@manually", "executor": "noop", "executor_config": {"text": "k"}}
            )
            assert http.post("/v1/jobs/kept/run").status_code == 202
            before = finished(http, "kept", 1)
    finally:
        stop_cleanly(first)

    second = restarted(first, "restart-node").start()
    try:
        with second.client() as http:
            wait_until(lambda: http.get("/v1/jobs/kept").status_code == 200, timeout=RUN_TIMEOUT, what="job kept")
            job = http.get("/v1/jobs/kept").json()
            assert job["executor_config"] == {"text": "k"}
            assert [e["id"] for e in executions(http, "kept")] == [e["id"] for e in before]
            assert http.post("/v1/jobs/kept/run").status_code == 202
            assert len(finished(http, "kept", 2)) == 2
    finally:
        stop_cleanly(second)


def test_slots_missed_while_stopped_run_once_each_within_the_catchup_window(tmp_path: Path) -> None:
    first = AgentProcess(
        tmp_path / "node", node_name="catchup-node", extra_args=["--server", "--bootstrap-expect", "1"], dev=False
    ).start()
    job = {"name": "catcher", "schedule": "@every 2s", "catchup": "1m", "executor": "noop"}
    try:
        with first.client() as http:
            create(http, job)
            finished(http, "catcher", 1)
    finally:
        stop_cleanly(first)
    stopped_at = time.time()
    # The agent stays down across at least two slots (a wall-clock condition, polled).
    wait_until(lambda: time.time() >= stopped_at + 5, timeout=10, what="two slots to pass while stopped")

    second = restarted(first, "catchup-node").start()
    try:
        with second.client() as http:
            restarted_at = time.time()

            def contiguous_past_restart() -> bool:
                found = sorted(slots(executions(http, "catcher")))
                steps = {(b - a).total_seconds() for a, b in itertools.pairwise(found)}
                return bool(found) and found[-1].timestamp() > restarted_at and steps == {2.0}

            wait_until(contiguous_past_restart, timeout=RUN_TIMEOUT, what="every missed slot to run once")
            found = slots(executions(http, "catcher"))
            assert len(found) == len(set(found)), "a slot ran twice"
    finally:
        stop_cleanly(second)
