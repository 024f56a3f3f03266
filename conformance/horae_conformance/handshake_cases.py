"""Cases about starting a plugin: the cookie, the handshake line, stdout noise, version negotiation.

These watch the plugin's raw stdout (see raw.py) because the launcher only keeps its first line;
version negotiation also goes through the launcher, since refusing a bad version is its job.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat

from horae.host.launcher import PluginStartError
from horae_conformance.context import RunContext
from horae_conformance.raw import Observation, environment
from horae_conformance.results import CaseFailed
from horae_sdk import handshake

NO_COOKIE_EXIT_SECONDS = 5.0
# Versions no plugin speaks today: offered alone, the plugin must refuse or answer another one.
UNOFFERED_VERSIONS = (98, 99)
_OBSERVATION = "raw-handshake"


def shown(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


async def refuses_without_cookie(ctx: RunContext) -> str:
    raw = await ctx.start_raw(environment(ctx.spec, ctx.socket_dir, cookie=False))
    code = await raw.wait_exit(NO_COOKIE_EXIT_SECONDS)
    stdout = await raw.read_all_stdout()
    if code is None:
        raise CaseFailed(f"still running {NO_COOKIE_EXIT_SECONDS:g}s after being started without the magic cookie")
    if code == 0:
        raise CaseFailed("exited with code 0 without the magic cookie; it must refuse (exit non-zero)")
    if stdout:
        raise CaseFailed(f"exited {code} but printed {shown(stdout.decode(errors='replace'))} on stdout first")
    explanation = next((line for line in raw.stderr_text().splitlines() if line.strip()), "")
    return f"exit {code}: {shown(explanation)}" if explanation else f"exit {code} (nothing on stderr)"


async def _observe(ctx: RunContext) -> Observation:
    """One raw start, shared by the two handshake-line cases."""
    cached = ctx.memo.get(_OBSERVATION)
    if isinstance(cached, Observation):
        return cached
    raw = await ctx.start_raw(environment(ctx.spec, ctx.socket_dir))
    observation = await raw.observe(ctx.handshake_timeout)
    if observation.handshake_index is not None:
        # Judge the address while the plugin still serves it.
        observation.address_problem = _address_problem(observation.handshake_line or "")
    ctx.memo[_OBSERVATION] = observation
    return observation


def _address_problem(line: str) -> str:
    """Why the address in `line` is not being served, or "" when it is (or cannot be judged)."""
    try:
        shake = handshake.parse_handshake(line)
    except handshake.HandshakeError:
        return ""
    if shake.network == "unix":
        try:
            mode = os.stat(shake.address).st_mode
        except OSError as error:
            return f"the unix socket {shake.address} does not exist when the line is printed ({error.strerror})"
        return "" if stat.S_ISSOCK(mode) else f"{shake.address} is not a unix socket"
    host, _, port = shake.address.rpartition(":")
    try:
        with contextlib.closing(socket.create_connection((host.strip("[]"), int(port)), timeout=2.0)):
            return ""
    except (OSError, ValueError) as error:
        return f"nothing accepts connections at {shake.address} when the line is printed ({error})"


def _no_handshake(observation: Observation, timeout: float) -> CaseFailed:
    if observation.timed_out:
        what = f"printed {len(observation.lines)} line(s) but no handshake" if observation.lines else "printed nothing"
        return CaseFailed(f"{what} within {timeout:g}s{observation.stderr_note()}")
    printed = f"after printing {shown(observation.lines[0])}" if observation.lines else "without printing anything"
    return CaseFailed(f"exited with code {observation.exit_code} {printed}{observation.stderr_note()}")


async def handshake_well_formed(ctx: RunContext) -> str:
    observation = await _observe(ctx)
    line = observation.handshake_line
    if line is None:
        raise _no_handshake(observation, ctx.handshake_timeout)
    try:
        handshake.parse_handshake(line)
    except handshake.HandshakeError as error:
        raise CaseFailed(str(error)) from None
    fields = line.split("|")
    if len(fields) > 6:
        raise CaseFailed(f"{len(fields)} fields: a 7th (multiplexing) is only for hosts that ask for it: {shown(line)}")
    if observation.address_problem:
        raise CaseFailed(observation.address_problem)
    return shown(line)


async def no_stdout_noise(ctx: RunContext) -> str:
    observation = await _observe(ctx)
    if observation.handshake_index is None:
        raise _no_handshake(observation, ctx.handshake_timeout)
    if observation.handshake_index > 0:
        noise = observation.lines[: observation.handshake_index]
        raise CaseFailed(
            f"printed {len(noise)} line(s) before the handshake, first {shown(noise[0])}; the host reads the "
            "first line as the handshake: log to stderr instead"
        )
    return "the handshake is the first line"


async def accepts_version_1(ctx: RunContext) -> str:
    plugin = await ctx.shared_plugin()
    if plugin.handshake.app_version != handshake.APP_PROTOCOL_VERSION:
        raise CaseFailed(f"offered {handshake.APP_PROTOCOL_VERSION}, the plugin chose {plugin.handshake.app_version}")
    return f"offered {handshake.APP_PROTOCOL_VERSION}, chose {plugin.handshake.app_version}"


async def refuses_unoffered_versions(ctx: RunContext) -> str:
    offered = ",".join(map(str, UNOFFERED_VERSIONS))
    raw = await ctx.start_raw(environment(ctx.spec, ctx.socket_dir, versions=UNOFFERED_VERSIONS))
    observation = await raw.observe(ctx.handshake_timeout)
    if observation.handshake_line is not None:
        chosen = observation.handshake_line.split("|")[1]
        if chosen.isdigit() and int(chosen) in UNOFFERED_VERSIONS:
            raise CaseFailed(f"offered only {offered}, the plugin claimed version {chosen}, which it does not speak")
        behaviour = f"answered version {chosen}"
    elif observation.timed_out:
        raise CaseFailed(f"offered only {offered}: neither exited nor answered within {ctx.handshake_timeout:g}s")
    elif observation.exit_code == 0:
        raise CaseFailed(f"offered only {offered}: exited with code 0; a refusal must exit non-zero")
    else:
        behaviour = f"exited {observation.exit_code}"
    try:
        await ctx.launch(versions=UNOFFERED_VERSIONS)
    except PluginStartError as error:
        message = re.sub(r"\s+", " ", str(error))
        return f"offered {offered}: the plugin {behaviour}; the launcher refused: {message}"
    raise CaseFailed(f"offered only {offered}: the plugin {behaviour} and the launcher accepted it")
