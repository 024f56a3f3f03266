"""The one wheel: it holds all five packages, installs into a fresh venv outside the repository, and
finds the built-in plugins and a third-party plugin package through the same entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from horae_plugins import BUILTIN_PLUGINS
from tests.support import FIXTURES_DIR, REPO_ROOT

SOURCE_ROOTS = {
    "horae": "core/horae",
    "horae_sdk": "plugin_sdk/horae_sdk",
    "horae_plugins": "plugins/horae_plugins",
    "horae_web": "web/horae_web",
    "horae_conformance": "conformance/horae_conformance",
}
THIRDPARTY_DIR = FIXTURES_DIR / "thirdparty_plugin"
THIRDPARTY_DIST = "horae-thirdparty-example"
INSTALL_TIMEOUT = 600


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    outside: Path  # a working directory outside the repository

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.outside, env=clean_env(), capture_output=True, text=True, timeout=timeout)


def clean_env() -> dict[str, str]:
    """The environment without anything that would let the repository's code leak into the venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    return env


def pip(python: str | Path, *args: str, cwd: Path) -> None:
    command = [str(python), "-m", "pip", *args]
    find_links = os.environ.get("PIP_FIND_LINKS") or ("/opt/wheels" if os.path.isdir("/opt/wheels") else "")
    if find_links and args[0] in ("install", "wheel"):
        command += ["--find-links", find_links]
    result = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(REPO_ROOT), "the venv must live outside the repository"
    wheel_dir = base / "dist"
    pip(sys.executable, "wheel", str(REPO_ROOT), "--no-deps", "-w", str(wheel_dir), "-q", cwd=base)
    wheels = list(wheel_dir.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel, got {wheels}"

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=clean_env())
    python = venv / "bin" / "python"
    pip(python, "install", "-q", str(wheels[0]), cwd=base)
    # Build the third-party package from a copy, so that nothing is written into the repository.
    thirdparty = base / "thirdparty_plugin"
    shutil.copytree(THIRDPARTY_DIR, thirdparty, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    pip(python, "install", "-q", str(thirdparty), cwd=base)
    outside = base / "elsewhere"
    outside.mkdir()
    return Installed(wheels[0], venv, outside)


def test_one_wheel_holds_all_five_packages_with_every_module(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points_text = wheel.read(entry_points).decode()

    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == set(SOURCE_ROOTS)
    for package, root in SOURCE_ROOTS.items():
        source = REPO_ROOT / root
        modules = {
            f"{package}/{path.relative_to(source).as_posix()}"
            for pattern in ("*.py", "*.pyi")
            for path in source.rglob(pattern)
            if "__pycache__" not in path.parts
        }
        missing = sorted(modules - names)
        assert not missing, f"{package}: not in the wheel: {missing}"
    for generated in ("types/v1/executor_pb2.py", "types/executor_pb2_grpc.py", "plugin/grpc_broker_pb2_grpc.py"):
        assert f"horae_sdk/proto/{generated}" in names
    assert not [name for name in names if name.endswith(".pyc") or name.startswith("tests/")]
    assert "horae = horae.cli:main" in entry_points_text
    assert "[horae]" in entry_points_text


def test_the_venv_runs_the_installed_code_not_the_repository(installed):
    result = installed.run(
        installed.bin("python"),
        "-c",
        "import horae, horae_sdk, horae_sdk.proto.types.v1.executor_pb2 as p, horae_plugins, horae_web,"
        " horae_conformance; print('\\n'.join(m.__file__ for m in (horae, horae_sdk, p, horae_plugins)))",
    )
    assert result.returncode == 0, result.stderr
    for path in result.stdout.split():
        assert Path(path).resolve().is_relative_to(installed.venv.resolve()), path


def test_plugins_list_from_outside_the_repository_shows_builtins_and_the_thirdparty_plugin(installed):
    result = installed.run(installed.bin("horae"), "plugins", "list", "--json")
    listing = json.loads(result.stdout)
    plugins = {(p["kind"], p["name"]): p for p in listing["plugins"]}
    assert listing["problems"] == []

    for name, kind in BUILTIN_PLUGINS.items():
        assert (kind, name) in plugins, f"built-in {name} is not listed"
        plugin = plugins[(kind, name)]
        assert plugin["source"] == "horae"
        # shell and log are written in parallel; once their module is in the repository they must be healthy.
        if (
            name == "noop"
            or (REPO_ROOT / "plugins" / "horae_plugins" / f"{name}.py").exists()
            or (REPO_ROOT / "plugins" / "horae_plugins" / name).is_dir()
        ):
            assert plugin["state"] == "healthy", plugin
            assert plugin["pid"]

    thirdparty = plugins[("executor", "thirdparty")]
    assert thirdparty["source"] == THIRDPARTY_DIST
    assert (thirdparty["state"], thirdparty["version"]) == ("healthy", "0.1.0"), thirdparty

    all_healthy = all(p["state"] == "healthy" for p in listing["plugins"])
    assert result.returncode == (0 if all_healthy else 1), result.stderr


def test_plugins_list_table(installed):
    result = installed.run(installed.bin("horae"), "plugins", "list")
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["KIND", "NAME", "SOURCE", "STATE"]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert rows["noop"][2:4] == ["horae", "healthy"]
    assert rows["thirdparty"][2:4] == [THIRDPARTY_DIST, "healthy"]


def test_the_thirdparty_plugin_executes_in_the_fresh_venv(installed):
    snippet = textwrap.dedent(
        """
        import asyncio, json
        from horae.host.discovery import discover_plugins
        from horae.host.supervisor import PluginHost

        async def main():
            specs = [s for s in discover_plugins().plugins if s.name == "thirdparty"]
            chunks = []
            async with PluginHost(specs) as host:
                outcome = await host.execute(
                    "thirdparty", "job", {"text": "hello" * 60000}, on_output=lambda data, err: chunks.append(data)
                )
            print(json.dumps({"success": outcome.success, "output": outcome.output.decode(),
                              "live": b"".join(chunks).decode(), "error": outcome.error}))

        asyncio.run(main())
        """
    )
    result = installed.run(installed.bin("python"), "-c", snippet)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    # 300 KB is more than the returned tail (256 KiB), so all of it streams through the broker.
    full = "thirdparty says: " + "hello" * 60000 + "\n"
    assert (outcome["success"], outcome["error"]) == (True, "")
    assert outcome["live"] == full
    assert full.endswith(outcome["output"]) and len(outcome["output"]) == 256 * 1024


def test_the_thirdparty_plugin_passes_conformance(installed):
    if not (REPO_ROOT / "conformance" / "horae_conformance" / "cli.py").exists():
        pytest.skip("horae-conformance is not there yet")
    result = installed.run(installed.bin("horae-conformance"), "executor", "--plugin", "thirdparty", timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
