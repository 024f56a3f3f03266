"""Filtering and ordering the job list without building every job's view.

`GET /v1/jobs` is the API's hottest path: a UI pages through thousands of jobs 25 at a time. Building
the full view of every job (`HoraeService.jobs()`) on each request would cost milliseconds, so this
module filters and sorts job *names* over the node's local state — the stored definitions and the
runtime figures that `HoraeService._job_view` reads — and only the requested page becomes views,
through the service. The default order, by name, is cached until the set of names changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.datastructures import QueryParams

from horae.cluster.state import ClusterState
from horae.errors import BadRequest, FieldProblem
from horae.model import Job
from horae_web.paging import descending, sorted_by

# Computed job fields (see HoraeService._job_view) -> the JobRuntime attribute they come from.
RUNTIME_FIELDS = {
    "success_count": "success_count",
    "error_count": "error_count",
    "last_success": "last_success_ms",
    "last_error": "last_error_ms",
    "status": "status",
    "next": "next_fire_ms",
    "missed_count": "missed_count",
}
# Every field a job view has: the model's fields, computed ones included, and `id`.
JOB_FIELDS = ("id", *(spec.name for spec in dataclasses.fields(Job)))
# `untriggered` is Dkron's filter value for jobs that never ran (an empty status).
UNTRIGGERED = "untriggered"


class JobIndex:
    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._version = -1
        self._by_name: list[str] = []

    def by_name(self) -> list[str]:
        """Every job name in order; re-sorted only when jobs were added or removed (the state's jobs_version)."""
        version = self.state.jobs_version  # read first: a job added while sorting makes the next call sort again
        if version != self._version:
            self._by_name = sorted(self.state.jobs)
            self._version = version
        return self._by_name

    def values(self, names: list[str], field: str) -> list[Any]:
        """Each job's `field` as its view shows it (computed fields from the runtime figures); None when unset."""
        attribute = RUNTIME_FIELDS.get(field)
        if attribute is not None:
            runtimes = self.state.runtime
            found = [getattr(runtimes.get(name), attribute, None) for name in names]
            return [None if value == "" else value for value in found]
        jobs = self.state.jobs
        return [(jobs.get(name) or {}).get(field) for name in names]

    def select(self, query: QueryParams) -> list[str]:
        """The names of the jobs that pass the query's filters, in the query's order."""
        field = query.get("_sort") or "name"
        if field == "id":
            field = "name"
        reverse = descending(query)
        self._check_field(field)
        names = self.by_name()
        keep = self._filter(query)
        if keep is not None:
            names = [name for name in names if keep(name)]
        if field != "name":
            return sorted_by(names, self.values(names, field), reverse)
        return names[::-1] if reverse else names

    @staticmethod
    def _check_field(field: str) -> None:
        if field not in JOB_FIELDS:
            message = f"_sort: jobs have no field {field!r}; sort by one of {', '.join(JOB_FIELDS)}"
            raise BadRequest(message, [FieldProblem("_sort", message)])

    def _filter(self, query: QueryParams):
        """A predicate over job names for `q`, `metadata[k]=v`, `status` and `disabled`; None keeps all."""
        text = (query.get("q") or "").lower()
        metadata = {
            key[len("metadata[") : -1]: value
            for key, value in query.multi_items()
            if key.startswith("metadata[") and key.endswith("]")
        }
        status = query.get("status") or ""
        wanted_status = "" if status == UNTRIGGERED else status
        disabled_text = (query.get("disabled") or "").lower()
        if disabled_text not in ("", "true", "false"):
            message = f"disabled must be true or false, not {query.get('disabled')!r}"
            raise BadRequest(message, [FieldProblem("disabled", message)])
        disabled = disabled_text == "true"
        if not (text or metadata or status or disabled_text):
            return None
        jobs, runtime = self.state.jobs, self.state.runtime

        def keep(name: str) -> bool:
            job = jobs.get(name)
            if job is None:
                return False
            if text and text not in name.lower() and text not in (job.get("displayname") or "").lower():
                return False
            if metadata:
                own = job.get("metadata") or {}
                if any(own.get(key) != value for key, value in metadata.items()):
                    return False
            if disabled_text and bool(job.get("disabled")) != disabled:
                return False
            if status:
                figures = runtime.get(name)
                if (figures.status if figures is not None else "") != wanted_status:
                    return False
            return True

        return keep
