"""Deliberately broken plugins: the host stays up, the execution fails with a message that names the
plugin and says what happened, and the next call gets a fresh process.

The broken plugins are small programs in tests/fixtures/broken/.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from horae.host.supervisor import PluginHost
from horae_sdk.spec import PluginSpec
from tests.support import FIXTURES_DIR, async_wait_until, builtin_spec, pid_alive

BROKEN_DIR = FIXTURES_DIR / "broken"
MIB = 1024 * 1024


def broken_spec(script: str, name: str, pid_file: Path | None = None) -> PluginSpec:
    env = {"BROKEN_PID_FILE": str(pid_file)} if pid_file else {}
    path = BROKEN_DIR / f"{script}.py"
    return PluginSpec(kind="executor", name=name, argv=[sys.executable, str(path)], source=str(path), env=env)


def noted_pids(pid_file: Path) -> list[int]:
    return [int(line) for line in pid_file.read_text().split()] if pid_file.exists() else []


async def assert_noop_still_serves(host: PluginHost) -> None:
    outcome = await host.execute("noop", "after", {"text": "noop is fine"})
    assert (outcome.success, outcome.output) == (True, b"noop is fine"), outcome.error
    noop = next(status for status in host.statuses() if status.name == "noop")
    assert (noop.state, noop.restarts) == ("healthy", 0)


def status_of(host: PluginHost, name: str):
    return next(status for status in host.statuses() if status.name == name)


async def start_failure(tmp_path: Path, script: str, name: str, **host_options) -> tuple[str, str]:
    """Start a plugin that cannot complete its start next to noop; (its status error, an execution's error)."""
    pid_file = tmp_path / "pids"
    async with PluginHost([broken_spec(script, name, pid_file), builtin_spec("noop")], **host_options) as host:
        status = status_of(host, name)
        assert status.state == "failed"
        assert status.pid is None
        outcome = await host.execute(name, "job", {})
        assert not outcome.success
        await assert_noop_still_serves(host)
        pids = noted_pids(pid_file)
        assert pids, "the broken plugin was started"
        await async_wait_until(
            lambda: not any(pid_alive(pid) for pid in pids), timeout=10, what="the host to kill the broken plugin"
        )
    return status.error, outcome.error


async def test_garbage_instead_of_a_handshake(tmp_path):
    status_error, execution_error = await start_failure(tmp_path, "garbage", "garbage")
    for message in (status_error, execution_error):
        assert "executor 'garbage'" in message
        assert "Hello! I am definitely not a go-plugin handshake" in message
        assert "starting the garbage plugin" in message, "the last stderr lines are part of the message"


async def test_nothing_printed_before_the_timeout(tmp_path):
    status_error, execution_error = await start_failure(tmp_path, "silent", "silent", handshake_timeout=1.5)
    for message in (status_error, execution_error):
        assert "executor 'silent' printed nothing within 1.5s" in message
        assert "stderr was empty" in message


async def test_a_plugin_asking_for_netrpc(tmp_path):
    status_error, execution_error = await start_failure(tmp_path, "netrpc", "netrpc")
    for message in (status_error, execution_error):
        assert "executor 'netrpc'" in message
        assert "'netrpc'" in message and "only grpc" in message


async def test_a_plugin_choosing_a_version_the_host_did_not_offer(tmp_path):
    status_error, execution_error = await start_failure(tmp_path, "wrong_version", "wrongversion")
    for message in (status_error, execution_error):
        assert "executor 'wrongversion'" in message
        assert "protocol version 99" in message and "did not offer" in message


async def test_a_plugin_exiting_before_the_handshake(tmp_path):
    status_error, execution_error = await start_failure(tmp_path, "early_exit", "early")
    for message in (status_error, execution_error):
        assert "executor 'early' exited with code 2 without printing a handshake" in message
        assert "cannot read /etc/early-exit.conf: no such file" in message


async def test_a_crash_mid_call_fails_that_call_and_the_next_gets_a_fresh_process(tmp_path):
    pid_file = tmp_path / "pids"
    async with PluginHost([broken_spec("crashing", "crashing", pid_file), builtin_spec("noop")]) as host:
        first_pid = status_of(host, "crashing").pid
        fine = await host.execute("crashing", "job", {})
        assert fine.output == f"pid {first_pid} is fine".encode()

        crashed = await host.execute("crashing", "job", {"crash": "yes"}, on_output=lambda *_: None)
        assert not crashed.success
        assert "executor 'crashing' exited with code 3" in crashed.error
        assert "crashing on purpose: out of unicorns" in crashed.error

        after = await host.execute("crashing", "job", {})
        assert after.success, after.error
        second_pid = status_of(host, "crashing").pid
        assert second_pid not in (None, first_pid)
        assert after.output == f"pid {second_pid} is fine".encode()
        assert noted_pids(pid_file) == [first_pid, second_pid]
        assert status_of(host, "crashing").restarts == 1
        assert not pid_alive(first_pid)
        await assert_noop_still_serves(host)


async def test_a_hung_plugin_is_reported_killed_and_replaced(tmp_path):
    pid_file = tmp_path / "pids"
    async with PluginHost([broken_spec("hanging", "hanging", pid_file), builtin_spec("noop")]) as host:
        first_pid = status_of(host, "hanging").pid
        hung = await host.execute("hanging", "job", {"hang": "yes"}, timeout=1.0)
        assert not hung.success
        assert "executor 'hanging' hung" in hung.error

        after = await host.execute("hanging", "job", {})
        assert after.success, after.error
        second_pid = status_of(host, "hanging").pid
        assert second_pid not in (None, first_pid)
        assert after.output == f"pid {second_pid} is fine".encode()
        assert noted_pids(pid_file) == [first_pid, second_pid]
        assert not pid_alive(first_pid)
        await assert_noop_still_serves(host)


async def test_a_live_output_flood_is_delivered_without_hurting_the_host():
    received = 0
    newlines = 0

    def count(chunk: bytes, is_stderr: bool) -> None:
        nonlocal received, newlines
        received += len(chunk)
        newlines += chunk.count(b"\n")

    async with PluginHost([broken_spec("floods", "floods"), builtin_spec("noop")]) as host:
        pid = status_of(host, "floods").pid
        flood = asyncio.create_task(host.execute("floods", "job", {"flood": "live", "mib": "50"}, on_output=count))
        await async_wait_until(lambda: received > 0, timeout=30, what="the flood to start")
        await assert_noop_still_serves(host)  # while the flood runs
        outcome = await flood
        assert outcome.success, outcome.error
        assert outcome.output == b"live flood done"
        assert (received, newlines) == (50 * MIB, 50)
        assert status_of(host, "floods").pid == pid
        await assert_noop_still_serves(host)


async def test_a_response_beyond_the_message_size_limit_gets_a_clear_message():
    async with PluginHost([broken_spec("floods", "floods"), builtin_spec("noop")]) as host:
        outcome = await host.execute("floods", "job", {"flood": "huge", "mib": "70"})
        assert not outcome.success
        assert "executor 'floods'" in outcome.error
        assert "larger than 64 MiB" in outcome.error
        assert "output must be capped" in outcome.error

        after = await host.execute("floods", "job", {"flood": "huge", "mib": "1"})
        assert after.success, after.error
        assert len(after.output) == MIB
        await assert_noop_still_serves(host)


async def test_a_stderr_flood_is_suppressed_in_the_log_and_the_host_stays_responsive(caplog):
    caplog.set_level(logging.INFO)
    lines = 100_000
    async with PluginHost([broken_spec("floods", "floods"), builtin_spec("noop")]) as host:
        process = host.plugin("executor", "floods").process
        flood = asyncio.create_task(host.execute("floods", "job", {"flood": "stderr", "lines": str(lines)}))
        await assert_noop_still_serves(host)
        outcome = await flood
        assert (outcome.success, outcome.output) == (True, b"stderr flood done"), outcome.error
        await async_wait_until(
            lambda: process.log.tail()[-1] == f"flood line {lines - 1}", timeout=60, what="the host to read the flood"
        )

        def suppressed() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "horae.plugin.floods" and "suppressed" in r.getMessage()]

        async def one_more_line_reports_it() -> bool:
            # The count is reported with the first line of a later one-second window.
            await host.execute("floods", "job", {"flood": "one-line"})
            await asyncio.sleep(0.2)
            return bool(suppressed())

        await async_wait_until(one_more_line_reports_it, timeout=30, what="the suppressed-lines warning")
        warning = suppressed()[0]
        assert warning.levelno == logging.WARNING
        assert warning.fields["plugin"] == "executor/floods"
        assert warning.fields["suppressed"] > lines // 2
        logged = [r for r in caplog.records if r.name == "horae.plugin.floods" and "flood line" in r.getMessage()]
        assert len(logged) < lines // 10, "the flood went into the host's log unthrottled"
        await assert_noop_still_serves(host)
        assert status_of(host, "floods").restarts == 0
