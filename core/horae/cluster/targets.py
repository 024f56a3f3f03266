"""Which nodes run an execution: Dkron's tag matching, with one deliberate difference.

A job's `tags` must all match a node's tags; a value may end in `:N` (`"web:2"`) to run on at most
N of the matching nodes, chosen at random (the smallest N of all tags wins, as in Dkron). Without a
count, every matching node runs it. A job with no tags runs on ONE alive node, the least busy one,
where Dkron runs it on every node (its most reported surprise, dkron#1182 and #935).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Candidate:
    name: str
    tags: Mapping[str, str]
    executors: frozenset[str]  # empty: not reported, assumed to run anything
    busy: int = 0  # executions running there now


def split_tag_value(value: str) -> tuple[str, int | None]:
    """`"web:2"` -> ("web", 2); `"web"` -> ("web", None). A value like `"a:b"` keeps its colon."""
    head, sep, tail = value.rpartition(":")
    if sep and tail.isdigit() and int(tail) > 0:
        return head, int(tail)
    return value, None


def select_targets(
    job_tags: Mapping[str, str],
    executor: str,
    candidates: list[Candidate],
    rng: random.Random | None = None,
) -> list[str]:
    """The names of the nodes that run one execution each; empty when no alive node qualifies."""
    rng = rng or random.Random()
    wanted: dict[str, str] = {}
    count: int | None = None
    for key, raw in job_tags.items():
        value, limit = split_tag_value(str(raw))
        wanted[key] = value
        if limit is not None:
            count = limit if count is None else min(count, limit)
    matching = [
        candidate
        for candidate in candidates
        if all(candidate.tags.get(key) == value for key, value in wanted.items())
        and (not candidate.executors or not executor or executor in candidate.executors)
    ]
    if not matching:
        return []
    if not wanted:
        least = min(candidate.busy for candidate in matching)
        return [rng.choice([c for c in matching if c.busy == least]).name]
    if count is None or count >= len(matching):
        return sorted(candidate.name for candidate in matching)
    return sorted(candidate.name for candidate in rng.sample(matching, count))


def describe_requirements(job_tags: Mapping[str, str], executor: str) -> str:
    """For the failed execution when no node qualifies: what the job asked for."""
    parts = [f"tags {dict(job_tags)}"] if job_tags else []
    if executor:
        parts.append(f"the {executor!r} executor")
    return " and ".join(parts) or "nothing"


def candidates_from_members(members: Mapping[str, dict[str, Any]], busy: Mapping[str, int]) -> list[Candidate]:
    """Alive member records as candidates."""
    return [
        Candidate(name, record.get("tags") or {}, frozenset(record.get("executors") or ()), busy.get(name, 0))
        for name, record in members.items()
        if record.get("status", "alive") == "alive"
    ]
