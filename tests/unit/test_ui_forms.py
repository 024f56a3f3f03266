"""The web UI's pure parts: reading the job form, placing API problems next to fields, the chart, the base path."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from horae.config import ConfigError, build_config, from_environment
from horae_web.ui.chart import draw
from horae_web.ui.job_form import EXTRA_CONFIG, _with_problems, job_from, read_form


def _form(**values: str) -> FormData:
    return FormData([(key.replace("__", "."), value) for key, value in values.items()])


def test_the_form_becomes_job_json_and_keeps_wrong_numbers_for_the_api_to_name():
    values, problems = read_form(
        _form(
            name="nightly",
            schedule="@daily",
            executor="shell",
            executor_config__command="echo hi",
            executor_config_extra='{"cwd": "/tmp"}',
            retries="three",
            tags="role=web\n\n",
            metadata="team = ops",
        )
    )
    assert problems == []
    job = job_from(values)
    assert job["executor_config"] == {"cwd": "/tmp", "command": "echo hi"}
    assert job["retries"] == "three"  # the API's validation says what retries must be
    assert job["tags"] == {"role": "web"} and job["metadata"] == {"team": "ops"}
    assert job["timeout"] is None and job["disabled"] is False


def test_lines_and_json_the_form_cannot_read_are_problems_of_their_own_field():
    _, problems = read_form(_form(name="x", tags="role", executor_config_extra="[1]", processors="{"))
    assert [field for field, _ in problems] == ["tags", EXTRA_CONFIG, "processors"]


def test_each_api_problem_goes_next_to_its_input_and_the_rest_above_the_form():
    values, _ = read_form(_form(name="x", executor="shell"))
    keys = {"command": {}, "shell": {}}
    problems = [
        ("schedule", "bad schedule"),
        ("schedule", "bad schedule"),
        ("executor_config.command", "command is required"),
        ("executor_config.comand", "unknown key; did you mean command?"),
        ("notify.email", "no mail server"),
        ("", "the body is wrong"),
    ]
    state = _with_problems(values, keys, problems)
    assert state.errors == {
        "schedule": ["bad schedule"],
        "executor_config.command": ["command is required"],
        EXTRA_CONFIG: ["unknown key; did you mean command?"],
    }
    assert state.general == ["notify.email: no mail server", "the body is wrong"]


def test_the_chart_scales_bars_to_the_busiest_minute():
    counts, failures = [0] * 60, [0] * 60
    counts[59], counts[0], failures[0] = 4, 2, 1
    chart = draw(counts, failures)
    assert (chart.total, chart.failed, chart.peak) == (6, 1, 4)
    assert chart.bars[59].height == pytest.approx(chart.height - 2)
    assert chart.bars[0].height == pytest.approx((chart.height - 2) / 2) and chart.bars[0].minutes_ago == 59


@pytest.mark.parametrize("path", ["horae", "/horae/", "//horae", "/a?b"])
def test_a_ui_base_path_must_be_a_plain_path(path):
    with pytest.raises(ConfigError, match="ui_base_path"):
        build_config([from_environment({"HORAE_UI_BASE_PATH": path})])
    assert build_config([from_environment({"HORAE_UI_BASE_PATH": "/horae"})]).ui_base_path == "/horae"
