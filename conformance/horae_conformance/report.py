"""How results are shown: a table with a summary line for people, JSON for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence

from horae.table import format_table
from horae_conformance.results import CaseResult, Summary
from horae_sdk.spec import PluginSpec

# The table keeps each row on one line; JSON and JUnit carry the whole reason.
TABLE_REASON_CHARS = 240


def title(spec: PluginSpec) -> str:
    return f"horae-conformance: {spec.kind} {spec.name!r} ({' '.join(spec.argv)})"


def table(results: Sequence[CaseResult]) -> str:
    rows = [(result.name, result.status.value, _cut(result.reason)) for result in results]
    return format_table(["CASE", "RESULT", "REASON"], rows)


def text_report(spec: PluginSpec, results: Sequence[CaseResult]) -> str:
    return f"{title(spec)}\n\n{table(results)}\n\n{Summary.of(results).line()}"


def json_report(spec: PluginSpec, results: Sequence[CaseResult]) -> str:
    summary = Summary.of(results)
    document = {
        "plugin": {"kind": spec.kind, "name": spec.name, "argv": spec.argv, "source": spec.source},
        "results": [
            {"case": r.name, "result": r.status.value, "reason": r.reason, "seconds": round(r.seconds, 3)}
            for r in results
        ],
        "summary": {"passed": summary.passed, "failed": summary.failed, "skipped": summary.skipped},
    }
    return json.dumps(document, indent=2)


def _cut(reason: str) -> str:
    return reason if len(reason) <= TABLE_REASON_CHARS else reason[: TABLE_REASON_CHARS - 1] + "…"
