"""Helpers for tests that run several real `horae agent` processes as one cluster on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from tests.integration.agent_process import AgentProcess
from tests.support import wait_until

FORM_TIMEOUT = 45.0
FAILOVER_TIMEOUT = 20.0
REPLICATION_TIMEOUT = 10.0


def noop_job(name: str) -> dict:
    return {"name": name, "schedule": "@manually", "executor": "noop", "executor_config": {"text": "hi"}}


def get(agent: AgentProcess, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{agent.url}{path}", timeout=2.0)
    except httpx.HTTPError:
        return None


def leader_name(agent: AgentProcess) -> str | None:
    response = get(agent, "/v1/leader")
    return response.json()["Name"] if response is not None and response.status_code == 200 else None


def member_names(agent: AgentProcess) -> list[str]:
    response = get(agent, "/v1/members")
    return sorted(m["Name"] for m in response.json()) if response is not None and response.status_code == 200 else []


def agreed_leader(agents: list[AgentProcess], timeout: float) -> str:
    """The leader every agent reports, once they all report the same one, and it is one of them."""
    alive = {agent.node_name for agent in agents}

    def agreed() -> str | None:
        names = {leader_name(agent) for agent in agents}
        return names.pop() if len(names) == 1 and names <= alive else None

    return wait_until(agreed, timeout, 0.1, "all servers to report the same leader")  # type: ignore[return-value]


def has_job(agent: AgentProcess, name: str) -> bool:
    response = get(agent, f"/v1/jobs/{name}")
    return response is not None and response.status_code == 200


def start_cluster(root: Path, count: int, places: Sequence[tuple[str, Sequence[str]]] = ()) -> list[AgentProcess]:
    """`count` servers; `places` gives each one (host, command prefix), e.g. its own network namespace."""
    where = list(places) or [("127.0.0.1", ())] * count
    agents = [
        AgentProcess(root / f"s{i}", node_name=f"s{i}", dev=False, host=where[i - 1][0], command_prefix=where[i - 1][1])
        for i in range(1, count + 1)
    ]
    for agent in agents:
        others = [a.rpc_address for a in agents if a is not agent]
        joins = [arg for address in others for arg in ("--join", address)]
        agent.extra_args = ["--server", "--bootstrap-expect", str(count), *joins]
    for agent in agents:
        agent.start(wait_healthy=False)
    for agent in agents:
        agent.wait_healthy(FORM_TIMEOUT)
    return agents


def stop_all(agents: list[AgentProcess]) -> None:
    problems = []
    for agent in agents:
        if agent.process is not None and agent.process.poll() is None:
            code = agent.stop()
            if code != 0:
                problems.append(f"{agent.node_name} exited with {code}:\n{agent.log_text()}")
    assert not problems, "\n".join(problems)


def by_name(agents: list[AgentProcess], name: str) -> AgentProcess:
    return next(agent for agent in agents if agent.node_name == name)


def start_client(root: Path, name: str, servers: list[AgentProcess], tags: dict[str, str]) -> AgentProcess:
    """A client agent (no --server) that joins through the given servers; it serves no HTTP API."""
    client = AgentProcess(root / name, node_name=name, dev=False)
    client.extra_args = [
        *(arg for server in servers for arg in ("--join", server.rpc_address)),
        *(arg for key, value in tags.items() for arg in ("--tag", f"{key}={value}")),
    ]
    return client.start(wait_healthy=False)


def members(agent: AgentProcess) -> dict[str, dict]:
    response = get(agent, "/v1/members")
    if response is None or response.status_code != 200:
        return {}
    return {member["Name"]: member for member in response.json()}


def wait_status(agent: AgentProcess, name: str, status: str, timeout: float) -> dict:
    """The member record of `name` as `agent` reports it, once its status is `status`."""

    def found() -> dict | None:
        member = members(agent).get(name)
        return member if member is not None and member["statusText"] == status else None

    return wait_until(found, timeout, 0.1, f"{name} to be {status} on {agent.node_name}")  # type: ignore[return-value]


def executions(agent: AgentProcess, job: str) -> list[dict]:
    response = get(agent, f"/v1/jobs/{job}/executions")
    return response.json() if response is not None and response.status_code == 200 else []


def finished(agent: AgentProcess, job: str, count: int, timeout: float) -> list[dict]:
    """The job's executions once `count` of them have finished."""

    def done() -> list[dict] | None:
        found = [e for e in executions(agent, job) if e.get("finished_at")]
        return found if len(found) >= count else None

    return wait_until(done, timeout, 0.1, f"{count} finished executions of {job}")  # type: ignore[return-value]


@contextlib.contextmanager
def running_cluster(root: Path, count: int = 3) -> Iterator[list[AgentProcess]]:
    """`count` servers formed into one cluster; stopped (and their logs printed, shown on failure) after."""
    agents: list[AgentProcess] = []
    try:
        agents = start_cluster(root, count)
        yield agents
    finally:
        try:
            stop_all(agents)
        finally:
            for agent in agents:
                print(f"----- {agent.node_name} log -----\n{agent.log_text(20000)}")


def every_second_job(name: str, catchup: str = "30s") -> dict:
    return {
        "name": name,
        "schedule": "@every 1s",
        "executor": "noop",
        "executor_config": {"text": name},
        "catchup": catchup,
    }


def slot_ms(execution: dict) -> int:
    moment = datetime.datetime.fromisoformat(execution["slot"].replace("Z", "+00:00"))
    return round(moment.timestamp() * 1000)


def slot_ledger(agent: AgentProcess, jobs: list[str], settled_ms: int = 3000) -> dict[str, list[int]]:
    """Each job's executions' slots (Unix ms), sorted, duplicates kept, up to `settled_ms` before now.

    An execution still open counts: its slot is taken, and it gets exactly one result (a node that
    died with it gets a failed one once its heartbeat deadline passes). The last few seconds are
    left out: an execution finishing while the list is read can be in neither the store nor the
    open intents at the moment each is read.
    """
    until_ms = time.time() * 1000 - settled_ms
    ledger = {}
    for job in jobs:
        by_id = {e["id"]: e for e in executions(agent, job)}
        ledger[job] = sorted(slot for slot in (slot_ms(e) for e in by_id.values()) if slot < until_ms)
    return ledger


def doubled_and_missing(ledger: dict[str, list[int]], period_ms: int = 1000) -> tuple[list, list]:
    """(job, slot) pairs that ran more than once, and slots missing between each job's first and last run."""
    doubled, missing = [], []
    for job, slots in ledger.items():
        seen: set[int] = set()
        for slot in slots:
            if slot in seen:
                doubled.append((job, slot))
            seen.add(slot)
        if slots:
            expected = set(range(slots[0], slots[-1] + 1, period_ms))
            missing.extend((job, slot) for slot in sorted(expected - seen))
    return doubled, missing
