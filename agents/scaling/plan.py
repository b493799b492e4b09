"""Where every replica should live after brokers are added or removed: pure decisions.

A *layout* maps each partition ``(topic, partition)`` to its replica list, preferred leader
first, as Kafka describes it. :func:`rebalance` turns a layout into a :class:`Plan`:

1. **Evacuate**: every replica on a broker being removed goes to a remaining broker that does
   not hold the partition yet: one on a rack the partition's other replicas do not use when
   there is one, else the least-loaded one (fewest replicas, then lowest id). Partitions with
   the fewest possible destinations go first.
2. **Level replicas**: while a broker holds two replicas more than another, load moves from
   the one to the other: through a chain of *free* moves when there is one (a replica that is
   being copied anyway, because it left a broker being removed, moves on at no cost), else
   one replica from the most- to the least-loaded broker (the smallest partition first when
   sizes are known, then by name). Never onto a broker that holds the partition already, and
   never to a rack that leaves the partition on fewer racks. Only brokers above the level
   give and only brokers below it take, so the copies are the fewest that level the counts
   (the unit tests compare them with a min-cost flow).
3. **Level preferred leaders**: the first replica of a list is the partition's preferred
   leader. While a broker leads two partitions more than another, leadership shifts along a
   chain of partitions (an augmenting path: each link puts another replica of the same
   partition first), so no replica moves for it.

Replication factors never change, a partition never gets two replicas on one broker, and no
replica is placed on a broker being removed. Partitions in ``fixed`` (being reassigned by
somebody else) are left alone but count towards the load. Replicas on brokers that are not
registered (offline) stay where they are. Same input, same plan: every choice is ordered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Key = tuple[str, int]
Layout = Mapping[Key, tuple[int, ...]]


def name(key: Key) -> str:
    return f"{key[0]}-{key[1]}"


@dataclass(frozen=True)
class Move:
    """One partition's new replica list. ``copies``: replicas that must be copied (brokers
    that do not hold the partition yet); none for a change of order (a new preferred
    leader)."""

    key: Key
    before: tuple[int, ...]
    after: tuple[int, ...]

    @property
    def copies(self) -> tuple[int, ...]:
        return tuple(b for b in self.after if b not in self.before)


@dataclass(frozen=True)
class Plan:
    target: dict[Key, tuple[int, ...]]
    moves: tuple[Move, ...]  # replica sets change: data is copied
    reorders: tuple[Move, ...] = ()  # same replicas, another preferred leader
    sizes: Mapping[Key, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.moves and not self.reorders

    def replicas_moved(self) -> int:
        return sum(len(m.copies) for m in self.moves)

    def bytes_to_copy(self) -> int:
        return sum(self.sizes.get(m.key, 0) * len(m.copies) for m in self.moves)

    def batches(self, size: int) -> list[tuple[Move, ...]]:
        """The moves in batches of at most ``size`` partitions, in plan order; the changes of
        order last, in one batch (they copy nothing)."""
        size = max(1, size)
        out = [self.moves[i : i + size] for i in range(0, len(self.moves), size)]
        if self.reorders:
            out.append(self.reorders)
        return out


def replica_counts(layout: Layout, brokers: Iterable[int]) -> dict[int, int]:
    counts = {b: 0 for b in brokers}
    for reps in layout.values():
        for b in reps:
            if b in counts:
                counts[b] += 1
    return counts


def leader_counts(layout: Layout, brokers: Iterable[int]) -> dict[int, int]:
    counts = {b: 0 for b in brokers}
    for reps in layout.values():
        if reps and reps[0] in counts:
            counts[reps[0]] += 1
    return counts


def _racks_of(reps: Iterable[int], racks: Mapping[int, str]) -> set:
    # a broker without a rack counts as a rack of its own
    return {racks.get(b, f"broker:{b}") for b in reps}


class _State:
    """The layout being changed, with per-broker indexes kept in step."""

    def __init__(self, layout: Layout, targets: list[int], racks: Mapping[int, str]):
        self.reps = {k: list(v) for k, v in layout.items()}
        self.original = {k: set(v) for k, v in layout.items()}
        self.targets, self.racks = targets, racks
        self.load = replica_counts(layout, targets)
        self.on: dict[int, set[Key]] = {b: set() for b in targets}
        for k, reps in self.reps.items():
            for b in reps:
                if b in self.on:
                    self.on[b].add(k)

    def place(self, key: Key, index: int, dst: int) -> None:
        src = self.reps[key][index]
        self.reps[key][index] = dst
        if src in self.on:
            self.on[src].discard(key)
            self.load[src] -= 1
        self.on[dst].add(key)
        self.load[dst] += 1

    def rack_kept(self, key: Key, src: int, dst: int) -> bool:
        """Moving ``key``'s replica from ``src`` to ``dst`` leaves it on as many racks."""
        if not self.racks:
            return True
        reps = self.reps[key]
        after = [dst if b == src else b for b in reps]
        return len(_racks_of(after, self.racks)) >= len(_racks_of(reps, self.racks))


def rebalance(
    layout: Layout,
    brokers: Iterable[int],
    remove: Iterable[int] = (),
    racks: Mapping[int, str] | None = None,
    fixed: Iterable[Key] = (),
    sizes: Mapping[Key, int] | None = None,
    into: Iterable[int] | None = None,
) -> Plan | str:
    """The plan that empties ``remove`` and levels replica and preferred-leader counts over
    the other ``brokers``. ``into``: only these brokers receive replicas while levelling (the
    new brokers of a scale-out); evacuated replicas may go to any remaining broker. An error
    message when the remaining brokers cannot hold a partition's replicas."""
    removing = set(remove)
    targets = sorted(set(brokers) - removing)
    racks = {b: r for b, r in (racks or {}).items() if r}
    sizes = dict(sizes or {})
    fixed = set(fixed)
    problem = capacity_problem(layout, targets)
    if problem:
        return problem
    state = _State(layout, targets, racks)
    _evacuate(state, removing, fixed)
    receivers = targets if into is None else sorted(set(into) & set(targets))
    _level_replicas(state, receivers, fixed, sizes)
    _level_leaders(state, fixed)
    moves, reorders = [], []
    for key in sorted(layout):
        before, after = tuple(layout[key]), tuple(state.reps[key])
        if before == after:
            continue
        (reorders if set(before) == set(after) else moves).append(Move(key, before, after))
    return Plan({k: tuple(v) for k, v in state.reps.items()}, tuple(moves), tuple(reorders), sizes)


def capacity_problem(layout: Layout, remaining: list[int]) -> str | None:
    """Why ``remaining`` brokers cannot hold every partition's replicas (None when they
    can): the topics whose replication factor is above their number."""
    short: dict[str, int] = {}
    for (topic, _), reps in layout.items():
        if len(reps) > len(remaining):
            short[topic] = max(short.get(topic, 0), len(reps))
    if not short:
        return None
    listed = ", ".join(f"{t} (replication factor {rf})" for t, rf in sorted(short.items())[:5])
    more = f" and {len(short) - 5} more" if len(short) > 5 else ""
    return f"{len(remaining)} brokers cannot hold the replicas of {listed}{more}"


def _evacuate(state: _State, removing: set[int], fixed: set[Key]) -> None:
    def slack(key: Key) -> int:  # free destinations beyond the replicas that need one
        reps = state.reps[key]
        free = sum(1 for t in state.targets if t not in reps)
        return free - sum(1 for b in reps if b in removing)

    # the partitions with the fewest choices first, while the brokers they must use are
    # still the least loaded: fewer copies for levelling to undo afterwards
    todo = [k for k in state.reps if k not in fixed and removing & set(state.reps[k])]
    for key in sorted(todo, key=lambda k: (slack(k), k)):
        for i, b in enumerate(state.reps[key]):
            if b not in removing:
                continue
            others = [x for j, x in enumerate(state.reps[key]) if j != i]
            used = _racks_of(others, state.racks) if state.racks else set()
            candidates = [t for t in state.targets if t not in state.reps[key]]
            dst = min(
                candidates,
                key=lambda t: (
                    bool(state.racks) and _racks_of([t], state.racks) <= used,
                    state.load[t],
                    t,
                ),
            )
            state.place(key, i, dst)


def _level_replicas(
    state: _State, receivers: list[int], fixed: set[Key], sizes: Mapping[Key, int]
) -> None:
    while True:
        moves = _levelling_moves(state, receivers, fixed, sizes)
        if not moves:
            return
        for key, src, dst in moves:
            state.place(key, state.reps[key].index(src), dst)


def _levelling_moves(
    state: _State, receivers: list[int], fixed: set[Key], sizes: Mapping[Key, int]
) -> list[tuple[Key, int, int]]:
    """The next moves that take one replica's worth of load from a broker to another two or
    more below it: a chain of free moves when there is one (a replica being copied anyway,
    off a broker being removed, moves on at no cost, so the chain copies nothing more), else
    one move from the most- to the least-loaded broker, the smallest partition first."""
    givers = sorted(state.targets, key=lambda b: (-state.load[b], b))
    takers = sorted(receivers, key=lambda b: (state.load[b], b))
    pairs = [(s, d) for s in givers for d in takers if state.load[s] - state.load[d] > 1]
    pairs.sort(key=lambda p: (state.load[p[1]] - state.load[p[0]], p))
    for src, dst in pairs:
        path = _free_path(state, src, dst, set(receivers), fixed)
        if path:
            return path
    for src, dst in pairs:
        movable = [
            k
            for k in state.on[src]
            if k not in fixed and dst not in state.reps[k] and state.rack_kept(k, src, dst)
        ]
        if movable:
            return [(min(movable, key=lambda k: (sizes.get(k, 0), k)), src, dst)]
    return []


def _free_path(
    state: _State, src: int, dst: int, receivers: set[int], fixed: set[Key]
) -> list[tuple[Key, int, int]]:
    """The shortest chain of free moves from ``src`` to ``dst`` (each broker on the way
    takes one replica and gives another); [] when there is none."""
    parent: dict[int, tuple[int, Key] | None] = {src: None}
    queue = deque([src])
    while queue:
        b = queue.popleft()
        for key in sorted(state.on[b]):
            if key in fixed or b in state.original[key]:
                continue
            for nxt in sorted(receivers):
                if nxt in parent or nxt in state.reps[key]:
                    continue
                if not state.rack_kept(key, b, nxt):
                    continue
                parent[nxt] = (b, key)
                if nxt == dst:
                    path, cur = [], dst
                    while parent[cur] is not None:
                        prev, k = parent[cur]
                        path.append((k, prev, cur))
                        cur = prev
                    # two links moving replicas of one partition could meet: not a chain
                    return path[::-1] if len({k for k, _, _ in path}) == len(path) else []
                queue.append(nxt)
    return []


def _level_leaders(state: _State, fixed: set[Key]) -> None:
    lead = leader_counts(state.reps, state.targets)
    led: dict[int, set[Key]] = {b: set() for b in state.targets}
    for k, reps in state.reps.items():
        if reps and reps[0] in led and k not in fixed:
            led[reps[0]].add(k)
    while True:
        path = None
        for src in sorted(state.targets, key=lambda b: (-lead[b], b)):
            path = _leader_path(state, src, lead, led)
            if path:
                break
        if not path:
            return
        for key, new_leader in path:
            reps = state.reps[key]
            old = reps[0]
            i = reps.index(new_leader)
            reps[0], reps[i] = reps[i], reps[0]
            led[old].discard(key)
            led[new_leader].add(key)
        lead[src] -= 1
        lead[path[-1][1]] += 1


def _leader_path(
    state: _State, src: int, lead: dict[int, int], led: dict[int, set[Key]]
) -> list[tuple[Key, int]] | None:
    """The shortest chain of leadership shifts from ``src`` to a broker leading at least two
    partitions fewer: [(partition, its new leader), ...]; None when there is none."""
    parent: dict[int, tuple[int, Key] | None] = {src: None}
    queue = deque([src])
    while queue:
        b = queue.popleft()
        for key in sorted(led[b]):
            for nxt in sorted(state.reps[key]):
                if nxt in parent or nxt not in lead:
                    continue
                parent[nxt] = (b, key)
                if lead[nxt] <= lead[src] - 2:
                    path = []
                    cur = nxt
                    while parent[cur] is not None:
                        prev, k = parent[cur]
                        path.append((k, cur))
                        cur = prev
                    return path[::-1]
                queue.append(nxt)
    return None


@dataclass(frozen=True)
class ScaleIn:
    """What shrinking the brokers to ``ordinals < count`` would take away."""

    count: int
    removed: tuple[int, ...]  # broker ids (StatefulSet ordinals) that go
    held: tuple[Key, ...]  # partitions with a replica on one of them
    capacity: str | None  # why the remaining brokers cannot hold every replica

    @property
    def safe(self) -> bool:
        return not self.held and self.capacity is None


def scale_in(layout: Layout, brokers: Iterable[int], count: int) -> ScaleIn:
    """The brokers a StatefulSet of ``count`` replicas drops (registered ones, and any broker
    that still holds a replica), the partitions they hold, and whether ``count`` brokers can
    hold every partition's replicas."""
    known = set(brokers) | {b for reps in layout.values() for b in reps}
    removed = tuple(sorted(b for b in known if b >= count))
    gone = set(removed)
    held = tuple(k for k in sorted(layout) if gone & set(layout[k]))
    # after the scale-in, the StatefulSet's ordinals 0 .. count-1 are the brokers
    return ScaleIn(count, removed, held, capacity_problem(layout, list(range(max(count, 0)))))


def refusal(check: ScaleIn, shown: int = 5) -> list[str]:
    """One line per reason a scale-in may not go ahead, saying what to do."""
    lines = []
    if check.capacity:
        lines.append(
            f"kafka.replicas: {check.count} is too few: {check.capacity}; lower those "
            "topics' replication factor first or keep more brokers"
        )
    if check.held:
        first = ", ".join(name(k) for k in check.held[:shown])
        more = f" and {len(check.held) - shown} more" if len(check.held) > shown else ""
        brokers = ", ".join(map(str, check.removed))
        lines.append(
            f"kafka.replicas: {check.count} removes broker(s) {brokers}, which hold replicas "
            f"of {len(check.held)} partition(s): {first}{more}; set kafka.scaleIn.drain=true "
            "to move them off first, or move them yourself (kafka-reassign-partitions)"
        )
    return lines
