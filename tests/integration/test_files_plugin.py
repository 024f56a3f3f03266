"""The built-in files processor, run as a real plugin process: one file per execution, written atomically."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from horae.host.supervisor import PluginHost
from horae_sdk import Execution
from tests.support import REPO_ROOT, builtin_spec

STARTED = datetime.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)
CONFORMANCE = [str(Path(sys.executable).with_name("horae-conformance"))]


@pytest.fixture
async def host():
    async with PluginHost([builtin_spec("files", "processor")]) as plugin_host:
        yield plugin_host


def execution(output: bytes, *, job: str = "backup", execution_id: str = "exec-1") -> Execution:
    return Execution(
        job_name=job,
        success=True,
        output=output,
        node_name="node-a",
        group=7,
        attempt=1,
        started_at=STARTED,
        finished_at=STARTED + datetime.timedelta(seconds=3),
        id=execution_id,
        exit_code=0,
    )


async def process(host: PluginHost, sent: Execution, config: dict[str, str]) -> Execution:
    return Execution.from_proto(await host.process("files", sent.to_proto(), config))


async def test_the_output_goes_to_its_own_file_and_is_replaced_by_the_path(host, tmp_path):
    sent = execution(b"line one\nline two\n")
    processed = await process(host, sent, {"log_dir": str(tmp_path)})

    path = tmp_path / "backup" / "exec-1.log"
    # As Dkron: the stored output says where the output went; nothing else changes.
    assert processed == sent.replace(output=str(path).encode())
    assert path.read_bytes() == b"line one\nline two\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["exec-1.log"]  # no temp file left behind


async def test_forward_true_keeps_the_output_and_still_writes_the_file(host, tmp_path):
    sent = execution(b"keep me", execution_id="exec-2")
    processed = await process(host, sent, {"log_dir": str(tmp_path), "forward": "true"})
    assert processed == sent
    assert (tmp_path / "backup" / "exec-2.log").read_bytes() == b"keep me"


@pytest.mark.parametrize("value", ["false", "0", "", "maybe"])
async def test_forward_false_empty_and_unparsable_values_replace_the_output(host, tmp_path, value):
    processed = await process(host, execution(b"secret"), {"log_dir": str(tmp_path), "forward": value})
    assert processed.output == str(tmp_path / "backup" / "exec-1.log").encode()


async def test_every_execution_gets_a_file_even_when_ids_repeat_across_jobs(host, tmp_path):
    config = {"log_dir": str(tmp_path)}
    # horae's ids are unique per job: two jobs due at the same slot on one node share an id.
    await process(host, execution(b"a1", job="alpha", execution_id="100-node-a-1"), config)
    await process(host, execution(b"a2", job="alpha", execution_id="200-node-a-1"), config)
    await process(host, execution(b"b1", job="beta", execution_id="100-node-a-1"), config)
    assert (tmp_path / "alpha" / "100-node-a-1.log").read_bytes() == b"a1"
    assert (tmp_path / "alpha" / "200-node-a-1.log").read_bytes() == b"a2"
    assert (tmp_path / "beta" / "100-node-a-1.log").read_bytes() == b"b1"


async def test_an_execution_without_an_id_is_named_by_dkrons_key(host, tmp_path):
    processed = await process(host, execution(b"x", execution_id=""), {"log_dir": str(tmp_path)})
    nanos = int(STARTED.timestamp()) * 1_000_000_000 + 123456000
    expected = tmp_path / "backup" / f"{nanos}-node-a.log"
    assert processed.output == str(expected).encode()
    assert expected.read_bytes() == b"x"


async def test_names_cannot_leave_the_log_dir(host, tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    processed = await process(host, execution(b"x", job="..", execution_id="../../escape"), {"log_dir": str(log_dir)})
    written = Path(processed.output.decode())
    assert written.parent.parent == log_dir
    assert written.read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


async def test_no_size_cap_by_default_and_max_bytes_keeps_the_tail(host, tmp_path):
    big = b"".join(b"%07d\n" % number for number in range(500_000))  # 4 MB: well above Dkron's 256 KB
    await process(host, execution(big, execution_id="big"), {"log_dir": str(tmp_path)})
    assert (tmp_path / "backup" / "big.log").read_bytes() == big

    await process(host, execution(big, execution_id="cut"), {"log_dir": str(tmp_path), "max_bytes": "1K"})
    assert (tmp_path / "backup" / "cut.log").read_bytes() == big[-1024:]
    await process(host, execution(b"0123456789", execution_id="exact"), {"log_dir": str(tmp_path), "max_bytes": "10"})
    assert (tmp_path / "backup" / "exact.log").read_bytes() == b"0123456789"


async def test_a_bad_max_bytes_keeps_the_output_with_an_error_naming_the_key(host, tmp_path):
    processed = await process(host, execution(b"original\n"), {"log_dir": str(tmp_path), "max_bytes": "lots"})
    first, rest = processed.output.split(b"\n", 1)
    assert b"max_bytes 'lots' is not a size" in first
    assert rest == b"original\n"
    assert not (tmp_path / "backup").exists()


async def test_a_missing_log_dir_is_reported_in_the_output_and_the_plugin_keeps_serving(host, tmp_path):
    missing = tmp_path / "no-such-dir"
    processed = await process(host, execution(b"original\n"), {"log_dir": str(missing)})
    first, rest = processed.output.split(b"\n", 1)
    assert first.startswith(b"files: the output was not written to a file: log_dir")
    assert str(missing).encode() in first and b"does not exist" in first
    assert rest == b"original\n"  # not lost
    assert not missing.exists()

    processed = await process(host, execution(b"fine"), {"log_dir": str(tmp_path)})
    assert processed.output == str(tmp_path / "backup" / "exec-1.log").encode()


@contextlib.contextmanager
def unwritable_directory(path: Path):
    """A directory nobody can create entries in, root included (root ignores mode bits: make it immutable)."""
    path.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    else:
        path.chmod(0o555)
    try:
        with pytest.raises(OSError):
            (path / "probe").mkdir()
        yield path
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True, capture_output=True)
        path.chmod(0o755)


async def test_an_unwritable_log_dir_is_reported_in_the_output(host, tmp_path):
    with unwritable_directory(tmp_path / "locked") as locked:
        processed = await process(host, execution(b"original\n"), {"log_dir": str(locked), "forward": "true"})
    first, rest = processed.output.split(b"\n", 1)
    assert first.startswith(b"files: the output was not written to a file: cannot write")
    assert str(locked / "backup" / "exec-1.log").encode() in first
    assert b"Operation not permitted" in first or b"Permission denied" in first
    assert rest == b"original\n"


async def test_the_final_name_never_shows_partial_content(host, tmp_path):
    """Concurrent rewrites of one file, read all the while: every read is one whole payload."""
    size = 1024 * 1024
    payloads = [bytes([ord("a") + number]) * size for number in range(12)]
    path = tmp_path / "backup" / "same.log"
    seen: list[bytes] = []
    names: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                names.update(os.listdir(path.parent))
                seen.append(path.read_bytes())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        config = {"log_dir": str(tmp_path)}
        for batch in (payloads[:6], payloads[6:]):
            await asyncio.gather(*(process(host, execution(data, execution_id="same"), config) for data in batch))
    finally:
        stop.set()
        watcher.join()

    assert seen, "the watcher never saw the file"
    for content in seen:
        assert len(content) == size and content == content[:1] * size, "a partial or mixed file was visible"
    # Besides the final name, only the processor's dot-named temp files ever showed up.
    assert all(name == "same.log" or (name.startswith(".same.log.") and name.endswith(".tmp")) for name in names)
    assert os.listdir(path.parent) == ["same.log"]
    assert path.read_bytes() in payloads


async def test_describe_serves_the_schema(host):
    description = host.plugin("processor", "files").description
    assert description is not None and description.kind == "processor"
    schema = json.loads(description.config_schema_json)
    assert set(schema["properties"]) == {"log_dir", "forward", "max_bytes"}
    assert schema["additionalProperties"] is False


def test_files_processor_passes_conformance(tmp_path):
    cli = CONFORMANCE if Path(CONFORMANCE[0]).exists() else [sys.executable, "-m", "horae_conformance"]
    done = subprocess.run(
        [
            *cli,
            "--json",
            "processor",
            "--plugin",
            "files",
            "--strict",
            "--process-config",
            json.dumps({"log_dir": str(tmp_path)}),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    report = json.loads(done.stdout)
    failed = {row["case"]: row["reason"] for row in report["results"] if row["result"] != "passed"}
    assert not failed, failed
    assert done.returncode == 0
    # Its Process calls went through the processor: one file per execution, under the job's directory.
    written = list((tmp_path / "horae-conformance").glob("conformance-*.log"))
    assert len(written) >= 17
    assert all(path.read_bytes().startswith(b"horae-conformance output") for path in written)
    shutil.rmtree(tmp_path / "horae-conformance")
