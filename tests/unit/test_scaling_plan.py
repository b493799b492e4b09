"""The scaling plan (agents/scaling/plan.py): examples, then hypothesis properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as s

from agents.scaling.plan import (
    Plan,
    leader_counts,
    rebalance,
    refusal,
    replica_counts,
    scale_in,
)


def spread(counts: dict[int, int]) -> int:
    return max(counts.values()) - min(counts.values())


def round_robin(topic: str, partitions: int, rf: int, brokers: int) -> dict:
    return {(topic, p): tuple((p + i) % brokers for i in range(rf)) for p in range(partitions)}


def test_scale_out_from_three_to_four_moves_a_quarter_and_levels_leaders():
    layout = round_robin("orders", 12, 3, 3)  # 36 replicas, 12 per broker
    plan = rebalance(layout, [0, 1, 2, 3])
    assert isinstance(plan, Plan)
    assert replica_counts(plan.target, [0, 1, 2, 3]) == {0: 9, 1: 9, 2: 9, 3: 9}
    assert leader_counts(plan.target, [0, 1, 2, 3]) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert plan.replicas_moved() == 9  # the fewest: broker 3 needs 9 replicas
    assert all(m.copies == (3,) for m in plan.moves)


def test_scale_in_evacuates_the_removed_broker_and_keeps_every_factor():
    layout = round_robin("orders", 8, 3, 4)
    plan = rebalance(layout, [0, 1, 2, 3], remove=[3])
    assert isinstance(plan, Plan)
    assert all(3 not in reps and len(reps) == 3 for reps in plan.target.values())
    assert replica_counts(plan.target, [0, 1, 2]) == {0: 8, 1: 8, 2: 8}
    assert plan.replicas_moved() == 6  # exactly broker 3's replicas


def test_a_level_cluster_gives_an_empty_plan():
    plan = rebalance(round_robin("t", 6, 3, 3), [0, 1, 2])
    assert plan.empty and plan.batches(10) == []


def test_too_few_brokers_for_a_replication_factor_is_an_error():
    layout = {**round_robin("wide", 2, 3, 3), **round_robin("narrow", 2, 1, 3)}
    assert rebalance(layout, [0, 1, 2], remove=[2]) == (
        "2 brokers cannot hold the replicas of wide (replication factor 3)"
    )


def test_racks_are_kept_when_evacuating():
    racks = {0: "a", 1: "b", 2: "a", 3: "b"}
    layout = {("t", 0): (0, 1), ("t", 1): (1, 2), ("t", 2): (2, 3)}
    plan = rebalance(layout, [0, 1, 2, 3], remove=[1], racks=racks)
    # partition 0 loses its rack-b replica: it goes to broker 3, the only other rack b
    assert plan.target[("t", 0)] == (0, 3)
    assert {racks[b] for b in plan.target[("t", 1)]} == {"a", "b"}


def test_fixed_partitions_stay_but_count():
    layout = round_robin("t", 6, 2, 2)
    fixed = {("t", p) for p in range(6)}
    plan = rebalance(layout, [0, 1, 2], fixed=fixed)
    assert plan.empty


def test_only_the_new_brokers_receive_when_adding():
    layout = {("t", 0): (0, 1), ("t", 1): (0, 1), ("t", 2): (0, 1), ("t", 3): (0, 2)}
    plan = rebalance(layout, [0, 1, 2, 3], into=[3])
    assert all(set(m.copies) <= {3} for m in plan.moves)
    assert replica_counts(plan.target, [3])[3] == 2


def test_smaller_partitions_move_first():
    layout = round_robin("t", 6, 1, 1)
    sizes = {("t", p): 100 - p for p in range(6)}
    plan = rebalance(layout, [0, 1], sizes=sizes)
    assert sorted(m.key[1] for m in plan.moves) == [3, 4, 5]
    assert plan.bytes_to_copy() == 97 + 96 + 95


def test_batches_hold_at_most_their_size_and_reorders_come_last():
    plan = rebalance(round_robin("t", 12, 3, 3), [0, 1, 2, 3])
    batches = plan.batches(4)
    assert [len(b) for b in batches[: len(plan.moves) // 4]] == [4] * (len(plan.moves) // 4)
    assert sum(len(b) for b in batches) == len(plan.moves) + len(plan.reorders)
    if plan.reorders:
        assert batches[-1] == plan.reorders


def test_scale_in_check_names_partitions_and_capacity():
    layout = {**round_robin("orders", 4, 3, 4), ("wide", 0): (0, 1, 2, 3)}
    check = scale_in(layout, [0, 1, 2, 3], 3)
    assert check.removed == (3,) and not check.safe
    assert check.held[0] == ("orders", 1)
    lines = refusal(check, shown=2)
    assert "wide (replication factor 4)" in lines[0]
    assert "broker(s) 3" in lines[1] and "orders-1, orders-2 and 2 more" in lines[1]
    assert "kafka.scaleIn.drain=true" in lines[1]


def test_scale_in_of_empty_brokers_is_safe():
    layout = round_robin("t", 4, 3, 3)
    check = scale_in(layout, [0, 1, 2, 3], 3)
    assert check.safe and check.removed == (3,) and refusal(check) == []
    assert scale_in(layout, [0, 1, 2], 3).removed == ()


# ---- properties --------------------------------------------------------------------------


@s.composite
def clusters(draw, racks: bool = False):
    n = draw(s.integers(1, 6))
    brokers = list(range(n))
    layout = {}
    for t in range(draw(s.integers(1, 3))):
        rf = draw(s.integers(1, n))
        for p in range(draw(s.integers(1, 8))):
            layout[(f"t{t}", p)] = tuple(draw(s.permutations(brokers))[:rf])
    added = draw(s.integers(0, 3))
    rack_map = {b: draw(s.sampled_from("abc")) for b in range(n + added)} if racks else None
    return layout, n, added, rack_map


def lower_bound(layout, targets, removed) -> int:
    """Replicas any plan must copy: to fill every broker below the level, the +1 slots given
    first to brokers already above it."""
    counts = replica_counts(layout, targets)
    total = sum(len(r) for r in layout.values())
    q, r = divmod(total, len(targets))
    above = sum(1 for c in counts.values() if c >= q + 1)
    return sum(max(0, q - c) for c in counts.values()) + max(0, r - above)


def fewest_copies(layout, targets) -> int:
    """The fewest replicas any placement on ``targets`` levelled within one must copy, by a
    min-cost flow: partition -> broker (cost 1 where the broker does not hold it yet), each
    broker's first ``q`` slots made attractive with a large negative cost so that every
    broker gets at least ``q``, plus one more slot for the remainder."""
    total = sum(len(r) for r in layout.values())
    q, big = total // len(targets), 10_000
    parts = sorted(layout)
    source, sink = "s", "t"
    graph: dict = {}

    def edge(u, v, cap, cost):
        graph.setdefault(u, []).append([v, cap, cost, len(graph.setdefault(v, []))])
        graph[v].append([u, 0, -cost, len(graph[u]) - 1])

    for p in parts:
        edge(source, p, len(layout[p]), 0)
        for b in targets:
            edge(p, ("b", b), 1, 0 if b in layout[p] else 1)
    for b in targets:
        edge(("b", b), sink, q, -big)
        edge(("b", b), sink, 1, 0)
    cost = flow = 0
    while flow < total:  # successive shortest paths (Bellman-Ford: costs may be negative)
        dist, prev = {source: 0}, {}
        for _ in range(len(graph)):
            changed = False
            for u, edges in graph.items():
                if u not in dist:
                    continue
                for i, (v, cap, c, _) in enumerate(edges):
                    if cap > 0 and dist[u] + c < dist.get(v, float("inf")):
                        dist[v], prev[v], changed = dist[u] + c, (u, i), True
            if not changed:
                break
        assert sink in dist, "no levelled placement exists"
        v = sink
        while v != source:
            u, i = prev[v]
            graph[u][i][1] -= 1
            graph[v][graph[u][i][3]][1] += 1
            v = u
        cost += dist[sink]
        flow += 1
    return cost + big * q * len(targets)


def check_invariants(layout, plan, targets, removed):
    for key, before in layout.items():
        after = plan.target[key]
        assert len(after) == len(before), "replication factor changed"
        assert len(set(after)) == len(after), "two replicas on one broker"
        assert not set(after) & set(removed), "a replica on a removed broker"
    for m in plan.moves + plan.reorders:
        assert plan.target[m.key] == m.after and layout[m.key] == m.before


@settings(max_examples=300, deadline=None)
@given(clusters(), s.data())
def test_every_plan_keeps_factors_never_doubles_and_avoids_removed(cluster, data):
    layout, n, added, _ = cluster
    brokers = list(range(n + added))
    removed = data.draw(s.lists(s.sampled_from(brokers), max_size=2, unique=True))
    plan = rebalance(layout, brokers, remove=removed)
    targets = [b for b in brokers if b not in removed]
    if isinstance(plan, str):
        assert any(len(r) > len(targets) for r in layout.values())
        return
    check_invariants(layout, plan, targets, removed)
    assert spread(replica_counts(plan.target, targets)) <= 1
    if not removed:  # levelling alone: exactly the copies the counts call for
        assert plan.replicas_moved() == lower_bound(layout, targets, removed)
    # and in every case the fewest copies any levelled placement needs
    assert plan.replicas_moved() == fewest_copies(layout, targets)


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_preferred_leaders_level_within_one_when_factors_are_equal(cluster):
    layout, n, added, _ = cluster
    rf = {len(r) for r in layout.values()}
    brokers = list(range(n + added))
    plan = rebalance(layout, brokers)
    if len(rf) == 1:
        assert spread(leader_counts(plan.target, brokers)) <= 1


@settings(max_examples=300, deadline=None)
@given(clusters(racks=True), s.data())
def test_racks_never_get_fewer(cluster, data):
    layout, n, added, racks = cluster
    brokers = list(range(n + added))
    removed = data.draw(s.lists(s.sampled_from(brokers), max_size=1, unique=True))
    plan = rebalance(layout, brokers, remove=removed, racks=racks)
    if isinstance(plan, str):
        return
    targets = [b for b in brokers if b not in removed]
    check_invariants(layout, plan, targets, removed)
    available = len({racks[b] for b in targets})
    for key, before in layout.items():
        was = len({racks[b] for b in before})
        assert len({racks[b] for b in plan.target[key]}) >= min(was, available)


@settings(max_examples=100, deadline=None)
@given(clusters(racks=True))
def test_the_same_input_gives_the_same_plan(cluster):
    layout, n, added, racks = cluster
    brokers = list(range(n + added))
    shuffled = dict(reversed(list(layout.items())))
    assert rebalance(layout, brokers, racks=racks) == rebalance(
        shuffled, list(reversed(brokers)), racks=dict(reversed(list(racks.items())))
    )
