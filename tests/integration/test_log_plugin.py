"""The built-in log processor, run as a real plugin process: Dkron's `forward` semantics, output in the agent's log."""

from __future__ import annotations

import datetime
import logging

import pytest

from horae.host.supervisor import PluginHost
from horae_sdk import Execution
from tests.support import async_wait_until, builtin_spec

PLUGIN_LOGGER = "horae.plugin.log"
STARTED = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
async def host(caplog):
    caplog.set_level(logging.INFO, logger=PLUGIN_LOGGER)
    async with PluginHost([builtin_spec("log", "processor")]) as plugin_host:
        yield plugin_host


def execution(output: bytes, *, success: bool = True, execution_id: str = "exec-1") -> Execution:
    return Execution(
        job_name="backup",
        success=success,
        output=output,
        node_name="node-a",
        group=7,
        attempt=2,
        started_at=STARTED,
        finished_at=STARTED + datetime.timedelta(seconds=3),
        id=execution_id,
        exit_code=0 if success else 4,
    )


def plugin_records(caplog, execution_id: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == PLUGIN_LOGGER and getattr(record, "fields", {}).get("execution") == execution_id
    ]


async def logged_block(caplog, execution_id: str) -> list[logging.LogRecord]:
    """The plugin's log records for one execution, once its END line has arrived."""
    await async_wait_until(
        lambda: any(r.getMessage() == "----- END OUTPUT -----" for r in plugin_records(caplog, execution_id)),
        timeout=10,
        what=f"the log lines of {execution_id}",
    )
    return plugin_records(caplog, execution_id)


async def test_output_goes_to_the_agent_log_and_is_replaced_by_default(host, caplog):
    original = execution(b"line one\nline two\n")
    processed = Execution.from_proto(await host.process("log", original.to_proto(), {}))

    # Dkron's forward=false: the stored output says where the output went; nothing else changes.
    assert processed == original.replace(output=b"Output in horae log")

    records = await logged_block(caplog, "exec-1")
    assert [r.getMessage() for r in records] == [
        "----- BEGIN OUTPUT job=backup execution=exec-1 -----",
        "line one",
        "line two",
        "----- END OUTPUT -----",
    ]
    assert all(r.levelno == logging.INFO for r in records)
    assert all(r.fields["job"] == "backup" and r.fields["plugin"] == "processor/log" for r in records)


async def test_forward_true_keeps_the_output(host, caplog):
    original = execution(b"keep me", execution_id="exec-2")
    processed = Execution.from_proto(await host.process("log", original.to_proto(), {"forward": "true"}))
    assert processed == original
    records = await logged_block(caplog, "exec-2")
    assert "keep me" in [r.getMessage() for r in records]


async def test_forward_false_and_unparsable_values_replace_the_output(host):
    for value in ("false", "0", "maybe"):
        processed = await host.process("log", execution(b"secret").to_proto(), {"forward": value})
        assert processed.output == b"Output in horae log", value


async def test_a_failed_execution_is_logged_as_a_warning(host, caplog):
    failed = execution(b"it broke\n", success=False, execution_id="exec-3")
    await host.process("log", failed.to_proto(), {"forward": "true"})
    records = await logged_block(caplog, "exec-3")
    assert [r.getMessage() for r in records][1] == "it broke"
    assert all(r.levelno == logging.WARNING for r in records)


async def test_long_lines_and_binary_output_still_arrive_as_one_record_each(host, caplog):
    output = b"x" * 10_000 + b"\n\xff\xfe not utf-8\n"
    await host.process("log", execution(output, execution_id="exec-4").to_proto(), {})
    messages = [r.getMessage() for r in await logged_block(caplog, "exec-4")]
    assert len(messages) == 4
    assert messages[1] == "x" * 2000 + "… (8000 more characters)"
    assert messages[2] == "\ufffd\ufffd not utf-8"


async def test_describe_serves_the_schema(host):
    description = host.plugin("processor", "log").description
    assert description is not None
    assert description.kind == "processor"
    assert '"forward"' in description.config_schema_json
