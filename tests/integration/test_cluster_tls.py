"""Inter-node gRPC over TLS with real `horae agent` processes: a 3-server cluster and a client agent with
--cert-file/--key-file/--ca-file, one with --auto-tls --encrypt, and nodes whose TLS setting differs."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from horae.cluster.auth import new_key
from horae.cluster.tls import speaks_tls
from tests.integration.agent_process import START_TIMEOUT_SECONDS, AgentProcess
from tests.integration.cluster_support import (
    FORM_TIMEOUT,
    agreed_leader,
    by_name,
    noop_job,
    start_client,
    start_cluster,
    stop_all,
)
from tests.pki import Pki, make_pki
from tests.support import wait_until

LINK_TIMEOUT = 30.0
RUN_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0


class HttpsAgent(AgentProcess):
    """An agent with --cert-file: its API is HTTPS, checked against the test CA."""

    def __init__(self, data_dir: Path, node_name: str, pki: Pki) -> None:
        super().__init__(data_dir, node_name=node_name, dev=False)
        self.url = f"https://127.0.0.1:{self.http_port}"
        self.trusted = ssl.create_default_context(cafile=str(pki.ca))

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.trusted, timeout=kwargs.pop("timeout", 10.0), **kwargs)

    def get(self, path: str) -> httpx.Response | None:
        try:
            with self.client(timeout=2.0) as https:
                return https.get(path)
        except httpx.HTTPError:
            return None

    def wait_healthy(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        def healthy() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log_text()
            response = self.get("/health")
            return response is not None and response.status_code == 200

        wait_until(healthy, timeout, 0.1, f"{self.node_name} to serve HTTPS")


def tls_args(pki: Pki) -> list[str]:
    return ["--cert-file", str(pki.server_cert), "--key-file", str(pki.server_key), "--ca-file", str(pki.ca)]


def https_leader(agents: list[HttpsAgent]) -> HttpsAgent:
    def agreed() -> str | None:
        names = set()
        for agent in agents:
            response = agent.get("/v1/leader")
            names.add(response.json()["Name"] if response is not None and response.status_code == 200 else None)
        return names.pop() if len(names) == 1 and None not in names else None

    return by_name(agents, wait_until(agreed, FORM_TIMEOUT, 0.1, "the servers to agree on a leader"))


def member_status(agent: AgentProcess, name: str) -> str | None:
    with agent.client(timeout=2.0) as http:
        response = http.get("/v1/members")
    found = [m for m in response.json() if m["Name"] == name] if response.status_code == 200 else []
    return found[0]["statusText"] if found else None


def runs_on(leader: AgentProcess, client_name: str) -> dict:
    """Create a job for the client's tag, run it, and return its finished execution."""
    job = {**noop_job("on-the-client"), "tags": {"role": "tls-client"}}
    with leader.client() as http:
        assert http.post("/v1/jobs", json=job).status_code == 201
        assert http.post("/v1/jobs/on-the-client/run").status_code == 202

        def done() -> dict | None:
            found = [e for e in http.get("/v1/jobs/on-the-client/executions").json() if e.get("finished_at")]
            return found[0] if found else None

        execution = wait_until(done, RUN_TIMEOUT, 0.1, "the job to run on the client agent")
    assert execution["node_name"] == client_name and execution["success"], execution
    return execution


def exits_refused(agent: AgentProcess) -> str:
    """The log of a server that must stop because every server refused it."""
    agent.start(wait_healthy=False)
    assert agent.process is not None
    assert agent.process.wait(EXIT_TIMEOUT) == 1, agent.log_text()
    return agent.log_text()


@pytest.fixture
def logs_on_failure() -> Iterator[list[AgentProcess]]:
    agents: list[AgentProcess] = []
    try:
        yield agents
    finally:
        try:
            stop_all(agents)
        finally:
            for agent in agents:
                print(f"----- {agent.node_name} log -----\n{agent.log_text(20000)}")


def test_a_cluster_with_certificate_files_forms_and_runs_a_job_on_a_client(
    tmp_path: Path, logs_on_failure: list[AgentProcess]
) -> None:
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    servers = [HttpsAgent(tmp_path / f"s{i}", f"s{i}", pki) for i in (1, 2, 3)]
    for server in servers:
        joins = [arg for other in servers if other is not server for arg in ("--join", other.rpc_address)]
        server.extra_args = ["--server", "--bootstrap-expect", "3", *joins, *tls_args(pki)]
    logs_on_failure.extend(servers)
    for server in servers:
        server.start(wait_healthy=False)
    for server in servers:
        server.wait_healthy(FORM_TIMEOUT)
    leader = https_leader(servers)
    for server in servers:
        assert "tls=--cert-file/--ca-file" in server.log_text()
        assert asyncio.run(speaks_tls(server.rpc_address)), f"{server.node_name}'s gRPC port must speak TLS"

    client = AgentProcess(tmp_path / "c1", node_name="c1", dev=False)
    client.extra_args = [
        *(arg for server in servers for arg in ("--join", server.rpc_address)),
        *("--tag", "role=tls-client"),
        *tls_args(pki),
    ]
    logs_on_failure.append(client.start(wait_healthy=False))
    wait_until(lambda: member_status(leader, "c1") == "alive", LINK_TIMEOUT, 0.1, "c1 to link over TLS")
    runs_on(leader, "c1")

    # A server without TLS settings cannot join, and says why.
    plain = AgentProcess(tmp_path / "s4", node_name="s4", dev=False)
    plain.extra_args = ["--server", "--join", servers[0].rpc_address]
    log = exits_refused(plain)
    assert "every server refused this server's TLS setting" in log
    assert "serves inter-node gRPC over TLS but this node has no TLS setting" in log
    assert member_status(leader, "s4") is None


def test_an_auto_tls_cluster_forms_runs_a_job_and_refuses_other_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs_on_failure: list[AgentProcess]
) -> None:
    monkeypatch.setenv("HORAE_ENCRYPT", new_key())  # the agents inherit both: no file, no flag
    monkeypatch.setenv("HORAE_AUTO_TLS", "true")
    servers = start_cluster(tmp_path, 3)
    logs_on_failure.extend(servers)
    leader = by_name(servers, agreed_leader(servers, FORM_TIMEOUT))
    for server in servers:
        assert "tls=--auto-tls" in server.log_text()
        assert asyncio.run(speaks_tls(server.rpc_address))
    logs_on_failure.append(start_client(tmp_path, "c1", servers, {"role": "tls-client"}))
    wait_until(lambda: member_status(leader, "c1") == "alive", LINK_TIMEOUT, 0.1, "c1 to link over auto-TLS")
    runs_on(leader, "c1")

    # The key without --auto-tls: plain gRPC to TLS servers.
    monkeypatch.delenv("HORAE_AUTO_TLS")
    without = AgentProcess(tmp_path / "s4", node_name="s4", dev=False)
    without.extra_args = ["--server", "--join", servers[0].rpc_address]
    log = exits_refused(without)
    assert "every server refused this server's TLS setting" in log
    assert "serves inter-node gRPC over TLS but this node has no TLS setting" in log

    # --auto-tls with another key: its CA is another, so the servers' certificates are not trusted.
    monkeypatch.setenv("HORAE_AUTO_TLS", "true")
    monkeypatch.setenv("HORAE_ENCRYPT", new_key())
    other = AgentProcess(tmp_path / "s5", node_name="s5", dev=False)
    other.extra_args = ["--server", "--join", servers[0].rpc_address]
    log = exits_refused(other)
    assert "every server refused this server's TLS setting" in log
    assert "not from this cluster's auto-TLS CA" in log
    for name in ("s4", "s5"):
        assert member_status(leader, name) is None


def test_auto_tls_without_a_key_is_a_config_error(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "n", node_name="n", dev=False, extra_args=["--server", "--auto-tls"])
    agent.start(wait_healthy=False)
    assert agent.process is not None
    assert agent.process.wait(EXIT_TIMEOUT) == 2
    assert "auto-tls needs --encrypt" in agent.log_text()
