"""Tag targeting (cluster/targets.py): Dkron's matching and counts, and one node for untagged jobs."""

from __future__ import annotations

import random

from horae.cluster.targets import Candidate, candidates_from_members, select_targets, split_tag_value

NODES = [
    Candidate("web-1", {"role": "web", "zone": "a"}, frozenset({"shell", "noop"})),
    Candidate("web-2", {"role": "web", "zone": "b"}, frozenset({"shell", "noop"})),
    Candidate("web-3", {"role": "web", "zone": "a"}, frozenset({"noop"})),
    Candidate("db-1", {"role": "db", "zone": "a"}, frozenset({"shell", "noop"})),
]


def test_tag_values_with_counts() -> None:
    assert split_tag_value("web:2") == ("web", 2)
    assert split_tag_value("web") == ("web", None)
    assert split_tag_value("a:b") == ("a:b", None)  # a colon in a value is kept
    assert split_tag_value("web:0") == ("web:0", None)


def test_every_matching_node_without_a_count() -> None:
    assert select_targets({"role": "web"}, "noop", NODES) == ["web-1", "web-2", "web-3"]


def test_all_tags_must_match_and_the_node_must_have_the_executor() -> None:
    assert select_targets({"role": "web", "zone": "a"}, "noop", NODES) == ["web-1", "web-3"]
    assert select_targets({"role": "web", "zone": "a"}, "shell", NODES) == ["web-1"]
    assert select_targets({"role": "cache"}, "noop", NODES) == []


def test_a_count_picks_that_many_at_random_and_the_smallest_count_wins() -> None:
    picks = {tuple(select_targets({"role": "web:2"}, "noop", NODES, random.Random(seed))) for seed in range(50)}
    assert all(len(pick) == 2 for pick in picks)
    assert len(picks) == 3  # every pair of the three web nodes comes up
    assert len(select_targets({"role": "web:2", "zone": "a:1"}, "noop", NODES)) == 1
    assert select_targets({"role": "db:5"}, "noop", NODES) == ["db-1"]


def test_no_tags_means_one_node_the_least_busy() -> None:
    busy = [Candidate(c.name, c.tags, c.executors, busy=0 if c.name == "web-3" else 4) for c in NODES]
    assert select_targets({}, "noop", busy) == ["web-3"]
    assert len(select_targets({}, "shell", NODES)) == 1
    assert select_targets({}, "shell", busy) in (["web-1"], ["web-2"], ["db-1"])


def test_only_alive_members_are_candidates() -> None:
    members = {
        "a": {"tags": {"role": "web"}, "executors": ["noop"], "status": "alive"},
        "b": {"tags": {"role": "web"}, "executors": ["noop"], "status": "failed"},
        "c": {"tags": {"role": "web"}, "executors": ["noop"], "status": "left"},
    }
    assert [c.name for c in candidates_from_members(members, {"a": 2})] == ["a"]
    assert candidates_from_members(members, {"a": 2})[0].busy == 2
