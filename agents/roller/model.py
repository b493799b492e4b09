"""What the roller sees of the cluster, as plain data the pure decisions in `plan` work on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

ZOOKEEPER, KAFKA = "zookeeper", "kafka"


@dataclass(frozen=True)
class PodInfo:
    """One pod of a StatefulSet as the roller needs it.

    ``running``: its containers are up (False: crashed, crash-looping or not started), which
    tells a broken pod (restart it first) from one still starting or recovering its logs (wait
    for it, never restart it again)."""

    name: str
    ordinal: int
    uid: str
    revision: str
    ready: bool
    running: bool = True
    started_at: datetime | None = None
    deleting: bool = False


@dataclass(frozen=True)
class Partition:
    topic: str
    partition: int
    leader: int  # -1: offline
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"


@dataclass(frozen=True)
class KafkaView:
    """The brokers' view: controller (-1 or None: none), registered brokers, partitions and the
    effective min.insync.replicas of each topic. ``unreadable``: topics Kafka would not
    describe (their metadata or min.insync.replicas), with the reason: nobody can tell whether
    a restart keeps them available, so they block restarts."""

    controller: int | None
    brokers: frozenset[int]
    partitions: tuple[Partition, ...] = ()
    min_isr: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ZkNode:
    """One ZooKeeper node as `srvr`/`mntr` report it. mode None: not serving."""

    ordinal: int
    mode: str | None
    synced_followers: int | None = None  # mntr zk_synced_followers (the leader only)
    error: str | None = None


@dataclass(frozen=True)
class Restart:
    """A pod to restart and why."""

    pod: PodInfo
    reason: str
