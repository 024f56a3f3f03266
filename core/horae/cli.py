"""`horae` command line: the composition root that wires the parts for each command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence

from horae.access_tokens import TokenFileError, load_tokens
from horae.api_client import ApiError
from horae.cli_cluster import add_cluster_commands
from horae.cli_jobs import add_jobs_commands
from horae.cli_notify import NOTIFICATION_SETTINGS, add_notification_flags
from horae.config import (
    ConfigError,
    Layer,
    build_config,
    check_log_level,
    check_serving,
    dev_data_dir,
    dev_layer,
    from_environment,
    key_values,
    load_file,
)
from horae.host.discovery import discover_plugins
from horae.host.supervisor import PluginHost, PluginStatus
from horae.logs import setup_logging
from horae.table import format_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="horae", description="horae: cron for a cluster, Dkron-compatible.")
    parser.add_argument(
        "--log-level", help="debug, info, warning or error (default: info for the agent, warning otherwise)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plugins = commands.add_parser("plugins", help="the executor and processor plugins horae finds")
    plugin_commands = plugins.add_subparsers(dest="plugins_command", required=True, metavar="SUBCOMMAND")
    listing = plugin_commands.add_parser(
        "list", help="start every discovered plugin, show its health, stop them (exit 1 if one failed)"
    )
    listing.add_argument(
        "--plugin-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="also look for horae-executor-*, horae-processor-* and dkron-executor-* here (repeatable)",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--handshake-timeout", type=float, default=10.0, metavar="SECONDS")
    listing.set_defaults(run=plugins_list)

    agent = commands.add_parser("agent", help="run a horae node (server with --server, --dev for a local trial)")
    agent.add_argument("--config", metavar="FILE", help="a .toml or .yaml config file (flags win over it)")
    agent.add_argument(
        "--dev", action="store_true", help="one server with a temporary data dir unless given otherwise (make run)"
    )
    agent.add_argument("--server", action="store_true", default=None, help="hold Raft state and schedule")
    agent.add_argument("--node-name", help="this node's name (default: the host name)")
    agent.add_argument("--data-dir", help="where Raft and the execution store live")
    agent.add_argument("--http-addr", help="HTTP API address (default 127.0.0.1:8080)")
    agent.add_argument(
        "--bind-addr",
        help="IP for Raft and inter-node RPC (default: the first private IPv4 address; 127.0.0.1 with --dev)",
    )
    agent.add_argument("--advertise-addr", help="IP other nodes use to reach this one")
    agent.add_argument("--rpc-port", type=int, help="inter-node gRPC port (default 6868)")
    agent.add_argument("--raft-port", type=int, help="Raft port (default 8190)")
    agent.add_argument("--bootstrap-expect", type=int, help="servers expected to form the cluster")
    agent.add_argument("--join", action="append", metavar="HOST:PORT", help="a server to join (repeatable)")
    agent.add_argument(
        "--retry-join", action="append", metavar="HOST:PORT", help="a server to join, retried until it answers"
    )
    agent.add_argument("--retry-interval", type=float, metavar="SECONDS", help="between join attempts (default 0.5)")
    agent.add_argument("--retry-max", type=int, help="join attempts before giving up (default 0: no limit)")
    agent.add_argument("--heartbeat-seconds", type=float, help="how often a node beats to the leader (default 3)")
    agent.add_argument("--failure-seconds", type=float, help="silence after which a node is failed (default 10)")
    agent.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a node tag jobs can target (repeatable)")
    agent.add_argument("--plugin-dir", dest="plugin_dirs", action="append", metavar="DIR", help="plugin folder")
    agent.add_argument("--max-executions", type=int, help="executions kept per job (default 100)")
    agent.add_argument("--shutdown-grace", type=float, help="seconds running executions get on SIGTERM")
    agent.add_argument("--raft-multiplier", type=float, help="scale Raft timings (slower networks: > 1)")
    agent.add_argument(
        "--encrypt", metavar="KEY", help="the cluster key, the same on every node (`horae keygen` makes one)"
    )
    agent.add_argument("--acl-tokens", metavar="FILE", help="API tokens (YAML); every /v1 call then needs one")
    agent.add_argument(
        "--insecure-http",
        action="store_true",
        default=None,
        help="serve an open API (no --acl-tokens) on a non-loopback --http-addr anyway",
    )
    agent.add_argument(
        "--ui-base-path", metavar="PATH", help="the path prefix a reverse proxy strips before /ui, e.g. /horae"
    )
    agent.add_argument(
        "--cert-file", metavar="PEM", help="serve the API over HTTPS and inter-node gRPC over TLS with this"
    )
    agent.add_argument("--key-file", metavar="PEM", help="the private key of --cert-file")
    agent.add_argument(
        "--ca-file", metavar="PEM", help="check servers' inter-node TLS certificates with this CA (default: system's)"
    )
    agent.add_argument(
        "--auto-tls",
        action="store_true",
        default=None,
        help="inter-node gRPC over mutual TLS with certificates from a CA derived from --encrypt's key",
    )
    # Also accepted after `agent`, as Dkron has it (`dkron agent --log-level debug`); a separate dest, because
    # the subcommand's default would otherwise overwrite `horae --log-level debug agent`.
    agent.add_argument(
        "--log-level", dest="agent_log_level", metavar="LOG_LEVEL", help="debug, info, warning or error (default: info)"
    )
    add_notification_flags(agent)
    agent.set_defaults(run=run_agent)
    add_jobs_commands(commands)
    add_cluster_commands(commands)
    return parser


AGENT_SETTINGS = (
    "server",
    "node_name",
    "data_dir",
    "http_addr",
    "bind_addr",
    "advertise_addr",
    "rpc_port",
    "raft_port",
    "bootstrap_expect",
    "join",
    "retry_join",
    "retry_interval",
    "retry_max",
    "heartbeat_seconds",
    "failure_seconds",
    "plugin_dirs",
    "max_executions",
    "shutdown_grace",
    "raft_multiplier",
    "encrypt",
    "acl_tokens",
    "insecure_http",
    "ui_base_path",
    "cert_file",
    "key_file",
    "ca_file",
    "auto_tls",
    *NOTIFICATION_SETTINGS,
)


def run_agent(args: argparse.Namespace) -> int:
    from horae.agent import Agent
    from horae_web.app import create_app

    try:
        flags = Layer("flags")
        for name in AGENT_SETTINGS:
            if getattr(args, name, None) is not None:
                flag = "--plugin-dir" if name == "plugin_dirs" else "--" + name.replace("_", "-")
                flags.set(name, getattr(args, name), spelling=flag, label=f"flag {flag}")
        if args.tag:
            flags.set("tags", _parse_tag_flags(args.tag), spelling="--tag", label="flag --tag")
        log_level = args.agent_log_level or args.log_level
        if log_level:
            flags.set("log_level", log_level, spelling="--log-level", label="flag --log-level")
        layers = [load_file(args.config)] if args.config else []
        layers += [from_environment(), flags]
        config = build_config([dev_layer(), *layers] if args.dev else layers)
        if args.dev and not config.data_dir:
            config.data_dir = dev_data_dir()
        if not config.data_dir:
            raise ConfigError(
                "--data-dir is required (or HORAE_DATA_DIR, or data-dir in the config file; --dev for a temporary one)"
            )
        check_serving(config)
        if config.acl_tokens:
            load_tokens(config.acl_tokens)  # refuse a bad file now, not at the first request
    except (ConfigError, TokenFileError, OSError) as error:
        print(f"horae agent: {_one_line(error)}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    asyncio.run(Agent(config).run(create_app))
    return 0


def _parse_tag_flags(tags: list[str]) -> dict[str, str]:
    try:
        return key_values(tags)
    except ValueError as error:
        raise ConfigError(f"flag --tag {error}: use the form --tag key=value, e.g. --tag role=web") from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).splitlines())


def plugins_list(args: argparse.Namespace) -> int:
    discovery = discover_plugins(args.plugin_dir)

    async def start_and_stop() -> list[PluginStatus]:
        host = PluginHost(discovery.plugins, handshake_timeout=args.handshake_timeout, restart=False)
        try:
            await host.start()
            return host.statuses()
        finally:
            await host.stop()

    statuses = asyncio.run(start_and_stop())
    if args.json:
        print(json.dumps({"plugins": [dataclasses.asdict(s) for s in statuses], "problems": discovery.problems}))
    else:
        rows = [
            (s.kind, s.name, s.source, s.state if s.state == "healthy" else f"{s.state}: {s.error}", s.pid or "-")
            for s in statuses
        ]
        print(format_table(("KIND", "NAME", "SOURCE", "STATE", "PID"), rows) if rows else "no plugins found")
        for problem in discovery.problems:
            print(f"warning: {problem}", file=sys.stderr)
    return 0 if all(s.state == "healthy" for s in statuses) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        level = check_log_level(args.log_level, "flag --log-level") if args.log_level else None
    except ConfigError as error:
        print(f"horae: {error}", file=sys.stderr)
        return 2
    setup_logging(level or ("info" if args.command == "agent" else "warning"))
    try:
        return args.run(args)
    except ApiError as error:
        print(f"horae: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
