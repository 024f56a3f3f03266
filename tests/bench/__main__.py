"""Run every benchmark and print its table: `python -m tests.bench [NAME ...]`."""

from __future__ import annotations

import argparse
import asyncio
import importlib

BENCHMARKS = {
    "api": "tests.bench.bench_api",
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
    # Options after one NAME go to that benchmark's own main: `python -m tests.bench chaos --rounds 3 --seed 5`.
    args, options = parser.parse_known_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if options:
        module = importlib.import_module(BENCHMARKS[args.names[0]]) if len(args.names) == 1 else None
        if module is None or not hasattr(module, "main"):
            parser.error(f"unrecognized arguments {' '.join(options)}: options go to one benchmark that takes them")
        module.main(options)
        return
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(BENCHMARKS[name])
        asyncio.run(module.run())


if __name__ == "__main__":
    main()
