"""Pure decisions of the roller: which pods, in which order, may this broker go now, is the
cluster healthy, and can a configuration change be applied without a restart.

Nothing here does I/O; `run` feeds it what the adapters read and acts on the answers.
The availability rules are those of Strimzi's KafkaRoller / KafkaAvailability.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .model import KafkaView, Partition, PodInfo, Restart, ZkNode

# ---- which pods -----------------------------------------------------------------------------


def restarts(
    pods: Iterable[PodInfo], update_revision: str, cert_renewed: Iterable[str] = (), all_pods=False
) -> list[Restart]:
    """Pods to restart, by ordinal: every pod with ``all_pods``; otherwise those whose
    controller-revision-hash is not the StatefulSet's updateRevision, and those whose TLS
    material was renewed after they started."""
    renewed = set(cert_renewed)
    out = []
    for p in sorted(pods, key=lambda p: p.ordinal):
        if all_pods:
            out.append(Restart(p, "all pods requested"))
        elif p.revision != update_revision:
            out.append(Restart(p, f"revision {p.revision or '?'} is not {update_revision}"))
        elif p.name in renewed:
            out.append(Restart(p, "certificates renewed after the pod started"))
    return out


# ---- order ----------------------------------------------------------------------------------


def health_rank(p: PodInfo) -> int:
    # broken pods first (a restart cannot make them worse and may fix them), then pods that are
    # up but not Ready, then Ready ones
    if not p.running:
        return 0
    return 1 if not p.ready else 2


def zookeeper_order(pending: Sequence[Restart], nodes: Mapping[int, ZkNode]) -> list[Restart]:
    """Broken and unready nodes first, then followers by ordinal, the leader last."""

    def key(r: Restart):
        node = nodes.get(r.pod.ordinal)
        leader = node is not None and node.mode == "leader"
        return (leader, health_rank(r.pod), r.pod.ordinal)

    return sorted(pending, key=key)


def kafka_next(pending: Sequence[Restart], controller: int | None) -> Restart | None:
    """The next broker to restart: broken or unready ones first, then brokers that are not the
    active controller by ordinal, the controller last. Called again before every step, with the
    controller read afresh: it can move."""
    if not pending:
        return None
    return min(
        pending, key=lambda r: (r.pod.ordinal == controller, health_rank(r.pod), r.pod.ordinal)
    )


def recovering(p: PodInfo) -> bool:
    """Up but not Ready: maybe recovering its logs after an unclean stop. Such a pod is waited
    for and never restarted (a restart would start the recovery over)."""
    return p.running and not p.ready


# ---- may this broker restart now ------------------------------------------------------------


def availability_blockers(
    broker: int,
    partitions: Iterable[Partition],
    min_isr: Mapping[str, int],
    default_min_isr=1,
    unreadable: Mapping[str, str] | None = None,
) -> list[str]:
    """Why restarting ``broker`` now would take a partition below min.insync.replicas; empty
    when it may go. Partitions with at most min ISR replicas are ignored (they cannot stay
    writable through any restart); a partition blocks when its ISR is already below min ISR and
    the broker holds a replica, or when its ISR equals min ISR and the broker is in it. A topic
    Kafka would not describe (``unreadable``) blocks: its safety cannot be told."""
    out = unreadable_problems(unreadable or {})
    for p in partitions:
        if broker not in p.replicas:
            continue
        m = min_isr.get(p.topic, default_min_isr)
        if len(p.replicas) <= m:
            continue
        isr = sorted(p.isr)
        if len(isr) < m:
            out.append(
                f"partition {p.name} has {len(isr)} in-sync replicas {isr}, below "
                f"min.insync.replicas={m}"
            )
        elif len(isr) == m and broker in p.isr:
            out.append(
                f"partition {p.name} would fall below min.insync.replicas={m} "
                f"(in-sync replicas {isr})"
            )
    return out


def unreadable_problems(unreadable: Mapping[str, str]) -> list[str]:
    """Topics Kafka would not describe, as problems: nothing can be said of their safety."""
    return [
        f"topic {t} could not be described ({why}): its availability cannot be checked"
        for t, why in sorted(unreadable.items())
    ]


def out_of_sync(broker: int, partitions: Iterable[Partition]) -> list[str]:
    """Partitions with a replica on ``broker`` that it has not caught up with."""
    return [p.name for p in partitions if broker in p.replicas and broker not in p.isr]


def backoff(initial=0.25, factor=2.0, cap=8.0) -> Iterator[float]:
    """Delays between re-checks: 0.25 s doubling, at most ``cap``."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, cap)


def zk_blockers(ordinal: int, nodes: list[ZkNode], replicas: int) -> list[str]:
    """Why restarting ZooKeeper node ``ordinal`` now would risk the quorum: another node not
    serving, no leader, or a follower other than this one not synced."""
    out = [
        f"ZooKeeper node {n.ordinal} is not serving"
        for n in nodes
        if n.ordinal != ordinal and n.mode is None
    ]
    if replicas <= 1:
        return out
    me = next((n for n in nodes if n.ordinal == ordinal), None)
    leaders = [n for n in nodes if n.mode == "leader"]
    if not leaders:
        return [*out, "ZooKeeper has no leader"]
    expected = replicas - 1 if me is not None and me.mode is not None else replicas - 2
    synced = leaders[0].synced_followers
    if synced is None or synced < expected:
        out.append(f"ZooKeeper leader has {synced} of {expected} followers synced")
    return out


# ---- health ---------------------------------------------------------------------------------


def zookeeper_problems(nodes: Sequence[ZkNode], replicas: int) -> list[str]:
    """A full quorum: one leader, every other node a follower, all followers synced."""
    out = [
        f"ZooKeeper node {n.ordinal} is not serving" + (f" ({n.error})" if n.error else "")
        for n in nodes
        if n.mode is None
    ]
    if replicas == 1:
        if nodes and nodes[0].mode not in (None, "standalone", "leader"):
            out.append(f"ZooKeeper node 0 is {nodes[0].mode}")
        return out
    leaders = [n for n in nodes if n.mode == "leader"]
    if not leaders:
        out.append("ZooKeeper has no leader")
    elif len(leaders) > 1:
        out.append(f"ZooKeeper has {len(leaders)} leaders: {[n.ordinal for n in leaders]}")
    else:
        synced = leaders[0].synced_followers
        if synced is None or synced < replicas - 1:
            out.append(
                f"ZooKeeper leader {leaders[0].ordinal} has {synced if synced is not None else '?'}"
                f" of {replicas - 1} followers synced"
            )
    for n in nodes:
        if n.mode not in (None, "leader", "follower"):
            out.append(f"ZooKeeper node {n.ordinal} is {n.mode}")
    return out


def pod_problems(kind: str, pods: Sequence[PodInfo], replicas: int) -> list[str]:
    out = []
    have = {p.ordinal for p in pods}
    out += [f"{kind} pod {i} is missing" for i in range(replicas) if i not in have]
    out += [
        f"{kind} pod {p.name} is not Ready"
        for p in sorted(pods, key=lambda p: p.ordinal)
        if not p.ready
    ]
    return out


def kafka_problems(view: KafkaView, replicas: int, kraft: bool = False) -> list[str]:
    """Brokers registered (and unfenced), partitions all led and in sync; in ZooKeeper mode a
    controller elected too (in KRaft mode the quorum's leader is checked instead: brokers have
    no controller role, and DescribeCluster names a broker there)."""
    out = []
    missing = sorted(set(range(replicas)) - view.brokers)
    if missing:
        out.append(f"brokers {missing} are not registered")
    if view.fenced:
        out.append(f"brokers {sorted(view.fenced)} are fenced")
    if not kraft and (view.controller is None or view.controller < 0):
        out.append("no active Kafka controller")
    offline = [p.name for p in view.partitions if p.leader < 0]
    under = [p.name for p in view.partitions if p.leader >= 0 and len(p.isr) < len(p.replicas)]
    if offline:
        out.append(f"{len(offline)} offline partitions: {_some(offline)}")
    if under:
        out.append(f"{len(under)} under-replicated partitions: {_some(under)}")
    out += unreadable_problems(view.unreadable)
    return out


def _some(names: list[str], n=10) -> str:
    names = sorted(names)
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


# ---- configuration changes ------------------------------------------------------------------

# Set per pod by the StatefulSet's container args, never from the shared file.
PER_POD_KEYS = frozenset(
    {
        "broker.id",
        "node.id",
        "advertised.listeners",
        "ssl.keystore.location",
        "ssl.keystore.password",
    }
)

# Broker configs Kafka 3.9 (ZooKeeper mode) can change per broker at run time
# (DynamicBrokerConfig: log defaults, thread pools, cleaner, connection quotas, replication
# throttles). Security, listener and SASL settings are left out on purpose: a change there
# restarts the broker, which also picks up the mounted material.
DYNAMIC_BROKER_CONFIGS = frozenset(
    {
        # DynamicLogConfig: topic defaults
        "log.segment.bytes",
        "log.roll.ms",
        "log.roll.hours",
        "log.roll.jitter.ms",
        "log.roll.jitter.hours",
        "log.index.size.max.bytes",
        "log.flush.interval.messages",
        "log.flush.interval.ms",
        "log.retention.bytes",
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
        "log.index.interval.bytes",
        "log.cleaner.delete.retention.ms",
        "log.cleaner.min.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        "log.segment.delete.delay.ms",
        "log.cleaner.min.cleanable.ratio",
        "log.cleanup.policy",
        "log.preallocate",
        "log.message.timestamp.type",
        "log.message.timestamp.difference.max.ms",
        "log.message.timestamp.before.max.ms",
        "log.message.timestamp.after.max.ms",
        "log.message.downconversion.enable",
        "log.local.retention.ms",
        "log.local.retention.bytes",
        "unclean.leader.election.enable",
        "min.insync.replicas",
        "compression.type",
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.zstd.level",
        "message.max.bytes",
        # DynamicThreadPool
        "num.io.threads",
        "num.network.threads",
        "num.replica.fetchers",
        "num.recovery.threads.per.data.dir",
        "background.threads",
        # LogCleaner
        "log.cleaner.threads",
        "log.cleaner.io.max.bytes.per.second",
        "log.cleaner.dedupe.buffer.size",
        "log.cleaner.io.buffer.size",
        "log.cleaner.io.buffer.load.factor",
        "log.cleaner.backoff.ms",
        # DynamicConnectionQuota
        "max.connections",
        "max.connections.per.ip",
        "max.connections.per.ip.overrides",
        "max.connection.creation.rate",
        # replication quotas and others
        "leader.replication.throttled.rate",
        "follower.replication.throttled.rate",
        "replica.alter.log.dirs.io.max.bytes.per.second",
        "producer.id.expiration.ms",
        "metric.reporters",
    }
)


@dataclass(frozen=True)
class ConfigDiff:
    """What changed between the configuration a broker runs with and the new one."""

    set: dict[str, str] = field(default_factory=dict)  # dynamic: apply with alter-configs
    static: tuple[str, ...] = ()  # need a restart
    unknown: tuple[str, ...] = ()  # values Kafka does not reveal (passwords): not compared

    @property
    def dynamic_only(self) -> bool:
        return not self.static

    @property
    def empty(self) -> bool:
        return not self.set and not self.static


def parse_properties(text: str) -> dict[str, str]:
    """A Java properties file's keys and values (the subset server.properties uses: `key=value`
    or `key: value` lines, `#`/`!` comments, trailing-backslash continuations)."""
    out: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = raw.strip() if not pending else raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1]
            continue
        line, pending = pending + line, ""
        sep = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if sep < 0:
            out[line.strip()] = ""
        else:
            out[line[:sep].strip()] = line[sep + 1 :].strip()
    return out


def config_diff(old: Mapping[str, str | None], new: Mapping[str, str]) -> ConfigDiff:
    """Compare the broker's current settings (``old``: explicitly set keys; None for a value
    Kafka keeps secret) with the new file. Per-pod keys and values resolved by config
    providers (``${...}``) are not compared. A key removed from the file needs a restart: its
    static value stays until then."""
    sets, static, unknown = {}, [], []
    for k in sorted(set(old) | set(new)):
        if k in PER_POD_KEYS:
            continue
        nv = new.get(k)
        if nv is not None and "${" in nv:
            continue
        if k not in old:
            ov = None
        else:
            ov = old[k]
            if ov is None:
                unknown.append(k)
                continue
        if nv is None:
            static.append(k)
        elif ov is None or ov.strip() != nv.strip():
            if k in DYNAMIC_BROKER_CONFIGS:
                sets[k] = nv
            else:
                static.append(k)
    return ConfigDiff(sets, tuple(static), tuple(unknown))
