"""Helpers shared by the tests: paths, plugin specs for scripts, and polling with a deadline."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from horae.host.discovery import discover_plugins
from horae_sdk.spec import PluginSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_EXAMPLE_DIR = REPO_ROOT / "plugin_sdk" / "examples" / "node-executor"
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"


def builtin_spec(name: str, kind: str = "executor") -> PluginSpec:
    """The spec discovery finds for a built-in plugin, exactly as the agent would use it."""
    for spec in discover_plugins().plugins:
        if (spec.kind, spec.name) == (kind, name):
            return spec
    raise LookupError(f"no built-in {kind} {name!r}")


def script_spec(tmp_path: Path, source: str, name: str = "script", kind: str = "executor") -> PluginSpec:
    """Write a Python plugin program to `tmp_path` and return a spec that runs it."""
    path = tmp_path / f"{kind}-{name}.py"
    path.write_text(textwrap.dedent(source))
    return PluginSpec(kind=kind, name=name, argv=[sys.executable, str(path)], source=str(path))  # type: ignore[arg-type]


def wait_until(
    condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> object:
    """Poll `condition` until it returns something truthy; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or condition}")
        time.sleep(interval)


async def async_wait_until(
    condition: Callable[[], object | Awaitable[object]], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or condition}")
        await asyncio.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")
