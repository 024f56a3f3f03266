"""Plugin discovery: executables in plugin directories, and packages through the `horae` entry point."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from horae.host.discovery import discover_plugins
from horae_plugins import BUILTIN_PLUGINS


def make_file(directory: Path, name: str, executable: bool = True) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def by_name(plugins):
    return {(spec.kind, spec.name): spec for spec in plugins}


def test_executables_in_a_plugin_dir_are_found_by_their_prefix(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    make_file(tmp_path, "horae-executor-x")
    make_file(tmp_path, "horae-processor-y")
    make_file(tmp_path, "dkron-executor-z")
    make_file(tmp_path, "horae-executor-notexec", executable=False)
    make_file(tmp_path, "README.md")
    make_file(tmp_path, "horae-executor-")  # a prefix without a name
    make_file(tmp_path, "dkron-processor-w")  # Dkron processors speak net/rpc: not a horae plugin
    make_file(tmp_path, "my-horae-executor-q")
    (tmp_path / "horae-executor-adir").mkdir()

    found = discover_plugins([str(tmp_path)], entry_points=False)

    plugins = by_name(found.plugins)
    assert set(plugins) == {("executor", "x"), ("processor", "y"), ("executor", "z")}
    for (_, name), spec in plugins.items():
        path = next(str(p) for p in tmp_path.iterdir() if p.name.endswith(f"-{name}"))
        assert spec.argv == [path]
        assert spec.source == path
        assert os.path.isabs(spec.argv[0])
    assert found.problems == []
    skipped = [r.getMessage() for r in caplog.records if "not executable" in r.getMessage()]
    assert any("horae-executor-notexec" in message for message in skipped)


def test_a_missing_plugin_dir_is_not_an_error(tmp_path):
    found = discover_plugins([str(tmp_path / "missing"), str(make_file(tmp_path, "a-file"))], entry_points=False)
    assert found.plugins == []
    assert found.problems == []


def test_a_name_found_twice_keeps_the_first_and_reports_the_clash(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    kept = make_file(first, "horae-executor-dup")
    ignored = make_file(second, "horae-executor-dup")
    make_file(second, "horae-processor-dup")  # same name, other kind: no clash

    found = discover_plugins([str(first), str(second)], entry_points=False)

    plugins = by_name(found.plugins)
    assert plugins[("executor", "dup")].argv == [str(kept)]
    assert ("processor", "dup") in plugins
    assert len(found.problems) == 1
    assert "'dup'" in found.problems[0]
    assert str(ignored) in found.problems[0]
    assert str(kept) in found.problems[0]


def test_builtins_come_through_the_entry_point_with_the_package_as_source():
    found = discover_plugins()
    plugins = by_name(found.plugins)
    for name, kind in BUILTIN_PLUGINS.items():
        spec = plugins[(kind, name)]
        assert spec.source == "horae"
        assert spec.argv == [sys.executable, "-m", f"horae_plugins.{name}"]


def test_an_executable_cannot_replace_a_builtin(tmp_path):
    make_file(tmp_path, "horae-executor-noop")
    found = discover_plugins([str(tmp_path)])
    noop = [spec for spec in found.plugins if (spec.kind, spec.name) == ("executor", "noop")]
    assert [spec.source for spec in noop] == ["horae"]
    assert any("horae-executor-noop" in problem and "horae" in problem for problem in found.problems)
