"""Run every benchmark and print its table: `python -m tests.bench [NAME ...]`."""

from __future__ import annotations

import argparse
import asyncio
import importlib

BENCHMARKS = {
    "capacity": "tests.bench.bench_capacity",
    "chaos": "tests.bench.chaos",
    "cluster": "tests.bench.bench_cluster",
    "http": "tests.bench.bench_http",
    "nats": "tests.bench.bench_nats",
    "plugin_host": "tests.bench.bench_plugin_host",
    "scheduler": "tests.bench.bench_scheduler",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(BENCHMARKS)} (default: all)")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(BENCHMARKS[name])
        asyncio.run(module.run())


if __name__ == "__main__":
    main()
