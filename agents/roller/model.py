"""What the roller sees of the cluster, as plain data the pure decisions in `plan` work on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

ZOOKEEPER, KAFKA = "zookeeper", "kafka"
# KRaft mode: the controller quorum's StatefulSet. Its pods are the quorum's voters, with node
# ids CONTROLLER_ID_BASE + ordinal (the chart's and the local harness' convention: brokers keep
# the pod ordinal as node id, so the two never collide).
CONTROLLER = "controller"
CONTROLLER_ID_BASE = 100
# the metadata modes (the chart's kafka.metadata.mode values)
ZOOKEEPER_MODE, KRAFT = "zookeeper", "kraft"


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
    a restart keeps them available, so they block restarts. ``fenced``: registered brokers the
    KRaft controller has fenced (not serving; always empty in ZooKeeper mode)."""

    controller: int | None
    brokers: frozenset[int]
    partitions: tuple[Partition, ...] = ()
    min_isr: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    fenced: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Voter:
    """One replica of the KRaft metadata log as DescribeQuorum reports it. Timestamps are the
    leader's clock in ms (-1: never)."""

    node_id: int
    log_end_offset: int
    last_fetch_ms: int = -1
    last_caught_up_ms: int = -1


@dataclass(frozen=True)
class QuorumView:
    """The metadata quorum (DescribeQuorum on __cluster_metadata-0): leader (-1: none), its
    epoch and high watermark, the voters (the controllers) and observers (the brokers)."""

    leader: int
    epoch: int
    high_watermark: int
    voters: tuple[Voter, ...]
    observers: tuple[Voter, ...] = ()

    def voter(self, node_id: int) -> Voter | None:
        return next((v for v in self.voters if v.node_id == node_id), None)


@dataclass(frozen=True)
class Features:
    """metadata.version as ApiVersions reports it: the finalized level (None: not finalized)
    and each node's supported (min, max) range."""

    finalized: int | None
    supported: dict[int, tuple[int, int]] = field(default_factory=dict)


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
