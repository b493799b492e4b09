"""Desired (spec) versus actual (Kafka): what to change. Pure; no I/O.

Config rules: a key of the spec whose value in Kafka differs (or is missing) is SET; a key
that an earlier spec of this ConfigMap set (``previous_keys``, from the status annotation) and
the spec no longer has is DELETEd (Kafka's default applies again); topic overrides nobody
declared are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .spec import TopicSpec


@dataclass
class TopicState:
    """A topic as Kafka describes it."""

    name: str
    partitions: dict[int, list[int]]  # partition -> replica broker ids
    config: dict[str, str]  # topic-level overrides (source DYNAMIC_TOPIC_CONFIG)
    adding: bool = False  # a reassignment of one of its partitions is in progress

    @property
    def partition_count(self) -> int:
        return len(self.partitions)

    @property
    def replication_factor(self) -> int:
        sizes = {len(r) for r in self.partitions.values()}
        return max(sizes) if sizes else 0


@dataclass
class Plan:
    create: dict | None = None  # create_topics options
    partitions: int | None = None  # new total
    config_set: dict[str, str] = field(default_factory=dict)
    config_delete: list[str] = field(default_factory=list)
    replicas: int | None = None  # new replication factor
    error: tuple[str, str] | None = None  # (reason, message)

    @property
    def empty(self) -> bool:
        return not (
            self.create or self.partitions or self.config_set or self.config_delete or self.replicas
        )


def plan(
    spec: TopicSpec,
    state: TopicState | None,
    previous_keys: set[str] | frozenset = frozenset(),
    default_replicas: int | None = None,
) -> Plan:
    if state is None:
        replicas = spec.replicas if spec.replicas is not None else default_replicas
        return Plan(
            create={
                "num_partitions": spec.partitions if spec.partitions is not None else -1,
                "replication_factor": replicas if replicas is not None else -1,
                "configs": dict(spec.config),
            }
        )
    p = Plan()
    if spec.partitions is not None:
        if spec.partitions < state.partition_count:
            p.error = (
                "PartitionsDecreased",
                f"topic {spec.name} has {state.partition_count} partitions; Kafka cannot "
                f"decrease them to {spec.partitions}. Set partitions: {state.partition_count} "
                "(or more), or create a new topic",
            )
            return p
        if spec.partitions > state.partition_count:
            p.partitions = spec.partitions
    if spec.replicas is not None and spec.replicas != state.replication_factor:
        p.replicas = spec.replicas
    p.config_set = {k: v for k, v in spec.config.items() if state.config.get(k) != v}
    p.config_delete = sorted(k for k in previous_keys if k not in spec.config and k in state.config)
    return p


def reassign(
    partitions: dict[int, list[int]], replicas: int, brokers: list[int]
) -> dict[int, list[int]] | str:
    """New replica lists with ``replicas`` replicas each, changing as little as possible:
    growing keeps the current replicas (leader first) and adds the least-loaded brokers;
    shrinking drops replicas from the end of each list. Returns an error message when there
    are not enough brokers."""
    brokers = sorted(set(brokers))
    if replicas > len(brokers):
        return (
            f"replicas: {replicas} needs {replicas} brokers; the cluster has {len(brokers)} "
            f"({', '.join(map(str, brokers))})"
        )
    load = {b: 0 for b in brokers}
    for reps in partitions.values():
        for b in reps:
            if b in load:
                load[b] += 1
    out: dict[int, list[int]] = {}
    for pid in sorted(partitions):
        current = [b for b in partitions[pid] if b in load] or list(partitions[pid])
        if len(current) >= replicas:
            new = current[:replicas]
            for b in current[replicas:]:
                if b in load:
                    load[b] -= 1
        else:
            new = list(current)
            for b in sorted((b for b in brokers if b not in new), key=lambda b: (load[b], b)):
                if len(new) == replicas:
                    break
                new.append(b)
                load[b] += 1
        out[pid] = new
    return out
