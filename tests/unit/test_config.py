"""Agent configuration as `horae agent` builds it: defaults < config file (YAML/TOML) < HORAE_* env < flags."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import horae.agent
from horae.cli import main
from horae.config import DEFAULT_HTTP_ADDR, DEFAULT_RPC_PORT, AgentConfig


@dataclass
class Outcome:
    code: int
    config: AgentConfig | None
    err: str


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HORAE_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("HORAE_"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def restore_root_logger() -> Any:
    """`horae agent` reconfigures the root logger; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `horae [top...] agent argv...` through cli.main, capturing the config instead of starting a node."""
    built: list[AgentConfig] = []

    class FakeAgent:
        def __init__(self, config: AgentConfig) -> None:
            built.append(config)

        async def run(self, app_factory: Any) -> None:
            return None

    monkeypatch.setattr(horae.agent, "Agent", FakeAgent)

    def invoke(*argv: str, top: tuple[str, ...] = ()) -> Outcome:
        built.clear()
        code = main([*top, "agent", *argv])
        return Outcome(code, built[-1] if built else None, capsys.readouterr().err)

    return invoke


@pytest.fixture
def start(run: Any) -> Any:
    """Like `run`, but the agent must start; returns its config."""

    def invoke(*argv: str, top: tuple[str, ...] = ()) -> AgentConfig:
        outcome = run(*argv, top=top)
        assert outcome.code == 0, outcome.err
        assert outcome.config is not None
        return outcome.config

    return invoke


@pytest.fixture
def refuse(run: Any) -> Any:
    """Like `run`, but the agent must refuse to start (exit 2); returns stderr."""

    def invoke(*argv: str, top: tuple[str, ...] = ()) -> str:
        outcome = run(*argv, top=top)
        assert outcome.code == 2, f"expected exit 2, got {outcome.code}; config={outcome.config}"
        assert outcome.config is None
        assert len(outcome.err.splitlines()) == 1, f"expected one line on stderr, got:\n{outcome.err}"
        assert "Traceback" not in outcome.err
        return outcome.err

    return invoke


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --- each layer alone -------------------------------------------------------------------------------------------


def test_defaults(start: Any, tmp_path: Path) -> None:
    config = start("--data-dir", str(tmp_path))
    assert config.server is False
    assert config.node_name == socket.gethostname()
    assert config.data_dir == str(tmp_path)
    assert config.http_addr == DEFAULT_HTTP_ADDR
    assert config.rpc_port == DEFAULT_RPC_PORT
    assert config.bootstrap_expect == 1
    assert config.tags == {}
    assert config.join == []
    assert config.plugin_dirs == []
    assert config.log_level == "info"
    assert config.max_executions == 100


YAML_FILE = """\
server: true
bootstrap-expect: 3
node-name: node-from-file
data-dir: /var/lib/horae
http-addr: 0.0.0.0:9090
insecure-http: true
rpc-port: 7001
join: [10.0.0.2:6868, 10.0.0.3:6868]
tags:
  role: web
  dc: eu
plugin-dirs: [/opt/plugins]
log-level: debug
max-executions: 50
shutdown-grace: 2.5
"""

TOML_FILE = """\
server = true
bootstrap-expect = 3
node-name = "node-from-file"
data_dir = "/var/lib/horae"
http-addr = "0.0.0.0:9090"
insecure-http = true
rpc_port = 7001
join = ["10.0.0.2:6868", "10.0.0.3:6868"]
plugin-dirs = ["/opt/plugins"]
log-level = "debug"
max-executions = 50
shutdown-grace = 2.5

[tags]
role = "web"
dc = "eu"
"""


@pytest.mark.parametrize(("name", "text"), [("horae.yaml", YAML_FILE), ("horae.yml", YAML_FILE), ("h.toml", TOML_FILE)])
def test_file_alone(start: Any, tmp_path: Path, name: str, text: str) -> None:
    config = start("--config", write(tmp_path / name, text))
    assert config.server is True
    assert config.bootstrap_expect == 3
    assert config.node_name == "node-from-file"
    assert config.data_dir == "/var/lib/horae"
    assert config.http_addr == "0.0.0.0:9090"
    assert config.rpc_port == 7001
    assert config.join == ["10.0.0.2:6868", "10.0.0.3:6868"]
    assert config.tags == {"role": "web", "dc": "eu"}
    assert config.plugin_dirs == ["/opt/plugins"]
    assert config.log_level == "debug"
    assert config.max_executions == 50
    assert config.shutdown_grace == 2.5


@pytest.mark.parametrize("name", ["empty.yaml", "empty.toml"])
def test_empty_file_means_defaults(start: Any, tmp_path: Path, name: str) -> None:
    config = start("--config", write(tmp_path / name, ""), "--data-dir", str(tmp_path))
    assert config.max_executions == 100
    assert config.http_addr == DEFAULT_HTTP_ADDR


def test_environment_alone(start: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "HORAE_SERVER": "true",
        "HORAE_BOOTSTRAP_EXPECT": "3",
        "HORAE_NODE_NAME": "node-from-env",
        "HORAE_DATA_DIR": "/srv/horae",
        "HORAE_HTTP_ADDR": "0.0.0.0:9191",
        "HORAE_INSECURE_HTTP": "true",
        "HORAE_RPC_PORT": "7002",
        "HORAE_JOIN": "10.0.0.2:6868,10.0.0.3:6868",
        "HORAE_TAGS": "role=db,dc=us",
        "HORAE_PLUGIN_DIRS": "/opt/a,/opt/b",
        "HORAE_LOG_LEVEL": "warning",
        "HORAE_MAX_EXECUTIONS": "7",
    }.items():
        monkeypatch.setenv(key, value)
    config = start()
    assert config.server is True
    assert config.bootstrap_expect == 3
    assert config.node_name == "node-from-env"
    assert config.data_dir == "/srv/horae"
    assert config.http_addr == "0.0.0.0:9191"
    assert config.rpc_port == 7002
    assert config.join == ["10.0.0.2:6868", "10.0.0.3:6868"]
    assert config.tags == {"role": "db", "dc": "us"}
    assert config.plugin_dirs == ["/opt/a", "/opt/b"]
    assert config.log_level == "warning"
    assert config.max_executions == 7


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("yes", True), ("ON", True), ("false", False), ("0", False)]
)
def test_environment_booleans(start: Any, monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("HORAE_SERVER", value)
    monkeypatch.setenv("HORAE_DATA_DIR", "/srv/horae")
    assert start().server is expected


def test_unrelated_horae_variables_are_ignored(start: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HORAE_TOKEN", "secret")
    monkeypatch.setenv("HORAE_TAG", "role=web")  # not HORAE_TAGS: silently ignored
    config = start("--data-dir", str(tmp_path))
    assert config.tags == {}
    assert config.plugin_dirs == []


def test_flags_alone(start: Any) -> None:
    config = start(
        "--server",
        "--bootstrap-expect",
        "5",
        "--node-name",
        "node-from-flag",
        "--data-dir",
        "/data",
        "--http-addr",
        "[::1]:8081",
        "--rpc-port",
        "7003",
        "--raft-port",
        "8191",
        "--join",
        "a:6868",
        "--join",
        "b:6868",
        "--tag",
        "role=api",
        "--plugin-dir",
        "/p1",
        "--plugin-dir",
        "/p2",
        "--max-executions",
        "9",
        "--shutdown-grace",
        "1.5",
        top=("--log-level", "error"),
    )
    assert config.server is True
    assert config.bootstrap_expect == 5
    assert config.node_name == "node-from-flag"
    assert config.data_dir == "/data"
    assert config.http_addr == "[::1]:8081"
    assert config.http_host_port == ("::1", 8081)
    assert config.rpc_port == 7003
    assert config.raft_port == 8191
    assert config.join == ["a:6868", "b:6868"]
    assert config.tags == {"role": "api"}
    assert config.plugin_dirs == ["/p1", "/p2"]
    assert config.log_level == "error"
    assert config.max_executions == 9
    assert config.shutdown_grace == 1.5


def test_log_level_after_agent_like_dkron(start: Any, tmp_path: Path) -> None:
    assert start("--log-level", "debug", "--data-dir", str(tmp_path)).log_level == "debug"
    assert logging.getLogger().level == logging.DEBUG


def test_log_level_before_agent_still_works(start: Any, tmp_path: Path) -> None:
    assert start("--data-dir", str(tmp_path), top=("--log-level", "error")).log_level == "error"
    assert logging.getLogger().level == logging.ERROR


def test_log_level_after_agent_wins_over_the_global_one(start: Any, tmp_path: Path) -> None:
    assert start("--log-level", "debug", "--data-dir", str(tmp_path), top=("--log-level", "error")).log_level == "debug"


@pytest.mark.parametrize(("value", "expected"), [("DEBUG", "debug"), ("Info", "info"), ("warn", "warning")])
def test_log_level_spellings(start: Any, tmp_path: Path, value: str, expected: str) -> None:
    assert start("--log-level", value, "--data-dir", str(tmp_path)).log_level == expected


# --- precedence -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        (("file",), "from-file"),
        (("env",), "from-env"),
        (("flag",), "from-flag"),
        (("file", "env"), "from-env"),
        (("file", "flag"), "from-flag"),
        (("env", "flag"), "from-flag"),
        (("file", "env", "flag"), "from-flag"),
    ],
)
def test_precedence_of_layers(
    start: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, layers: tuple[str, ...], expected: str
) -> None:
    argv = ["--data-dir", str(tmp_path)]
    if "file" in layers:
        argv += ["--config", write(tmp_path / "horae.yaml", "node-name: from-file\n")]
    if "env" in layers:
        monkeypatch.setenv("HORAE_NODE_NAME", "from-env")
    if "flag" in layers:
        argv += ["--node-name", "from-flag"]
    assert start(*argv).node_name == expected


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("data_dir", ("/file", "/env", "/flag"), "/flag"),
        ("http_addr", ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"), "127.0.0.1:3"),
        ("rpc_port", (1001, "1002", "1003"), 1003),
        ("bootstrap_expect", (2, "3", "4"), 4),
        ("max_executions", (10, "20", "30"), 30),
        ("raft_multiplier", (2.0, "3.0", "4.5"), 4.5),
    ],
)
def test_flag_beats_env_beats_file(
    start: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    values: tuple[Any, str, str],
    expected: Any,
) -> None:
    file_value, env_value, flag_value = values
    flag = "--" + name.replace("_", "-")
    base = [] if name == "data_dir" else ["--data-dir", str(tmp_path)]
    for suffix in ("yaml", "toml"):
        path = tmp_path / f"horae.{suffix}"
        if suffix == "yaml":
            write(path, yaml.safe_dump({name.replace("_", "-"): file_value}))
        else:
            write(path, f"{name} = {file_value!r}\n".replace("'", '"'))
        monkeypatch.delenv(f"HORAE_{name.upper()}", raising=False)
        assert getattr(start(*base, "--config", str(path)), name) == type(expected)(file_value)
        monkeypatch.setenv(f"HORAE_{name.upper()}", env_value)
        assert getattr(start(*base, "--config", str(path)), name) == type(expected)(env_value)
        assert getattr(start(*base, "--config", str(path), flag, flag_value), name) == expected


def test_log_level_precedence(start: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.toml", 'log_level = "debug"\n')
    argv = ("--config", path, "--data-dir", str(tmp_path))
    assert start(*argv).log_level == "debug"
    monkeypatch.setenv("HORAE_LOG_LEVEL", "warning")
    assert start(*argv).log_level == "warning"
    assert start(*argv, top=("--log-level", "error")).log_level == "error"


def test_server_from_file_cannot_be_switched_off_by_a_flag_only_by_env(
    start: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path / "horae.yaml", "server: true\n")
    assert start("--config", path, "--data-dir", str(tmp_path)).server is True
    monkeypatch.setenv("HORAE_SERVER", "false")
    assert start("--config", path, "--data-dir", str(tmp_path)).server is False


# --- tags and other lists ---------------------------------------------------------------------------------------


def test_tag_repeated(start: Any, tmp_path: Path) -> None:
    config = start("--data-dir", str(tmp_path), "--tag", "role=web", "--tag", "dc=eu", "--tag", "expr=a=b")
    assert config.tags == {"role": "web", "dc": "eu", "expr": "a=b"}


def test_tag_repeated_key_last_wins(start: Any, tmp_path: Path) -> None:
    assert start("--data-dir", str(tmp_path), "--tag", "role=web", "--tag", "role=db").tags == {"role": "db"}


def test_tag_flags_replace_file_and_env_tags(start: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tags are one setting: a later layer replaces the whole map, it does not merge key by key."""
    path = write(tmp_path / "horae.yaml", "tags: {role: web, dc: eu}\n")
    argv = ("--config", path, "--data-dir", str(tmp_path))
    assert start(*argv).tags == {"role": "web", "dc": "eu"}
    monkeypatch.setenv("HORAE_TAGS", "rack=r1")
    assert start(*argv).tags == {"rack": "r1"}
    assert start(*argv, "--tag", "role=api").tags == {"role": "api"}


def test_tag_values_from_file_become_strings(start: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.toml", "tags = { rack = 3, gpu = true }\n")
    assert start("--config", path, "--data-dir", str(tmp_path)).tags == {"rack": "3", "gpu": "True"}


def test_join_flags_replace_file_join(start: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.yaml", "join: [a:6868, b:6868]\n")
    assert start("--config", path, "--data-dir", str(tmp_path), "--join", "c:6868").join == ["c:6868"]


def test_tag_without_equals_is_refused(refuse: Any, tmp_path: Path) -> None:
    assert "role" in refuse("--data-dir", str(tmp_path), "--tag", "role")


def test_env_tag_without_equals_is_refused(refuse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HORAE_TAGS", "role=web,gpu")
    err = refuse("--data-dir", str(tmp_path))
    assert "tags" in err
    assert "'role=web,gpu'" in err


def test_tag_without_equals_says_the_form(refuse: Any, tmp_path: Path) -> None:
    err = refuse("--data-dir", str(tmp_path), "--tag", "role=web", "--tag", "=web")
    assert "'=web'" in err
    assert "--tag key=value" in err


@pytest.mark.parametrize("key", ["plugin-dir", "plugin_dir", "plugin-dirs", "plugin_dirs"])
def test_file_key_plugin_dir_is_an_alias(start: Any, tmp_path: Path, key: str) -> None:
    """The flag is --plugin-dir; the file accepts plugin-dir as well as plugin-dirs."""
    path = write(tmp_path / "horae.yaml", f"{key}: [/opt/plugins]\n")
    assert start("--config", path, "--data-dir", str(tmp_path)).plugin_dirs == ["/opt/plugins"]


def test_env_plugin_dir_is_an_alias(start: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HORAE_PLUGIN_DIR", "/opt/x,/opt/y")
    assert start("--data-dir", str(tmp_path)).plugin_dirs == ["/opt/x", "/opt/y"]


def test_both_spellings_of_plugin_dirs_are_refused(
    refuse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path / "horae.yaml", "plugin-dir: [/a]\nplugin_dirs: [/b]\n")
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert "'plugin-dir'" in err
    assert "'plugin_dirs'" in err
    monkeypatch.setenv("HORAE_PLUGIN_DIR", "/a")
    monkeypatch.setenv("HORAE_PLUGIN_DIRS", "/b")
    err = refuse("--data-dir", str(tmp_path))
    assert "HORAE_PLUGIN_DIR " in err
    assert "HORAE_PLUGIN_DIRS " in err


def test_same_setting_spelled_twice_in_a_file_is_refused(refuse: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.toml", 'node-name = "a"\nnode_name = "b"\n')
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert "node_name" in err


# --- --dev ------------------------------------------------------------------------------------------------------


@pytest.fixture
def dev_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where --dev makes its temporary data dir."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_dev_defaults(start: Any, dev_tmp: Path) -> None:
    config = start("--dev")
    assert config.server is True
    assert config.bootstrap_expect == 1
    data_dir = Path(config.data_dir)
    assert data_dir.parent == dev_tmp
    assert data_dir.name.startswith("horae-dev-")
    assert data_dir.is_dir()
    assert config.http_addr == DEFAULT_HTTP_ADDR


def test_dev_keeps_explicit_data_dir_and_http_addr(start: Any, dev_tmp: Path, tmp_path: Path) -> None:
    config = start("--dev", "--data-dir", str(tmp_path / "mine"), "--http-addr", "0.0.0.0:9999", "--insecure-http")
    assert config.data_dir == str(tmp_path / "mine")
    assert config.http_addr == "0.0.0.0:9999"
    assert config.server is True
    assert list(dev_tmp.iterdir()) == []


@pytest.mark.parametrize("source", ["file", "env"])
def test_dev_keeps_data_dir_from_file_or_env(
    start: Any, monkeypatch: pytest.MonkeyPatch, dev_tmp: Path, tmp_path: Path, source: str
) -> None:
    argv = ["--dev", "--insecure-http"]
    if source == "file":
        argv += ["--config", write(tmp_path / "horae.toml", 'data-dir = "/from/file"\nhttp-addr = "1.2.3.4:5"\n')]
        expected = ("/from/file", "1.2.3.4:5")
    else:
        monkeypatch.setenv("HORAE_DATA_DIR", "/from/env")
        monkeypatch.setenv("HORAE_HTTP_ADDR", "1.2.3.4:6")
        expected = ("/from/env", "1.2.3.4:6")
    config = start(*argv)
    assert (config.data_dir, config.http_addr) == expected
    assert list(dev_tmp.iterdir()) == []


def test_dev_defaults_lose_to_explicit_values(start: Any, dev_tmp: Path, tmp_path: Path) -> None:
    """Like data_dir, --dev's server and bootstrap_expect are only defaults: a file, env or flag value wins."""
    path = write(tmp_path / "horae.yaml", "server: false\n")
    config = start("--dev", "--config", path, "--bootstrap-expect", "3")
    assert config.server is False
    assert config.bootstrap_expect == 3


@pytest.mark.parametrize("source", ["file", "env"])
def test_dev_server_and_bootstrap_expect_from_file_or_env(
    start: Any, monkeypatch: pytest.MonkeyPatch, dev_tmp: Path, tmp_path: Path, source: str
) -> None:
    argv = ["--dev"]
    if source == "file":
        argv += ["--config", write(tmp_path / "horae.toml", "server = false\nbootstrap-expect = 2\n")]
    else:
        monkeypatch.setenv("HORAE_SERVER", "off")
        monkeypatch.setenv("HORAE_BOOTSTRAP_EXPECT", "2")
    config = start(*argv)
    assert config.server is False
    assert config.bootstrap_expect == 2
    assert Path(config.data_dir).parent == dev_tmp


def test_dev_makes_no_temporary_dir_when_it_refuses(refuse: Any, dev_tmp: Path) -> None:
    assert "max_executions" in refuse("--dev", "--max-executions", "0")
    assert list(dev_tmp.iterdir()) == []


def test_dev_only_comes_from_the_flag(refuse: Any, monkeypatch: pytest.MonkeyPatch, dev_tmp: Path) -> None:
    """HORAE_DEV is accepted (AgentConfig has a `dev` field) but does not switch dev mode on (current behaviour)."""
    monkeypatch.setenv("HORAE_DEV", "true")
    assert "--data-dir is required" in refuse()


# --- bad input --------------------------------------------------------------------------------------------------


def test_data_dir_required_without_dev(refuse: Any) -> None:
    assert "--data-dir is required" in refuse()


@pytest.mark.parametrize(("name", "text"), [("horae.yaml", "colour: blue\n"), ("horae.toml", 'colour = "blue"\n')])
def test_unknown_key_in_file(refuse: Any, tmp_path: Path, name: str, text: str) -> None:
    err = refuse("--config", write(tmp_path / name, text), "--data-dir", str(tmp_path))
    assert "unknown setting 'colour'" in err


@pytest.mark.parametrize(
    ("name", "text"), [("horae.yaml", "max_executions: lots\n"), ("horae.toml", 'max-executions = "lots"\n')]
)
def test_bad_value_type_in_file(refuse: Any, tmp_path: Path, name: str, text: str) -> None:
    err = refuse("--config", write(tmp_path / name, text), "--data-dir", str(tmp_path))
    assert "max_executions" in err
    assert "'lots'" in err
    assert "int" in err


@pytest.mark.parametrize(
    ("key", "value"), [("HORAE_MAX_EXECUTIONS", "lots"), ("HORAE_RPC_PORT", "http"), ("HORAE_SHUTDOWN_GRACE", "1m")]
)
def test_bad_value_type_in_env(
    refuse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str, value: str
) -> None:
    monkeypatch.setenv(key, value)
    err = refuse("--data-dir", str(tmp_path))
    assert key.removeprefix("HORAE_").lower() in err
    assert repr(value) in err


def test_bad_value_type_in_flag(run: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("--data-dir", str(tmp_path), "--max-executions", "lots")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--max-executions" in err
    assert "'lots'" in err


def test_list_setting_that_is_not_a_list(refuse: Any, tmp_path: Path) -> None:
    err = refuse("--config", write(tmp_path / "horae.yaml", "join: 5\n"), "--data-dir", str(tmp_path))
    assert "setting join" in err


@pytest.mark.parametrize("value", ["localhost", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:http"])
def test_bad_http_addr(refuse: Any, tmp_path: Path, value: str) -> None:
    err = refuse("--data-dir", str(tmp_path), "--http-addr", value)
    assert "flag --http-addr" in err
    assert f"http_addr: {value!r}" in err
    assert "host:port" in err


@pytest.mark.parametrize("source", ["file", "env"])
def test_bad_boolean_is_refused(refuse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str) -> None:
    argv = ["--data-dir", str(tmp_path)]
    if source == "file":
        argv += ["--config", write(tmp_path / "horae.yaml", "server: maybe\n")]
    else:
        monkeypatch.setenv("HORAE_SERVER", "ture")
    assert "server" in refuse(*argv)


def test_bad_log_level_is_refused(refuse: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.yaml", "log-level: loud\n")
    assert "log" in refuse("--config", path, "--data-dir", str(tmp_path))


def test_missing_file(refuse: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "absent.yaml")
    assert path in refuse("--config", path, "--data-dir", str(tmp_path))


def test_file_that_is_a_directory(refuse: Any, tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    path.mkdir()
    assert str(path) in refuse("--config", str(path), "--data-dir", str(tmp_path))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_unreadable_file(refuse: Any, tmp_path: Path) -> None:
    path = tmp_path / "horae.yaml"
    path.write_text("server: true\n")
    path.chmod(0)
    try:
        assert str(path) in refuse("--config", str(path), "--data-dir", str(tmp_path))
    finally:
        path.chmod(0o600)


def test_unsupported_file_extension(refuse: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.json", '{"server": true}')
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert ".toml" in err


def test_malformed_toml(refuse: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.toml", "server = \n")
    assert path in refuse("--config", path, "--data-dir", str(tmp_path))


def test_malformed_yaml(refuse: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.yaml", "server: [true\n")
    assert path in refuse("--config", path, "--data-dir", str(tmp_path))


def test_yaml_that_is_not_a_mapping(refuse: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.yaml", "- server\n- true\n")
    assert path in refuse("--config", path, "--data-dir", str(tmp_path))


def test_toml_not_utf8(refuse: Any, tmp_path: Path) -> None:
    path = tmp_path / "horae.toml"
    path.write_bytes(b'node_name = "\xff"\n')
    assert str(path) in refuse("--config", str(path), "--data-dir", str(tmp_path))


@pytest.mark.parametrize(
    ("name", "raw"),
    [("horae.yaml", b"server: true\nnode-name: caf\xe9\n"), ("horae.toml", b'server = true\nnode_name = "caf\xe9"\n')],
)
def test_file_not_utf8_says_where(refuse: Any, tmp_path: Path, name: str, raw: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(raw)
    err = refuse("--config", str(path), "--data-dir", str(tmp_path))
    assert str(path) in err
    assert "UTF-8" in err
    assert "line 2" in err


@pytest.mark.parametrize(
    ("name", "text", "what"),
    [
        ("horae.toml", "server = \n", "TOML"),
        ("horae.toml", "[tags]\nrole = 'a'\n[tags]\n", "TOML"),
        ("horae.yaml", "server: [true\n", "YAML"),
        ("horae.yaml", "server: true\n  node-name: x\n", "YAML"),
        ("horae.yaml", "tags: {a: b\n", "YAML"),
    ],
)
def test_malformed_file_says_what_and_where(refuse: Any, tmp_path: Path, name: str, text: str, what: str) -> None:
    path = write(tmp_path / name, text)
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert f"not valid {what}" in err
    assert "line" in err


@pytest.mark.parametrize("text", ["just a string\n", "42\n", "- a\n- b\n"])
def test_yaml_top_level_must_be_a_mapping(refuse: Any, tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "horae.yaml", text)
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert "mapping" in err


@pytest.mark.parametrize("text", ["1: true\n", "~: x\n", "true: x\n"])
def test_yaml_key_that_is_not_text(refuse: Any, tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "horae.yaml", text)
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert "not a setting name" in err


def test_yaml_setting_without_a_value(refuse: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.yaml", "node-name:\n")
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert "node_name has no value" in err


# --- booleans -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *((word, True) for word in ("true", "True", "TRUE", "1", "yes", "Yes", "on", "ON", " true ")),
        *((word, False) for word in ("false", "False", "0", "no", "NO", "off", "Off")),
    ],
)
def test_boolean_words(start: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, expected: bool) -> None:
    monkeypatch.setenv("HORAE_SERVER", value)
    assert start("--data-dir", str(tmp_path)).server is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("server: yes\n", True), ("server: off\n", False), ("server: 1\n", True), ("server: 0\n", False)],
)
def test_boolean_values_in_yaml(start: Any, tmp_path: Path, text: str, expected: bool) -> None:
    path = write(tmp_path / "horae.yaml", text)
    assert start("--config", path, "--data-dir", str(tmp_path)).server is expected


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("horae.yaml", "server: maybe\n", "'maybe'"),
        ("horae.yaml", "server: 2\n", "2"),
        ("horae.yaml", "server: [true]\n", "[True]"),
        ("horae.toml", 'server = "nope"\n', "'nope'"),
    ],
)
def test_bad_boolean_in_file_lists_the_words(refuse: Any, tmp_path: Path, name: str, text: str, value: str) -> None:
    path = write(tmp_path / name, text)
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert f"setting server: {value}" in err
    for word in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        assert word in err


@pytest.mark.parametrize("value", ["ture", "", "y", "2"])
def test_bad_boolean_in_env_names_the_variable(
    refuse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("HORAE_SERVER", value)
    err = refuse("--data-dir", str(tmp_path))
    assert "environment variable HORAE_SERVER" in err
    assert repr(value) in err
    assert "true/1/yes/on" in err


# --- log levels ---------------------------------------------------------------------------------------------------


def assert_lists_levels(err: str) -> None:
    assert "debug, info, warning, error" in err


def test_bad_log_level_in_file(refuse: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.toml", 'log-level = "loud"\n')
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert "'loud'" in err
    assert_lists_levels(err)


def test_bad_log_level_in_env(refuse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HORAE_LOG_LEVEL", "verbose")
    err = refuse("--data-dir", str(tmp_path))
    assert "environment variable HORAE_LOG_LEVEL" in err
    assert "'verbose'" in err
    assert_lists_levels(err)


@pytest.mark.parametrize("where", ["agent", "global"])
def test_bad_log_level_flag(refuse: Any, tmp_path: Path, where: str) -> None:
    if where == "agent":
        err = refuse("--log-level", "trace", "--data-dir", str(tmp_path))
    else:
        err = refuse("--data-dir", str(tmp_path), top=("--log-level", "trace"))
    assert "--log-level" in err
    assert "'trace'" in err
    assert_lists_levels(err)


def test_bad_global_log_level_for_other_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "loud", "plugins", "list"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "'loud'" in err
    assert_lists_levels(err)


# --- numbers --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "problem"),
    [
        ("max_executions: 2.5\n", "2.5", "whole number"),
        ("max_executions: '2.5'\n", "'2.5'", "whole number"),
        ("max_executions: true\n", "True", "whole number"),
        ("max_executions: 0\n", "0", "at least 1"),
        ("max_executions: -3\n", "-3", "at least 1"),
        ("bootstrap-expect: -1\n", "-1", "at least 0"),
        ("rpc-port: -1\n", "-1", "1-65535"),
        ("raft-port: 0\n", "0", "1-65535"),
        ("raft-port: 65536\n", "65536", "1-65535"),
        ("shutdown-grace: -1\n", "-1", "at least 0"),
        ("shutdown-grace: .nan\n", "nan", "not a number"),
        ("raft-multiplier: 0\n", "0", "more than 0"),
    ],
)
def test_bad_number_in_file(refuse: Any, tmp_path: Path, text: str, value: str, problem: str) -> None:
    path = write(tmp_path / "horae.yaml", text)
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert f"setting {text.split(':')[0].replace('-', '_')}: {value}" in err
    assert problem in err


def test_whole_float_is_accepted_for_an_int(start: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.toml", "max-executions = 20.0\n")
    config = start("--config", path, "--data-dir", str(tmp_path))
    assert config.max_executions == 20
    assert isinstance(config.max_executions, int)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("HORAE_MAX_EXECUTIONS", "-1", "at least 1"),
        ("HORAE_MAX_EXECUTIONS", "2.5", "whole number"),
        ("HORAE_RPC_PORT", "99999", "1-65535"),
        ("HORAE_BOOTSTRAP_EXPECT", "-2", "at least 0"),
        ("HORAE_SHUTDOWN_GRACE", "inf", "not a number"),
    ],
)
def test_bad_number_in_env(
    refuse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(key, value)
    err = refuse("--data-dir", str(tmp_path))
    assert f"environment variable {key}" in err
    assert repr(value) in err
    assert problem in err


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [
        ("--max-executions", "0", "at least 1"),
        ("--max-executions", "-5", "at least 1"),
        ("--rpc-port", "0", "1-65535"),
        ("--raft-port", "70000", "1-65535"),
        ("--bootstrap-expect", "-1", "at least 0"),
        ("--shutdown-grace", "-2", "at least 0"),
    ],
)
def test_bad_number_in_flag(refuse: Any, tmp_path: Path, flag: str, value: str, problem: str) -> None:
    err = refuse("--data-dir", str(tmp_path), flag, value)
    assert f"flag {flag}" in err
    assert problem in err


# --- where a bad setting came from ----------------------------------------------------------------------------------


def test_error_names_the_layer_that_set_the_bad_value(
    refuse: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path / "horae.yaml", "max-executions: lots\n")
    assert f"config file {path}:" in refuse("--config", path, "--data-dir", str(tmp_path))
    monkeypatch.setenv("HORAE_MAX_EXECUTIONS", "many")
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    # the file is checked first, so its bad value is the one reported
    assert f"config file {path}:" in err
    good = write(tmp_path / "good.yaml", "max-executions: 5\n")
    err = refuse("--config", good, "--data-dir", str(tmp_path))
    assert "environment variable HORAE_MAX_EXECUTIONS:" in err
    assert "'many'" in err


def test_unknown_setting_lists_the_known_ones(refuse: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "horae.yaml", "colour: blue\n")
    err = refuse("--config", path, "--data-dir", str(tmp_path))
    assert path in err
    assert "node-name" in err
    assert "max-executions" in err


def test_an_open_api_off_loopback_is_refused_unless_tokens_or_insecure_http(refuse: Any, tmp_path: Path) -> None:
    message = refuse("--data-dir", str(tmp_path), "--http-addr", "10.1.2.3:8080")
    assert "open to the network with no API tokens" in message and "--insecure-http" in message


def test_bind_addr_defaults_to_the_first_private_address_and_dev_to_loopback(start: Any, tmp_path: Path) -> None:
    from horae.config import first_private_address

    chosen = first_private_address()
    assert start("--data-dir", str(tmp_path)).bind_addr == chosen
    assert chosen == "127.0.0.1" or not ipaddress.ip_address(chosen).is_loopback
    assert start("--dev").bind_addr == "127.0.0.1"
    assert start("--dev", "--bind-addr", "10.9.8.7").bind_addr == "10.9.8.7"
