"""Pure readings and decisions of the migration hooks: the phase the release is in, what the
controllers' /metrics and ZooKeeper's znodes say, and for every wait what is still missing.

Nothing here does I/O: `observe` reads, `hooks` loops, these functions decide. A "missing"
function returns None when its wait is over, else one line saying what is still missing (the
line ends in the hook's log and, on a timeout, in its failure message).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .phases import (
    BROKER_KRAFT,
    BROKER_ZK,
    BROKER_ZK_MIGRATING,
    DUAL,
    KRAFT,
    KRAFT_BROKERS,
    MIGRATION,
    PHASES,
    ZK_MIGRATION,
    ZK_POST_MIGRATION,
    ZOOKEEPER,
    zk_state_name,
)

PHASE_LABEL = "kairn.dev/metadata-mode"
CONTROLLER_ID_BASE = 100  # controllers' node.id = 100 + ordinal; brokers keep their ordinal
ZK_PRE_MIGRATION = 2

# The controllers' JMX exporter names (chart/files/jmx/controller.yaml).
LEADER = "kafka_server_raft_current_leader"
ACTIVE = "kafka_controller_kafkacontroller_activecontrollercount"
ZK_STATE = "kafka_controller_kafkacontroller_zkmigrationstate"
MIGRATING = "kafka_controller_kafkacontroller_migratingzkbrokercount"


# ---- which phase, which hook --------------------------------------------------------------
def current_phase(label: str | None, controllers: bool, zookeeper: bool) -> str:
    """The phase the release is in: the live kafka StatefulSet's label (Helm has not applied
    the upgrade yet when preflight reads it). A release from before the label: kraft when it
    has controllers and no ZooKeeper, else zookeeper. A label with another value is refused
    (ValueError) rather than guessed."""
    if label:
        if label not in PHASES:
            raise ValueError(
                f"the kafka StatefulSet's label {PHASE_LABEL}={label!r} is not a metadata mode "
                f"({', '.join(PHASES)})"
            )
        return label
    return KRAFT if controllers and not zookeeper else ZOOKEEPER


def preflight_is_migration(current: str, requested: str) -> bool:
    """Whether preflight needs the migration's guards: any phase change (every refusal of the
    transition table included), or staying in a dual-write phase. Staying in zookeeper or
    kraft is today's preflight."""
    return current != requested or requested in DUAL


def roll_kind(requested: str, zookeeper_deployed: bool, controllers_deployed: bool) -> str | None:
    """Which roll the post-upgrade hook runs without asking ZooKeeper: "migration" (the
    requested phase is dual-write), "finalize" (kraft while the kept ZooKeeper objects still
    exist), "maybe-revert" (zookeeper with no controllers: ZooKeeper's znodes decide, see
    `needs_revert`), None (today's roll)."""
    if requested in DUAL:
        return "migration"
    if requested == KRAFT and zookeeper_deployed:
        return "finalize"
    if requested == ZOOKEEPER and not controllers_deployed:
        return "maybe-revert"
    return None


def replicas_refusal(current: str, requested: str, live: int, wanted: int | None) -> str | None:
    """No broker count change in an upgrade that changes the phase or runs in a dual-write
    one: the migration waits count every broker (MigratingZkBrokerCount = the broker count),
    and the scale-in guard's drain and the scale-out's roll are not written for brokers of two
    modes. Change kafka.replicas in its own upgrade, in phase zookeeper or kraft."""
    if wanted is None or wanted == live:
        return None
    return (
        f"phase {current} -> {requested} refused: kafka.replicas would change from {live} to "
        f"{wanted} in the same upgrade; keep kafka.replicas={live} through the migration and "
        f"change it in its own helm upgrade in phase {ZOOKEEPER} or {KRAFT}"
    )


def zookeeper_objects(fullname: str, statefulset: str) -> list[tuple[str, str]]:
    """The ZooKeeper objects Helm keeps (helm.sh/resource-policy: keep) for the roll hook to
    delete after the finalize, by the chart's names; never its volume claims."""
    return [
        ("StatefulSet", statefulset),
        ("Service", f"{fullname}-zookeeper-nodes"),
        ("Service", f"{fullname}-zookeeper-client"),
        ("ConfigMap", f"{statefulset}-config"),
        ("PodDisruptionBudget", statefulset),
    ]


# ---- ZooKeeper's znodes -----------------------------------------------------------------------
@dataclass(frozen=True)
class ControllerZnode:
    """/controller (ZkData.ControllerZNode): ``brokerid`` and ``kraft``: a KRaft controller
    claimed it in a migration (``kraftControllerEpoch`` >= 0; a broker writes -1). ``raw``
    None: the znode does not exist."""

    raw: bytes | None
    broker_id: int | None = None
    kraft: bool = False

    @property
    def names_broker(self) -> bool:
        return (
            self.broker_id is not None
            and not self.kraft
            and 0 <= self.broker_id < CONTROLLER_ID_BASE
        )


def parse_controller(raw: bytes | None) -> ControllerZnode:
    if raw is None:
        return ControllerZnode(None)
    try:
        data = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return ControllerZnode(raw)
    if not isinstance(data, dict):
        return ControllerZnode(raw)
    bid = data.get("brokerid")
    # Kafka 3.9's brokers write the field too, as -1 (read from a ZooKeeper-mode cluster of the
    # test harness: {"version":2,"brokerid":0,...,"kraftControllerEpoch":-1}); a KRaft
    # controller's claim carries its epoch, >= 0
    epoch = data.get("kraftControllerEpoch")
    kraft = isinstance(epoch, int) and epoch >= 0
    return ControllerZnode(raw, int(bid) if isinstance(bid, int) else None, kraft)


def controller_epoch_to_write(
    zk_epoch: bytes | None, migration: bytes | None, controller: bytes | None
) -> int | None:
    """KAFKA-20488: the KRaft controllers write their epoch into the partition states in
    ZooKeeper; a ZooKeeper controller elected with a lower epoch aborts every leader election
    ("the LeaderAndIsr path was already written by another controller ... epoch 7") and brokers
    ignore it, so partitions whose leader restarts go offline. Before /controller is freed, the
    KRaft epoch (from /migration's kraft_controller_epoch and the claim's kraftControllerEpoch) is
    written to /controller_epoch when ZooKeeper's is lower: the broker elected next takes it + 1.
    None: nothing to write."""
    kraft = max(
        (
            v
            for v in (
                parse_json(migration).get("kraft_controller_epoch"),
                parse_json(controller).get("kraftControllerEpoch"),
            )
            if isinstance(v, int)
        ),
        default=-1,
    )
    try:
        current = int((zk_epoch or b"0").decode().strip() or 0)
    except (ValueError, UnicodeDecodeError):
        current = 0
    return kraft if current < kraft else None


def parse_json(raw: bytes | None) -> dict:
    """A znode's JSON object; {} when absent or not a JSON object."""
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def cluster_id(raw: bytes | None) -> str | None:
    """/cluster/id: {"version":"1","id":"<cluster id>"}."""
    cid = parse_json(raw).get("id")
    return cid if isinstance(cid, str) and cid else None


def needs_revert(migration: bytes | None, controller: ControllerZnode) -> bool:
    """A rollback to zookeeper still has ZooKeeper to clean: /migration exists, or /controller
    is a KRaft controller's claim (ops.html revert table, row "Enter Migration Mode")."""
    return migration is not None or controller.kraft


def delete_controller_znode(controller: ControllerZnode) -> bool:
    """Delete /controller only while it is a KRaft controller's claim (or unreadable): a
    broker's claim is the outcome the revert waits for, and deleting it again on a rerun would
    only force another election."""
    return controller.raw is not None and not controller.names_broker


# ---- the kraft-cluster Secret -----------------------------------------------------------------
CREATE, KEEP, REFUSE = "create", "keep", "refuse"


def kraft_secret(existing_id: str | None, exists: bool, zk_id: str | None) -> tuple[str, str]:
    """What zookeeper -> migration does with Secret <fullname>-kraft-cluster: (CREATE, ""),
    (KEEP, why) or (REFUSE, the refusal). The controllers must be formatted with ZooKeeper's
    own /cluster/id, so a Secret naming another id (e.g. left from a KRaft install of the same
    name) is refused, never overwritten."""
    if zk_id is None:
        return REFUSE, "ZooKeeper's /cluster/id is missing or not readable"
    if not exists:
        return CREATE, ""
    if existing_id == zk_id:
        return KEEP, "it already holds ZooKeeper's cluster id (an earlier attempt)"
    return REFUSE, (
        f"Secret already holds cluster.id {existing_id or '(none)'}, not ZooKeeper's {zk_id}: "
        "delete it (the controllers are formatted with ZooKeeper's id), then retry"
    )


# ---- the controllers' /metrics ----------------------------------------------------------------
@dataclass(frozen=True)
class ControllerReading:
    """One controller's /metrics as read: gauges are floats in the exporter's text, kept as ints
    here (None: the sample is missing). ``error``: why nothing could be read."""

    ordinal: int
    leader: int | None = None
    active: bool | None = None
    zk_state: int | None = None
    migrating: int | None = None
    error: str | None = None


def reading(ordinal: int, samples: dict[str, float]) -> ControllerReading:
    def num(name):
        v = samples.get(name)
        return None if v is None or v != v else int(v)  # v != v: NaN

    active = num(ACTIVE)
    return ControllerReading(
        ordinal, num(LEADER), None if active is None else active == 1, num(ZK_STATE), num(MIGRATING)
    )


@dataclass(frozen=True)
class QuorumSignals:
    """The controllers together: the leader most of them name, the active controller (the one
    reporting ActiveControllerCount 1) and its ZkMigrationState and MigratingZkBrokerCount."""

    leader: int | None
    active: int | None  # node id
    zk_state: int | None
    migrating: int | None
    problems: tuple[str, ...] = ()


def summarize(readings: Sequence[ControllerReading], replicas: int) -> QuorumSignals:
    problems = [
        f"controller {CONTROLLER_ID_BASE + r.ordinal} metrics not readable: {r.error}"
        for r in readings
        if r.error
    ]
    have = {r.ordinal for r in readings}
    problems += [
        f"controller {CONTROLLER_ID_BASE + i} has no metrics address"
        for i in range(replicas)
        if i not in have
    ]
    ok = [r for r in readings if not r.error]
    named = Counter(r.leader for r in ok if r.leader is not None and r.leader >= 0)
    leader = None
    if named:
        candidate, votes = named.most_common(1)[0]
        if votes >= replicas // 2 + 1:
            leader = candidate
        else:
            problems.append(
                f"no leader named by a majority of the {replicas} controllers ({dict(named)})"
            )
    else:
        problems.append("no controller names a quorum leader")
    active = [r for r in ok if r.active]
    if len(active) != 1:
        problems.append(f"{len(active)} controllers report themselves active, not 1")
        return QuorumSignals(leader, None, None, None, tuple(problems))
    a = active[0]
    return QuorumSignals(
        leader, CONTROLLER_ID_BASE + a.ordinal, a.zk_state, a.migrating, tuple(problems)
    )


# ---- waits: None when done, else what is missing ----------------------------------------------
def pods_missing(kind: str, ready: Iterable[tuple[int, bool]], replicas: int) -> str | None:
    ready = dict(ready)
    missing = [i for i in range(replicas) if i not in ready]
    unready = [i for i in range(replicas) if i in ready and not ready[i]]
    out = []
    if missing:
        out.append(f"{kind} pods {missing} missing")
    if unready:
        out.append(f"{kind} pods {unready} not Ready")
    return "; ".join(out) or None


def pod_back_missing(old, now, revision: str) -> str | None:
    """A deleted pod is back: a new pod on ``revision``, Ready."""
    if now is None:
        return "pod not recreated yet"
    if now.uid == old.uid:
        return "old pod still there"
    if now.revision != revision:
        return f"pod on revision {now.revision}, not {revision}"
    return None if now.ready else "pod not Ready"


def quorum_missing(q: QuorumSignals) -> str | None:
    """A quorum with a leader and one active controller, every controller readable."""
    if q.problems:
        return "; ".join(q.problems)
    if q.leader is None or q.active is None:
        return "no quorum leader or active controller"
    return None


def migration_started_missing(q: QuorumSignals) -> str | None:
    """After the controllers are deployed: PRE_MIGRATION (waiting for the brokers) or
    MIGRATION (an earlier run got further)."""
    return quorum_missing(q) or _state(q, (ZK_PRE_MIGRATION, ZK_MIGRATION))


def migrated_missing(q: QuorumSignals, brokers: int, migration_znode: bytes | None) -> str | None:
    """Phase migration done: MIGRATION, every broker a migrating ZooKeeper broker, and
    /migration naming the active controller (the copy was committed by that leader)."""
    found = quorum_missing(q) or _state(q, (ZK_MIGRATION,))
    if found:
        return found
    if q.migrating != brokers:
        return f"MigratingZkBrokerCount is {_n(q.migrating)}, not {brokers}"
    owner = parse_json(migration_znode).get("kraft_controller_id")
    if owner != q.active:
        return f"/migration names kraft_controller_id {owner}, not the active controller {q.active}"
    return None


def kraft_brokers_missing(
    q: QuorumSignals, brokers: int, registered: Iterable[int], fenced: Iterable[int]
) -> str | None:
    """Phase kraft-brokers done (and the finalize's check before the point of no return):
    every broker registered and unfenced, no ZooKeeper broker left, still MIGRATION."""
    found = quorum_missing(q) or _state(q, (ZK_MIGRATION,))
    if found:
        return found
    return brokers_registered_missing(brokers, registered, fenced) or (
        None if q.migrating == 0 else f"MigratingZkBrokerCount is {_n(q.migrating)}, not 0"
    )


def brokers_registered_missing(
    brokers: int, registered: Iterable[int], fenced: Iterable[int]
) -> str | None:
    reg, fen = set(registered), set(fenced)
    out = []
    if missing := [i for i in range(brokers) if i not in reg]:
        out.append(f"brokers {missing} not registered")
    if fen := sorted(i for i in fen if i < brokers):
        out.append(f"brokers {fen} fenced")
    return "; ".join(out) or None


def finalized_missing(q: QuorumSignals) -> str | None:
    return quorum_missing(q) or _state(q, (ZK_POST_MIGRATION,))


def zk_controller_missing(controller: ControllerZnode) -> str | None:
    """The revert's last wait: /controller names a broker (a ZooKeeper controller again)."""
    if controller.names_broker:
        return None
    if controller.raw is None:
        return "/controller does not exist yet (no broker elected)"
    return f"/controller is {controller.raw.decode(errors='replace')[:200]}, not a broker's claim"


def brokers_follow_zk_controller_missing(
    controller: ControllerZnode, named: dict[int, set[int]], brokers: int
) -> str | None:
    """Before the revert's roll: a broker holds /controller and every broker names it in
    Metadata, every time asked. A broker still following the gone KRaft controller would send
    its controlled shutdown there and wait in vain (KafkaServer.controlledShutdown), restarting
    uncleanly with its leaderships in place."""
    if missing := zk_controller_missing(controller):
        return missing
    elected = controller.broker_id
    if len(named) < brokers:
        return f"{len(named)} of {brokers} brokers answered Metadata"
    lagging = {b: sorted(ids) for b, ids in sorted(named.items()) if ids != {elected}}
    if lagging:
        return f"broker {elected} holds /controller; brokers naming another controller: {lagging}"
    return None


def stale_leaders(partitions: Iterable, rolled: set[int]) -> list[int]:
    """The revert's stall (docs/migration.md): leaders not yet rolled back whose partitions
    keep out of their ISR a replica that was. Such a leader holds
    a partition epoch from the KRaft controllers ahead of ZooKeeper's, skips the ZooKeeper
    controller's requests and has its ISR changes refused until it restarts itself. Most
    partitions first."""
    held: dict[int, int] = {}
    for p in partitions:
        if p.leader < 0 or p.leader in rolled:
            continue
        if any(r in rolled and r not in p.isr for r in p.replicas if r != p.leader):
            held[p.leader] = held.get(p.leader, 0) + 1
    return sorted(held, key=lambda b: (-held[b], b))


def _state(q: QuorumSignals, wanted: tuple[int, ...]) -> str | None:
    if q.zk_state in wanted:
        return None
    names = " or ".join(zk_state_name(w) for w in wanted)
    return f"ZkMigrationState is {zk_state_name(q.zk_state)}, not {names}"


def _n(v: int | None) -> str:
    return "unreadable" if v is None else str(v)


# ---- preflight's approximation of the brokers' modes ------------------------------------------
MODE_OF_PHASE = {
    ZOOKEEPER: BROKER_ZK,
    MIGRATION: BROKER_ZK_MIGRATING,
    KRAFT_BROKERS: BROKER_KRAFT,
    KRAFT: BROKER_KRAFT,
}
OUTDATED = "on an older revision of its StatefulSet (mode unknown: a roll was interrupted)"


def broker_mode(phase: str, running: bool, revision: str, update_revision: str) -> str | None:
    """A broker pod's mode, approximated: a running pod on the StatefulSet's update revision
    runs the configuration of the phase the StatefulSet's label names (Helm changes the two in
    one apply); one on an older revision is of unknown mode (preflight then refuses steps that
    need a known mode); None when not running."""
    if not running:
        return None
    if revision != update_revision:
        return OUTDATED
    return MODE_OF_PHASE[phase]


def broker_registered(
    mode: str | None,
    node_id: int,
    registered: Iterable[int],
    migrating: int | None,
    expected: int,
) -> bool:
    """Registered with the controllers, approximated from what a broker's Metadata and the
    controllers' metrics tell: a KRaft broker registered in DescribeCluster (which a KRaft
    broker answers from the controllers' metadata); a migrating ZooKeeper broker registered in
    the brokers' metadata while the controllers count every broker as a migrating ZooKeeper
    broker (MigratingZkBrokerCount = the broker count)."""
    if node_id not in set(registered):
        return False
    if mode == BROKER_KRAFT:
        return True
    if mode == BROKER_ZK_MIGRATING:
        return migrating == expected
    return False
