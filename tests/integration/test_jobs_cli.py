"""`horae jobs …` run as a subprocess against a real `horae agent --dev`: tables, --json, exit codes.

One agent serves the module; each test uses its own job names. The agent must exit 0 on SIGTERM.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.agent_process import AgentProcess, free_port
from tests.support import REPO_ROOT, wait_until

HORAE = REPO_ROOT / ".venv" / "bin" / "horae"
CLI_TIMEOUT = 60.0
RUN_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    process = AgentProcess(tmp_path_factory.mktemp("cli-agent"), node_name="cli-node").start()
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"agent exited with {code} on SIGTERM:\n{process.log_text()}"


def horae(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HORAE), "jobs", "--address", address, *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        cwd=REPO_ROOT,
    )


def ok(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess:
    result = horae(agent.url, *args)
    assert result.returncode == 0, f"horae jobs {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
    return result


def as_json(agent: AgentProcess, *args: str):
    return json.loads(ok(agent, "--json", *args).stdout)


def noop_job(name: str, text: str = "hi", **extra: object) -> dict:
    return {"name": name, "schedule": "@manually", "executor": "noop", "executor_config": {"text": text}, **extra}


def write_json(path: Path, value: object) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def table_rows(text: str) -> dict[str, list[str]]:
    """A CLI table as {first column: cells}, header included under its first cell."""
    return {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}


def finished_executions(agent: AgentProcess, name: str, count: int) -> list[dict]:
    def done() -> list[dict] | None:
        found = [e for e in as_json(agent, "executions", name) if e.get("finished_at")]
        return found if len(found) >= count else None

    return wait_until(done, timeout=RUN_TIMEOUT, interval=0.1, what=f"{count} finished execution(s) of {name}")


# -- tests -------------------------------------------------------------------------------------


def test_apply_list_and_show(agent: AgentProcess, tmp_path: Path) -> None:
    jobs_file = write_json(tmp_path / "jobs.json", [noop_job("cli-a"), noop_job("cli-b", schedule="@every 1h")])
    applied = ok(agent, "apply", "-f", jobs_file)
    rows = table_rows(applied.stdout)
    assert rows["JOB"][:3] == ["JOB", "RESULT", "NEXT"]
    assert rows["cli-a"][1] == "applied"
    assert rows["cli-b"][1] == "applied"

    # one object (not an array) updates an existing job
    ok(agent, "apply", "-f", write_json(tmp_path / "one.json", noop_job("cli-a", text="changed")))
    assert as_json(agent, "show", "cli-a")["executor_config"] == {"text": "changed"}

    table = table_rows(ok(agent, "list").stdout)
    assert table["NAME"] == ["NAME", "SCHEDULE", "EXECUTOR", "STATUS", "STATE", "NEXT"]
    assert table["cli-a"][1:5] == ["@manually", "noop", "-", "enabled"]  # never run: no status yet
    assert table["cli-b"][1:3] == ["@every", "1h"]

    listed = {job["name"]: job for job in as_json(agent, "list")}
    assert {"cli-a", "cli-b"} <= set(listed)
    assert listed["cli-b"]["next"]

    shown = json.loads(ok(agent, "show", "cli-b").stdout)
    assert shown["name"] == "cli-b"
    assert shown["schedule"] == "@every 1h"
    assert shown["executor"] == "noop"


def test_run_and_executions(agent: AgentProcess, tmp_path: Path) -> None:
    ok(agent, "apply", "-f", write_json(tmp_path / "job.json", noop_job("cli-run", text="ran")))
    started = table_rows(ok(agent, "run", "cli-run").stdout)
    assert started["cli-run"] == ["cli-run", "started"]
    execution = finished_executions(agent, "cli-run", 1)[0]
    assert execution["success"] is True
    assert execution["output"] == "ran"

    table = table_rows(ok(agent, "executions", "cli-run").stdout)
    assert table["ID"][:4] == ["ID", "STARTED", "FINISHED", "RESULT"]
    row = table[execution["id"]]
    assert row[3] == "ok"
    assert row[4] == "cli-node"

    assert as_json(agent, "run", "cli-run")["name"] == "cli-run"
    finished_executions(agent, "cli-run", 2)
    assert len(as_json(agent, "executions", "cli-run", "--limit", "1")) == 1


def test_toggle(agent: AgentProcess, tmp_path: Path) -> None:
    ok(agent, "apply", "-f", write_json(tmp_path / "job.json", noop_job("cli-toggle")))
    assert table_rows(ok(agent, "toggle", "cli-toggle").stdout)["cli-toggle"] == ["cli-toggle", "disabled"]
    assert as_json(agent, "show", "cli-toggle")["disabled"] is True
    assert table_rows(ok(agent, "list").stdout)["cli-toggle"][4] == "disabled"
    assert as_json(agent, "toggle", "cli-toggle")["disabled"] is False


def test_export_delete_and_import_round_trip(agent: AgentProcess, tmp_path: Path) -> None:
    ok(
        agent,
        "apply",
        "-f",
        write_json(
            tmp_path / "jobs.json",
            [noop_job("rt-parent", text="p"), noop_job("rt-child", text="c", parent_job="rt-parent")],
        ),
    )
    export_path = tmp_path / "export.json"
    exported = ok(agent, "export", "-o", str(export_path))
    assert "exported" in exported.stderr and str(export_path) in exported.stderr
    dump = json.loads(export_path.read_text())
    assert isinstance(dump, list)
    by_name = {job["name"]: job for job in dump}
    assert by_name["rt-child"]["parent_job"] == "rt-parent"
    assert f"exported {len(dump)} jobs" in exported.stderr

    # only the round-trip jobs: children go first in the file, import must still restore them
    mine = [by_name["rt-child"], by_name["rt-parent"]]
    mine_path = write_json(tmp_path / "mine.json", mine)
    for name in ("rt-child", "rt-parent"):
        assert table_rows(ok(agent, "delete", name).stdout)[name] == [name, "deleted"]
    names = {job["name"] for job in as_json(agent, "list")}
    assert not names & {"rt-child", "rt-parent"}

    imported = ok(agent, "import", "-f", mine_path)
    rows = table_rows(imported.stdout)
    assert rows["rt-parent"] == ["rt-parent", "restored"]
    assert rows["rt-child"] == ["rt-child", "restored"]
    assert "warning" not in imported.stderr
    assert as_json(agent, "show", "rt-child")["parent_job"] == "rt-parent"
    assert as_json(agent, "show", "rt-parent")["dependent_jobs"] == ["rt-child"]
    assert as_json(agent, "show", "rt-parent")["executor_config"] == {"text": "p"}


def test_import_a_dkron_dump_warns_about_unknown_keys(agent: AgentProcess, tmp_path: Path) -> None:
    dkron_job = {
        **noop_job("dk-job", text="from dkron"),
        "id": "dk-job",
        "displayname": "From Dkron",
        "success_count": 12,
        "error_count": 1,
        "status": "success",
        "next": "2026-01-01T00:00:00Z",
        "some_future_dkron_field": "whatever",
    }
    imported = ok(agent, "import", "-f", write_json(tmp_path / "dkron.json", [dkron_job]))
    assert table_rows(imported.stdout)["dk-job"] == ["dk-job", "restored"]
    warnings = [line for line in imported.stderr.splitlines() if line.startswith("warning:")]
    assert warnings, imported.stderr
    assert any("dk-job" in line and "some_future_dkron_field" in line for line in warnings), warnings

    shown = as_json(agent, "show", "dk-job")
    assert shown["displayname"] == "From Dkron"
    assert "some_future_dkron_field" not in shown
    assert shown["success_count"] == 0  # computed fields of the dump are not restored

    summary = as_json(agent, "import", "-f", write_json(tmp_path / "dkron-one.json", dkron_job))
    assert summary["restored"] == ["dk-job"]
    assert any("some_future_dkron_field" in w for w in summary["warnings"])


def test_delete_then_the_job_is_gone(agent: AgentProcess, tmp_path: Path) -> None:
    ok(agent, "apply", "-f", write_json(tmp_path / "job.json", noop_job("cli-gone")))
    ok(agent, "run", "cli-gone")
    finished_executions(agent, "cli-gone", 1)
    assert as_json(agent, "delete", "cli-gone")["name"] == "cli-gone"

    missing = horae(agent.url, "show", "cli-gone")
    assert missing.returncode == 1
    assert "404" in missing.stderr and "cli-gone" in missing.stderr
    assert missing.stdout == ""
    assert horae(agent.url, "executions", "cli-gone").returncode == 1


def test_errors_are_clear_and_exit_1(agent: AgentProcess, tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{ not json")
    result = horae(agent.url, "apply", "-f", str(bad_json))
    assert result.returncode == 1
    assert "not valid JSON" in result.stderr

    result = horae(agent.url, "apply", "-f", str(tmp_path / "no-such-file.json"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr

    invalid = horae(agent.url, "apply", "-f", write_json(tmp_path / "invalid.json", noop_job("Bad Name!")))
    assert invalid.returncode == 1
    assert "400" in invalid.stderr
    assert "Traceback" not in invalid.stderr


def test_unreachable_address_is_a_clear_error() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    for args in (("list",), ("show", "anything"), ("run", "anything")):
        result = horae(address, *args)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "cannot reach horae at" in result.stderr and address in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
