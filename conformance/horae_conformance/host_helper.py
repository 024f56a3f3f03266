"""A stand-in host for the "plugin exits when the host dies" cases: run as its own process.

The conformance runner cannot kill itself to see whether a plugin outlives its host, so it
starts this program, which starts the plugin, prints `pid <N>` as soon as it has one (so the
runner can always clean up), then `ready` once the plugin has shaken hands (or `error: …`); the
runner then SIGKILLs it and watches the plugin. Two modes:

- `launcher`: start the plugin through horae's launcher (setpriv --pdeathsig, from this
  program's only thread, as the agent does), which is what guarantees no orphans in production;
- `plain`: start the plugin's argv directly, stdout and stderr to files, so only the plugin's
  own parent watch (the horae SDK's) can make it exit; closed pipes cannot.

Usage: python -m horae_conformance.host_helper launcher|plain SOCKET_DIR TIMEOUT SPEC_JSON
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time

from horae.host.launcher import PluginStartError, launch_plugin, plugin_environment
from horae_conformance.raw import looks_like_handshake
from horae_sdk import handshake
from horae_sdk.spec import PluginSpec

POLL_SECONDS = 0.02


def spec_to_json(spec: PluginSpec) -> str:
    return json.dumps({"kind": spec.kind, "name": spec.name, "argv": spec.argv, "env": spec.env})


def spec_from_json(text: str) -> PluginSpec:
    data = json.loads(text)
    return PluginSpec(kind=data["kind"], name=data["name"], argv=data["argv"], env=data.get("env", {}))


async def _through_launcher(spec: PluginSpec, socket_dir: str, timeout: float) -> None:
    plugin = await launch_plugin(spec, socket_dir=socket_dir, handshake_timeout=timeout)
    _say(f"pid {plugin.pid}")
    _say("ready")
    # Keep the loop (and so the plugin's transport) alive: closing it would kill the plugin.
    await asyncio.Event().wait()


def _plain(spec: PluginSpec, socket_dir: str, timeout: float) -> None:
    env = plugin_environment(spec, (handshake.APP_PROTOCOL_VERSION,), socket_dir, None)
    output = tempfile.NamedTemporaryFile(dir=socket_dir, prefix="out", delete=False)  # noqa: SIM115
    errors = tempfile.NamedTemporaryFile(dir=socket_dir, prefix="err", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        spec.argv, stdin=subprocess.DEVNULL, stdout=output, stderr=errors, env=env, start_new_session=True
    )
    _say(f"pid {process.pid}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(output.name, "rb") as printed:
            lines = printed.read(65536).decode(errors="replace").split("\n")[:-1]
        if any(looks_like_handshake(line) for line in lines):
            _say("ready")
            return
        if process.poll() is not None:
            raise PluginStartError(f"the plugin exited with code {process.returncode} before its handshake")
        time.sleep(POLL_SECONDS)
    raise PluginStartError(f"no handshake within {timeout:g}s")


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str]) -> int:
    mode, socket_dir, timeout, spec_json = argv
    spec = spec_from_json(spec_json)
    try:
        if mode == "launcher":
            asyncio.run(_through_launcher(spec, socket_dir, float(timeout)))
        else:
            _plain(spec, socket_dir, float(timeout))
            # Wait to be killed; never exit on our own while the plugin runs.
            while True:
                time.sleep(3600)
    except PluginStartError as error:
        _say(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
