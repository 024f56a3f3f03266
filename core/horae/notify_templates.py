"""What a notification says: the variables of a finished execution and plain `{{name}}` substitution.

Both spellings work in every template: horae's `{{job_name}}` and Dkron's `{{.JobName}}`. There is
no template logic (Dkron's Go templates had some; `{{if}}` and the like are left as written), and a
name that is not a variable is left as written too, so a typo shows in the message it produced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# `{{job_name}}`, `{{ job_name }}`, `{{.JobName}}`, `{{ .JobName }}`.
PLACEHOLDER = re.compile(r"\{\{\s*(\.?[A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

# Dkron's names (its notifier's template data) and the horae variable each stands for.
DKRON_NAMES = {
    ".JobName": "job_name",
    ".Success": "success",
    ".Output": "output",
    ".NodeName": "node_name",
    ".StartTime": "started_at",
    ".FinishedAt": "finished_at",
    ".Report": "report",
    ".ReportingNode": "reporting_node",
}

VARIABLES = (
    "job_name",
    "success",
    "output",
    "node_name",
    "started_at",
    "finished_at",
    "execution_id",
    "attempt",
    "exit_code",
    "error",
    "slot",
    "group",
    "final",
    "reporting_node",
    "report",
)

# A notification carries at most this much of the output: its end, where errors usually are.
MAX_OUTPUT_CHARS = 64 * 1024


def variable_of(name: str) -> str | None:
    """The variable a placeholder name stands for (`.JobName` → `job_name`); None when it is not one."""
    if name.startswith("."):
        return DKRON_NAMES.get(name)
    return name if name in VARIABLES else None


def used_variables(*templates: str) -> set[str]:
    """The variables the templates use (so that costly ones, like the report, are built only when needed)."""
    found = set()
    for template in templates:
        for match in PLACEHOLDER.finditer(template):
            variable = variable_of(match.group(1))
            if variable is not None:
                found.add(variable)
    return found


def render(template: str, values: Mapping[str, str], escape: Callable[[str], str] | None = None) -> str:
    """Replace each known placeholder by its value (passed through `escape`); leave anything else as written."""

    def substitute(match: re.Match[str]) -> str:
        variable = variable_of(match.group(1))
        if variable is None or variable not in values:
            return match.group(0)
        value = values[variable]
        return escape(value) if escape is not None else value

    return PLACEHOLDER.sub(substitute, template)


def json_string_content(value: str) -> str:
    """`value` escaped to sit between the quotes of a JSON string (quotes, backslashes, newlines…)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def is_json_payload(template: str, headers: Mapping[str, str]) -> bool:
    """A webhook body is JSON when its Content-Type says so or, with none given, when the template is JSON
    (each placeholder counted as a value: `{"ok": {{success}}}` is JSON, `{{job_name}} failed` is not)."""
    for name, value in headers.items():
        if name.lower() == "content-type":
            return "json" in value.lower()
    try:
        json.loads(PLACEHOLDER.sub("0", template))
    except ValueError:
        return False
    return True


def render_payload(template: str, values: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """A webhook body: values JSON-escaped when the body is JSON, so an output with quotes cannot break it.

    Placeholders then belong inside JSON strings: `{"text": "{{job_name}}: {{output}}"}`;
    `{{success}}`, `{{attempt}}` and `{{final}}` may also stand bare (`"ok": {{success}}`).
    """
    return render(template, values, json_string_content if is_json_payload(template, headers) else None)


def cap_output(output: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(output) <= limit:
        return output
    return f"[… first {len(output) - limit} characters cut …]\n" + output[-limit:]


def _flag(value: Any) -> str:
    return "true" if value else "false"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def execution_values(execution: Mapping[str, Any], final: bool, reporting_node: str) -> dict[str, str]:
    """Every variable but `report` (which needs the execution's group; see `report`)."""
    return {
        "job_name": _text(execution.get("job_name")),
        "success": _flag(execution.get("success")),
        "output": cap_output(_text(execution.get("output"))),
        "node_name": _text(execution.get("node_name")),
        "started_at": _text(execution.get("started_at")),
        "finished_at": _text(execution.get("finished_at")),
        "execution_id": _text(execution.get("id")),
        "attempt": _text(execution.get("attempt") or 1),
        "exit_code": _text(execution.get("exit_code")),
        "error": _text(execution.get("error")),
        "slot": _text(execution.get("slot")),
        "group": _text(execution.get("group")),
        "final": _flag(final),
        "reporting_node": reporting_node,
    }


def report(values: Mapping[str, str], group: Iterable[Mapping[str, Any]] = ()) -> str:
    """Dkron's execution report: the execution, then one line per execution of its group (fan-out, retries)."""
    lines = [
        f"Executed: {values['job_name']}",
        f"Reporting node: {values['reporting_node']}",
        f"Start time: {values['started_at']}",
        f"End time: {values['finished_at']}",
        f"Success: {values['success']}",
        f"Node: {values['node_name']}",
        f"Attempt: {values['attempt']}",
        f"Output: {values['output']}",
        f"Execution group: {values['group']}",
    ]
    for other in group:
        lines.append(
            f"\t[Node]: {_text(other.get('node_name'))} [Attempt]: {_text(other.get('attempt'))}"
            f" [Start]: {_text(other.get('started_at'))} [End]: {_text(other.get('finished_at'))}"
            f" [Success]: {_flag(other.get('success'))}"
        )
    return "\n".join(lines) + "\n"


def default_payload(execution: Mapping[str, Any], final: bool, reporting_node: str) -> str:
    """The webhook body when none is given: the execution as the API shows it, plus `final` and the reporter."""
    document = dict(execution)
    document["output"] = cap_output(_text(execution.get("output")))
    document["final"] = final
    document["reporting_node"] = reporting_node
    return json.dumps(document, ensure_ascii=False)


def subject(prefix: str, values: Mapping[str, str]) -> str:
    """Dkron's mail subject: `<prefix>Success <job> execution report` (or `Failed`)."""
    status = "Success" if values["success"] == "true" else "Failed"
    return f"{prefix}{status} {values['job_name']} execution report"
