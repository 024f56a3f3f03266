"""Agent configuration: defaults, then a config file (TOML or YAML), then HORAE_* variables, then flags."""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
import tomllib
from dataclasses import dataclass, field
from typing import Any

DEFAULT_HTTP_ADDR = "127.0.0.1:8080"
DEFAULT_RPC_PORT = 6868
DEFAULT_RAFT_PORT = 8190
DEFAULT_SHUTDOWN_GRACE = 30.0


class ConfigError(ValueError):
    """A setting is wrong; the message names it and says what is accepted."""


@dataclass
class AgentConfig:
    server: bool = False
    dev: bool = False
    node_name: str = field(default_factory=socket.gethostname)
    data_dir: str = ""
    http_addr: str = DEFAULT_HTTP_ADDR
    bind_addr: str = "127.0.0.1"
    advertise_addr: str = ""
    rpc_port: int = DEFAULT_RPC_PORT
    raft_port: int = DEFAULT_RAFT_PORT
    bootstrap_expect: int = 1
    join: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    plugin_dirs: list[str] = field(default_factory=list)
    log_level: str = "info"
    max_executions: int = 100
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    raft_multiplier: float = 1.0

    @property
    def http_host_port(self) -> tuple[str, int]:
        host, _, port = self.http_addr.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"http-addr {self.http_addr!r}: use host:port, e.g. 127.0.0.1:8080")
        return host.strip("[]"), int(port)

    @property
    def raft_address(self) -> str:
        return f"{self.advertise_addr or self.bind_addr}:{self.raft_port}"


def apply_dev_defaults(config: AgentConfig, given: set[str]) -> None:
    """`--dev`: one server and a temporary data dir, unless those were given explicitly."""
    config.server = True
    config.bootstrap_expect = 1
    if "data_dir" not in given:
        config.data_dir = tempfile.mkdtemp(prefix="horae-dev-")


def load_file(path: str) -> dict[str, Any]:
    """Read a TOML (`.toml`) or YAML (`.yaml`/`.yml`) config file into setting names."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if path.endswith(".toml"):
        data = tomllib.loads(raw.decode())
    elif path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError as error:  # pragma: no cover - PyYAML is a dependency
            raise ConfigError("YAML config files need PyYAML: pip install pyyaml") from error
        data = yaml.safe_load(raw) or {}
    else:
        raise ConfigError(f"config file {path!r}: use a .toml, .yaml or .yml file")
    return {key.replace("-", "_"): value for key, value in data.items()}


def from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """HORAE_NODE_NAME=… → node_name, for every setting."""
    environ = dict(os.environ if environ is None else environ)
    names = {f.name for f in dataclasses.fields(AgentConfig)}
    found: dict[str, Any] = {}
    for key, value in environ.items():
        if key.startswith("HORAE_"):
            name = key[len("HORAE_") :].lower()
            if name in names:
                found[name] = value
    return found


def build_config(layers: list[dict[str, Any]]) -> AgentConfig:
    """Merge setting layers (later wins) into an AgentConfig, converting and checking types."""
    config = AgentConfig()
    types = {f.name: f.type for f in dataclasses.fields(AgentConfig)}
    for layer in layers:
        for name, value in layer.items():
            if name not in types:
                raise ConfigError(f"unknown setting {name!r}")
            setattr(config, name, _convert(name, types[name], value))
    return config


def _convert(name: str, kind: Any, value: Any) -> Any:
    kind = str(kind)
    try:
        if kind == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind.startswith("list"):
            return [v for v in (value.split(",") if isinstance(value, str) else value) if v]
        if kind.startswith("dict"):
            if isinstance(value, str):
                return dict(part.split("=", 1) for part in value.split(",") if part)
            return {str(k): str(v) for k, v in dict(value).items()}
    except (TypeError, ValueError) as error:
        raise ConfigError(f"setting {name}: {value!r} is not a valid {kind}") from error
    return str(value)
