"""API tokens, secrets shown to admins only, no open API on the network by accident, and HTTPS — on a real agent."""

from __future__ import annotations

import ssl
import subprocess
import sys

import httpx
import pytest

from tests.integration.agent_process import AgentProcess, free_port
from tests.pki import make_pki
from tests.support import REPO_ROOT, wait_until

READ, WRITE, ADMIN = "read-secret-0123456789", "write-secret-0123456789", "admin-secret-0123456789"
TOKENS = f"""
tokens:
  - {{name: viewer, secret: "{READ}", role: read}}
  - {{name: ci, secret: "{WRITE}", role: write}}
  - {{name: ops, secret: "{ADMIN}", role: admin}}
"""
JOB = {
    "name": "publish",
    "schedule": "@manually",
    "executor": "noop",
    "executor_config": {"text": "hi"},
    "notify": {
        "on": ["failure"],
        "webhook": {"url": "https://hooks.example.com/x", "headers": {"Authorization": "s3"}},
    },
}
SECRET_JOB = {
    "name": "secretive",
    "schedule": "@manually",
    "executor": "nats",
    "executor_config": {"url": "nats://127.0.0.1:4222", "subject": "s", "userName": "u", "password": "hunter2"},
}
# Every write endpoint and the role it needs.
WRITES = [
    ("POST", "/v1/jobs", JOB, "write"),
    ("PUT", "/v1/jobs/publish", JOB, "write"),
    ("POST", "/v1/jobs/publish/run", None, "write"),
    ("POST", "/v1/jobs/publish/toggle", None, "write"),
    ("DELETE", "/v1/jobs/publish/executions", None, "write"),
    ("POST", "/v1/jobs/publish/executions/x/stop", None, "write"),
    ("DELETE", "/v1/jobs/publish", None, "write"),
    ("POST", "/v1/pause", None, "admin"),
    ("POST", "/v1/unpause", None, "admin"),
    ("POST", "/v1/restore", [JOB], "admin"),
    ("DELETE", "/v1/raft/peers/nobody", None, "admin"),
    ("POST", "/v1/leave", None, "admin"),
]


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokens")
    tokens = folder / "tokens.yaml"
    tokens.write_text(TOKENS)
    with AgentProcess(folder / "node", extra_args=["--acl-tokens", str(tokens)]) as running:
        yield running


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize(("method", "path", "body", "role"), WRITES)
def test_every_write_refuses_no_wrong_and_too_weak_tokens(agent, method, path, body, role):
    weaker = [("viewer", READ)] + ([("ci", WRITE)] if role == "admin" else [])
    with agent.client() as http:
        missing = http.request(method, path, json=body)
        assert missing.status_code == 401, missing.text
        assert "needs a token" in missing.json()["error"]
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = http.request(method, path, json=body, headers=_bearer("not-a-token-0123456789"))
        assert wrong.status_code == 401, wrong.text
        assert "not one of this agent's tokens" in wrong.json()["error"]
        for name, secret in weaker:
            refused = http.request(method, path, json=body, headers=_bearer(secret))
            assert refused.status_code == 403, refused.text
            assert f"token {name!r} has role" in refused.json()["error"] and f"needs role {role}" in refused.text


def test_reads_need_a_read_token_and_each_header_is_accepted(agent):
    with agent.client() as http:
        assert http.get("/v1/jobs").status_code == 401
        for headers in (_bearer(READ), {"X-Horae-Token": READ}, {"X-Dkron-Token": READ}):
            assert http.get("/v1/jobs", headers=headers).status_code == 200
        http.cookies.set("horae_token", READ)
        assert http.get("/v1/members").status_code == 200
        http.cookies.clear()
        # Probes stay open, and a CORS preflight passes without a token.
        assert http.get("/health").status_code == 200
        assert http.get("/metrics").status_code == 200
        preflight = http.options(
            "/v1/jobs", headers={"Origin": "https://ui.example.com", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200


def test_write_and_admin_tokens_do_what_their_role_allows(agent):
    with agent.client() as http:
        created = http.post("/v1/jobs", json=JOB, headers=_bearer(WRITE))
        assert created.status_code == 201, created.text
        assert http.post("/v1/jobs/publish/run", headers=_bearer(WRITE)).status_code == 202
        assert http.post("/v1/pause", headers=_bearer(ADMIN)).status_code == 200
        assert http.post("/v1/unpause", headers=_bearer(ADMIN)).status_code == 200
        assert http.delete("/v1/jobs/publish", headers=_bearer(ADMIN)).status_code == 200


def test_secrets_are_masked_unless_admin_and_a_returned_mask_keeps_the_secret(agent):
    with agent.client() as http:
        created = http.post("/v1/jobs", json=SECRET_JOB, headers=_bearer(WRITE))
        assert created.status_code == 201, created.text
        assert created.json()["executor_config"]["password"] == "********"
        shown = http.get("/v1/jobs/secretive", headers=_bearer(READ)).json()
        assert shown["executor_config"]["password"] == "********"
        assert shown["executor_config"]["userName"] == "u"
        listed = http.get("/v1/jobs", headers=_bearer(WRITE)).json()
        assert [job["executor_config"]["password"] for job in listed if job["name"] == "secretive"] == ["********"]
        assert http.get("/v1/jobs/secretive", headers=_bearer(ADMIN)).json()["executor_config"]["password"] == (
            "hunter2"
        )
        # An edit made from what a writer sees sends the mask back: the stored secret stays.
        edited = {**shown, "executor_config": {**shown["executor_config"], "subject": "s2"}}
        assert http.put("/v1/jobs/secretive", json=edited, headers=_bearer(WRITE)).status_code == 201
        stored = http.get("/v1/jobs/secretive", headers=_bearer(ADMIN)).json()["executor_config"]
        assert stored["password"] == "hunter2" and stored["subject"] == "s2"
        # A new secret replaces it.
        edited["executor_config"]["password"] = "correct-horse"
        assert http.put("/v1/jobs/secretive", json=edited, headers=_bearer(WRITE)).status_code == 201
        stored = http.get("/v1/jobs/secretive", headers=_bearer(ADMIN)).json()["executor_config"]
        assert stored["password"] == "correct-horse"


def test_the_cli_sends_its_token(agent):
    def horae(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
        env = {"HORAE_ADDR": agent.url, "PATH": "/usr/bin:/bin"}
        flags = ["--token", token] if token else []
        return subprocess.run(
            [sys.executable, "-m", "horae.cli", "jobs", "list", *flags, *args],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=env,
            timeout=60,
        )

    refused = horae()
    assert refused.returncode != 0 and "401" in refused.stderr, refused
    accepted = horae(token=READ)
    assert accepted.returncode == 0, accepted


def _agent_exit(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "horae.cli", "agent", "--dev", "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )


def test_an_open_api_on_a_network_address_is_refused_with_what_to_do(tmp_path):
    refused = _agent_exit(tmp_path, "--http-addr", f"0.0.0.0:{free_port()}")
    assert refused.returncode == 2
    assert "open to the network with no API tokens" in refused.stderr
    assert "--acl-tokens" in refused.stderr and "--insecure-http" in refused.stderr


def test_a_bad_token_file_stops_the_agent_before_it_starts(tmp_path):
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens: [{name: ci, secret: short, role: write}]")
    refused = _agent_exit(tmp_path, "--acl-tokens", str(tokens))
    assert refused.returncode == 2
    assert "at least 16 characters" in refused.stderr and str(tokens) in refused.stderr


def test_an_open_network_address_is_served_with_insecure_http(tmp_path):
    agent = AgentProcess(tmp_path / "open")
    agent.extra_args = ["--insecure-http", "--http-addr", f"0.0.0.0:{agent.http_port}"]  # wins over the loopback one
    with agent, agent.client() as http:
        assert http.get("/v1/jobs").status_code == 200


def test_https_serves_the_api_with_the_given_certificate(tmp_path):
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    agent = AgentProcess(
        tmp_path / "tls", extra_args=["--cert-file", str(pki.server_cert), "--key-file", str(pki.server_key)]
    )
    agent.start(wait_healthy=False)
    try:
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        with httpx.Client(base_url=f"https://127.0.0.1:{agent.http_port}", verify=trusted, timeout=5.0) as https:

            def healthy() -> bool:
                assert agent.process.poll() is None, agent.log_text()
                try:
                    return https.get("/health").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, timeout=30.0, what="the agent to serve HTTPS")
            assert https.get("/v1/jobs").status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{agent.http_port}/health", timeout=2.0)
    finally:
        agent.stop()
    half = _agent_exit(tmp_path, "--cert-file", str(pki.server_cert))
    assert half.returncode == 2 and "key-file is not" in half.stderr
