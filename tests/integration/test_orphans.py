"""No orphans: plugins die with the agent even when it is SIGKILLed, and an SDK plugin stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from horae_sdk import handshake
from tests.support import FIXTURES_DIR, pid_alive, wait_until

RUNNER = FIXTURES_DIR / "host_runner.py"
SPAWNING_PLUGIN = FIXTURES_DIR / "spawning_plugin.py"
NOOP = [sys.executable, "-m", "horae_plugins.noop"]


def plugin_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in handshake.COOKIES}
    env.update({handshake.HORAE_COOKIE_KEY: handshake.HORAE_COOKIE_VALUE, handshake.PROTOCOL_VERSIONS_KEY: "1"})
    env.update(extra)
    return env


def read_line(process: subprocess.Popen, what: str) -> str:
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise AssertionError(f"{what} printed nothing; stderr: {process.stderr.read()}")
    return line


@pytest.fixture
def reap():
    """Processes started by a test; killed and reaped at the end, whatever happened."""
    started: list[subprocess.Popen] = []
    yield started.append
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_sigkilled_host_leaves_no_plugin_processes(tmp_path, reap):
    child_pid_file = tmp_path / "children"
    runner = subprocess.Popen(
        [sys.executable, str(RUNNER), str(SPAWNING_PLUGIN)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CHILD_PID_FILE": str(child_pid_file)},
    )
    reap(runner)
    pids = json.loads(read_line(runner, "the host runner"))
    assert set(pids) == {"noop", "script0"}
    assert all(pids.values()), pids
    children = [int(pid) for pid in child_pid_file.read_text().split()]
    assert len(children) == 1
    watched = [*pids.values(), *children]
    assert all(pid_alive(pid) for pid in watched)

    runner.send_signal(signal.SIGKILL)
    runner.wait(10)

    try:
        wait_until(
            lambda: not any(pid_alive(pid) for pid in watched),
            timeout=10,
            what=f"plugin processes {watched} to die with their host",
        )
    finally:
        for pid in watched:  # do not leave them behind when the test fails
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sdk_plugin_exits_when_its_parent_dies_even_without_setpriv(tmp_path, reap):
    # A go-plugin host other than horae's launcher sets no parent-death signal: the SDK watches its parent.
    parent_source = f"""
import subprocess, sys, time
plugin = subprocess.Popen({NOOP!r}, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
sys.stdout.write(plugin.stdout.readline().decode())
print(plugin.pid, flush=True)
time.sleep(300)
"""
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_source],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=plugin_env(PLUGIN_UNIX_SOCKET_DIR=str(tmp_path)),
    )
    reap(parent)
    shake = handshake.parse_handshake(read_line(parent, "the parent"))
    plugin_pid = int(read_line(parent, "the parent"))
    assert pid_alive(plugin_pid)
    assert os.path.exists(shake.address)

    parent.send_signal(signal.SIGKILL)
    parent.wait(10)

    try:
        wait_until(lambda: not pid_alive(plugin_pid), timeout=10, what="the orphaned plugin to exit by itself")
    finally:
        if pid_alive(plugin_pid):  # do not leave it behind when the test fails
            os.kill(plugin_pid, signal.SIGKILL)
    wait_until(lambda: not os.path.exists(shake.address), timeout=5, what="the plugin to remove its socket")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sdk_plugin_exits_cleanly_on_sigterm(tmp_path, reap, signum):
    plugin = subprocess.Popen(
        NOOP,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=plugin_env(PLUGIN_UNIX_SOCKET_DIR=str(tmp_path)),
    )
    reap(plugin)
    shake = handshake.parse_handshake(read_line(plugin, "the plugin"))
    socket_path = Path(shake.address)
    assert socket_path.parent == tmp_path
    assert socket_path.exists()

    plugin.send_signal(signum)

    assert plugin.wait(10) == 0
    assert not socket_path.exists(), "the plugin removes its socket when it stops"
    assert "Traceback" not in plugin.stderr.read()
