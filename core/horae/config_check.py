"""Check a job's executor_config and processor settings against the JSON Schemas its plugins serve.

The schemas are those of the alive nodes (their member records name them by digest, the state holds
each once: horae.cluster.schemas) plus this node's own plugins. Nodes may run different versions of a
plugin: a config valid under any of their schemas is accepted, and so is any config of a plugin that
serves no schema. Problems go to the job's `Problems` as `beyond_dkron` (Dkron ignored unknown keys):
errors when a job is saved through the API, warnings on restore and import.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from horae.cluster.schemas import NO_SCHEMA, plugin_key, schema_refs, split_plugin_key
from horae.cluster.state import ClusterState
from horae.logs import fields
from horae.model.errors import Problems
from horae.model.job import Job
from horae.model.reading import child

log = logging.getLogger("horae.config_check")

ALIVE = "alive"
# How many values of an enum a message lists before it says "…".
MAX_LISTED_VALUES = 16


@dataclass(frozen=True, slots=True)
class Catalog:
    """What the alive nodes run, worked out once per change of the member records."""

    # plugin key (`executor:shell`) -> the schema digests of the alive nodes that have it ("" = none).
    variants: dict[str, frozenset[str]]
    executors: frozenset[str]
    processors: frozenset[str]
    # False while an alive node's record predates plugin reports: its processors are unknown.
    processors_known: bool


class PluginConfigs:
    """Checks jobs against the plugins of the cluster as this server's state sees them (reads are local)."""

    def __init__(self, state: ClusterState, node_name: str, local_schemas: Mapping[str, str]) -> None:
        self._state = state
        self._node_name = node_name
        # This node runs its own plugins whatever its record says (it may not be committed yet).
        self._local_refs, self._local_texts = schema_refs(local_schemas)
        self._catalog: Catalog | None = None
        self._catalog_version = -1
        self._validators: dict[str, Validator | None] = {}

    def check(self, problems: Problems, job: Job) -> None:
        """Add a problem for each unknown plugin, unknown key and refused value of `job`."""
        catalog = self.catalog()
        if job.executor and not problems.has_error("executor"):
            if job.executor not in catalog.executors:
                problems.beyond_dkron("executor", _no_such_plugin("executor", job.executor, catalog.executors))
            else:
                self._check_config(problems, catalog, "executor", job.executor, job.executor_config, "executor_config")
        for name, config in job.processors.items():
            if not name:
                continue
            where = child("processors", name)
            if name not in catalog.processors:
                if catalog.processors_known:
                    problems.beyond_dkron(where, _no_such_plugin("processor", name, catalog.processors))
                continue
            self._check_config(problems, catalog, "processor", name, config, where)

    # -- what the alive nodes run ----------------------------------------------------------------
    def catalog(self) -> Catalog:
        version = self._state.members_version
        if self._catalog is None or version != self._catalog_version:
            self._catalog = self._build_catalog()
            self._catalog_version = version
            used = {digest for digests in self._catalog.variants.values() for digest in digests}
            self._validators = {d: v for d, v in self._validators.items() if d in used}
        return self._catalog

    def _build_catalog(self) -> Catalog:
        variants: dict[str, set[str]] = {}
        executors: set[str] = set()
        processors: set[str] = set()
        processors_known = True
        records = [r for n, r in list(self._state.members.items()) if n != self._node_name]
        reports = [
            (r.get("executors") or (), r.get("config_schemas")) for r in records if r.get("status", ALIVE) == ALIVE
        ]
        reports.append(
            ([split_plugin_key(k)[1] for k in self._local_refs if k.startswith("executor:")], self._local_refs)
        )
        for node_executors, refs in reports:
            if refs is None:
                processors_known = False
                refs = {}
            for name in node_executors:
                executors.add(name)
                key = plugin_key("executor", name)
                variants.setdefault(key, set()).add(refs.get(key, NO_SCHEMA))
            for key, digest in refs.items():
                kind, name = split_plugin_key(key)
                if kind == "processor":
                    processors.add(name)
                    variants.setdefault(key, set()).add(digest)
        return Catalog(
            {key: frozenset(digests) for key, digests in variants.items()},
            frozenset(executors),
            frozenset(processors),
            processors_known,
        )

    # -- one plugin's settings -------------------------------------------------------------------
    def _check_config(
        self, problems: Problems, catalog: Catalog, kind: str, name: str, config: dict[str, str], base: str
    ) -> None:
        validators = []
        for digest in sorted(catalog.variants.get(plugin_key(kind, name), ())):
            validator = self._validator(digest)
            if validator is None:
                return  # some alive node's plugin takes any settings
            validators.append(validator)
        best: list[tuple[str, str]] | None = None
        for validator in validators:
            found = list(_explain(validator, config, base, f"the {name} {kind}"))
            if not found:
                return
            if best is None or len(found) < len(best):
                best = found
        for path, message in best or ():
            if not _reported(problems, path):
                problems.beyond_dkron(path, message)

    def _validator(self, digest: str) -> Validator | None:
        """The compiled validator of a schema, cached by digest; None when there is no usable schema."""
        if not digest:
            return None
        if digest in self._validators:
            return self._validators[digest]
        text = self._local_texts.get(digest) or self._state.schemas.get(digest)
        if text is None:
            return None  # not replicated here yet: accept rather than guess, and look again next time
        validator = _compile(digest, text)
        self._validators[digest] = validator
        return validator


def _compile(digest: str, text: str) -> Validator | None:
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as error:
        log.warning("a plugin serves an invalid config schema: not checked", extra=fields(digest=digest, error=error))
        return None
    return cls(schema)


def _explain(validator: Validator, config: dict[str, str], base: str, label: str) -> Iterator[tuple[str, str]]:
    """(field path, message) for each problem the schema finds, one per field, with the fix."""
    schema = validator.schema if isinstance(validator.schema, dict) else {}
    properties: dict[str, Any] = schema.get("properties") or {}
    seen: set[str] = set()
    try:
        errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.path])
    except re.error as error:  # a pattern Python's re cannot compile: the plugin's bug, not the job's
        log.warning("a plugin's config schema has a bad pattern: not checked", extra=fields(plugin=label, error=error))
        return
    for error in errors:
        for path, message in _describe_error(error, properties, schema, config, base, label):
            if path not in seen:
                seen.add(path)
                yield path, message


def _describe_error(
    error: jsonschema.ValidationError,
    properties: dict[str, Any],
    schema: dict[str, Any],
    config: dict[str, str],
    base: str,
    label: str,
) -> Iterator[tuple[str, str]]:
    if error.path:
        key = str(error.path[0])
        yield child(base, key), _bad_value(error, properties.get(key) or {}, label)
    elif error.validator == "additionalProperties":
        for key in _unlisted_keys(config, schema):
            yield child(base, key), _unknown_key(key, properties, label)
    elif error.validator == "required":
        for key in error.validator_value:
            if key not in config:
                yield child(base, key), f"required by {label}" + _hint(properties.get(key) or {})
    else:
        yield base, f"{error.message} ({label})"


def _bad_value(error: jsonschema.ValidationError, prop: dict[str, Any], label: str) -> str:
    given = json.dumps(error.instance, ensure_ascii=False)
    if error.validator == "enum":
        values = [json.dumps(v, ensure_ascii=False) for v in error.validator_value]
        listed = ", ".join(values[:MAX_LISTED_VALUES]) + (", …" if len(values) > MAX_LISTED_VALUES else "")
        wants = f"must be one of {listed}" + _hint(prop)
    elif error.validator == "pattern":
        wants = prop.get("description") or f"must match the pattern {error.validator_value}"
        wants = _sentence(wants)
    elif error.validator == "type":
        wants = f"must be a {error.validator_value}" + _hint(prop)
    else:
        wants = error.message + _hint(prop)
    return f"{given} is not accepted by {label}: {wants}"


def _hint(prop: dict[str, Any]) -> str:
    description = prop.get("description")
    return f" ({_sentence(description)})" if isinstance(description, str) and description else ""


def _sentence(text: str) -> str:
    return text.strip().rstrip(".")


def _unlisted_keys(config: dict[str, str], schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties") or {}
    patterns = list((schema.get("patternProperties") or {}).keys())
    return [key for key in config if key not in properties and not any(re.search(pattern, key) for pattern in patterns)]


def _unknown_key(key: str, properties: dict[str, Any], label: str) -> str:
    names = sorted(properties)
    closest = closest_key(key, names)
    if closest is not None:
        return f'not a setting of {label}; did you mean "{closest}"?'
    return f"not a setting of {label}, whose settings are: " + (", ".join(names) or "none")


def closest_key(key: str, names: list[str]) -> str | None:
    """The known key a mistyped one most likely meant: the same but for case, else the closest by difflib."""
    by_lower = {name.lower(): name for name in names}
    if key.lower() in by_lower:
        return by_lower[key.lower()]
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1)
    return by_lower[close[0]] if close else None


def _no_such_plugin(kind: str, name: str, available: frozenset[str]) -> str:
    have = ", ".join(sorted(available)) or "none"
    closest = closest_key(name, sorted(available))
    advice = f'did you mean "{closest}"? Otherwise i' if closest is not None else "i"
    return (
        f'no alive node has the {kind} "{name}" (alive nodes have: {have}); {advice}'
        f"nstall the plugin on a node (a package, or a horae-{kind}-{name} program in its plugin dir)"
    )


def _reported(problems: Problems, path: str) -> bool:
    """True when the job reader already found something wrong with this field (a non-string value)."""
    return problems.has_error(path) or any(warning.startswith(f"{path}:") for warning in problems.warnings)
