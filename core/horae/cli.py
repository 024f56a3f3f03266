"""`horae` command line: the composition root that wires the parts for each command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence

from horae.api_client import ApiError
from horae.cli_jobs import add_jobs_commands
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
    agent.add_argument("--dev", action="store_true", help="one server with a temporary data dir (make run)")
    agent.add_argument("--server", action="store_true", default=None, help="hold Raft state and schedule")
    agent.add_argument("--node-name", help="this node's name (default: the host name)")
    agent.add_argument("--data-dir", help="where Raft and the execution store live")
    agent.add_argument("--http-addr", help="HTTP API address (default 127.0.0.1:8080)")
    agent.add_argument("--bind-addr", help="IP for Raft and inter-node RPC (default 127.0.0.1)")
    agent.add_argument("--advertise-addr", help="IP other nodes use to reach this one")
    agent.add_argument("--rpc-port", type=int, help="inter-node gRPC port (default 6868)")
    agent.add_argument("--raft-port", type=int, help="Raft port (default 8190)")
    agent.add_argument("--bootstrap-expect", type=int, help="servers expected to form the cluster")
    agent.add_argument("--join", action="append", metavar="HOST:PORT", help="a server to join (repeatable)")
    agent.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a node tag jobs can target (repeatable)")
    agent.add_argument("--plugin-dir", dest="plugin_dirs", action="append", metavar="DIR", help="plugin folder")
    agent.add_argument("--max-executions", type=int, help="executions kept per job (default 100)")
    agent.add_argument("--shutdown-grace", type=float, help="seconds running executions get on SIGTERM")
    agent.add_argument("--raft-multiplier", type=float, help="scale Raft timings (slower networks: > 1)")
    agent.set_defaults(run=run_agent)
    add_jobs_commands(commands)
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
    "plugin_dirs",
    "max_executions",
    "shutdown_grace",
    "raft_multiplier",
)


def run_agent(args: argparse.Namespace) -> int:
    from horae.agent import Agent
    from horae.config import ConfigError, apply_dev_defaults, build_config, from_environment, load_file
    from horae_web.app import create_app

    flags = {name: getattr(args, name) for name in AGENT_SETTINGS if getattr(args, name, None) is not None}
    if args.tag:
        flags["tags"] = dict(tag.split("=", 1) for tag in args.tag if "=" in tag)
    if args.log_level:
        flags["log_level"] = args.log_level
    try:
        layers = [load_file(args.config)] if args.config else []
        layers += [from_environment(), flags]
        config = build_config(layers)
        given = set().union(*(layer.keys() for layer in layers))
        if args.dev:
            apply_dev_defaults(config, given)
        if not config.data_dir:
            raise ConfigError("--data-dir is required (or use --dev for a temporary one)")
        config.http_host_port  # noqa: B018 - validates the address early
    except (ConfigError, OSError) as error:
        print(f"horae agent: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    asyncio.run(Agent(config).run(create_app))
    return 0


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
    setup_logging(args.log_level or ("info" if args.command == "agent" else "warning"))
    try:
        return args.run(args)
    except ApiError as error:
        print(f"horae: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
