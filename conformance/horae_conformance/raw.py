"""Start a plugin outside the launcher, to watch what the launcher hides: its raw stdout and exit.

The handshake-level cases need the exact bytes a plugin prints (noise before the handshake, what
it does without a cookie or with versions it lacks); the launcher only keeps the first line.
The process still runs under `setpriv --pdeathsig`, in its own process group, like the launcher's.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from horae.host.launcher import plugin_environment, spawn_plugin
from horae.host.plugin_process import kill_group
from horae_sdk import handshake
from horae_sdk.spec import PluginSpec

MAX_STDOUT_BYTES = 64 * 1024
MAX_STDERR_BYTES = 64 * 1024
# Anything shaped like `CORE|APP|NETWORK|ADDRESS…` is taken for the handshake line; its
# well-formedness is judged separately, by the same parser the launcher uses.
HANDSHAKE_SHAPE = re.compile(r"^\s*\d+\|\d+\|[^|]*\|")


def looks_like_handshake(line: str) -> bool:
    return bool(HANDSHAKE_SHAPE.match(line))


def environment(
    spec: PluginSpec, socket_dir: str, versions: Iterable[int] = (handshake.APP_PROTOCOL_VERSION,), cookie: bool = True
) -> dict[str, str]:
    """The launcher's environment for `spec`; without the magic cookies when `cookie` is False."""
    env = plugin_environment(spec, versions, socket_dir, None)
    if not cookie:
        for key in handshake.COOKIES:
            env.pop(key, None)
    return env


@dataclass
class Observation:
    """What a raw plugin printed on stdout up to its handshake line (or its exit, or the timeout)."""

    lines: list[str]
    handshake_index: int | None
    exit_code: int | None
    timed_out: bool
    stderr: str
    # Filled in by the caller: why the handshake's address is not served, "" when it is.
    address_problem: str = ""

    @property
    def handshake_line(self) -> str | None:
        return None if self.handshake_index is None else self.lines[self.handshake_index]

    def stderr_note(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return f"; stderr: {' | '.join(lines[-3:])[:300]}" if lines else "; stderr was empty"


class RawPlugin:
    """One plugin process started with a given environment; `observe()` reads, `kill()` ends it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._stderr = bytearray()
        self._stderr_task = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, spec: PluginSpec, env: dict[str, str]) -> RawPlugin:
        return cls(await spawn_plugin(spec, env))

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read_stderr(self) -> None:
        while chunk := await self.process.stderr.read(65536):
            if len(self._stderr) < MAX_STDERR_BYTES:
                self._stderr.extend(chunk[: MAX_STDERR_BYTES - len(self._stderr)])

    async def observe(self, timeout: float) -> Observation:
        """Read stdout until a handshake-shaped line, end of file, or `timeout` seconds."""
        received = bytearray()
        lines: list[str] = []
        timed_out = False

        async def read() -> int | None:
            while len(received) < MAX_STDOUT_BYTES:
                chunk = await self.process.stdout.read(4096)
                if not chunk:
                    break
                received.extend(chunk)
                while b"\n" in received:
                    raw, _, rest = bytes(received).partition(b"\n")
                    received[:] = rest
                    lines.append(raw.decode(errors="replace").rstrip("\r"))
                    if looks_like_handshake(lines[-1]):
                        return len(lines) - 1
            if received:  # a last line without its line end
                lines.append(bytes(received).decode(errors="replace"))
                if looks_like_handshake(lines[-1]):
                    return len(lines) - 1
            return None

        try:
            index = await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            index, timed_out = None, True
        exit_code = None
        if index is None and not timed_out:
            # End of stdout: the plugin has exited or is about to; give it a moment to say why.
            with contextlib.suppress(TimeoutError):
                exit_code = await asyncio.wait_for(self.process.wait(), 2.0)
            await asyncio.wait([self._stderr_task], timeout=1.0)
        return Observation(lines, index, exit_code, timed_out, self.stderr_text())

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None when the plugin is still running after `timeout` seconds."""
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            return None
        await asyncio.wait([self._stderr_task], timeout=1.0)
        return code

    async def read_all_stdout(self) -> bytes:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self.process.stdout.read(MAX_STDOUT_BYTES), 1.0)
        return b""

    def stderr_text(self) -> str:
        return bytes(self._stderr).decode(errors="replace")

    async def kill(self) -> None:
        # The whole group, even after the plugin exited: processes it started must not outlive the case.
        kill_group(self.process.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 5.0)
        self._stderr_task.cancel()
