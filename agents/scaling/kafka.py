"""Kafka adapter of the rebalancer: what the cluster holds (a :class:`Snapshot`), and the
moves themselves through the shared reassignment module (throttles set and removed there)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import kafka.errors as Errors
from kafka.structs import TopicPartition

from agents.common.kafka_admin import KafkaAccess
from agents.common.reassignment import Reassignments

from .plan import Key

UNKNOWN_TOPIC = Errors.UnknownTopicOrPartitionError.errno


@dataclass(frozen=True)
class Snapshot:
    """Registered brokers (with racks when they have one) and every partition: replicas
    (preferred leader first), leader, and whether its ISR is short. ``unreadable``: topics
    Kafka would not describe, with the reason (nobody can tell where their replicas are)."""

    brokers: tuple[int, ...]
    layout: dict[Key, tuple[int, ...]]
    leaders: dict[Key, int] = field(default_factory=dict)
    under_replicated: tuple[Key, ...] = ()
    racks: dict[int, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    sizes: dict[Key, int] = field(default_factory=dict)  # bytes, the largest replica's


class ScalingKafka:
    def __init__(self, factory: Callable, timeout_ms: int = 30000):
        self.access = KafkaAccess(None, factory=factory)  # type: ignore[arg-type]
        self.reassignments = Reassignments(self.access, timeout_ms)

    def snapshot(self) -> Snapshot:
        def read(admin):
            cluster = admin.describe_cluster()
            topics = admin.describe_topics()
            return cluster, topics

        cluster, topics = self.access.call("describe_topics", read)
        brokers = tuple(sorted(b["broker_id"] for b in cluster["brokers"]))
        racks = {b["broker_id"]: b["rack"] for b in cluster["brokers"] if b.get("rack")}
        layout, leaders, short, unreadable = {}, {}, [], {}
        for t in topics:
            code = t.get("error_code")
            if code == UNKNOWN_TOPIC:  # deleted meanwhile
                continue
            if code:
                unreadable[t["name"]] = Errors.for_code(code).__name__
                continue
            for p in t["partitions"]:
                key = (t["name"], p["partition_index"])
                layout[key] = tuple(p["replica_nodes"])
                leaders[key] = p["leader_id"]
                if set(p["isr_nodes"]) != set(p["replica_nodes"]):
                    short.append(key)
        return Snapshot(
            brokers, layout, leaders, tuple(sorted(short)), racks, unreadable, self.sizes()
        )

    def sizes(self) -> dict[Key, int]:
        """Each partition's size on disk (its largest replica), from every broker's log
        directories; empty when a broker would not tell (sizes only order the moves)."""
        out: dict[Key, int] = {}
        try:
            answers = self.access.call("describe_log_dirs", lambda a: a.describe_log_dirs())
            for answer in answers:
                for log_dir in answer.get("log_dirs") or []:
                    for topic in log_dir.get("topics") or []:
                        for p in topic.get("partitions") or []:
                            key = (topic["name"], p["partition_index"])
                            out[key] = max(out.get(key, 0), int(p.get("partition_size") or 0))
        except Exception:  # an answer of another shape: plan without sizes
            return {}
        return out

    def ongoing(self) -> set[Key]:
        return {(tp.topic, tp.partition) for tp in self.reassignments.partitions()}

    def start(
        self, targets: dict[Key, tuple[int, ...]], brokers: Iterable[int], throttle_bytes: int
    ) -> dict[str, str | None]:
        return self.reassignments.start(
            {TopicPartition(*k): list(v) for k, v in targets.items()},
            list(brokers),
            throttle_bytes,
        )

    def finish(self, topics: list[str], brokers: Iterable[int] | None) -> dict[str, str | None]:
        return self.reassignments.finish(topics, list(brokers) if brokers is not None else None)

    def elect_preferred(self, keys: Iterable[Key]) -> None:
        self.reassignments.elect_preferred(TopicPartition(*k) for k in keys)

    def close(self) -> None:
        self.access.close()
