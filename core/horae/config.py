"""Agent configuration: defaults, then a config file (TOML or YAML), then HORAE_* variables, then flags.

Each source is a `Layer`; `build_config` merges them (later wins) and checks every value, so that a bad setting is
refused with a `ConfigError` that says where it came from (the config file, the environment variable or the flag)
and what is accepted. `--dev` is a layer just above the built-in defaults: anything given explicitly wins over it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import socket
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil

DEFAULT_HTTP_ADDR = "127.0.0.1:8080"
DEFAULT_RPC_PORT = 6868
DEFAULT_RAFT_PORT = 8190
DEFAULT_SHUTDOWN_GRACE = 30.0

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_ALIASES = {"warn": "warning"}
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")

# Settings whose values are secrets: error messages do not repeat them.
SECRET_SETTINGS = frozenset({"encrypt", "mail_password"})

# Other spellings of a setting (config file keys and HORAE_* names), e.g. plugin-dir like the --plugin-dir flag.
ALIASES = {"plugin_dir": "plugin_dirs", "webhook_url": "webhook_endpoint"}


class ConfigError(ValueError):
    """A setting is wrong; the message names it, says where it came from and what is accepted."""


def first_private_address() -> str:
    """This machine's first private IPv4 address (RFC 1918 and the like), or 127.0.0.1 when it has none."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family != socket.AF_INET:
                continue
            ip = ipaddress.ip_address(address.address)
            if ip.is_private and not ip.is_loopback and not ip.is_link_local:
                return address.address
    return "127.0.0.1"


@dataclass
class AgentConfig:
    server: bool = False
    dev: bool = False
    node_name: str = field(default_factory=socket.gethostname)
    data_dir: str = ""
    http_addr: str = DEFAULT_HTTP_ADDR
    # Raft and inter-node RPC listen here: by default the first private IPv4 address, as Dkron (127.0.0.1 with --dev).
    bind_addr: str = field(default_factory=first_private_address)
    advertise_addr: str = ""
    rpc_port: int = DEFAULT_RPC_PORT
    raft_port: int = DEFAULT_RAFT_PORT
    bootstrap_expect: int = 1
    join: list[str] = field(default_factory=list)
    # Dkron's retry-join: servers to join, retried every retry_interval seconds, at most retry_max times (0: no limit).
    retry_join: list[str] = field(default_factory=list)
    retry_interval: float = 0.5
    retry_max: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    plugin_dirs: list[str] = field(default_factory=list)
    log_level: str = "info"
    max_executions: int = 100
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    raft_multiplier: float = 1.0
    # Consul's raft_snapshot_threshold: compact the Raft log into a snapshot once it holds this many entries.
    raft_snapshot_threshold: int = 20000
    # Nodes beat on their link to the leader this often; one silent for failure_seconds is marked failed.
    heartbeat_seconds: float = 3.0
    failure_seconds: float = 10.0
    # API tokens (docs/operations.md): a YAML file of {name, secret, role}; without one the API is open, and is
    # then served on a loopback address only, unless insecure_http says that is meant.
    acl_tokens: str = ""
    insecure_http: bool = False
    # The web UI behind a reverse proxy that strips this prefix (Dkron #1415): pages link to <prefix>/ui/...
    ui_base_path: str = ""
    # HTTPS for the API: a PEM certificate (chain) and its key; a server serves inter-node gRPC over TLS with them.
    cert_file: str = ""
    key_file: str = ""
    # The CA that signed the servers' certificates, for inter-node gRPC (default: the system trust store).
    ca_file: str = ""
    # Inter-node gRPC over mutual TLS with certificates from a CA derived from the cluster key (needs encrypt).
    auto_tls: bool = False
    # Dkron's encrypt: the cluster key (base64 of 16, 24 or 32 bytes, `horae keygen`); "" for none.
    encrypt: str = ""
    # Notifications (docs/notifications.md), Dkron's flags. Mail goes through this SMTP server: to each job's
    # owner_email for every execution, and to the addresses of a job's notify block.
    mail_host: str = ""
    mail_port: int = 25
    mail_username: str = ""
    mail_password: str = ""
    mail_from: str = ""
    mail_subject_prefix: str = "[horae]"
    mail_payload: str = ""  # the mail body template; "" for the execution report
    # Dkron's webhook-endpoint (webhook-url before Dkron 3.2): called for every execution.
    webhook_endpoint: str = ""
    webhook_payload: str = ""  # the body template; "" for a JSON document of the execution
    webhook_headers: list[str] = field(default_factory=list)  # "Name: value" each

    @property
    def http_host_port(self) -> tuple[str, int]:
        parsed = _parse_host_port(self.http_addr)
        if parsed is None:
            raise ConfigError(f"http-addr {self.http_addr!r}: use host:port, e.g. 127.0.0.1:8080")
        return parsed

    @property
    def raft_address(self) -> str:
        return f"{self.advertise_addr or self.bind_addr}:{self.raft_port}"


SETTINGS = {f.name: str(f.type) for f in dataclasses.fields(AgentConfig)}


@dataclass
class Layer:
    """Settings from one source. `source` names it for error messages; `labels` can name a setting's own origin."""

    source: str
    values: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    spellings: dict[str, str] = field(default_factory=dict)

    def where(self, name: str) -> str:
        return self.labels.get(name, self.source)

    def set(self, name: str, value: Any, spelling: str, label: str | None = None) -> None:
        """Set `name`, written `spelling` in the source (refused if another spelling already set it)."""
        if name in self.values:
            raise ConfigError(f"{self.source}: {self.spellings[name]} and {spelling} both set {name}; keep one")
        self.values[name] = value
        self.spellings[name] = spelling
        if label is not None:
            self.labels[name] = label


def check_log_level(value: Any, where: str) -> str:
    """The log level `value` names, lower case ("WARN" → "warning"); a ConfigError listing the levels otherwise."""
    level = value.strip().lower() if isinstance(value, str) else None
    level = LOG_LEVEL_ALIASES.get(level or "", level)
    if level not in LOG_LEVELS:
        raise ConfigError(f"{where}: unknown log level {value!r}; use one of {', '.join(LOG_LEVELS)}")
    return level


def dev_layer() -> Layer:
    """`--dev`: one server; the layer goes first, so a file, HORAE_* variable or flag that sets these wins."""
    return Layer("--dev", {"server": True, "bootstrap_expect": 1, "bind_addr": "127.0.0.1"})


def dev_data_dir() -> str:
    """`--dev` without a data dir from anywhere else: a new temporary one."""
    return tempfile.mkdtemp(prefix="horae-dev-")


def load_file(path: str) -> Layer:
    """Read a TOML (`.toml`) or YAML (`.yaml`/`.yml`) config file; keys may use - or _ (`node-name`, `node_name`)."""
    source = f"config file {path}"
    is_toml = path.lower().endswith(".toml")
    if not is_toml and not path.lower().endswith((".yaml", ".yml")):
        raise ConfigError(f"{source}: use a .toml, .yaml or .yml file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise ConfigError(f"{source}: cannot read it: {error.strerror or error}") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(f"{source}: not UTF-8 text (byte 0x{raw[error.start]:02x} on line {line})") from error
    data = _parse_toml(text, source) if is_toml else _parse_yaml(text, source)
    layer = Layer(source)
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: key {key!r} is not a setting name (use text keys such as node-name)")
        name = key.replace("-", "_")
        layer.set(ALIASES.get(name, name), value, spelling=repr(key))
    return layer


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {_one_line(str(error))}") from error


def _parse_yaml(text: str, source: str) -> dict[Any, Any]:
    try:
        import yaml
    except ImportError as error:  # pragma: no cover - PyYAML is a dependency
        raise ConfigError("YAML config files need PyYAML: pip install pyyaml") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(error)}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of settings (key: value), not a {_kind(data)}")
    return data


def _yaml_problem(error: Exception) -> str:
    problem = getattr(error, "problem", None)
    if not problem:
        return _one_line(str(error))
    context = getattr(error, "context", None)
    mark = getattr(error, "problem_mark", None)
    text = f"{context}: {problem}" if context else problem
    if mark is not None:
        text += f" (line {mark.line + 1}, column {mark.column + 1})"
    return _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def from_environment(environ: Mapping[str, str] | None = None) -> Layer:
    """HORAE_NODE_NAME=… → node_name, for every setting; other HORAE_* variables are not settings and are ignored."""
    environ = os.environ if environ is None else environ
    layer = Layer("environment")
    for key, value in sorted(environ.items()):
        if key.startswith("HORAE_"):
            name = key[len("HORAE_") :].lower()
            name = ALIASES.get(name, name)
            if name in SETTINGS:
                layer.set(name, value, spelling=key, label=f"environment variable {key}")
    return layer


def build_config(layers: list[Layer]) -> AgentConfig:
    """Merge setting layers (later wins) into an AgentConfig, converting and checking every value."""
    config = AgentConfig()
    for layer in layers:
        for name, value in layer.values.items():
            if name not in SETTINGS:
                known = ", ".join(n.replace("_", "-") for n in SETTINGS)
                raise ConfigError(f"{layer.where(name)}: unknown setting {name!r}; the settings are {known}")
            setattr(config, name, _convert(name, value, layer.where(name)))
    return config


# --- converting and checking one value -----------------------------------------------------------------------------


class _Refused(Exception):
    """`value` is not acceptable for the setting; the message says what is."""


def _convert(name: str, value: Any, where: str) -> Any:
    if value is None:
        raise ConfigError(f"{where}: setting {name} has no value")
    if name == "log_level":
        return check_log_level(value, f"{where}: setting log_level")
    try:
        converted = _CONVERTERS_BY_NAME.get(name, _CONVERTERS[SETTINGS[name]])(value)
        check = _CHECKS.get(name)
        if check is not None:
            check(converted)
        return converted
    except _Refused as problem:
        shown = "the value" if name in SECRET_SETTINGS else repr(value)
        raise ConfigError(f"{where}: setting {name}: {shown} {problem}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise _Refused(f"is not a boolean; use one of {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}")


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _Refused("is not a whole number (int)")


def _to_float(value: Any) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise _Refused("is not a number (float)")
    return number


def _to_str(value: Any) -> str:
    if isinstance(value, list | tuple | dict | set):
        raise _Refused(f"is a {_kind(value)}, not a single value (str)")
    return str(value)


def _to_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return [_to_str(item) for item in value if item is not None and item != ""]
    raise _Refused(f"is a {_kind(value)}, not a list (a list of text, or text with items separated by commas)")


def _to_tags(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {_to_str(key): _to_str(item) for key, item in value.items()}
    if isinstance(value, str):
        items = [item for item in value.split(",") if item.strip()]
    elif isinstance(value, list | tuple):
        items = [_to_str(item) for item in value]
    else:
        raise _Refused(f"is a {_kind(value)}, not tags (key=value pairs)")
    try:
        return key_values(items)
    except ValueError as error:
        raise _Refused(f"is not key=value pairs: {error} is not key=value; write e.g. role=web,dc=eu") from None


def key_values(items: Iterable[str]) -> dict[str, str]:
    """`["role=web", "dc=eu"]` → `{"role": "web", "dc": "eu"}`; ValueError names the first item without `=`."""
    pairs: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise ValueError(repr(item.strip()))
        pairs[key.strip()] = value.strip()
    return pairs


# "Name: value, Other: value": a comma starts a new header only where a `Name:` follows it (Dkron's flag split every
# comma, which cut values such as "Accept: a, b").
_NEXT_HEADER = re.compile(r",\s*(?=[A-Za-z0-9!#$%&'*+.^_`|~-]+\s*:)")
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+\s*:.*", re.DOTALL)


def _to_headers(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else _to_list(value)
    headers = [part.strip() for item in items for part in _NEXT_HEADER.split(item) if part.strip()]
    for header in headers:
        if not _HEADER.fullmatch(header):
            raise _Refused(f"has {header!r}, which is not a header: write Name: value, e.g. Authorization: Bearer x")
    return headers


def web_url_problem(url: str) -> str | None:
    """Why `url` is not an http(s) URL with a host, or None."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        return "is not an http:// or https:// URL, e.g. https://hooks.example.com/horae"
    return None


def _web_url(url: str) -> None:
    if url and (problem := web_url_problem(url)) is not None:
        raise _Refused(problem)


_CONVERTERS_BY_NAME: dict[str, Callable[[Any], Any]] = {"webhook_headers": _to_headers}

_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bool": _to_bool,
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "list[str]": _to_list,
    "dict[str, str]": _to_tags,
}


def _at_least(minimum: float, exclusive: bool = False) -> Callable[[float], None]:
    def check(number: float) -> None:
        if number < minimum or (exclusive and number == minimum):
            raise _Refused(f"must be {'more than' if exclusive else 'at least'} {minimum}")

    return check


def _port(number: int) -> None:
    if not 1 <= number <= 65535:
        raise _Refused("is not a port: use 1-65535")


def _host_port(address: str) -> None:
    if _parse_host_port(address) is None:
        raise _Refused("is not host:port with a port in 1-65535, e.g. 127.0.0.1:8080")


def check_serving(config: AgentConfig) -> None:
    """Refuse an API that anyone on the network could use, and half of a TLS setting."""
    if bool(config.cert_file) != bool(config.key_file):
        given, missing = ("cert-file", "key-file") if config.cert_file else ("key-file", "cert-file")
        raise ConfigError(f"{given} is set but {missing} is not: HTTPS needs both")
    _check_rpc_tls(config)
    host, _ = config.http_host_port
    if config.acl_tokens or config.insecure_http or _is_loopback(host):
        return
    raise ConfigError(
        f"http-addr {config.http_addr}: the API would be open to the network with no API tokens; "
        "give --acl-tokens FILE (a YAML list of tokens, see docs/operations.md), or --insecure-http "
        "if an open API on that address is what you want"
    )


def _check_rpc_tls(config: AgentConfig) -> None:
    """Refuse inter-node TLS settings that contradict each other (docs/operations.md, "TLS")."""
    if config.auto_tls and not config.encrypt:
        raise ConfigError("auto-tls needs --encrypt: its certificates come from a CA derived from the cluster key")
    if config.auto_tls and config.ca_file:
        raise ConfigError("ca-file and auto-tls both set: auto-tls trusts only the cluster's own CA; keep one")
    if config.server and config.ca_file and not config.cert_file and not config.auto_tls:
        raise ConfigError(
            "ca-file is set but cert-file is not: a server serves inter-node gRPC over TLS with --cert-file and "
            "--key-file; give them too (--ca-file alone is for a client agent)"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_host_port(address: str) -> tuple[str, int] | None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host.strip("[]"), int(port)


def _base_path(path: str) -> None:
    if path and (not path.startswith("/") or path.endswith("/") or "//" in path or "?" in path or "#" in path):
        raise _Refused("must be a URL path that starts with / and does not end with /, e.g. /horae")


def _cluster_key(key: str) -> None:
    if not key:
        return
    from horae.cluster.auth import BadKey, decode_key  # here: grpc is imported only when a key is given

    try:
        decode_key(key)
    except BadKey as error:
        raise _Refused(str(error)) from None


_CHECKS: dict[str, Callable[[Any], None]] = {
    "rpc_port": _port,
    "raft_port": _port,
    "bootstrap_expect": _at_least(0),  # 0 is Dkron's default and means the same as 1
    "max_executions": _at_least(1),
    "shutdown_grace": _at_least(0),
    "raft_multiplier": _at_least(0, exclusive=True),
    "raft_snapshot_threshold": _at_least(2),
    "retry_interval": _at_least(0, exclusive=True),
    "retry_max": _at_least(0),
    "heartbeat_seconds": _at_least(0, exclusive=True),
    "failure_seconds": _at_least(0, exclusive=True),
    "http_addr": _host_port,
    "encrypt": _cluster_key,
    "mail_port": _port,
    "webhook_endpoint": _web_url,
    "ui_base_path": _base_path,
}


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list | tuple | set):
        return "list"
    return type(value).__name__
