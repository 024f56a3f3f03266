"""`horae` command line: the composition root that wires the parts for each command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence

from horae.host.discovery import discover_plugins
from horae.host.supervisor import PluginHost, PluginStatus
from horae.logs import setup_logging
from horae.table import format_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="horae", description="horae: cron for a cluster, Dkron-compatible.")
    parser.add_argument("--log-level", default="warning", help="debug, info, warning or error (default: warning)")
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
    return parser


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
    setup_logging(args.log_level)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
