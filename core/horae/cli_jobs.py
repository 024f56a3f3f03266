"""`horae jobs …`: manage jobs through the HTTP API of any node, as tables or `--json`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from horae.api_client import ApiClient, ApiError
from horae.table import format_table


def add_jobs_commands(commands: argparse._SubParsersAction) -> None:
    jobs = commands.add_parser("jobs", help="list, change, run and stop jobs through the API")
    _connection_options(jobs)
    # The same options after the subcommand (`horae jobs list --token …`); given there, they win.
    after = argparse.ArgumentParser(add_help=False)
    _connection_options(after, default=argparse.SUPPRESS)
    sub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="SUBCOMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[after])

    add("list", "every job with its status and next run").set_defaults(run=jobs_list)
    for name, handler, text in (
        ("show", jobs_show, "one job, all fields"),
        ("run", jobs_run, "run a job now"),
        ("toggle", jobs_toggle, "enable or disable a job"),
        ("delete", jobs_delete, "delete a job and its executions"),
    ):
        command = add(name, text)
        command.add_argument("name")
        command.set_defaults(run=handler)
    executions = add("executions", "a job's executions, newest first")
    executions.add_argument("name")
    executions.add_argument("--limit", type=int, default=20)
    executions.set_defaults(run=jobs_executions)
    stop = add("stop", "stop a running execution")
    stop.add_argument("name")
    stop.add_argument("execution_id")
    stop.set_defaults(run=jobs_stop)
    apply = add("apply", "create or update jobs from a JSON file (one job or an array)")
    apply.add_argument("-f", "--file", required=True, help="the file, or - for stdin")
    apply.set_defaults(run=jobs_apply)
    export = add("export", "write every job as a JSON array")
    export.add_argument("-o", "--output", default="-", help="the file (default: stdout)")
    export.set_defaults(run=jobs_export)
    restore = add("import", "restore jobs from an export or a Dkron GET /v1/jobs dump")
    restore.add_argument("-f", "--file", required=True, help="the file, or - for stdin")
    restore.set_defaults(run=jobs_import)


def _connection_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument("--address", default=default, help="the API (default: $HORAE_ADDR or http://127.0.0.1:8080)")
    parser.add_argument("--token", default=default, help="API token (default: $HORAE_TOKEN)")
    parser.add_argument(
        "--json", action="store_true", default=False if default is None else default, help="print JSON, not tables"
    )


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(args.address, args.token)


def _print(args: argparse.Namespace, value: Any, headers: tuple[str, ...] = (), rows: list | None = None) -> None:
    if args.json or rows is None:
        print(json.dumps(value, indent=2))
    else:
        print(format_table(headers, rows) if rows else "nothing to show")


def _read_json(path: str) -> Any:
    try:
        if path == "-":
            return json.loads(sys.stdin.read())
        with open(path) as handle:
            return json.load(handle)
    except OSError as error:
        raise ApiError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise ApiError(f"{path} is not valid JSON: {error}") from None


def jobs_list(args: argparse.Namespace) -> int:
    jobs = _client(args).jobs()
    rows = [
        (
            j["name"],
            j.get("schedule", ""),
            j.get("executor", ""),
            j.get("status") or "-",
            "disabled" if j.get("disabled") else "enabled",
            j.get("next") or "-",
        )
        for j in jobs
    ]
    _print(args, jobs, ("NAME", "SCHEDULE", "EXECUTOR", "STATUS", "STATE", "NEXT"), rows)
    return 0


def jobs_show(args: argparse.Namespace) -> int:
    _print(args, _client(args).job(args.name))
    return 0


def jobs_run(args: argparse.Namespace) -> int:
    job = _client(args).run(args.name)
    _print(args, job, ("JOB", "RESULT"), [(job["name"], "started")])
    return 0


def jobs_toggle(args: argparse.Namespace) -> int:
    job = _client(args).toggle(args.name)
    _print(args, job, ("JOB", "STATE"), [(job["name"], "disabled" if job.get("disabled") else "enabled")])
    return 0


def jobs_delete(args: argparse.Namespace) -> int:
    job = _client(args).delete_job(args.name)
    _print(args, job, ("JOB", "RESULT"), [(job["name"], "deleted")])
    return 0


def jobs_executions(args: argparse.Namespace) -> int:
    executions = _client(args).executions(args.name, args.limit)
    rows = [
        (
            e["id"],
            e.get("started_at") or "-",
            e.get("finished_at") or "running",
            "ok" if e.get("success") else "failed",
            e.get("node_name", ""),
            e.get("exit_code", ""),
        )
        for e in executions
    ]
    _print(args, executions, ("ID", "STARTED", "FINISHED", "RESULT", "NODE", "EXIT"), rows)
    return 0


def jobs_stop(args: argparse.Namespace) -> int:
    _print(args, _client(args).stop(args.name, args.execution_id))
    return 0


def jobs_apply(args: argparse.Namespace) -> int:
    data = _read_json(args.file)
    client = _client(args)
    rows = []
    for job in data if isinstance(data, list) else [data]:
        saved = client.put_job(job)
        rows.append((saved["name"], "applied", saved.get("next") or "-"))
    _print(args, [r[0] for r in rows], ("JOB", "RESULT", "NEXT"), rows)
    return 0


def jobs_export(args: argparse.Namespace) -> int:
    jobs = _client(args).jobs()
    text = json.dumps(jobs, indent=2)
    if args.output == "-":
        print(text)
    else:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
        print(f"exported {len(jobs)} jobs to {args.output}", file=sys.stderr)
    return 0


def jobs_import(args: argparse.Namespace) -> int:
    data = _read_json(args.file)
    summary = _client(args).restore(data if isinstance(data, list) else [data])
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    _print(args, summary, ("JOB", "RESULT"), [(name, "restored") for name in summary.get("restored", [])])
    return 0
