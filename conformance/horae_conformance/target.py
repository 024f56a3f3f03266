"""Which plugin to check and with which job configs: a discovered plugin or a command line.

Configs come from three places, first found wins: the command line (`--echo-config` …), the
plugin's PluginSpec (`conformance`, for Python packages), then the plugin's own
`PluginInfo/Describe` answer (`conformance_configs`), which the run context asks for lazily.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from horae.host.discovery import discover_plugins
from horae_sdk.spec import PluginKind, PluginSpec

# The configs a suite can use: executors need echo/sleep/flood; `process` is a processor's config.
CONFIG_KEYS = ("echo", "sleep", "flood", "process")
EXECUTABLE_PREFIXES = ("horae-executor-", "horae-processor-", "dkron-executor-")


class TargetError(ValueError):
    """The plugin or a config given on the command line cannot be used; the message says why."""


@dataclass(frozen=True)
class Target:
    spec: PluginSpec
    # Configs given on the command line, keyed as CONFIG_KEYS.
    configs: dict[str, dict[str, str]] = field(default_factory=dict)

    def static_config(self, key: str) -> dict[str, str] | None:
        """The config for `key` from the command line, else from the spec; None when neither has it."""
        if key in self.configs:
            return self.configs[key]
        return (self.spec.conformance or {}).get(key)


def parse_config(text: str, what: str) -> dict[str, str]:
    """A job config given as a JSON object; non-string values become their JSON text (`true`, `3`)."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise TargetError(f"{what} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise TargetError(f"{what} must be a JSON object of config keys, got {type(value).__name__}")
    return {str(key): item if isinstance(item, str) else json.dumps(item) for key, item in value.items()}


def spec_from_command(kind: PluginKind, argv: Sequence[str]) -> PluginSpec:
    """A spec for `-- CMD...`: named after the executable, without a `horae-executor-` style prefix."""
    if not argv:
        raise TargetError("no plugin command after `--`")
    name = os.path.basename(argv[0])
    for prefix in EXECUTABLE_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
            break
    return PluginSpec(kind=kind, name=name, argv=list(argv), source="command line")


def discovered_spec(kind: PluginKind, name: str, plugin_dirs: Iterable[str]) -> PluginSpec:
    """The spec the agent would use for plugin `name`: entry points first, then the plugin dirs."""
    found = discover_plugins(list(plugin_dirs))
    for spec in found.plugins:
        if (spec.kind, spec.name) == (kind, name):
            return spec
    known = sorted(spec.name for spec in found.plugins if spec.kind == kind)
    problems = "".join(f"\n  {problem}" for problem in found.problems)
    raise TargetError(f"no {kind} named {name!r} was found (known: {', '.join(known) or 'none'}){problems}")
