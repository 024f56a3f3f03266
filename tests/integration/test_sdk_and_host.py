"""Plugins written with the SDK, run as real processes by horae's PluginHost."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import random
import signal
import subprocess

import grpc
import pytest
from google.protobuf import empty_pb2

from horae.host.supervisor import PluginHost
from horae_sdk import handshake
from horae_sdk.proto.horae.plugin.v1 import processor_pb2
from horae_sdk.proto.plugin import grpc_stdio_pb2
from horae_sdk.proto.types import executor_pb2 as legacy_pb2
from horae_sdk.proto.types import executor_pb2_grpc as legacy_pb2_grpc
from tests.support import async_wait_until, builtin_spec, pid_alive, script_spec

OUTPUT_LIMIT = 64 * 1024

# One executor with a behaviour per `mode` config key.
EXECUTOR = """
import json
import os
import random
import time

from horae_sdk import ExecutionError, ExecutionResult, Executor, serve


class Probe(Executor):
    name = "probe"
    version = "7.1"
    output_limit = OUTPUT_LIMIT
    config_schema = {
        "type": "object",
        "properties": {"mode": {"type": "string"}, "text": {"type": "string"}},
        "required": ["mode"],
    }
    conformance = {"echo": {"mode": "echo", "text": "hi"}, "sleep": {"mode": "sleep"}}

    def execute(self, job_name, config, stream):
        mode = config["mode"]
        if mode == "echo":
            return config.get("text", "")
        if mode == "fail":
            raise ExecutionError("the job failed on purpose", output="partial output", exit_code=int(config["code"]))
        if mode == "raise":
            raise ValueError("a bad value in the plugin")
        if mode == "lines":
            tag, count, block = config.get("tag", ""), int(config["count"]), int(config.get("block", "0"))
            for i in range(count):
                stderr = bool(block) and (i // block) % 2 == 1
                stream.write(f"{tag}line {i} {'err' if stderr else 'out'}\\n", stderr=stderr)
                if config.get("pause"):
                    time.sleep(float(config["pause"]))
            return None
        if mode == "random":
            rng, left = random.Random(int(config["seed"])), int(config["size"])
            while left:
                piece = min(left, int(config["piece"]))
                stream.write(rng.randbytes(piece))
                left -= piece
            return None
        if mode == "wait-cancel":
            with open(config["started"], "w") as marker:
                marker.write("started")
            cancelled = stream.cancelled.wait(60)
            with open(config["finished"], "w") as marker:
                marker.write("cancelled" if cancelled else "not cancelled")
            return "done"
        if mode == "ids":
            ids = {"execution_id": stream.execution_id, "slot_unix_ms": stream.slot_unix_ms, "attempt": stream.attempt}
            return json.dumps({"job_name": job_name, **ids})
        if mode == "figures":
            return ExecutionResult(output="figures", exit_code=0, cpu_seconds=1.5, max_rss_bytes=12345)
        if mode == "print":
            for i in range(1000):
                print(f"stray print {i} from the plugin")
            return "still fine"
        raise ExecutionError(f"unknown mode {mode}")


if __name__ == "__main__":
    serve(executor=Probe())
""".replace("OUTPUT_LIMIT", str(OUTPUT_LIMIT))

PROCESSOR = """
import datetime

from horae_sdk import Processor, serve


class Stamp(Processor):
    name = "stamp"
    version = "2"

    def process(self, execution, config):
        return execution.replace(
            output=config["prefix"].encode() + execution.output,
            started_at=execution.started_at + datetime.timedelta(seconds=1),
            finished_at=execution.finished_at + datetime.timedelta(seconds=1),
            exit_code=execution.exit_code + 1,
            success=not execution.success,
        )


if __name__ == "__main__":
    serve(processor=Stamp())
"""

# A plugin as Dkron before 4.0.9 would have it: only `types.Executor`, written by hand with grpcio.
LEGACY_ONLY = """
import os
import sys
import tempfile
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from horae_sdk.proto.types import executor_pb2, executor_pb2_grpc

if os.environ.get("HORAE_PLUGIN_MAGIC_COOKIE") != "HORAE_COOKIE":
    sys.exit("no cookie")


class Old(executor_pb2_grpc.ExecutorServicer):
    def Execute(self, request, context):
        return executor_pb2.ExecuteResponse(output=b"old name: " + request.config["text"].encode())


stop = threading.Event()
server = grpc.server(futures.ThreadPoolExecutor(4))
executor_pb2_grpc.add_ExecutorServicer_to_server(Old(), server)
checker = health.HealthServicer()
checker.set("plugin", health_pb2.HealthCheckResponse.SERVING)
health_pb2_grpc.add_HealthServicer_to_server(checker, server)


def shutdown(request, context):
    stop.set()
    return b""


controller = grpc.unary_unary_rpc_method_handler(shutdown, lambda data: data, lambda data: data)
controller_service = grpc.method_handlers_generic_handler("plugin.GRPCController", {"Shutdown": controller})
server.add_generic_rpc_handlers((controller_service,))
path = os.path.join(os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or tempfile.gettempdir(), f"legacy{os.getpid()}")
server.add_insecure_port(f"unix:{path}")
server.start()
print(f"1|1|unix|{path}|grpc|", flush=True)
stop.wait()
server.stop(0.5).wait()
""".replace("HORAE_COOKIE", handshake.HORAE_COOKIE_VALUE)


@pytest.fixture
def probe_spec(tmp_path):
    return script_spec(tmp_path, EXECUTOR, name="probe")


@pytest.fixture
async def host(probe_spec):
    async with PluginHost([probe_spec]) as plugin_host:
        yield plugin_host


class Collector:
    """An on_output callback that keeps every chunk with its stderr flag."""

    def __init__(self) -> None:
        self.chunks: list[tuple[bytes, bool]] = []

    def __call__(self, chunk: bytes, is_stderr: bool) -> None:
        self.chunks.append((chunk, is_stderr))

    @property
    def data(self) -> bytes:
        return b"".join(chunk for chunk, _ in self.chunks)


def process_of(host: PluginHost, name: str = "probe", kind: str = "executor"):
    process = host.plugin(kind, name).process
    assert process is not None, f"{kind} {name} is not running"
    return process


async def test_execute_returns_the_output(host):
    outcome = await host.execute("probe", "job", {"mode": "echo", "text": "hello"})
    assert outcome.success, outcome.error
    assert outcome.output == b"hello"
    assert outcome.exit_code == 0


async def test_execution_result_figures_reach_the_host(host):
    outcome = await host.execute("probe", "job", {"mode": "figures"})
    assert (outcome.output, outcome.cpu_seconds, outcome.max_rss_bytes) == (b"figures", 1.5, 12345)


async def test_execution_error_gives_the_error_text_and_exit_code(host):
    outcome = await host.execute("probe", "job", {"mode": "fail", "code": "42"})
    assert not outcome.success
    assert outcome.error == "the job failed on purpose"
    assert outcome.exit_code == 42
    assert outcome.output == b"partial output"


async def test_an_exception_in_execute_fails_the_call_and_the_plugin_keeps_serving(host):
    pid = process_of(host).pid
    outcome = await host.execute("probe", "job", {"mode": "raise"})
    assert not outcome.success
    assert "ValueError" in outcome.error
    assert "a bad value in the plugin" in outcome.error
    assert outcome.exit_code != 0

    again = await host.execute("probe", "job", {"mode": "echo", "text": "still here"})
    assert (again.success, again.output) == (True, b"still here")
    assert process_of(host).pid == pid
    assert any("ValueError" in line for line in process_of(host).log.tail()), "the traceback goes to the plugin log"


async def test_live_output_arrives_in_order_with_its_stderr_flag(host):
    collected = Collector()
    count, block = 400, 7
    outcome = await host.execute(
        "probe", "job", {"mode": "lines", "count": str(count), "block": str(block)}, on_output=collected
    )
    assert outcome.success, outcome.error

    expected = [f"line {i} {'err' if (i // block) % 2 else 'out'}" for i in range(count)]
    assert collected.data.decode().splitlines() == expected
    for chunk, is_stderr in collected.chunks:
        for line in chunk.decode().splitlines():
            assert line.endswith("err" if is_stderr else "out"), (line, is_stderr)
    assert {is_stderr for _, is_stderr in collected.chunks} == {True, False}
    assert outcome.output == collected.data


async def test_live_output_arrives_while_the_execution_runs(host):
    collected = Collector()
    call = asyncio.create_task(
        host.execute("probe", "job", {"mode": "lines", "count": "200", "pause": "0.05"}, on_output=collected)
    )
    await async_wait_until(lambda: collected.chunks, timeout=10, what="the first live chunk")
    assert not call.done(), "live output should arrive before the execution ends"
    outcome = await call
    assert outcome.success
    assert collected.data.decode().splitlines() == [f"line {i} out" for i in range(200)]


async def test_ten_mib_stream_arrives_intact_and_the_result_is_the_tail(host):
    size, seed = 10 * 1024 * 1024 + 12345, 1234
    expected = random.Random(seed).randbytes(size)
    collected = Collector()
    outcome = await host.execute(
        "probe", "job", {"mode": "random", "seed": str(seed), "size": str(size), "piece": "10000"}, on_output=collected
    )
    assert outcome.success, outcome.error
    received = collected.data
    assert len(received) == size
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert outcome.output == expected[-OUTPUT_LIMIT:]


async def test_returned_output_is_capped_at_the_output_limit_without_live_output(host):
    size, seed = 3 * OUTPUT_LIMIT + 7, 99
    outcome = await host.execute(
        "probe", "job", {"mode": "random", "seed": str(seed), "size": str(size), "piece": "1000"}
    )
    assert outcome.success, outcome.error
    assert outcome.output == random.Random(seed).randbytes(size)[-OUTPUT_LIMIT:]


async def test_concurrent_calls_each_get_their_own_output(host):
    calls = 16
    count = 300
    collectors = [Collector() for _ in range(calls)]
    outcomes = await asyncio.gather(
        *(
            host.execute(
                "probe",
                f"job{n}",
                {"mode": "lines", "tag": f"[{n}] ", "count": str(count), "block": "50"},
                on_output=collectors[n],
            )
            for n in range(calls)
        )
    )
    for n, (outcome, collected) in enumerate(zip(outcomes, collectors, strict=True)):
        assert outcome.success, outcome.error
        expected = [f"[{n}] line {i} {'err' if (i // 50) % 2 else 'out'}" for i in range(count)]
        assert collected.data.decode().splitlines() == expected, f"call {n} got someone else's output"
        assert outcome.output.decode().splitlines() == expected


async def test_cancelling_the_call_cancels_the_execution_in_the_plugin(host, tmp_path):
    started, finished = tmp_path / "started", tmp_path / "finished"
    pid = process_of(host).pid
    call = asyncio.create_task(
        host.execute(
            "probe",
            "job",
            {"mode": "wait-cancel", "started": str(started), "finished": str(finished)},
            on_output=Collector(),
        )
    )
    await async_wait_until(started.exists, timeout=10, what="the execution to start")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await async_wait_until(finished.exists, timeout=10, what="the plugin to see the cancellation")
    assert finished.read_text() == "cancelled"

    outcome = await host.execute("probe", "job", {"mode": "echo", "text": "next"}, on_output=Collector())
    assert (outcome.success, outcome.output) == (True, b"next")
    assert process_of(host).pid == pid


async def test_execution_id_slot_and_attempt_reach_the_plugin(host):
    outcome = await host.execute(
        "probe",
        "nightly",
        {"mode": "ids"},
        execution_id="nightly-1700000000000-2",
        slot_unix_ms=1700000000000,
        attempt=2,
    )
    assert json.loads(outcome.output) == {
        "job_name": "nightly",
        "execution_id": "nightly-1700000000000-2",
        "slot_unix_ms": 1700000000000,
        "attempt": 2,
    }


async def test_processor_round_trip_keeps_every_field_and_the_timestamps(tmp_path):
    spec = script_spec(tmp_path, PROCESSOR, name="stamp", kind="processor")
    started = datetime.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)
    finished = started + datetime.timedelta(minutes=5)
    execution = processor_pb2.Execution(
        job_name="backup",
        success=True,
        output=b"body",
        node_name="node-1",
        group=1700000000,
        attempt=3,
        id="backup-1",
        exit_code=4,
    )
    execution.started_at.FromDatetime(started)
    execution.finished_at.FromDatetime(finished)

    async with PluginHost([spec]) as host:
        result = await host.process("stamp", execution, {"prefix": "processed: "})

    assert result.output == b"processed: body"
    assert (result.job_name, result.node_name, result.group, result.attempt, result.id) == (
        "backup",
        "node-1",
        1700000000,
        3,
        "backup-1",
    )
    assert (result.success, result.exit_code) == (False, 5)
    assert result.started_at.ToDatetime(datetime.UTC) == started + datetime.timedelta(seconds=1)
    assert result.finished_at.ToDatetime(datetime.UTC) == finished + datetime.timedelta(seconds=1)


async def test_describe_gives_name_kind_schema_and_conformance_configs(host):
    plugin = host.plugin("executor", "probe")
    description = plugin.description
    assert description is not None
    assert (description.name, description.kind, description.version) == ("probe", "executor", "7.1")
    assert json.loads(description.config_schema_json)["required"] == ["mode"]
    assert {case: json.loads(config) for case, config in description.conformance_configs.items()} == {
        "echo": {"mode": "echo", "text": "hi"},
        "sleep": {"mode": "sleep"},
    }
    (status,) = host.statuses()
    assert (status.state, status.version, status.pid) == ("healthy", "7.1", plugin.process.pid)


async def test_health_check_answers_serving(host):
    assert await process_of(host).health()
    assert host.statuses()[0].state == "healthy"


async def test_print_after_the_handshake_is_captured_and_served_as_stdio(host):
    outcome = await host.execute("probe", "job", {"mode": "print"})
    assert (outcome.success, outcome.output) == (True, b"still fine")
    assert (await host.execute("probe", "job", {"mode": "echo", "text": "ok"})).output == b"ok"

    stdio = process_of(host).channel.unary_stream(
        "/plugin.GRPCStdio/StreamStdio",
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=grpc_stdio_pb2.StdioData.FromString,
    )
    received = b""
    call = stdio(empty_pb2.Empty(), timeout=20)
    async for message in call:
        assert message.channel == grpc_stdio_pb2.StdioData.STDOUT
        received += message.data
        if b"stray print 999 from the plugin\n" in received:
            break
    call.cancel()
    assert received.startswith(b"stray print 0 from the plugin\n")


async def test_the_legacy_service_name_is_served_too(host):
    stub = legacy_pb2_grpc.ExecutorStub(process_of(host).channel)
    response = await stub.Execute(legacy_pb2.ExecuteRequest(job_name="old", config={"mode": "echo", "text": "legacy"}))
    assert (response.output, response.error) == (b"legacy", "")


async def test_the_host_falls_back_to_the_legacy_service_name(tmp_path):
    spec = script_spec(tmp_path, LEGACY_ONLY, name="legacy")
    async with PluginHost([spec]) as host:
        assert host.statuses()[0].state == "healthy", host.statuses()
        first = await host.execute("legacy", "job", {"text": "one"})
        second = await host.execute("legacy", "job", {"text": "two"}, on_output=Collector())
        process = process_of(host, "legacy")
    assert (first.success, first.output) == (True, b"old name: one"), first.error
    assert (second.success, second.output) == (True, b"old name: two"), second.error
    assert process.returncode == 0, "it stopped on Shutdown, not by a kill"


async def test_auto_mtls_end_to_end_with_live_output_through_the_tls_broker(probe_spec):
    async with PluginHost([probe_spec], mtls=True) as host:
        process = process_of(host)
        assert process.handshake.server_cert, "the plugin sent its certificate"
        collected = Collector()
        outcome = await host.execute(
            "probe", "job", {"mode": "lines", "count": "100", "block": "10"}, on_output=collected
        )
        assert outcome.success, outcome.error
        assert len(collected.data.decode().splitlines()) == 100
        assert collected.data == outcome.output

        # The plugin's server refuses a client without the host's certificate.
        async with grpc.aio.insecure_channel(process.handshake.grpc_target) as plain:
            with pytest.raises(grpc.aio.AioRpcError):
                await legacy_pb2_grpc.ExecutorStub(plain).Execute(legacy_pb2.ExecuteRequest(), timeout=5)


async def test_tcp_transport(tmp_path):
    spec = script_spec(tmp_path, EXECUTOR, name="probe")
    spec = type(spec)(**{**spec.__dict__, "env": {handshake.TRANSPORT_KEY: "tcp"}})
    async with PluginHost([spec]) as host:
        shake = process_of(host).handshake
        assert shake.network == "tcp"
        assert shake.address.startswith("127.0.0.1:")
        port = int(shake.address.rsplit(":", 1)[1])
        assert 10000 <= port <= 25000
        collected = Collector()
        outcome = await host.execute("probe", "job", {"mode": "lines", "count": "5"}, on_output=collected)
        assert outcome.success, outcome.error
        # Five short lines fit the response, so the SDK sends them there and not through the broker.
        assert outcome.output == b"".join(f"line {i} out\n".encode() for i in range(5))
        assert collected.data in (b"", outcome.output)


def test_a_plugin_started_by_hand_explains_itself_and_exits_1(probe_spec):
    env = {k: v for k, v in os.environ.items() if k not in handshake.COOKIES}
    result = subprocess.run(probe_spec.argv, env=env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stdout == b""
    assert handshake.NOT_BY_HAND in result.stderr.decode()


async def test_host_stop_shuts_the_plugin_down_gracefully(probe_spec):
    host = PluginHost([probe_spec])
    await host.start()
    process = process_of(host)
    socket_path = process.handshake.address
    assert os.path.exists(socket_path)
    await host.stop()
    assert process.returncode == 0, "the plugin exited on Shutdown; it was not killed"
    assert not pid_alive(process.pid)
    assert not os.path.exists(socket_path)
    assert host.statuses()[0].state == "stopped"


async def test_a_killed_plugin_is_restarted_and_serves_the_next_call(host):
    old_pid = process_of(host).pid
    os.kill(old_pid, signal.SIGKILL)

    def restarted():
        (status,) = host.statuses()
        return status.state == "healthy" and status.pid not in (None, old_pid)

    await async_wait_until(restarted, timeout=15, what="the plugin to be restarted")
    (status,) = host.statuses()
    assert status.restarts == 1
    assert not pid_alive(old_pid)
    outcome = await host.execute("probe", "job", {"mode": "echo", "text": "back"})
    assert (outcome.success, outcome.output) == (True, b"back")


async def test_a_call_after_a_kill_waits_for_the_restart(host):
    old_pid = process_of(host).pid
    os.kill(old_pid, signal.SIGKILL)
    # Once the host has seen it die (and before the restart is done), a call waits for the new process.
    await async_wait_until(lambda: host.statuses()[0].pid is None, timeout=10, what="the host to see the death")
    outcome = await host.execute("probe", "job", {"mode": "echo", "text": "waited"})
    assert (outcome.success, outcome.output) == (True, b"waited"), outcome.error
    assert process_of(host).pid != old_pid


async def test_builtin_noop_runs_next_to_script_plugins(probe_spec):
    async with PluginHost([probe_spec, builtin_spec("noop")]) as host:
        assert {s.name: s.state for s in host.statuses()} == {"probe": "healthy", "noop": "healthy"}
        outcome = await host.execute("noop", "job", {"text": "noop says hi"})
        assert (outcome.success, outcome.output) == (True, b"noop says hi")
        unknown = await host.execute("nope", "job", {})
        assert not unknown.success
        assert "no executor plugin named 'nope'" in unknown.error
