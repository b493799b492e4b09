"""Desired (spec) versus actual (Kafka): what to change. Pure; no I/O.

Kafka's internal topics (see :mod:`.internal`) get an error and no change at all.

Config rules: a key of the spec whose value in Kafka differs (or is missing) is SET; a key
that an earlier spec of this ConfigMap set (``previous_keys``, from the status annotation) and
the spec no longer has is DELETEd (Kafka's default applies again); topic overrides nobody
declared are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .internal import internal_reason
from .spec import TopicSpec


@dataclass
class TopicState:
    """A topic as Kafka describes it."""

    name: str
    partitions: dict[int, list[int]]  # partition -> replica broker ids
    config: dict[str, str]  # topic-level overrides (source DYNAMIC_TOPIC_CONFIG)
    internal: bool = False  # Kafka reports it as internal

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


def applied(spec: TopicSpec) -> dict:
    """What the status records of a topic that ``spec`` was applied to."""
    return {"topicName": spec.name, "configKeys": sorted(spec.config)}


def plan(
    spec: TopicSpec,
    state: TopicState | None,
    previous_keys: set[str] | frozenset = frozenset(),
    default_replicas: int | None = None,
) -> Plan:
    internal = internal_reason(spec.name, state is not None and state.internal)
    if internal:
        return Plan(error=("InternalTopic", internal))
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
