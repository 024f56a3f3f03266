"""horae-conformance against real plugin processes: built-ins pass, broken plugins fail by name.

Every run goes through the installed command, as CI and plugin authors use it, and reads its
`--json` report; test plugins are small SDK programs written to tmp_path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from horae_conformance.cli import main
from tests.support import NODE_EXAMPLE_DIR, REPO_ROOT

CONSOLE_SCRIPT = Path(sys.executable).with_name("horae-conformance")
CLI = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "horae_conformance"]
NODE_EXAMPLE = NODE_EXAMPLE_DIR / "horae-executor-nodeecho"
RUN_TIMEOUT = 120

# An SDK executor that does what the conformance configs ask: `echo` prints the marker, `sleep`
# runs a child `sleep 30.4242` until cancelled, `flood` writes 10 MiB. It serves its configs through
# Describe, except a useless echo config that the command line must override.
GOOD_EXECUTOR = """
    import os, signal, subprocess
    from horae_sdk import Executor, serve

    class Conformant(Executor):
        name = "conformant"
        conformance = {"echo": {"mode": "silent"}, "sleep": {"mode": "sleep"}, "flood": {"mode": "flood"}}

        def execute(self, job_name, config, stream):
            mode = config.get("mode")
            if mode == "echo":
                stream.write("horae-conformance\\n")
            elif mode == "sleep":
                child = subprocess.Popen(["sleep", "30.4242"], start_new_session=True)
                stream.on_cancel(lambda: os.killpg(child.pid, signal.SIGKILL))
                child.wait()
            elif mode == "flood":
                line = b"x" * 1023 + b"\\n"
                for _ in range(10 * 1024 + 16):
                    stream.write(line)

    if __name__ == "__main__":
        serve(executor=Conformant())
"""

# Ignores the cookie (and so runs by hand) and prints a banner before the handshake.
NOISY_EXECUTOR = """
    import os
    from horae_sdk import Executor, handshake, serve

    class Noisy(Executor):
        name = "noisy"

        def execute(self, job_name, config, stream):
            return "horae-conformance"

    if __name__ == "__main__":
        os.environ[handshake.HORAE_COOKIE_KEY] = handshake.HORAE_COOKIE_VALUE
        print("noisy plugin starting", flush=True)
        serve(executor=Noisy())
"""


def run_cli(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


def run_json(*args: str) -> tuple[int, dict[str, str], dict]:
    """Run with --json; (exit code, case -> result, the whole report)."""
    done = run_cli("--json", *args)
    assert done.stdout, f"no report; stderr: {done.stderr}"
    report = json.loads(done.stdout)
    return done.returncode, {row["case"]: row["result"] for row in report["results"]}, report


def write_plugin(tmp_path: Path, name: str, source: str) -> list[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return [sys.executable, str(path)]


def assert_all_passed(code: int, results: dict[str, str], report: dict) -> None:
    failed = {row["case"]: row["reason"] for row in report["results"] if row["result"] != "passed"}
    assert not failed, failed
    assert code == 0
    assert len(results) >= 11


def processes_running(fragment: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if fragment in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def test_shell_executor_passes_every_case():
    code, results, report = run_json("executor", "--plugin", "shell", "--strict")
    assert_all_passed(code, results, report)
    assert "a cancelled call ends, the plugin keeps serving" in results


def test_log_processor_passes_every_case():
    code, results, report = run_json("processor", "--plugin", "log", "--strict")
    assert_all_passed(code, results, report)
    assert "Process returns the execution" in results


@pytest.mark.skipif(not NODE_EXAMPLE.exists(), reason="the Node example executor is not in the tree yet")
def test_node_example_executor_passes():
    done = run_cli("executor", "--plugin", "nodeecho", "--plugin-dir", str(NODE_EXAMPLE_DIR))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failed" in done.stdout


def test_an_sdk_plugin_with_every_config_passes_and_the_command_line_config_wins(tmp_path):
    argv = write_plugin(tmp_path, "conformant", GOOD_EXECUTOR)
    code, results, report = run_json("executor", "--strict", "--echo-config", '{"mode": "echo"}', "--", *argv)
    assert_all_passed(code, results, report)
    assert report["summary"] == {"passed": len(results), "failed": 0, "skipped": 0}
    # Every plugin it started is gone, and so is the job the cancelled call had started.
    assert not processes_running(argv[1])
    assert not processes_running("sleep 30.4242")


def test_command_form_checks_noop_and_writes_junit(tmp_path):
    junit = tmp_path / "report.xml"
    code, results, report = run_json(
        "executor",
        "--junit",
        str(junit),
        "--echo-config",
        '{"text": "horae-conformance"}',
        "--",
        sys.executable,
        "-m",
        "horae_plugins.noop",
    )
    for case in (
        "refuses to run without the magic cookie",
        "handshake line is well-formed",
        "no stdout output before the handshake",
        "version negotiation: accepts 1",
        "version negotiation: refuses versions it lacks",
        "health check answers SERVING",
        "Execute returns the output",
        "16 concurrent calls",
        "Shutdown exits within 2 s",
        "exits when the host dies (launcher)",
    ):
        assert results[case] == "passed", report
    # noop has no sleep or flood config: those cases are skipped and counted.
    for case in ("10 MiB of output neither crashes nor blocks", "a cancelled call ends, the plugin keeps serving"):
        assert results[case] == "skipped"
    summary = report["summary"]
    assert summary["skipped"] >= 2
    assert code == (1 if summary["failed"] else 0)

    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite"
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) == len(results)
    assert int(suite.get("failures")) == summary["failed"] == sum(1 for c in cases if c.find("failure") is not None)
    assert int(suite.get("skipped")) == summary["skipped"] == sum(1 for c in cases if c.find("skipped") is not None)
    skipped = next(c for c in cases if c.get("name") == "a cancelled call ends, the plugin keeps serving")
    assert "sleep config" in skipped.find("skipped").get("message")


def test_a_noisy_plugin_that_ignores_the_cookie_fails_those_cases(tmp_path):
    argv = write_plugin(tmp_path, "noisy", NOISY_EXECUTOR)
    done = run_cli("executor", "--echo-config", "{}", "--", *argv)
    assert done.returncode == 1
    rows = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    assert "failed" in rows["no stdout output before the handshake"]
    assert "'noisy plugin starting'" in rows["no stdout output before the handshake"]
    assert "failed" in rows["refuses to run without the magic cookie"]
    assert "passed" in rows["handshake line is well-formed"]
    assert "failed" in rows["health check answers SERVING"]
    assert "failed" in done.stdout.splitlines()[-1]
    assert not processes_running(argv[1])


def test_a_hung_plugin_fails_its_cases_and_is_killed(tmp_path):
    argv = write_plugin(tmp_path, "hung", "import time\ntime.sleep(120)\n")
    code, results, report = run_json("processor", "--handshake-timeout", "1", "--", *argv)
    assert code == 1
    assert set(results.values()) == {"failed"}
    reasons = {row["case"]: row["reason"] for row in report["results"]}
    assert "printed nothing within 1s" in reasons["handshake line is well-formed"]
    assert not processes_running(argv[1])


def test_versions_answered_with_one_the_host_did_not_offer_pass_and_exit_zero_fails(tmp_path):
    # Like a go-plugin plugin without VersionedPlugins: it always answers its own version.
    stubborn = write_plugin(
        tmp_path,
        "stubborn",
        """
        import os
        from horae_sdk import Processor, serve

        class Stubborn(Processor):
            name = "stubborn"
            def process(self, execution, config):
                return execution

        os.environ["PLUGIN_PROTOCOL_VERSIONS"] = "1"
        serve(processor=Stubborn())
        """,
    )
    code, results, report = run_json("processor", "--case", "refuses versions", "--", *stubborn)
    assert (code, results) == (0, {"version negotiation: refuses versions it lacks": "passed"}), report
    assert "answered version 1" in report["results"][0]["reason"]
    assert "did not offer" in report["results"][0]["reason"]

    quitter = write_plugin(
        tmp_path,
        "quitter",
        """
        import os, sys
        if "1" not in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(","):
            sys.exit(0)
        """,
    )
    code, results, report = run_json("processor", "--case", "refuses versions", "--", *quitter)
    assert (code, results) == (1, {"version negotiation: refuses versions it lacks": "failed"})
    assert "exited with code 0" in report["results"][0]["reason"]


def test_a_plugin_that_does_not_watch_its_parent_only_warns_unless_strict(tmp_path):
    # The SDK's parent watch never fires when getppid() never changes: like a go-plugin plugin.
    orphan = write_plugin(
        tmp_path,
        "orphan",
        """
        import os
        from horae_sdk import Processor, serve

        class Orphan(Processor):
            name = "orphan"
            def process(self, execution, config):
                return execution

        parent = os.getppid()
        os.getppid = lambda: parent
        serve(processor=Orphan())
        """,
    )
    code, results, report = run_json("processor", "--case", "host dies", "--case", "parent dies", "--", *orphan)
    assert code == 0
    assert results == {
        "exits when the host dies (launcher)": "passed",
        "exits by itself when its parent dies": "skipped",
    }
    assert report["results"][1]["reason"].startswith("warning:")
    code, results, _ = run_json("processor", "--strict", "--case", "parent dies", "--", *orphan)
    assert (code, results) == (1, {"exits by itself when its parent dies": "failed"})
    assert not processes_running(orphan[1])


@pytest.mark.parametrize(
    "args",
    [
        ["executor"],
        ["executor", "--plugin", "no-such-plugin"],
        ["executor", "--plugin", "noop", "--", "true"],
        ["executor", "--echo-config", "{not json", "--", "true"],
        ["executor", "--echo-config", "[1]", "--", "true"],
        ["executor", "--case", "no such case", "--plugin", "noop"],
    ],
)
def test_unusable_command_lines_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "horae-conformance" in capsys.readouterr().err
