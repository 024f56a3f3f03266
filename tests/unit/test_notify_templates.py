"""Notification templates: both variable spellings, unknown names left as written, JSON-safe webhook bodies."""

from __future__ import annotations

import json

import pytest

from horae.notify_templates import (
    MAX_OUTPUT_CHARS,
    default_payload,
    execution_values,
    is_json_payload,
    render,
    render_payload,
    report,
    subject,
    used_variables,
)

EXECUTION = {
    "id": "1700000000000000000-node1-2",
    "job_name": "backup",
    "started_at": "2026-12-03T10:00:00.000Z",
    "finished_at": "2026-12-03T10:00:01.500Z",
    "success": False,
    "output": 'disk "full"\nline two\\',
    "node_name": "node1",
    "group": 1700000000000000000,
    "attempt": 2,
    "exit_code": 3,
    "error": "exit status 3",
    "slot": "2026-12-03T10:00:00.000Z",
}


def values(**changes) -> dict[str, str]:
    return execution_values({**EXECUTION, **changes}, final=True, reporting_node="leader1")


def test_horae_names_are_filled() -> None:
    text = render(
        "{{job_name}} {{success}} {{node_name}} {{started_at}} {{finished_at}} {{execution_id}} "
        "{{attempt}} {{exit_code}} {{error}} {{slot}} {{final}} {{reporting_node}}",
        values(),
    )
    assert text == (
        "backup false node1 2026-12-03T10:00:00.000Z 2026-12-03T10:00:01.500Z 1700000000000000000-node1-2 "
        "2 3 exit status 3 2026-12-03T10:00:00.000Z true leader1"
    )


def test_dkron_names_are_filled_with_or_without_spaces() -> None:
    text = render(
        "{{.JobName}}|{{ .Success }}|{{.NodeName}}|{{.StartTime}}|{{.FinishedAt}}|{{.ReportingNode}}", values()
    )
    assert text == "backup|false|node1|2026-12-03T10:00:00.000Z|2026-12-03T10:00:01.500Z|leader1"
    assert render("{{ job_name }}/{{.Output}}", values(output="ok")) == "backup/ok"


def test_unknown_names_and_template_logic_are_left_as_written() -> None:
    template = "{{job}} {{.Job}} {{if .Success}}yes{{end}} {{ .JobName }} {{ }} {x}"
    assert render(template, values()) == "{{job}} {{.Job}} {{if .Success}}yes{{end}} backup {{ }} {x}"


def test_a_missing_value_leaves_the_placeholder() -> None:
    # `report` is only computed when a template uses it; rendering without it must not invent one.
    assert render("{{report}}", values()) == "{{report}}"


def test_missing_execution_fields_render_empty() -> None:
    rendered = render("[{{started_at}}][{{exit_code}}][{{error}}]", values(started_at=None, exit_code=None, error=None))
    assert rendered == "[][][]"


def test_success_renders_like_go() -> None:
    assert render("{{.Success}}", values(success=True)) == "true"


def test_used_variables_maps_both_spellings() -> None:
    assert used_variables("{{.Report}} {{job_name}}", "{{nope}} {{.Output}}") == {"report", "job_name", "output"}


def test_json_payload_escapes_values_inside_strings() -> None:
    template = '{"text": "{{job_name}} failed: {{output}}", "ok": {{success}}, "try": {{attempt}}}'
    body = render_payload(template, values(), headers={})
    document = json.loads(body)
    assert document == {"text": 'backup failed: disk "full"\nline two\\', "ok": False, "try": 2}


def test_json_is_decided_by_content_type_first() -> None:
    assert is_json_payload('{"a": 1}', {})
    assert is_json_payload("  [1]", {})
    assert not is_json_payload("job {{job_name}}", {})
    assert not is_json_payload("{{job_name}} {{success}}", {})
    assert is_json_payload('{"ok": {{success}}, "text": "{{output}}"}', {})
    assert not is_json_payload('{"broken": ', {})
    assert is_json_payload("text={{output}}", {"content-type": "application/vnd.api+json"})
    assert not is_json_payload('{"a": "{{output}}"}', {"Content-Type": "text/plain"})
    # A form body is not escaped as JSON: the value goes in as it is.
    assert render_payload("out={{output}}", values(output='a"b'), {}) == 'out=a"b'


def test_output_is_capped_keeping_its_end() -> None:
    long = "x" * (MAX_OUTPUT_CHARS + 10) + "END"
    rendered = values(output=long)["output"]
    assert rendered.endswith("END")
    assert rendered.startswith("[… first 13 characters cut …]\n")
    assert len(rendered) < MAX_OUTPUT_CHARS + 100


def test_report_lists_the_execution_and_its_group() -> None:
    group = [
        {**EXECUTION, "attempt": 1, "success": False},
        {**EXECUTION, "attempt": 2, "node_name": "node2", "success": True},
    ]
    text = report(values(), group)
    assert text.startswith("Executed: backup\nReporting node: leader1\nStart time: 2026-12-03T10:00:00.000Z\n")
    assert "Success: false\nNode: node1\nAttempt: 2\n" in text
    assert 'Output: disk "full"\nline two\\\n' in text
    assert "Execution group: 1700000000000000000\n" in text
    assert "\t[Node]: node1 [Attempt]: 1 [Start]: 2026-12-03T10:00:00.000Z" in text
    assert "\t[Node]: node2 [Attempt]: 2" in text and text.endswith("[Success]: true\n")


def test_default_payload_is_the_execution_as_json() -> None:
    document = json.loads(default_payload(EXECUTION, final=False, reporting_node="leader1"))
    assert document == {**EXECUTION, "final": False, "reporting_node": "leader1"}


@pytest.mark.parametrize(
    ("success", "expected"),
    [(True, "[horae]Success backup execution report"), (False, "[horae]Failed backup execution report")],
)
def test_subject_is_dkrons(success: bool, expected: str) -> None:
    assert subject("[horae]", values(success=success)) == expected
