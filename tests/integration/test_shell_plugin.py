"""The built-in shell executor, run as a real plugin process by PluginHost: Dkron's keys, output, limits, kills."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import pwd
import shlex
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from horae.host.supervisor import PluginHost
from tests.support import async_wait_until, builtin_spec, pid_alive

DEFAULT_OUTPUT_LIMIT = 256 * 1024
FLOOD_BYTES = 11 * 1024 * 1024
PYTHON = shlex.quote(sys.executable)


@pytest.fixture
async def host():
    async with PluginHost([builtin_spec("shell")]) as plugin_host:
        yield plugin_host


def plugin_pid(host: PluginHost) -> int:
    (status,) = host.statuses()
    assert status.state == "healthy", status
    assert status.pid
    return status.pid


def read_pid(path: Path) -> int | None:
    """The pid a job wrote to `path`, once it is there in full."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None


async def test_echo_succeeds_with_its_output(host):
    outcome = await host.execute("shell", "greet", {"command": "echo hello horae", "shell": "true"})
    assert outcome.success, outcome
    assert outcome.output == b"hello horae\n"
    assert (outcome.exit_code, outcome.error) == (0, "")


async def test_non_zero_exit_fails_with_go_wording(host):
    outcome = await host.execute("shell", "fail", {"command": "echo partial; exit 3", "shell": "true"})
    assert not outcome.success
    assert outcome.error == "exit status 3"
    assert outcome.exit_code == 3
    assert outcome.output == b"partial\n"


async def test_killed_by_a_signal_says_so(host):
    outcome = await host.execute("shell", "suicide", {"command": "kill -KILL $$", "shell": "true"})
    assert outcome.error == "signal: killed"
    assert outcome.exit_code == 128 + signal.SIGKILL


async def test_without_shell_the_command_is_split_and_executed_directly(host):
    config = {"command": "printf '%s|' \"a b\" 'c d' e $HOME ';'", "shell": "false"}
    outcome = await host.execute("shell", "split", config)
    assert outcome.success, outcome
    # No shell: the quotes group words, and $HOME and ; stay literal.
    assert outcome.output == b"a b|c d|e|$HOME|;|"


async def test_unknown_program_fails_clearly(host):
    outcome = await host.execute("shell", "missing", {"command": "no-such-program-horae --flag"})
    assert not outcome.success
    assert outcome.error == 'exec: "no-such-program-horae": executable file not found in $PATH'
    assert outcome.exit_code == 127


async def test_bad_config_names_the_key(host):
    outcome = await host.execute("shell", "bad", {"command": "true", "timeout": "soon"})
    assert not outcome.success
    assert "timeout 'soon' is not a duration" in outcome.error


async def test_environment_cwd_and_horae_variables(host, tmp_path):
    script = 'pwd; printf "%s\\n" "$ENV_JOB_NAME" "$HORAE_EXECUTION_ID" "$HORAE_SLOT" "$HORAE_ATTEMPT" "$FOO" "$BAR"'
    script += '; printf "cookie=%s\\n" "$HORAE_PLUGIN_MAGIC_COOKIE"'
    config = {"command": script, "shell": "true", "env": "FOO=one,BAR=two words", "cwd": str(tmp_path)}
    outcome = await host.execute(
        "shell", "env-job", config, execution_id="exec-42", slot_unix_ms=1_700_000_000_000, attempt=3
    )
    assert outcome.success, outcome
    assert outcome.output.decode().splitlines() == [
        str(tmp_path),
        "env-job",
        "exec-42",
        "1700000000000",
        "3",
        "one",
        "two words",
        "cookie=",  # the plugin's handshake variables are not the job's
    ]


async def test_payload_goes_to_stdin_and_stdin_is_empty_without_one(host):
    payload = os.urandom(200 * 1024)  # more than a pipe holds at once
    config = {"command": "cat", "payload": base64.b64encode(payload).decode()}
    outcome = await host.execute("shell", "payload", config)
    assert outcome.success, outcome
    assert outcome.output == payload

    # Without a payload stdin is /dev/null: cat ends at once instead of waiting for input.
    outcome = await host.execute("shell", "no-payload", {"command": "cat"})
    assert (outcome.success, outcome.output) == (True, b"")


async def test_timeout_kills_the_whole_process_group(host, tmp_path):
    child = tmp_path / "child.pid"
    config = {"command": f"sleep 60 & echo $! > {child}; wait", "shell": "true", "timeout": "500ms"}
    started = time.monotonic()
    outcome = await host.execute("shell", "slow", config)
    assert time.monotonic() - started < 10
    assert not outcome.success
    assert outcome.error == "shell: timed out after 500ms; the job's processes were killed"
    grandchild = read_pid(child)
    assert grandchild
    await async_wait_until(lambda: not pid_alive(grandchild), timeout=5, what="the background sleep to die")


async def test_memory_limit_kills_a_memory_hog(host):
    hog = f"{PYTHON} -c \"x = b'x' * 200_000_000; import time; time.sleep(60)\""
    started = time.monotonic()
    outcome = await host.execute("shell", "hog", {"command": hog, "mem_limit": "50M"})
    assert time.monotonic() - started < 20
    assert not outcome.success
    assert outcome.error.startswith("shell: memory limit exceeded: peak "), outcome.error
    assert "> limit 50.0 MiB" in outcome.error
    assert outcome.max_rss_bytes > 50 * 1024 * 1024
    assert outcome.exit_code == 128 + signal.SIGKILL


async def test_live_output_arrives_in_order_before_the_call_ends(host, tmp_path):
    go = tmp_path / "go"
    # The job cannot finish before the test has seen its first line live and created `go`.
    script = f"echo first; i=0; while [ ! -e {go} ]; do i=$((i+1)); [ $i -gt 400 ] && exit 9; sleep 0.05; done"
    script += "; echo second; echo third"
    chunks: list[bytes] = []
    call = asyncio.create_task(
        host.execute("shell", "live", {"command": script, "shell": "true"}, on_output=lambda c, e: chunks.append(c))
    )
    await async_wait_until(lambda: b"".join(chunks) == b"first\n", timeout=10, what="the first line, live")
    assert not call.done()
    go.touch()
    outcome = await call
    assert outcome.success, outcome
    assert b"".join(chunks) == b"first\nsecond\nthird\n" == outcome.output


async def test_stderr_chunks_are_flagged(host):
    received: list[tuple[bytes, bool]] = []
    config = {"command": "echo to-out; echo to-err >&2", "shell": "true"}
    outcome = await host.execute("shell", "streams", config, on_output=lambda c, e: received.append((c, e)))
    assert outcome.success, outcome
    assert b"".join(c for c, is_err in received if not is_err) == b"to-out\n"
    assert b"".join(c for c, is_err in received if is_err) == b"to-err\n"


async def test_a_flood_streams_in_full_and_returns_the_tail(host):
    live = [0]

    def count(chunk: bytes, is_stderr: bool) -> None:
        live[0] += len(chunk)

    flood = {"command": f"head -c {FLOOD_BYTES} /dev/zero | tr '\\0' x; printf END", "shell": "true"}
    outcome = await host.execute("shell", "flood", flood, on_output=count)
    assert outcome.success, outcome
    assert live[0] == FLOOD_BYTES + 3
    assert len(outcome.output) == DEFAULT_OUTPUT_LIMIT
    assert outcome.output == b"x" * (DEFAULT_OUTPUT_LIMIT - 3) + b"END"

    for limit, expected in (("1000", 1000), ("1M", 1024 * 1024)):
        outcome = await host.execute("shell", "flood", {**flood, "output_limit": limit})
        assert outcome.success, outcome
        assert len(outcome.output) == expected, limit
        assert outcome.output.endswith(b"xxEND")


async def test_cancel_kills_the_job_and_the_plugin_keeps_serving(host, tmp_path):
    shell_pid, child_pid = tmp_path / "sh.pid", tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {child_pid}; echo $$ > {shell_pid}; wait"
    before = plugin_pid(host)
    call = asyncio.create_task(host.execute("shell", "cancel-me", {"command": script, "shell": "true"}))
    await async_wait_until(lambda: read_pid(shell_pid) and read_pid(child_pid), what="the job to start")
    pids = [read_pid(shell_pid), read_pid(child_pid)]
    assert all(pid_alive(pid) for pid in pids)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await async_wait_until(
        lambda: not any(pid_alive(pid) for pid in pids), timeout=5, what="the job's processes to die"
    )

    outcome = await host.execute("shell", "next", {"command": "echo still here", "shell": "true"})
    assert (outcome.success, outcome.output) == (True, b"still here\n")
    assert plugin_pid(host) == before


async def test_a_sigkilled_plugin_takes_its_jobs_with_it(host, tmp_path):
    shell_pid, child_pid = tmp_path / "sh.pid", tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {child_pid}; echo $$ > {shell_pid}; wait"
    plugin = plugin_pid(host)
    call = asyncio.create_task(host.execute("shell", "orphan", {"command": script, "shell": "true"}))
    await async_wait_until(lambda: read_pid(shell_pid) and read_pid(child_pid), what="the job to start")
    pids = [read_pid(shell_pid), read_pid(child_pid)]
    helpers = [p.pid for p in psutil.Process(plugin).children() if p.pid not in pids]  # the janitor

    os.kill(plugin, signal.SIGKILL)
    outcome = await call
    assert not outcome.success
    # The shell through its parent-death signal, the background sleep through the janitor, then the janitor itself.
    await async_wait_until(
        lambda: not any(pid_alive(pid) for pid in [*pids, *helpers]), timeout=5, what="the job's processes to die"
    )


async def test_the_parent_death_signal_kills_the_job_even_without_the_janitor(host, tmp_path):
    shell_pid, child_pid = tmp_path / "sh.pid", tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {child_pid}; echo $$ > {shell_pid}; wait"
    plugin = plugin_pid(host)
    call = asyncio.create_task(host.execute("shell", "orphan", {"command": script, "shell": "true"}))
    await async_wait_until(lambda: read_pid(shell_pid) and read_pid(child_pid), what="the job to start")
    job_shell, background = read_pid(shell_pid), read_pid(child_pid)
    (janitor,) = [p for p in psutil.Process(plugin).children() if p.pid != job_shell]
    janitor.kill()
    await async_wait_until(lambda: not pid_alive(janitor.pid), timeout=5, what="the janitor to die")

    os.kill(plugin, signal.SIGKILL)
    try:
        await call
        await async_wait_until(lambda: not pid_alive(job_shell), timeout=5, what="the job's shell to die")
    finally:
        # Only the janitor reaches what the job started itself: without it, the sleep is left over.
        with contextlib.suppress(ProcessLookupError):
            os.kill(background, signal.SIGKILL)


async def test_processes_left_behind_are_killed_when_the_job_ends(host, tmp_path):
    child = tmp_path / "child.pid"
    config = {"command": f"sleep 60 > /dev/null 2>&1 & echo $! > {child}", "shell": "true"}
    outcome = await host.execute("shell", "leaves-a-child", config)
    assert outcome.success, outcome
    leftover = read_pid(child)
    assert leftover
    await async_wait_until(lambda: not pid_alive(leftover), timeout=5, what="the leftover sleep to die")


async def test_sixteen_executions_run_at_once(host, tmp_path):
    count = 16
    # Each job waits until all have started: run one after another, they would give up with exit 9.
    script = (
        f"touch {tmp_path}/$JOB; i=0; while [ $(ls {tmp_path} | wc -l) -lt {count} ]; do"
        " i=$((i+1)); [ $i -gt 400 ] && exit 9; sleep 0.05; done; echo done $JOB"
    )
    outcomes = await asyncio.gather(
        *(
            host.execute("shell", f"job-{n}", {"command": script, "shell": "true", "env": f"JOB={n}"})
            for n in range(count)
        )
    )
    assert [(o.success, o.output) for o in outcomes] == [(True, f"done {n}\n".encode()) for n in range(count)]


async def test_cpu_seconds_and_peak_memory_are_measured(host):
    burn = (
        f"{PYTHON} -c \"import time; x = b'x' * 100_000_000; t = time.process_time()\n"
        'while time.process_time() - t < 0.5: pass"'
    )
    outcome = await host.execute("shell", "burn", {"command": burn})
    assert outcome.success, outcome
    assert 0.4 < outcome.cpu_seconds < 30
    assert 100_000_000 < outcome.max_rss_bytes < 1_000_000_000


async def test_su_to_an_unknown_user_fails_clearly(host):
    outcome = await host.execute("shell", "su", {"command": "id -u", "su": "no-such-user-horae"})
    assert not outcome.success
    assert outcome.error == "shell: su: unknown user 'no-such-user-horae'"


@pytest.mark.skipif(os.geteuid() != 0, reason="running a job as another user needs root")
async def test_su_runs_the_job_as_that_user(host):
    outcome = await host.execute("shell", "su", {"command": 'id -u; echo "$HOME"', "shell": "true", "su": "nobody"})
    assert outcome.success, outcome
    nobody = pwd.getpwnam("nobody")
    assert outcome.output.decode().split() == [str(nobody.pw_uid), nobody.pw_dir]


async def test_describe_serves_the_schema_and_conformance_configs(host):
    description = host.plugin("executor", "shell").description
    assert description is not None
    schema = json.loads(description.config_schema_json)
    assert schema["additionalProperties"] is False
    keys = {"command", "shell", "env", "cwd", "timeout", "mem_limit", "mem_limit_kb", "su", "payload", "output_limit"}
    assert set(schema["properties"]) == keys
    assert all(prop["description"] for prop in schema["properties"].values())
    assert json.loads(description.conformance_configs["sleep"]) == {"command": "sleep 30", "shell": "true"}
