"""Server-pool placement (docs/design.md, "Placement") and bridge worker placement."""

from __future__ import annotations

import pytest

from newtlab.errors import PlanError
from newtlab.plan.model import HostPlan
from newtlab.plan.placement import place_nodes, place_workers


def servers(*spec: tuple[str, int]) -> list[HostPlan]:
    return [
        HostPlan(name=n, address=f"10.0.0.{i + 1}", ip=f"10.0.0.{i + 1}", max_nodes=m)
        for i, (n, m) in enumerate(spec)
    ]


def test_equal_servers_reduce_to_round_robin() -> None:
    pool = servers(("s1", 0), ("s2", 0), ("s3", 0))
    placed = place_nodes(dict.fromkeys(["a", "b", "c", "d", "e"], ""), pool)
    assert placed == {"a": "s1", "b": "s2", "c": "s3", "d": "s1", "e": "s2"}


def test_pinned_nodes_count_towards_load() -> None:
    pool = servers(("s1", 0), ("s2", 0))
    placed = place_nodes({"a": "", "b": "", "c": "", "p1": "s1", "p2": "s1"}, pool)
    # s1 already has two pinned nodes, so the spread fills s2 first.
    assert placed == {"p1": "s1", "p2": "s1", "a": "s2", "b": "s2", "c": "s1"}


def test_capacity_is_respected_and_zero_means_unlimited() -> None:
    pool = servers(("big", 0), ("small", 1))
    placed = place_nodes(dict.fromkeys(["a", "b", "c", "d"], ""), pool)
    assert placed == {"a": "big", "b": "small", "c": "big", "d": "big"}


def test_no_capacity_left_is_an_error() -> None:
    with pytest.raises(PlanError, match="no server capacity for node c"):
        place_nodes(dict.fromkeys(["a", "b", "c"], ""), servers(("s1", 1), ("s2", 1)))


def test_pinned_to_unknown_server() -> None:
    with pytest.raises(PlanError, match=r"node a is pinned to unknown server 'nope'.*s1"):
        place_nodes({"a": "nope"}, servers(("s1", 0)))


def test_pinned_over_capacity() -> None:
    with pytest.raises(PlanError, match="over capacity"):
        place_nodes({"a": "s1", "b": "s1"}, servers(("s1", 1)))


def test_placement_ignores_input_order() -> None:
    pool = servers(("s2", 0), ("s1", 0))
    one = place_nodes({"z": "", "a": "", "m": "s2"}, pool)
    two = place_nodes({"m": "s2", "a": "", "z": ""}, list(reversed(pool)))
    assert one == two == {"m": "s2", "a": "s1", "z": "s1"}


def test_local_links_stay_on_their_host() -> None:
    assert place_workers([("h1", "h1"), ("h2", "h2")]) == ["h1", "h2"]


def test_cross_host_ties_go_to_smaller_name_then_balance() -> None:
    # Tie → h1; then h1 has one so h2 takes the next; then tie again → h1.
    assert place_workers([("h2", "h1"), ("h1", "h2"), ("h1", "h2")]) == ["h1", "h2", "h1"]


def test_cross_host_balance_within_one_per_pair() -> None:
    workers = place_workers([("a", "b")] * 9)
    assert abs(workers.count("a") - workers.count("b")) <= 1


def test_local_links_do_not_count_towards_cross_host_load() -> None:
    assert place_workers([("a", "a"), ("a", "a"), ("b", "a")]) == ["a", "a", "a"]
