"""horae's built-in plugins, each a program of its own (`python -m horae_plugins.<name>`).

They are discovered through the `horae` entry point like any third-party package: this module
implements the `horae_plugins()` hook.
"""

from __future__ import annotations

import sys

from horae_sdk import PluginSpec, hookimpl

# name -> kind; each is the module horae_plugins.<name>. The job configs horae-conformance
# needs (echo, sleep, flood) come from each plugin's Describe.
BUILTIN_PLUGINS = {
    "noop": "executor",
    "shell": "executor",
    "nats": "executor",
    "rabbitmq": "executor",
    "kafka": "executor",
    "http": "executor",
    "log": "processor",
    "files": "processor",
    "syslog": "processor",
    "fluent": "processor",
}


@hookimpl
def horae_plugins() -> list[PluginSpec]:
    return [
        PluginSpec(
            kind=kind,  # type: ignore[arg-type]
            name=name,
            argv=[sys.executable, "-m", f"horae_plugins.{name}"],
        )
        for name, kind in BUILTIN_PLUGINS.items()
    ]
