"""Create and edit a job: a form whose errors come from the API's validation, field by field.

The form is saved through `HoraeService.put_job`, as `PUT /v1/jobs/{name}` does (a secret sent back masked keeps
its stored value); a 400's `fields` are shown next to their inputs. The executor's settings get one input per
key of the JSON Schema its plugin serves (`Describe`), other keys a JSON box. The schedule is previewed as
you type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from horae.errors import BadRequest, HoraeError, NotFound
from horae.model import READ_ONLY_FIELDS
from horae_web.secrets import shown, unmasked
from horae_web.ui.guard import guarded, redirect
from horae_web.ui.pages import schema_properties, service_of
from horae_web.ui.rendering import quote, render

CONFIG_PREFIX = "executor_config."
EXTRA_CONFIG = "executor_config_extra"
# The form's fields, in the order problems are matched to them (a problem of `executor_config.command` goes to
# that input; one of `executor_config` to the extra box).
TEXT_FIELDS = ("name", "displayname", "schedule", "timezone", "owner", "owner_email", "executor", "parent_job")
CONCURRENCY = ("allow", "forbid")
PREVIEW_COUNT = 5


@dataclass
class FormState:
    values: dict[str, Any]
    config_keys: dict[str, dict[str, Any]]
    errors: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)


def _executors(request: Request) -> list[str]:
    return sorted(plugin["name"] for plugin in service_of(request).plugins() if plugin["kind"] == "executor")


def config_keys(request: Request, executor: str) -> dict[str, dict[str, Any]]:
    schema = service_of(request).host.config_schemas().get(f"executor:{executor}", "")
    return schema_properties(schema)


def form_values(job: dict[str, Any]) -> dict[str, Any]:
    """A job's JSON as the form shows it."""
    return {
        **{key: job.get(key) or "" for key in TEXT_FIELDS},
        "retries": job.get("retries", 0),
        "timeout": "" if job.get("timeout") is None else job["timeout"],
        "concurrency": job.get("concurrency") or "allow",
        "disabled": bool(job.get("disabled")),
        "tags": _lines(job.get("tags")),
        "metadata": _lines(job.get("metadata")),
        "executor_config": dict(job.get("executor_config") or {}),
        "processors": json.dumps(job["processors"], indent=2) if job.get("processors") else "",
    }


def _lines(values: Any) -> str:
    return "\n".join(f"{key}={value}" for key, value in (values or {}).items()) if isinstance(values, dict) else ""


def _render_form(request: Request, state: FormState, editing: str | None, status: int = 200) -> Response:
    values = state.values
    known = state.config_keys
    extra = {key: value for key, value in values["executor_config"].items() if key not in known}
    context = {
        "values": values,
        "editing": editing,
        "executors": _executors(request),
        "config_keys": known,
        "extra_config": values.get(EXTRA_CONFIG) or (json.dumps(extra, indent=2) if extra else ""),
        "errors": state.errors,
        "general": state.general,
        "concurrency_choices": CONCURRENCY,
    }
    return render(request, "job_form.html", context, status=status)


@guarded("POST", "/v1/jobs")
async def new(request: Request) -> Response:
    values = form_values({"executor": "shell", "concurrency": "allow"})
    copy_of = request.query_params.get("copy")
    if copy_of:
        try:
            values = form_values(shown(request, service_of(request).job(copy_of)))
            values["name"] = ""
        except NotFound:
            pass
    return _render_form(request, FormState(values, config_keys(request, values["executor"])), None)


@guarded("PUT", "/v1/jobs/x")
async def edit(request: Request) -> Response:
    name = request.path_params["name"]
    job = shown(request, service_of(request).job(name))
    values = form_values(job)
    return _render_form(request, FormState(values, config_keys(request, values["executor"])), name)


@guarded("POST", "/v1/jobs")
async def save_new(request: Request) -> Response:
    return await _save(request, None)


@guarded("PUT", "/v1/jobs/x")
async def save_edit(request: Request) -> Response:
    return await _save(request, request.path_params["name"])


async def _save(request: Request, editing: str | None) -> Response:
    form = await request.form()
    service = service_of(request)
    values, problems = read_form(form)
    keys = config_keys(request, values["executor"])
    name = editing or values["name"]
    stored = service.state.jobs.get(name) if name else None
    if editing is not None and stored is None:
        raise NotFound(f"job {editing!r} not found: it was deleted meanwhile")
    if problems:
        return _render_form(request, _with_problems(values, keys, problems), editing)
    # An edit keeps what the form does not show (notify, starts_at, expires_at, catchup…).
    data = {key: value for key, value in (stored or {}).items() if key not in READ_ONLY_FIELDS} if editing else {}
    data.update(job_from(values))
    if editing is not None:
        data["name"] = editing
    data = unmasked(data, stored)  # a secret shown masked and sent back keeps its stored value
    try:
        job, _, _ = await service.put_job(data)
    except BadRequest as error:
        found = [(problem.field, problem.message) for problem in error.fields] or [("", error.message)]
        # Shown with status 200: the answer is a page to correct, not a failed load.
        return _render_form(request, _with_problems(values, keys, found), editing)
    verb = "saved" if editing else "created"
    return redirect(request, f"/jobs/{quote(job['name'])}?done={verb}")


def read_form(form: FormData) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The form's values (as the form shows them again) and the problems found before the API sees them."""
    problems: list[tuple[str, str]] = []
    values: dict[str, Any] = {key: str(form.get(key) or "").strip() for key in TEXT_FIELDS}
    values["concurrency"] = str(form.get("concurrency") or "allow")
    values["disabled"] = form.get("disabled") is not None
    values["retries"] = str(form.get("retries") or "0").strip()
    values["timeout"] = str(form.get("timeout") or "").strip()
    for key in ("tags", "metadata"):
        values[key] = str(form.get(key) or "")
        _, bad = parse_lines(values[key])
        problems += [(key, f"line {line!r}: write key=value, one per line") for line in bad]
    values["executor_config"] = {
        key[len(CONFIG_PREFIX) :]: str(value)
        for key, value in form.multi_items()
        if key.startswith(CONFIG_PREFIX) and str(value) != ""
    }
    values[EXTRA_CONFIG] = str(form.get(EXTRA_CONFIG) or "")
    extra = _json_object(values[EXTRA_CONFIG], EXTRA_CONFIG, problems)
    values["executor_config"] = {**{k: str(v) for k, v in (extra or {}).items()}, **values["executor_config"]}
    values["processors"] = str(form.get("processors") or "")
    _json_object(values["processors"], "processors", problems)
    return values, problems


def job_from(values: dict[str, Any]) -> dict[str, Any]:
    """The job JSON of the form's values; wrong numbers go to the API as typed, so its message names them."""
    job: dict[str, Any] = {key: values[key] for key in TEXT_FIELDS}
    job["concurrency"] = values["concurrency"]
    job["disabled"] = values["disabled"]
    job["retries"] = _number(values["retries"], int)
    job["timeout"] = _number(values["timeout"], float) if values["timeout"] else None
    job["tags"] = parse_lines(values["tags"])[0]
    job["metadata"] = parse_lines(values["metadata"])[0]
    job["executor_config"] = values["executor_config"]
    job["processors"] = json.loads(values["processors"]) if values["processors"].strip() else {}
    return job


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        return text


def parse_lines(text: str) -> tuple[dict[str, str], list[str]]:
    found, bad = {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, equals, value = line.partition("=")
        if not equals or not key.strip():
            bad.append(line.strip())
            continue
        found[key.strip()] = value.strip()
    return found, bad


def _json_object(text: str, name: str, problems: list[tuple[str, str]]) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        problems.append((name, f"not JSON: {error}"))
        return None
    if not isinstance(value, dict):
        problems.append((name, 'must be a JSON object, e.g. {"key": "value"}'))
        return None
    return value


def _with_problems(values: dict[str, Any], keys: dict[str, Any], problems: list[tuple[str, str]]) -> FormState:
    """Each problem next to the input it names; the rest above the form."""
    state = FormState(values, keys)
    inputs = [*TEXT_FIELDS, "retries", "timeout", "concurrency", "tags", "metadata", "processors", EXTRA_CONFIG]
    inputs += [CONFIG_PREFIX + key for key in keys]
    for where, message in problems:
        target = _input_for(where, inputs)
        found = state.general if target is None else state.errors.setdefault(target, [])
        text = f"{where}: {message}" if target is None and where else message
        if text not in found:  # the API may name one problem twice (the field and its parent)
            found.append(text)
    return state


def _input_for(where: str, inputs: list[str]) -> str | None:
    if not where:
        return None
    if where in inputs:
        return where
    if where == "executor_config" or where.startswith(CONFIG_PREFIX):
        return EXTRA_CONFIG
    for name in inputs:
        if where.startswith(name + ".") or where.startswith(name + "["):
            return name
    return None


@guarded("GET", "/v1/plugins")
async def config_fields(request: Request) -> Response:
    """The executor settings' inputs for another executor (the form swaps them in when the executor changes)."""
    executor = request.query_params.get("executor") or ""
    keys = config_keys(request, executor)
    context = {"config_keys": keys, "values": {"executor_config": {}}, "errors": {}, "extra_config": ""}
    return render(request, "config_fields.html", context)


@guarded("GET", "/v1/schedule/preview")
async def schedule_preview(request: Request) -> Response:
    """The next fire times of the schedule being typed (the same computation as `/v1/schedule/preview`)."""
    schedule = request.query_params.get("schedule") or ""
    timezone = request.query_params.get("timezone") or ""
    times: list[str] = []
    problem = ""
    if schedule.strip():
        try:
            times = service_of(request).preview(schedule, timezone, PREVIEW_COUNT)
        except HoraeError as error:
            problem = error.message
    return render(request, "preview.html", {"times": times, "problem": problem, "schedule": schedule})
