"""Find plugins: Python packages through the `horae` entry point, then executables in plugin dirs.

Built-in plugins come through the same entry point as any third-party package. A name already
found is not replaced by a later one; the clash is reported so an operator can see it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from horae_sdk.spec import ENTRY_POINT_GROUP, PROJECT_NAME, HookSpecs, PluginSpec

log = logging.getLogger("horae.host.discovery")

# Executable name prefix -> plugin kind. `dkron-executor-*` are Dkron's own executor binaries.
EXECUTABLE_PREFIXES = {
    "horae-executor-": "executor",
    "horae-processor-": "processor",
    "dkron-executor-": "executor",
}
DEFAULT_PLUGIN_DIRS = ("/etc/horae/plugins",)


@dataclass
class Discovery:
    plugins: list[PluginSpec] = field(default_factory=list)
    # What could not be used, one sentence each (a broken entry point, a name clash).
    problems: list[str] = field(default_factory=list)


def discover_plugins(plugin_dirs: Iterable[str] = (), entry_points: bool = True) -> Discovery:
    found = Discovery()
    if entry_points:
        for spec in _from_entry_points(found.problems):
            _add(found, spec)
    for directory in plugin_dirs:
        for spec in _from_directory(directory):
            _add(found, spec)
    return found


def _add(found: Discovery, spec: PluginSpec) -> None:
    for known in found.plugins:
        if (known.kind, known.name) == (spec.kind, spec.name):
            found.problems.append(
                f"{spec.kind} {spec.name!r} from {spec.source} ignored: already provided by {known.source}"
            )
            return
    found.plugins.append(spec)


def _from_entry_points(problems: list[str]) -> list[PluginSpec]:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(HookSpecs)
    try:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except Exception as error:  # one broken package must not hide the others' plugins
        problems.append(f"loading the {ENTRY_POINT_GROUP!r} entry points failed: {error}")
    source_of = {id(plugin): dist.project_name for plugin, dist in manager.list_plugin_distinfo()}
    specs: list[PluginSpec] = []
    for plugin in manager.get_plugins():
        source = source_of.get(id(plugin), getattr(plugin, "__name__", "?"))
        hook = getattr(plugin, "horae_plugins", None)
        if hook is None:
            problems.append(f"package {source} declares the {ENTRY_POINT_GROUP!r} entry point but no hook")
            continue
        try:
            returned = hook()
        except Exception as error:
            problems.append(f"package {source}: horae_plugins() raised {type(error).__name__}: {error}")
            continue
        for spec in returned or []:
            if not isinstance(spec, PluginSpec) or spec.kind not in ("executor", "processor"):
                problems.append(f"package {source}: horae_plugins() returned {spec!r}, not a PluginSpec")
                continue
            specs.append(dataclasses.replace(spec, source=spec.source or source))
    return specs


def _from_directory(directory: str) -> list[PluginSpec]:
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    specs = []
    for file_name in names:
        path = os.path.abspath(os.path.join(directory, file_name))
        for prefix, kind in EXECUTABLE_PREFIXES.items():
            if file_name.startswith(prefix) and len(file_name) > len(prefix):
                if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                    log.warning("plugin file %s is not executable; skipped", path)
                    break
                specs.append(PluginSpec(kind=kind, name=file_name[len(prefix) :], argv=[path], source=path))  # type: ignore[arg-type]
                break
    return specs
