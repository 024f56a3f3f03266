"""`horae-conformance executor|processor …`: parse the command line, run the suite, report, exit.

    horae-conformance executor [options] -- CMD...          check any plugin program
    horae-conformance executor --plugin NAME [--plugin-dir DIR]   check a discovered one

Exit status: 0 when no case failed, 1 when one did, 2 when the command line or plugin is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from horae_conformance.junit import write_junit
from horae_conformance.report import json_report, text_report
from horae_conformance.results import CaseResult, Status
from horae_conformance.runner import run_suite, suite
from horae_conformance.target import Target, TargetError, discovered_spec, parse_config, spec_from_command

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
CONFIG_OPTIONS = {
    "echo": "executor job config whose output contains `horae-conformance`",
    "sleep": "executor job config that runs at least 10 s unless cancelled",
    "flood": "executor job config that writes at least 10 MiB of output",
    "process": "processor config for the Process calls (default: {})",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="horae-conformance",
        description="Check that a plugin speaks horae's plugin protocol (go-plugin gRPC).",
        usage="%(prog)s executor|processor [options] (--plugin NAME | -- CMD...)",
        epilog="Configs are JSON objects; each missing one skips the cases that need it. "
        "Precedence: command line, then the plugin's PluginSpec, then its Describe answer.",
    )
    parser.add_argument("kind", choices=["executor", "processor"], help="what the plugin is")
    parser.add_argument("--plugin", metavar="NAME", help="check a discovered plugin (entry points, --plugin-dir)")
    parser.add_argument(
        "--plugin-dir", metavar="DIR", action="append", default=[], help="directory of horae-<kind>-<name> programs"
    )
    for key, text in CONFIG_OPTIONS.items():
        parser.add_argument(f"--{key}-config", metavar="JSON", dest=f"{key}_config", help=text)
    parser.add_argument(
        "--handshake-timeout", type=float, default=10.0, metavar="SECONDS", help="wait this long for the handshake"
    )
    parser.add_argument(
        "--case", metavar="TEXT", action="append", default=[], help="run only the cases whose name contains TEXT"
    )
    parser.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument(
        "--strict", action="store_true", help="warnings (a plugin that does not watch its parent) fail instead of skip"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the plugin's log and the runner's on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` is the plugin's command line, options included.
    command: list[str] = []
    if "--" in args_list:
        split = args_list.index("--")
        args_list, command = args_list[:split], args_list[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(args_list)
    _setup_logging(args.verbose)
    try:
        target = _target(args, command)
    except TargetError as error:
        parser.exit(EXIT_USAGE, f"horae-conformance: {error}\n")
    if not suite(args.kind, args.case):
        parser.exit(EXIT_USAGE, f"horae-conformance: no {args.kind} case matches {', '.join(args.case)}\n")
    try:
        results = asyncio.run(_run(target, args))
    except KeyboardInterrupt:
        print("horae-conformance: interrupted", file=sys.stderr)
        return EXIT_FAILED
    print(json_report(target.spec, results) if args.json else text_report(target.spec, results))
    if args.junit:
        write_junit(args.junit, target.spec, results)
    return EXIT_FAILED if any(result.status == Status.FAILED for result in results) else EXIT_OK


def _target(args: argparse.Namespace, command: list[str]) -> Target:
    if bool(args.plugin) == bool(command):
        raise TargetError("give either --plugin NAME or `-- CMD...`, not both or neither")
    if args.plugin:
        spec = discovered_spec(args.kind, args.plugin, args.plugin_dir)
    else:
        spec = spec_from_command(args.kind, command)
    configs = {}
    for key in CONFIG_OPTIONS:
        text = getattr(args, f"{key}_config")
        if text is not None:
            configs[key] = parse_config(text, f"--{key}-config")
    return Target(spec, configs)


async def _run(target: Target, args: argparse.Namespace) -> list[CaseResult]:
    # SIGTERM cancels the run like Ctrl-C does, so every plugin started is stopped on the way out.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_suite(target, handshake_timeout=args.handshake_timeout, strict=args.strict, only=args.case)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    else:
        # The plugins' logs are not the report; keep them (and logging's last-resort handler) quiet.
        root.addHandler(logging.NullHandler())
