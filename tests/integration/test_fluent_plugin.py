"""The built-in fluent processor, run as a real plugin process, sending to a Forward protocol receiver.

The receiver (tests/fluent_receiver.py) decodes the frames as Fluentd's in_forward does and acks
chunks; variants never ack or drop the connection after each ack.
"""

from __future__ import annotations

import datetime
import gzip
import json
import socket
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

from horae.host.supervisor import PluginCallError, PluginHost
from horae_sdk import Execution
from tests.fluent_receiver import Event, EventTime, FluentReceiver
from tests.support import REPO_ROOT, builtin_spec

STARTED = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
FINISHED = STARTED + datetime.timedelta(seconds=3, microseconds=250_000)
CONFORMANCE = Path(sys.executable).with_name("horae-conformance")


@pytest.fixture
async def host(monkeypatch):
    # Dkron's variables must not leak in from the machine: the tests that use them set them.
    for variable in ("FLUENTBIT_HOST", "FLUENTBIT_PORT", "FLUENTBIT_TAG"):
        monkeypatch.delenv(variable, raising=False)
    async with PluginHost([builtin_spec("fluent", "processor")]) as plugin_host:
        yield plugin_host


@pytest.fixture
def receiver():
    with FluentReceiver() as running:
        yield running


def execution(output: bytes, execution_id: str, *, success: bool = True) -> Execution:
    return Execution(
        job_name="backup",
        success=success,
        output=output,
        node_name="node-a",
        group=7,
        attempt=2,
        started_at=STARTED,
        finished_at=FINISHED,
        id=execution_id,
        exit_code=0 if success else 4,
    )


async def process(host: PluginHost, sent: Execution, config: dict[str, str]) -> Execution:
    return Execution.from_proto(await host.process("fluent", sent.to_proto(), config))


def to(receiver: FluentReceiver, **extra: str) -> dict[str, str]:
    return {"host": "127.0.0.1", "port": str(receiver.port), **extra}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_the_record_is_acked_and_the_output_replaced(host, receiver):
    sent = execution(b"line one\n\xff done\n", "exec-1", success=False)
    processed = await process(host, sent, to(receiver, tag="jobs.backup"))

    assert processed == sent.replace(output=b"Output sent to Fluent")
    [event] = receiver.wait_for_events(1)
    assert (event.tag, event.mode) == ("jobs.backup", "message")
    assert event.time == EventTime(int(FINISHED.timestamp()), 250_000_000)
    assert event.record == {
        "host": "node-a",
        "job_name": "backup",
        "message": "line one\n\ufffd done\n",
        "execution_id": "exec-1",
        "success": False,
        "exit_code": 4,
        "attempt": 2,
        "started_at": "2026-03-01T12:00:00.000000Z",
        "finished_at": "2026-03-01T12:00:03.250000Z",
    }
    # It asked for an ack, and the answer was what it waited for.
    assert event.chunk and receiver.acks_sent == [event.chunk]


async def test_forward_true_keeps_the_output_and_one_connection_serves_every_execution(host, receiver):
    for number in range(3):
        sent = execution(f"run {number}".encode(), f"reuse-{number}")
        assert await process(host, sent, to(receiver, forward="true")) == sent
    events = receiver.wait_for_events(3)
    assert [event.record["execution_id"] for event in events] == ["reuse-0", "reuse-1", "reuse-2"]
    assert len({event.chunk for event in events}) == 3
    assert receiver.connections == 1


async def test_a_dropped_connection_is_reopened_and_the_event_sent_again():
    async with PluginHost([builtin_spec("fluent", "processor")]) as host:
        # This receiver closes the connection after each ack: the plugin finds its kept
        # connection dead at the next execution and must retry on a new one.
        with FluentReceiver(close_after_ack=True) as receiver:
            for number in range(3):
                processed = await process(host, execution(b"x", f"drop-{number}"), to(receiver))
                assert processed.output == b"Output sent to Fluent", processed.output
            events = receiver.wait_for_events(3)
            assert [event.record["execution_id"] for event in events] == ["drop-0", "drop-1", "drop-2"]
            assert receiver.connections == 3


async def test_a_receiver_that_never_acks_fails_in_the_output_within_the_timeout(host):
    with FluentReceiver(ack=False) as silent:
        sent = execution(b"kept output\n", "noack-1")
        processed = await process(host, sent, to(silent, timeout="1s"))
        assert processed.output.startswith(b"kept output\nfluent: the output was not delivered: ")
        assert f"fluent receiver 127.0.0.1:{silent.port}: no ack within 1s".encode() in processed.output
        # It did get the event, with a chunk id: the ack was asked for and never came.
        [event] = silent.wait_for_events(1)
        assert event.chunk and silent.acks_sent == []


async def test_a_receiver_that_is_down_fails_in_the_output_and_the_plugin_keeps_serving(host, receiver):
    port = closed_port()
    processed = await process(host, execution(b"kept", "down-1"), {"port": str(port)})
    assert (
        processed.output
        == (
            f"kept\nfluent: the output was not delivered: fluent receiver 127.0.0.1:{port}: "
            "could not connect: Connection refused\n"
        ).encode()
    )

    pid = host.plugin("processor", "fluent").process.pid
    assert (await process(host, execution(b"x", "down-2"), to(receiver))).output == b"Output sent to Fluent"
    assert host.plugin("processor", "fluent").process.pid == pid


async def test_dkron_environment_variables_are_the_fallbacks(receiver, monkeypatch):
    monkeypatch.setenv("FLUENTBIT_HOST", "127.0.0.1")
    monkeypatch.setenv("FLUENTBIT_PORT", str(receiver.port))
    monkeypatch.setenv("FLUENTBIT_TAG", "dkron.jobs")
    async with PluginHost([builtin_spec("fluent", "processor")]) as host:
        await process(host, execution(b"a", "env-1"), {})
        await process(host, execution(b"b", "env-2"), {"tag": "from.config"})
    events = receiver.wait_for_events(2)
    assert [(event.tag, event.record["execution_id"]) for event in events] == [
        ("dkron.jobs", "env-1"),
        ("from.config", "env-2"),
    ]


async def test_bad_config_fails_the_call_naming_the_key(host):
    for config, named in [
        ({"port": "http"}, "fluent: port 'http' is not a TCP port"),
        ({"port": "70000"}, "fluent: port '70000' is not a TCP port"),
        ({"tag": "a b"}, "fluent: tag 'a b' must not contain spaces"),
        ({"timeout": "never"}, "fluent: timeout 'never' is not a positive duration"),
    ]:
        with pytest.raises(PluginCallError) as failure:
            await process(host, execution(b"x", "bad-1"), config)
        assert named in str(failure.value), config


async def test_describe_serves_the_schema(host):
    description = host.plugin("processor", "fluent").description
    assert description is not None and description.kind == "processor"
    schema = json.loads(description.config_schema_json)
    assert set(schema["properties"]) == {"forward", "host", "port", "tag", "timeout"}
    assert schema["additionalProperties"] is False


def test_the_receiver_decodes_forward_and_packed_forward_modes(receiver):
    # The receiver is a test peer: check it against frames other Forward clients send.
    entries = [[1_700_000_000, {"n": 1}], [msgpack.ExtType(0, b"\x65\x53\xf1\x00\x00\x00\x00\x07"), {"n": 2}]]
    packed = b"".join(msgpack.packb(entry) for entry in entries)
    frames = [
        ["app.forward", entries, {"chunk": "c1"}],
        ["app.packed", packed, {"chunk": "c2", "size": 2}],
        ["app.gzip", gzip.compress(packed), {"chunk": "c3", "size": 2, "compressed": "gzip"}],
        # Older clients (no bin type) send the packed entries as msgpack str.
        ["app.legacy", packed, {"chunk": "c4"}],
    ]
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as client:
        acks = msgpack.Unpacker(raw=False)
        for frame in frames:
            client.sendall(msgpack.packb(frame, use_bin_type=frame[0] != "app.legacy"))
            while (answer := next(acks, None)) is None:
                acks.feed(client.recv(4096))
            assert answer == {"ack": frame[2]["chunk"]}
    assert receiver.wait_for_events(8) == [
        Event(tag, time, record, mode, chunk)
        for tag, mode, chunk in [
            ("app.forward", "forward", "c1"),
            ("app.packed", "packed", "c2"),
            ("app.gzip", "packed", "c3"),
            ("app.legacy", "packed", "c4"),
        ]
        for time, record in [(1_700_000_000, {"n": 1}), (EventTime(0x6553F100, 7), {"n": 2})]
    ]


def test_horae_conformance_passes_while_sending_to_the_receiver(receiver):
    cli = [str(CONFORMANCE)] if CONFORMANCE.exists() else [sys.executable, "-m", "horae_conformance"]
    config = json.dumps(to(receiver))
    done = subprocess.run(
        [*cli, "--json", "processor", "--plugin", "fluent", "--strict", "--process-config", config],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    report = json.loads(done.stdout)
    failed = {row["case"]: row["reason"] for row in report["results"] if row["result"] != "passed"}
    assert not failed, failed
    assert done.returncode == 0
    # One call, then 16 at once, each acked over the plugin's one connection.
    events = receiver.wait_for_events(17)
    assert {event.record["job_name"] for event in events} == {"horae-conformance"}
    assert len(receiver.acks_sent) == 17
