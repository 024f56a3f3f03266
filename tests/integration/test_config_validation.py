"""Jobs' plugin settings checked against the schemas the cluster's agents report, on real agents.

Three real servers form a cluster; a real client agent brings an executor (a plugin-dir program
written with the SDK) that the servers lack. Requests go to a follower: it validates with the member
records and schemas Raft replicated to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.agent_process import AgentProcess
from tests.integration.cluster_support import (
    FORM_TIMEOUT,
    agreed_leader,
    finished,
    running_cluster,
    wait_status,
)
from tests.support import REPO_ROOT

LINK_TIMEOUT = 20.0
RUN_TIMEOUT = 20.0
LEAVE_TIMEOUT = 20.0
HORAE = REPO_ROOT / ".venv" / "bin" / "horae"

# An executor only the client has, with a schema of its own.
PROBE_PLUGIN = f"""\
#!{sys.executable}
from horae_sdk import Executor, serve


class Probe(Executor):
    name = "probe"
    version = "1.0"
    config_schema = {{
        "type": "object",
        "properties": {{
            "text": {{"type": "string", "description": "what to write"}},
            "repeat": {{"type": "string", "pattern": "^[0-9]+$", "description": "how many times: a whole number"}},
        }},
        "required": ["text"],
        "additionalProperties": False,
    }}

    def execute(self, job_name, config, stream):
        stream.write(config["text"] * int(config.get("repeat") or 1))


if __name__ == "__main__":
    serve(executor=Probe())
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[AgentProcess]]:
    with running_cluster(tmp_path_factory.mktemp("config-check"), 3) as agents:
        agreed_leader(agents, FORM_TIMEOUT)
        yield agents


@pytest.fixture
def follower(servers: list[AgentProcess]) -> AgentProcess:
    leader = agreed_leader(servers, FORM_TIMEOUT)
    return next(agent for agent in servers if agent.node_name != leader)


def shell_job(name: str, **config: str) -> dict:
    return {"name": name, "schedule": "@manually", "executor": "shell", "executor_config": config}


def save(agent: AgentProcess, job: dict, method: str = "POST") -> httpx.Response:
    path = "/v1/jobs" if method == "POST" else f"/v1/jobs/{job['name']}"
    return httpx.request(method, f"{agent.url}{path}", json=job, timeout=10.0)


def field_problems(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "fields"}
    return {problem["field"]: problem["message"] for problem in body["fields"]}


# -- POST / PUT /v1/jobs refuse ------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_an_unknown_key_is_refused_naming_the_closest_known_key(follower: AgentProcess, method: str) -> None:
    response = save(follower, shell_job(f"typo-{method.lower()}", command="true", timout="30s"), method)

    problems = field_problems(response)
    assert list(problems) == ["executor_config.timout"]
    assert 'did you mean "timeout"' in problems["executor_config.timout"]
    assert "executor_config.timout" in response.json()["error"]
    assert httpx.get(f"{follower.url}/v1/jobs/typo-{method.lower()}").status_code == 404


def test_a_bad_value_is_refused_saying_what_the_plugin_wants(follower: AgentProcess) -> None:
    problems = field_problems(save(follower, shell_job("bad-timeout", command="true", timeout="forever")))
    assert list(problems) == ["executor_config.timeout"]
    assert '"forever" is not accepted by the shell executor' in problems["executor_config.timeout"]
    assert "Go duration such as `30s`" in problems["executor_config.timeout"]


def test_a_valid_job_is_saved(follower: AgentProcess) -> None:
    response = save(follower, shell_job("good", command="echo hi", shell="true", timeout="30"))
    assert response.status_code == 201, response.text


def test_an_executor_no_alive_node_has_is_refused_naming_the_ones_they_have(follower: AgentProcess) -> None:
    job = {"name": "nowhere", "schedule": "@manually", "executor": "nosuch", "executor_config": {"a": "b"}}
    problems = field_problems(save(follower, job))
    assert list(problems) == ["executor"]
    assert 'no alive node has the executor "nosuch"' in problems["executor"]
    available = problems["executor"].split("(alive nodes have: ", 1)[1].split(")", 1)[0].split(", ")
    assert {"http", "kafka", "nats", "noop", "rabbitmq", "shell"} <= set(available)


def test_a_processor_no_alive_node_has_is_refused(follower: AgentProcess) -> None:
    job = {**shell_job("no-processor", command="true"), "processors": {"elastic": {}, "files": {"forwad": "true"}}}
    problems = field_problems(save(follower, job))
    assert 'no alive node has the processor "elastic"' in problems["processors.elastic"]
    assert 'did you mean "forward"' in problems["processors.files.forwad"]


# -- restore and import accept, with warnings --------------------------------------------------------
def test_restore_accepts_an_unknown_key_and_executor_with_warnings(follower: AgentProcess) -> None:
    jobs = [
        shell_job("restored-typo", command="true", nice="10"),
        {"name": "restored-elsewhere", "schedule": "@manually", "executor": "gone", "executor_config": {}},
    ]
    response = httpx.post(f"{follower.url}/v1/restore", json=jobs, timeout=10.0)

    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["restored"]) == ["restored-elsewhere", "restored-typo"]
    warnings = body["warnings"]
    assert any(
        w.startswith("restored-typo: executor_config.nice: not a setting of the shell executor") for w in warnings
    )
    assert any(w.startswith('restored-elsewhere: executor: no alive node has the executor "gone"') for w in warnings)
    saved = httpx.get(f"{follower.url}/v1/jobs/restored-typo").json()
    assert saved["executor_config"] == {"command": "true", "nice": "10"}  # kept, as Dkron did


def test_jobs_import_prints_the_warnings(follower: AgentProcess, tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps([shell_job("imported-typo", command="true", comand="x")]))

    done = subprocess.run(
        [str(HORAE), "jobs", "--address", follower.url, "import", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60.0,
        cwd=REPO_ROOT,
    )

    assert done.returncode == 0, done.stderr
    assert "imported-typo" in done.stdout
    assert "warning: imported-typo: executor_config.comand: not a setting of the shell executor" in done.stderr
    assert 'did you mean "command"' in done.stderr


# -- a client's plugin counts while the client is alive ------------------------------------------------
def test_a_client_s_plugin_makes_its_executor_valid_with_its_schema(
    servers: list[AgentProcess], follower: AgentProcess, tmp_path: Path
) -> None:
    probe_job = {"name": "probed", "schedule": "@manually", "executor": "probe", "executor_config": {"text": "hi"}}
    before = field_problems(save(follower, probe_job))
    assert 'no alive node has the executor "probe"' in before["executor"]

    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    program = plugin_dir / "horae-executor-probe"
    program.write_text(textwrap.dedent(PROBE_PLUGIN))
    program.chmod(0o755)
    client = AgentProcess(tmp_path / "prober", node_name="prober", dev=False)
    client.extra_args = [
        *(arg for server in servers for arg in ("--join", server.rpc_address)),
        "--plugin-dir",
        str(plugin_dir),
    ]
    client.start(wait_healthy=False)
    try:
        wait_status(follower, "prober", "alive", LINK_TIMEOUT)

        saved = save(follower, {**probe_job, "executor_config": {"text": "hi", "repeat": "3"}})
        assert saved.status_code == 201, saved.text
        typo = field_problems(save(follower, {**probe_job, "executor_config": {"text": "hi", "repaet": "3"}}))
        assert 'not a setting of the probe executor; did you mean "repeat"?' in typo["executor_config.repaet"]
        bad = field_problems(save(follower, {**probe_job, "executor_config": {"text": "hi", "repeat": "lots"}}))
        assert "how many times: a whole number" in bad["executor_config.repeat"]
        missing = field_problems(save(follower, {**probe_job, "executor_config": {}}))
        assert "required by the probe executor" in missing["executor_config.text"]

        assert httpx.post(f"{follower.url}/v1/jobs/probed/run", timeout=10.0).status_code == 202
        [execution] = finished(follower, "probed", 1, RUN_TIMEOUT)
        assert (execution["node_name"], execution["success"], execution["output"]) == ("prober", True, "hihihi")
    finally:
        code = client.stop()
    assert code == 0, client.log_text()

    wait_status(follower, "prober", "left", LEAVE_TIMEOUT)
    after = field_problems(save(follower, probe_job))
    assert 'no alive node has the executor "probe"' in after["executor"]
