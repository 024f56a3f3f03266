"""Everything a case may use, and the bookkeeping that stops every process a case started.

Cases that only call the plugin share one plugin process (starting one per case would dominate
the run time); cases that end a process (shutdown, host death) or need raw stdout start their
own. After each case the runner calls `release_case()`, which kills what that case started; a
case that failed also discards the shared process, so the next case starts from a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import grpc
import psutil

from horae.host.launcher import PluginStartError, launch_plugin
from horae.host.plugin_process import PluginProcess, kill_group
from horae_conformance.raw import RawPlugin
from horae_conformance.results import CaseFailed, CaseSkipped
from horae_conformance.target import Target, TargetError, parse_config
from horae_sdk import handshake

log = logging.getLogger("horae_conformance")

CONFIG_HINTS = {
    "echo": "--echo-config (output must contain `horae-conformance`)",
    "sleep": "--sleep-config (runs at least 10 s unless cancelled)",
    "flood": "--flood-config (at least 10 MiB of output)",
    "process": "--process-config",
}


class RunContext:
    def __init__(self, target: Target, socket_dir: str, handshake_timeout: float, strict: bool = False) -> None:
        self.target = target
        self.spec = target.spec
        self.socket_dir = socket_dir
        self.handshake_timeout = handshake_timeout
        # Warning-level cases (a plugin that does not watch its parent) fail instead of skipping.
        self.strict = strict
        # What one case observed for another to judge too (one raw start serves two cases).
        self.memo: dict[str, object] = {}
        self._shared: PluginProcess | None = None
        self._shared_error = ""
        self._described: dict[str, dict[str, str]] | None = None
        self._plugins: list[PluginProcess] = []
        self._raw: list[RawPlugin] = []
        self._helpers: list[asyncio.subprocess.Process] = []
        self._pids: list[psutil.Process] = []

    # -- processes ---------------------------------------------------------------------------

    async def launch(self, versions: Iterable[int] = (handshake.APP_PROTOCOL_VERSION,)) -> PluginProcess:
        """A plugin process of this case's own, through horae's launcher; PluginStartError as it raises."""
        plugin = await launch_plugin(
            self.spec, socket_dir=self.socket_dir, handshake_timeout=self.handshake_timeout, versions=versions
        )
        self._plugins.append(plugin)
        return plugin

    async def start_raw(self, env: dict[str, str]) -> RawPlugin:
        """A plugin process outside the launcher, for the handshake-level cases."""
        try:
            raw = await RawPlugin.start(self.spec, env)
        except OSError as error:
            raise CaseFailed(f"cannot start {self.spec.argv[0]}: {error.strerror or error}") from None
        self._raw.append(raw)
        return raw

    def own_helper(self, process: asyncio.subprocess.Process) -> None:
        self._helpers.append(process)

    def own_pid(self, process: psutil.Process) -> None:
        """A plugin started by someone else (a host helper) that must not outlive the case."""
        self._pids.append(process)

    async def shared_plugin(self) -> PluginProcess:
        """The plugin process the calling cases share; started on first use and after a failure."""
        if self._shared is not None and self._shared.returncode is None:
            return self._shared
        if self._shared is not None:
            await self.discard_shared()
        if self._shared_error:
            raise CaseFailed(f"the plugin did not start (see the first case that started it): {self._shared_error}")
        try:
            self._shared = await launch_plugin(
                self.spec, socket_dir=self.socket_dir, handshake_timeout=self.handshake_timeout
            )
        except PluginStartError as error:
            self._shared_error = str(error)
            raise CaseFailed(f"the plugin did not start: {error}") from None
        return self._shared

    async def discard_shared(self) -> None:
        if self._shared is not None:
            shared, self._shared = self._shared, None
            await shared.stop(grace=0)

    async def release_case(self) -> None:
        """Kill every process the case that just ended started (not the shared plugin)."""
        plugins, self._plugins = self._plugins, []
        raws, self._raw = self._raw, []
        helpers, self._helpers = self._helpers, []
        pids, self._pids = self._pids, []
        for helper in helpers:
            with contextlib.suppress(ProcessLookupError):
                helper.kill()
        for process in pids:
            with contextlib.suppress(psutil.Error):
                if process.is_running():
                    kill_group(process.pid)
                    process.kill()
        await asyncio.gather(
            *(plugin.stop(grace=0) for plugin in plugins),
            *(raw.kill() for raw in raws),
            *(helper.wait() for helper in helpers),
            return_exceptions=True,
        )

    async def close(self) -> None:
        await self.release_case()
        await self.discard_shared()

    # -- configs -----------------------------------------------------------------------------

    async def config(self, key: str) -> dict[str, str] | None:
        """The job config for `key`: command line, then PluginSpec, then the plugin's Describe."""
        static = self.target.static_config(key)
        if static is not None:
            return dict(static)
        described = await self._described_configs()
        return dict(described[key]) if key in described else None

    async def require_config(self, key: str) -> dict[str, str]:
        config = await self.config(key)
        if config is None:
            raise CaseSkipped(f"no {key} config: give {CONFIG_HINTS[key]} as JSON, or serve it from Describe")
        return config

    async def _described_configs(self) -> dict[str, dict[str, str]]:
        if self._described is None:
            plugin = await self.shared_plugin()
            self._described = {}
            try:
                description = await plugin.describe()
            except grpc.aio.AioRpcError as error:
                log.warning("Describe failed: %s: %s", error.code().name, error.details())
                description = None
            for key, text in (description.conformance_configs if description else {}).items():
                try:
                    self._described[key] = parse_config(text, f"Describe's {key} config")
                except TargetError as error:
                    log.warning("%s", error)
        return self._described
