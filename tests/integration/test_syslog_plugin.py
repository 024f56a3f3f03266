"""The built-in syslog processor, run as a real plugin process, sending to a real rsyslogd.

rsyslogd (tests/rsyslog.py) listens on UDP, TCP and a unix socket and writes what it parsed of
each message (PRI, facility, severity, format version, tag, MSG, which input) to a file.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from horae.host.supervisor import PluginCallError, PluginHost
from horae_plugins.syslog.transport import LOCAL_SOCKETS
from horae_sdk import Execution
from tests.rsyslog import Rsyslog, running_rsyslog
from tests.support import REPO_ROOT, builtin_spec

STARTED = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
CRON, LOCAL3 = 9, 19
INFO, ERR = 6, 3
CONFORMANCE = Path(sys.executable).with_name("horae-conformance")


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory) -> Rsyslog:
    try:
        with running_rsyslog(tmp_path_factory.mktemp("rsyslog")) as daemon:
            yield daemon
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture
async def host():
    async with PluginHost([builtin_spec("syslog", "processor")]) as plugin_host:
        yield plugin_host


def execution(output: bytes, execution_id: str, *, success: bool = True) -> Execution:
    return Execution(
        job_name="backup",
        success=success,
        output=output,
        node_name="node-a",
        group=7,
        attempt=1,
        started_at=STARTED,
        finished_at=STARTED + datetime.timedelta(seconds=3),
        id=execution_id,
        exit_code=0 if success else 4,
    )


async def process(host: PluginHost, sent: Execution, config: dict[str, str]) -> Execution:
    return Execution.from_proto(await host.process("syslog", sent.to_proto(), config))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_udp_sends_one_cron_info_message_per_line_and_replaces_the_output(host, rsyslog):
    sent = execution(b"line one\nline two\n", "udp-1")
    processed = await process(host, sent, {"address": f"udp://127.0.0.1:{rsyslog.udp_port}"})

    # Dkron's forward=false: the stored output says where it went; nothing else changes.
    assert processed == sent.replace(output=b"Output in syslog")
    messages = rsyslog.wait_for("execution=udp-1:", 3)
    assert [m.msg for m in messages] == [
        "job=backup execution=udp-1: line one",
        "job=backup execution=udp-1: line two",
        "job=backup execution=udp-1: execution finished: success=true exit_code=0 node=node-a lines=2",
    ]
    for message in messages:
        assert (message.pri, message.facility, message.severity) == (CRON * 8 + INFO, "cron", "info")
        assert (message.version, message.app_name, message.input) == ("1", "horae", "imudp")
        assert message.hostname == socket.gethostname()
        assert message.procid.isdigit()


async def test_tcp_failed_execution_is_err_with_the_configured_facility_and_tag(host, rsyslog):
    sent = execution(b"it broke\n", "tcp-1", success=False)
    config = {"address": f"tcp://127.0.0.1:{rsyslog.tcp_port}", "facility": "local3", "tag": "nightly"}
    processed = await process(host, sent, {**config, "forward": "true"})

    assert processed == sent  # forward=true keeps the output
    messages = rsyslog.wait_for("execution=tcp-1:", 2)
    assert [m.msg for m in messages] == [
        "job=backup execution=tcp-1: it broke",
        "job=backup execution=tcp-1: execution finished: success=false exit_code=4 node=node-a lines=1",
    ]
    for message in messages:
        assert (message.pri, message.facility, message.severity) == (LOCAL3 * 8 + ERR, "local3", "err")
        assert (message.version, message.app_name, message.input) == ("1", "nightly", "imtcp")


async def test_a_unix_socket_gets_the_traditional_local_format(host, rsyslog):
    sent = execution(b"local line\n", "unix-1")
    await process(host, sent, {"address": f"unix://{rsyslog.socket_path}"})

    messages = rsyslog.wait_for("execution=unix-1:", 2)
    assert messages[0].msg == "job=backup execution=unix-1: local line"
    pid = host.plugin("processor", "syslog").process.pid
    for message in messages:
        assert (message.pri, message.version, message.input) == (CRON * 8 + INFO, "0", "imuxsock")
        assert message.syslogtag == f"horae[{pid}]:"


async def test_long_lines_are_cut_and_binary_output_is_replaced_characters(host, rsyslog):
    output = b"x" * 5000 + b"\n\xff\xfe not utf-8\n"
    await process(host, execution(output, "long-1"), {"address": f"tcp://127.0.0.1:{rsyslog.tcp_port}"})
    messages = rsyslog.wait_for("execution=long-1:", 3)
    assert messages[0].msg == "job=backup execution=long-1: " + "x" * 1800 + "… (3200 more bytes)"
    assert messages[1].msg == "job=backup execution=long-1: \ufffd\ufffd not utf-8"


async def test_an_execution_without_output_still_logs_how_it_ended(host, rsyslog):
    await process(host, execution(b"", "empty-1"), {"address": f"udp://127.0.0.1:{rsyslog.udp_port}"})
    [message] = rsyslog.wait_for("execution=empty-1:", 1)
    assert message.msg.endswith("execution finished: success=true exit_code=0 node=node-a lines=0")


async def test_an_unreachable_address_fails_in_the_output_and_the_plugin_keeps_serving(host, rsyslog, tmp_path):
    port = closed_port()
    sent = execution(b"kept output\n", "down-1")
    processed = await process(host, sent, {"address": f"tcp://127.0.0.1:{port}"})
    assert processed.output == (
        f"kept output\nsyslog: the output was not sent: tcp://127.0.0.1:{port}: Connection refused\n".encode()
    )

    # UDP learns of a closed port from the ICMP answer to an earlier datagram of the execution.
    processed = await process(host, sent, {"address": f"udp://127.0.0.1:{port}"})
    assert processed.output.endswith(f"udp://127.0.0.1:{port}: Connection refused\n".encode())

    missing = tmp_path / "no-daemon.sock"
    processed = await process(host, execution(b"kept", "down-2"), {"address": f"unix://{missing}"})
    assert (
        processed.output
        == f"kept\nsyslog: the output was not sent: unix://{missing}: No such file or directory\n".encode()
    )

    pid = host.plugin("processor", "syslog").process.pid
    processed = await process(host, execution(b"after", "down-3"), {"address": f"udp://127.0.0.1:{rsyslog.udp_port}"})
    assert processed.output == b"Output in syslog"
    assert host.plugin("processor", "syslog").process.pid == pid
    rsyslog.wait_for("execution=down-3:", 2)


@pytest.mark.skipif(
    any(os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode) for path in LOCAL_SOCKETS),
    reason="this machine has a local syslog socket",
)
async def test_without_address_or_local_daemon_the_output_says_what_to_set(host):
    processed = await process(host, execution(b"out\n", "nolocal-1"), {})
    expected = b"out\nsyslog: the output was not sent: no local syslog socket (none of /dev/log"
    assert processed.output.startswith(expected)
    assert b"set the processor's `address`" in processed.output


BAD_CONFIGS = [
    ({"facility": "NOPE"}, "facility 'NOPE' is not a syslog facility"),
    ({"tag": "two words"}, "tag 'two words' must be 1 to 48 printable ASCII characters"),
    ({"address": "ftp://127.0.0.1:21"}, "address 'ftp://127.0.0.1:21' is not usable"),
    ({"address": "udp://127.0.0.1:99999"}, "address 'udp://127.0.0.1:99999' has a bad port"),
    ({"timeout": "soon"}, "timeout 'soon' is not a positive duration"),
]


async def test_bad_config_fails_the_call_naming_the_key(host):
    for config, named in BAD_CONFIGS:
        with pytest.raises(PluginCallError, match="syslog: ") as failure:
            await process(host, execution(b"x", "bad-1"), config)
        assert named in str(failure.value), config


async def test_describe_serves_the_schema(host):
    description = host.plugin("processor", "syslog").description
    assert description is not None and description.kind == "processor"
    schema = json.loads(description.config_schema_json)
    assert set(schema["properties"]) == {"forward", "facility", "tag", "address", "timeout"}
    assert schema["additionalProperties"] is False


def test_horae_conformance_passes_while_sending_to_rsyslog(rsyslog):
    cli = [str(CONFORMANCE)] if CONFORMANCE.exists() else [sys.executable, "-m", "horae_conformance"]
    config = json.dumps({"address": f"tcp://127.0.0.1:{rsyslog.tcp_port}"})
    done = subprocess.run(
        [*cli, "--json", "processor", "--plugin", "syslog", "--strict", "--process-config", config],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    report = json.loads(done.stdout)
    failed = {row["case"]: row["reason"] for row in report["results"] if row["result"] != "passed"}
    assert not failed, failed
    assert done.returncode == 0
    # One call, then 16 at once: each execution's last message reached rsyslog.
    finished = rsyslog.wait_for("job=horae-conformance execution=", 2 * 17)
    assert sum("execution finished" in message.msg for message in finished) == 17
