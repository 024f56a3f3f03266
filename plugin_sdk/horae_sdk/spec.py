"""What a plugin package tells horae about its plugins: the `horae` pluggy hook and PluginSpec.

A package declares the entry point group `horae`; the module it names implements
`horae_plugins()` (marked with `hookimpl`) and returns one PluginSpec per plugin it ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pluggy

PROJECT_NAME = "horae"
ENTRY_POINT_GROUP = "horae"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

PluginKind = Literal["executor", "processor"]


@dataclass(frozen=True)
class PluginSpec:
    """How to start one plugin: its kind, its name and the command line of its program.

    `conformance` holds the job configs horae-conformance needs for an executor, keyed
    `echo`, `sleep` and `flood`, each a dict of config strings. `source` says where the spec
    was found (a package name or a path); discovery fills it in.
    """

    kind: PluginKind
    name: str
    argv: list[str]
    conformance: dict[str, dict[str, str]] | None = None
    source: str = ""
    env: dict[str, str] = field(default_factory=dict)


class HookSpecs:
    """The hooks a plugin package may implement."""

    @hookspec
    def horae_plugins(self) -> list[PluginSpec]:  # type: ignore[empty-body]
        """Return the plugins this package provides."""
