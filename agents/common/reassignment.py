"""Partition reassignments under a replication throttle: one module for every user of them
(the topic agent's replication-factor changes, the rebalancer).

- :func:`replicas_for_factor` (pure): new replica lists for a new replication factor, with as
  few moves as possible.
- :class:`Reassignments` (adapter over :class:`KafkaAccess`): ``ongoing()``, ``partitions()``,
  ``start()``, ``finish()``, ``elect_preferred()``. Every per-item answer of Kafka is read: a
  throttle that was not set keeps its topic from moving; a throttle that was not removed is
  reported, so the caller retries.

Ownership: a caller passes only the topics it owns and never touches the reassignments or
throttles of other topics. The brokers' throttle rates are shared: set by ``start()``, removed
by ``finish()`` only when no reassignment at all runs any more.

Kill safety is the caller's half of the contract: record that a topic is being reassigned
(the topic agent: ``reassigning: true`` in its status annotation) *before* ``start()``, and
clear the record only after ``finish()`` reported no error for that topic. A kill at any line
then leaves either nothing changed or a record that leads to ``finish()``, so no throttle
kairn set outlives its reassignment. The rebalancer (agents/scaling) records the partitions
of its batch in a ConfigMap of its own the same way, and leaves every topic alone that has a
reassignment it did not record.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
from kafka.structs import TopicPartition

from .kafka_admin import KafkaAccess
from .settings import DEFAULT_THROTTLE_BYTES

TOPIC_THROTTLES = (
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
)
BROKER_RATES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")


def replicas_for_factor(
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


def moves(
    topic: str, current: dict[int, list[int]], new: dict[int, list[int]]
) -> dict[TopicPartition, list[int]]:
    """The partitions of ``topic`` whose replicas change, with their new replica lists."""
    return {
        TopicPartition(topic, pid): reps for pid, reps in new.items() if reps != current.get(pid)
    }


def _config_results(res: dict, kind: str, names: Iterable[str]) -> dict[str, str | None]:
    """{name: None or why} from kafka-python's alter_configs answer; a name the answer leaves
    out counts as not done."""
    answered = (res or {}).get(kind) or {}
    out: dict[str, str | None] = {}
    for n in names:
        result = answered.get(n)
        if result is None:
            out[n] = "Kafka's answer did not mention it"
        else:
            out[n] = None if result == "OK" else result
    return out


def _failed(results: dict[str, str | None]) -> str:
    """The failed brokers of ``results`` in one line ("" when none failed)."""
    return "; ".join(f"broker {b}: {e}" for b, e in sorted(results.items()) if e)


class Reassignments:
    def __init__(self, kafka: KafkaAccess, timeout_ms: int = 30000):
        self.kafka, self.timeout_ms = kafka, timeout_ms

    def ongoing(self) -> set[str]:
        """Topics with a partition reassignment in progress (anyone's)."""
        res = self.kafka.call(
            "list_partition_reassignments", lambda a: a.list_partition_reassignments()
        )
        return {tp.topic for tp in res}

    def partitions(self) -> dict[TopicPartition, dict]:
        """Every partition with a reassignment in progress (anyone's), with Kafka's
        ``replicas``, ``adding_replicas`` and ``removing_replicas``."""
        return dict(
            self.kafka.call(
                "list_partition_reassignments", lambda a: a.list_partition_reassignments()
            )
        )

    def elect_preferred(self, partitions: Iterable[TopicPartition]) -> None:
        """Asks Kafka to make each partition's first replica its leader (an election that is
        not needed is no error)."""
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        if by_topic:
            self.kafka.call(
                "elect_leaders",
                lambda a: a.elect_leaders(0, by_topic, timeout_ms=self.timeout_ms),
            )

    def brokers(self) -> list[int]:
        res = self.kafka.call("describe_cluster", lambda a: a.describe_cluster())
        return sorted(b["broker_id"] for b in res["brokers"])

    def _alter(self, resources: list[ConfigResource]) -> dict:
        return self.kafka.call(
            "incremental_alter_configs",
            lambda a: a.alter_configs(resources, raise_on_unknown=False, incremental=True),
        )

    def start(
        self,
        targets: dict[TopicPartition, list[int]],
        brokers: list[int],
        throttle_bytes: int = DEFAULT_THROTTLE_BYTES,
    ) -> dict[str, str | None]:
        """Throttles the topics of ``targets`` (every replica of them: ``*``) and sets the
        throttle rate on ``brokers``, then asks Kafka to move the replicas.

        {topic: None when its reassignment started, else why not}. A topic whose throttle
        Kafka did not confirm is not moved; when a broker's rate was not confirmed nothing is
        moved (a move without it would run at full speed)."""
        topics = sorted({tp.topic for tp in targets})
        if not topics:
            return {}
        rate = str(throttle_bytes)
        res = self._alter(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    t,
                    {k: (AlterConfigOp.SET, "*") for k in TOPIC_THROTTLES},
                )
                for t in topics
            ]
            + [
                ConfigResource(
                    ConfigResourceType.BROKER,
                    str(b),
                    {k: (AlterConfigOp.SET, rate) for k in BROKER_RATES},
                )
                for b in brokers
            ]
        )
        out = {
            t: (f"throttle not set: {e}" if e else None)
            for t, e in _config_results(res, "topic", topics).items()
        }
        rates = _failed(_config_results(res, "broker", map(str, brokers)))
        if rates:
            return {t: out[t] or f"throttle rate not set ({rates})" for t in topics}
        moving = {tp: reps for tp, reps in targets.items() if out[tp.topic] is None}
        if not moving:
            return out
        answer = self.kafka.call(
            "alter_partition_reassignments",
            lambda a: a.alter_partition_reassignments(moving, timeout_ms=self.timeout_ms),
        )
        for tp in moving:
            if tp not in answer:
                out[tp.topic] = out[tp.topic] or f"Kafka's answer did not mention {tp}"
            elif answer[tp] is not None:
                out[tp.topic] = out[tp.topic] or f"partition {tp.partition}: {answer[tp].__name__}"
        return out

    def finish(self, topics: list[str], brokers: list[int] | None) -> dict[str, str | None]:
        """Removes the throttles of ``topics`` (whose reassignments are over), and the brokers'
        throttle rates when ``brokers`` is given (no reassignment runs any more).

        {topic: None when its throttles are gone, else why not}; a rate Kafka did not remove
        counts against every topic, so the caller comes back for it."""
        if not topics:
            return {}
        resources = [
            ConfigResource(
                ConfigResourceType.TOPIC,
                t,
                {k: (AlterConfigOp.DELETE, None) for k in TOPIC_THROTTLES},
            )
            for t in topics
        ]
        if brokers:
            resources += [
                ConfigResource(
                    ConfigResourceType.BROKER,
                    str(b),
                    {k: (AlterConfigOp.DELETE, None) for k in BROKER_RATES},
                )
                for b in brokers
            ]
        res = self._alter(resources)
        out = {
            t: (f"throttle not removed: {e}" if e else None)
            for t, e in _config_results(res, "topic", topics).items()
        }
        rates = _failed(_config_results(res, "broker", map(str, brokers or [])))
        if rates:
            return {t: out[t] or f"throttle rate not removed ({rates})" for t in topics}
        return out
