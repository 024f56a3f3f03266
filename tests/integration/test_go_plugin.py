"""The Go example executor (go-plugin 1.0.1 from Debian) under horae: it passes horae-conformance,
and the host finds it in a plugin dir and runs it, live output and errors included.

The binary is built by scripts/build_go_example.sh (what `make test` runs first); the fixture runs
it again, which takes about a second when nothing changed, so these tests never use a stale build.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from horae.host.discovery import discover_plugins
from horae.host.supervisor import PluginHost
from tests.support import REPO_ROOT, async_wait_until

GO_EXAMPLE_DIR = REPO_ROOT / "plugin_sdk" / "examples" / "go-executor"
PLUGIN_DIR = GO_EXAMPLE_DIR / "bin"
BINARY = PLUGIN_DIR / "horae-executor-goecho"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_go_example.sh"
CONSOLE_SCRIPT = Path(sys.executable).with_name("horae-conformance")
CONFORMANCE = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "horae_conformance"]
# horae-conformance had 14 executor cases when this was written; every one must pass, none skip.
MIN_CONFORMANCE_CASES = 14
PLUGIN_LOGGER = "horae.plugin.goecho"


@pytest.fixture(scope="module")
def go_plugin_dir() -> Path:
    """The plugin dir holding a fresh horae-executor-goecho."""
    done = subprocess.run(["sh", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert done.returncode == 0, f"building the Go example failed:\n{done.stdout}{done.stderr}"
    assert BINARY.is_file()
    return PLUGIN_DIR


def goecho_processes(path: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["exe", "status"]):
        if process.info["exe"] == str(path) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def test_passes_every_conformance_case_strictly(go_plugin_dir):
    done = subprocess.run(
        [*CONFORMANCE, "--json", "executor", "--strict", "--plugin", "goecho", "--plugin-dir", str(go_plugin_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert done.stdout, f"no report; stderr: {done.stderr}"
    report = json.loads(done.stdout)
    failed = {row["case"]: row["reason"] for row in report["results"] if row["result"] != "passed"}
    assert not failed, failed
    assert done.returncode == 0
    cases = len(report["results"])
    assert cases >= MIN_CONFORMANCE_CASES
    assert report["summary"] == {"passed": cases, "failed": 0, "skipped": 0}
    reasons = {row["case"]: row["reason"] for row in report["results"]}
    # The Describe configs were used: 10 MiB went through the broker, the sleep was cancelled.
    assert "10485760 bytes" in reasons["live output arrives through the broker"]
    assert "cancelled after" in reasons["a cancelled call ends, the plugin keeps serving"]
    assert not goecho_processes(BINARY)


class LiveOutput:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def __call__(self, chunk: bytes, is_stderr: bool) -> None:
        self.chunks.append(chunk)


async def test_the_host_discovers_it_in_a_plugin_dir_and_runs_it(go_plugin_dir, caplog):
    caplog.set_level(logging.INFO, logger=PLUGIN_LOGGER)
    specs = [spec for spec in discover_plugins([str(go_plugin_dir)]).plugins if spec.source == str(BINARY)]
    assert [(spec.kind, spec.name, spec.argv) for spec in specs] == [("executor", "goecho", [str(BINARY)])]

    async with PluginHost(specs) as host:
        [status] = host.statuses()
        assert (status.state, status.version, status.error) == ("healthy", "0.1.0", "")

        live = LiveOutput()
        outcome = await host.execute(
            "goecho", "greet", {"message": "hello from a test"}, execution_id="exec-go-1", on_output=live
        )
        assert (outcome.success, outcome.output, outcome.error, outcome.exit_code) == (
            True,
            b"hello from a test\n",
            "",
            0,
        )
        assert b"".join(live.chunks) == b"hello from a test\n"

        # Its hclog JSON lines land in the agent's log under its name, with their fields.
        await async_wait_until(
            lambda: any(getattr(r, "fields", {}).get("execution_id") == "exec-go-1" for r in caplog.records),
            timeout=10,
            what="goecho's log line for exec-go-1",
        )
        record = next(r for r in caplog.records if getattr(r, "fields", {}).get("execution_id") == "exec-go-1")
        assert record.name == PLUGIN_LOGGER
        assert record.fields["job"] == "greet"

        # More output than the response carries: the response has the 256 KiB tail, the live view all of it.
        live = LiveOutput()
        outcome = await host.execute(
            "goecho", "big", {"message": "0123456789", "repeat_bytes": str(300 * 1024)}, on_output=live
        )
        assert outcome.success
        streamed = b"".join(live.chunks)
        assert len(streamed) == 300 * 1024
        assert streamed.startswith(b"0123456789\n0123456789\n")
        assert outcome.output == streamed[-256 * 1024 :]
        assert status.pid == host.statuses()[0].pid  # one process for every execution


async def test_failures_name_their_cause_and_the_plugin_keeps_serving(go_plugin_dir):
    [spec] = [spec for spec in discover_plugins([str(go_plugin_dir)]).plugins if spec.source == str(BINARY)]
    async with PluginHost([spec]) as host:
        pid = host.statuses()[0].pid

        outcome = await host.execute("goecho", "bad", {"sleep_seconds": "soon"})
        assert not outcome.success
        assert outcome.exit_code == 1
        assert "executor_config.sleep_seconds" in outcome.error and '"soon"' in outcome.error

        outcome = await host.execute("goecho", "typo", {"mesage": "hi"})
        assert not outcome.success
        assert "executor_config.mesage is not a goecho key" in outcome.error

        outcome = await host.execute("goecho", "asked", {"message": "about to fail", "fail": "true"})
        assert (outcome.success, outcome.error, outcome.exit_code, outcome.output) == (
            False,
            "failed as asked",
            1,
            b"about to fail\n",
        )

        # A job timeout cancels the call: the sleep stops, the plugin lives on.
        outcome = await host.execute("goecho", "slow", {"sleep_seconds": "30"}, timeout=0.5)
        assert not outcome.success
        assert "timed out after 0.5s" in outcome.error

        outcome = await host.execute("goecho", "after", {"message": "still here"})
        assert (outcome.success, outcome.output) == (True, b"still here\n")
        assert host.statuses()[0].pid == pid


async def test_runs_under_dkrons_name_and_cookie(go_plugin_dir, tmp_path):
    # A dkron-executor-* binary gets DKRON_PLUGIN_MAGIC_COOKIE instead of horae's: it accepts either.
    dkron_binary = tmp_path / "dkron-executor-goecho"
    shutil.copy2(BINARY, dkron_binary)
    [spec] = discover_plugins([str(tmp_path)], entry_points=False).plugins
    assert (spec.kind, spec.name) == ("executor", "goecho")
    async with PluginHost([spec]) as host:
        outcome = await host.execute("goecho", "dkron-job", {"message": "under dkron's cookie"})
        assert (outcome.success, outcome.output) == (True, b"under dkron's cookie\n")


def test_the_build_says_which_packages_to_install_when_go_is_missing(tmp_path):
    # A PATH with the shell tools the script uses but neither go nor apt-get: it cannot install
    # anything, so it must stop and name the Debian packages.
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("sh", "dirname", "id", "mkdir", "mktemp", "ln", "mv", "rm"):
        (tools / tool).symlink_to(shutil.which(tool))
    done = subprocess.run(
        [str(tools / "sh"), str(BUILD_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(tools)},
    )
    assert done.returncode == 1
    assert "apt-get install -y golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev" in done.stderr
