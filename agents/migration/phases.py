"""The metadata modes kairn accepts for kafka.metadata.mode and the rules between them: which
`helm upgrade` is a step forward, which a rollback, which is refused and why. Pure.

The phases follow Kafka 3.9's operations guide, docs/ops.html "ZooKeeper to KRaft Migration"
(apache/kafka, branch 3.9, commit c821449f), whose names are in brackets:

- ``zookeeper``: brokers in ZooKeeper mode, no controllers ("initial phase").
- ``migration``: controllers deployed with zookeeper.metadata.migration.enable, brokers rolled
  with the migration settings; the controller copies ZooKeeper's metadata and then writes to
  both ("Provisioning the KRaft controller quorum" + "Enter Migration Mode on the Brokers";
  Kafka's "hybrid" phase, Strimzi 0.45's KRaftMigration -> KRaftDualWriting).
- ``kraft-brokers``: brokers rolled into KRaft, controllers still writing to ZooKeeper
  ("Migrating brokers to KRaft"; Kafka's "dual-write" phase, Strimzi's KRaftPostMigration).
- ``kraft``: controllers rolled without ZooKeeper ("Finalizing the migration"; Strimzi's
  PreKRaft -> KRaft). No way back: ops.html's revert table says "If you have finalized the ZK
  migration, then you cannot revert."

Refusals are messages, never exceptions: preflight prints them all and the upgrade stops before
anything changes. Each names the current phase, the requested one and the next allowed step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ZOOKEEPER, MIGRATION, KRAFT_BROKERS, KRAFT = "zookeeper", "migration", "kraft-brokers", "kraft"
PHASES = (ZOOKEEPER, MIGRATION, KRAFT_BROKERS, KRAFT)
# A new install starts in a steady mode; the two middle phases only exist between them.
INSTALLABLE = (ZOOKEEPER, KRAFT)
# Phases with controllers still writing to ZooKeeper: the revert table's rows before finalizing.
DUAL = (MIGRATION, KRAFT_BROKERS)

# Kinds of transition.
NONE, INSTALL, FORWARD, ROLLBACK, REFUSED = "none", "install", "forward", "rollback", "refused"

# The controllers' gauge kafka.controller:type=KafkaController,name=ZkMigrationState (ops.html
# "KRaft Monitoring Metrics"; values from metadata/.../migration/ZkMigrationState.java, 3.9).
ZK_STATES = {0: "NONE", 1: "MIGRATION", 2: "PRE_MIGRATION", 3: "POST_MIGRATION", 4: "ZK"}
ZK_MIGRATION = 1  # ZooKeeper's metadata copied into the log; the controller writes to both
ZK_POST_MIGRATION = 3  # finalized: written as soon as a controller without the flag leads

# Broker modes as observed (BrokerState.mode).
BROKER_ZK, BROKER_ZK_MIGRATING, BROKER_KRAFT = "zookeeper", "zk-migration", "kraft"


def parse_phase(value: object) -> str:
    """``value`` as a phase; a ValueError naming the accepted values for anything else."""
    if isinstance(value, str) and value in PHASES:
        return value
    raise ValueError(
        f"kafka.metadata.mode={value!r} is not a metadata mode: use one of {', '.join(PHASES)}"
    )


def upgrade(phase: str) -> str:
    return f"helm upgrade --set kafka.metadata.mode={phase}"


def _where(current: str | None) -> str:
    return "a new install" if current is None else f"the release is in phase {current}"


@dataclass(frozen=True)
class Transition:
    """What `helm upgrade` from ``current`` (None: an install) to ``requested`` is.
    ``next_step``: the phase the next accepted upgrade asks for (``requested`` when accepted)."""

    current: str | None
    requested: str
    kind: str
    next_step: str
    refusal: str | None = None

    @property
    def accepted(self) -> bool:
        return self.kind != REFUSED


def transition(current: str | None, requested: str) -> Transition:
    """Classify ``current -> requested``: one phase forward, a rollback (from migration or
    kraft-brokers to zookeeper; from kraft-brokers back to migration), or refused."""
    requested = parse_phase(requested)
    if current is None:
        if requested in INSTALLABLE:
            return Transition(None, requested, INSTALL, requested)
        return _refused(
            None,
            requested,
            ZOOKEEPER,
            f"kafka.metadata.mode={requested} is a migration phase, not a way to install "
            f"({_where(None)}): install with kafka.metadata.mode={ZOOKEEPER} (then "
            f"{upgrade(MIGRATION)}) or kafka.metadata.mode={KRAFT}",
        )
    current = parse_phase(current)
    if current == requested:
        return Transition(current, requested, NONE, requested)
    cur, req = PHASES.index(current), PHASES.index(requested)
    if current == KRAFT:
        return _refused(
            current,
            requested,
            KRAFT,
            f"kafka.metadata.mode={requested} from phase {KRAFT}: the migration was finalized "
            f"(or the release was installed in KRaft mode) and Kafka cannot go back to ZooKeeper "
            f"after that; keep kafka.metadata.mode={KRAFT}",
        )
    if req == cur + 1:
        return Transition(current, requested, FORWARD, requested)
    if req > cur + 1:
        nxt = PHASES[cur + 1]
        return _refused(
            current,
            requested,
            nxt,
            f"kafka.metadata.mode={requested} skips phase {nxt} ({_where(current)}): run "
            f"{upgrade(nxt)} first",
        )
    # Backwards from a dual-write phase. kraft-brokers -> migration is the first roll of the
    # revert table's "Migrating brokers to KRaft" row (brokers back in ZooKeeper mode with the
    # migration flag still on); Strimzi's KRaftPostMigration -> KRaftDualWriting is the same.
    # kraft-brokers -> zookeeper in one upgrade is refused: that row needs two broker rolls
    # with different configs (flag kept, then dropped) and one helm rendering gives one.
    if (current, requested) == (KRAFT_BROKERS, ZOOKEEPER):
        return _refused(
            current,
            requested,
            MIGRATION,
            f"kafka.metadata.mode={requested} from phase {current}: roll back one phase at a "
            f"time: {upgrade(MIGRATION)} first, then {ZOOKEEPER}",
        )
    return Transition(current, requested, ROLLBACK, requested)


def _refused(current: str | None, requested: str, nxt: str, why: str) -> Transition:
    return Transition(current, requested, REFUSED, nxt, why)


# ---- what the cluster reports ---------------------------------------------------------------


@dataclass(frozen=True)
class BrokerState:
    """One broker as the preflight saw it.

    ``mode``: BROKER_ZK, BROKER_ZK_MIGRATING (ZooKeeper mode with the migration flag, the
    controllers' MigratingZkBrokerCount counts it) or BROKER_KRAFT; None when not running.
    ``registered``: the KRaft controllers hold a registration for this broker made by the
    process running now (re-registered since its last restart), in that mode.
    ``fenced``: that registration is fenced."""

    node_id: int
    mode: str | None
    registered: bool = False
    fenced: bool = False


@dataclass(frozen=True)
class ObservedState:
    """What preflight read before deciding. None: not readable (or nothing to read, e.g. no
    controllers yet), which every guard that needs the value treats as not satisfied."""

    expected_brokers: int
    brokers: tuple[BrokerState, ...] = ()
    # the active controller's kafka.controller:type=KafkaController gauges
    zk_migration_state: int | None = None
    migrating_zk_brokers: int | None = None
    # the Kafka version of the image this upgrade runs (e.g. "3.9.1", "4.4.0")
    kafka_version: str | None = None
    # inter.broker.protocol.version running and rendered; metadata.version finalized and asked
    ibp_running: str | None = None
    ibp_requested: str | None = None
    metadata_version_running: str | None = None
    metadata_version_requested: str | None = None
    offline: tuple[str, ...] = ()
    under_replicated: tuple[str, ...] = ()
    # the roller's other health findings (ZooKeeper and controller quorums, pods)
    problems: tuple[str, ...] = ()


def zk_state_name(value: int | None) -> str:
    if value is None:
        return "unreadable"
    return f"{ZK_STATES.get(value, 'unknown')} ({value})"


def kafka_major(version: str) -> int:
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?(?:[-.].*)?", version.strip())
    if not m:
        raise ValueError(f"Kafka version {version!r} is not of the form 3.9, 3.9.1 or 4.4.0")
    return int(m.group(1))


# ---- guards: each a list of refusals, empty when the transition may go ----------------------


def health_refusals(t: Transition, obs: ObservedState) -> list[str]:
    """Any migration step or rollback on an unhealthy cluster: missing brokers, offline or
    under-replicated partitions, the roller's other findings."""
    if t.kind not in (FORWARD, ROLLBACK):
        return []
    running = {b.node_id for b in obs.brokers if b.mode is not None}
    found = [f"broker {i} is not running" for i in range(obs.expected_brokers) if i not in running]
    if obs.offline:
        found.append(f"{len(obs.offline)} offline partitions: {_some(obs.offline)}")
    if obs.under_replicated:
        found.append(
            f"{len(obs.under_replicated)} under-replicated partitions: "
            f"{_some(obs.under_replicated)}"
        )
    found += obs.problems
    return [
        f"phase {t.current} -> {t.requested} refused, the cluster is not healthy: {p}; "
        f"nothing was changed: run {upgrade(t.requested)} again once it is"
        for p in found
    ]


def migrated_refusals(t: Transition, obs: ObservedState) -> list[str]:
    """migration -> kraft-brokers only once Kafka reports the metadata migrated (ZkMigrationState
    MIGRATION) and every broker runs in ZooKeeper mode with the migration flag, registered with
    the controllers (ops.html: "Once the KRaft controller completes the metadata migration ...")."""
    if (t.current, t.requested) != (MIGRATION, KRAFT_BROKERS):
        return []
    again = f"run {upgrade(MIGRATION)} again to finish phase {MIGRATION}"
    out = []
    if obs.zk_migration_state != ZK_MIGRATION:
        out.append(
            f"phase {MIGRATION} -> {KRAFT_BROKERS} refused: the controllers report "
            f"ZkMigrationState {zk_state_name(obs.zk_migration_state)}, not MIGRATION (1): the "
            f"metadata is not migrated yet; {again}"
        )
    for i in _expected(obs):
        b = _broker(obs, i)
        if b is None or b.mode != BROKER_ZK_MIGRATING or not b.registered:
            out.append(
                f"phase {MIGRATION} -> {KRAFT_BROKERS} refused: broker {i} is "
                f"{_describe(b)}, not a ZooKeeper-mode broker with the migration enabled and "
                f"registered with the controllers; {again}"
            )
    return out


def finalize_refusals(t: Transition, obs: ObservedState) -> list[str]:
    """kraft-brokers -> kraft only when every broker runs in KRaft mode and has re-registered
    with the controllers, unfenced (KAFKA-20960: finalizing before that loses the registration),
    the controllers count no ZooKeeper broker (MigratingZkBrokerCount 0) and report
    ZkMigrationState MIGRATION (still dual-writing: the step that finalizes is this one)."""
    if (t.current, t.requested) != (KRAFT_BROKERS, KRAFT):
        return []
    again = f"run {upgrade(KRAFT_BROKERS)} again (it rolls the brokers into KRaft), then retry"
    head = f"phase {KRAFT_BROKERS} -> {KRAFT} refused:"
    out = []
    for i in _expected(obs):
        b = _broker(obs, i)
        if b is None or b.mode != BROKER_KRAFT:
            out.append(f"{head} broker {i} is {_describe(b)}; {again}")
        elif not b.registered or b.fenced:
            state = "is fenced" if b.registered else "has not re-registered"
            out.append(
                f"{head} broker {i} {state} with the KRaft controllers (KAFKA-20960: finalize "
                f"only after every broker re-registered); {again}"
            )
    if obs.migrating_zk_brokers != 0:
        n = "unreadable" if obs.migrating_zk_brokers is None else obs.migrating_zk_brokers
        out.append(f"{head} the controllers' MigratingZkBrokerCount is {n}, not 0; {again}")
    if obs.zk_migration_state != ZK_MIGRATION:
        out.append(
            f"{head} the controllers report ZkMigrationState "
            f"{zk_state_name(obs.zk_migration_state)}, not MIGRATION (1); {again}"
        )
    return out


def kafka4_refusals(t: Transition, obs: ObservedState) -> list[str]:
    """A Kafka 4 image while the mode is not kraft: Kafka 4 has no ZooKeeper mode and no
    migration, so every phase up to and including the finalize runs on Kafka 3.9."""
    if obs.kafka_version is None or kafka_major(obs.kafka_version) < 4:
        return []
    if t.requested == KRAFT and t.current in (None, KRAFT):
        return []
    if t.requested == KRAFT:
        nxt = f"finalize on Kafka 3.9 first ({upgrade(KRAFT)} with the 3.9 image), then upgrade"
    else:
        nxt = f"keep the Kafka 3.9 image and run {upgrade(t.next_step)}"
    return [
        f"Kafka {obs.kafka_version} has no ZooKeeper mode and cannot run phase {t.current} -> "
        f"{t.requested} ({_where(t.current)}): {nxt}"
    ]


def version_refusals(t: Transition, obs: ObservedState) -> list[str]:
    """No inter.broker.protocol.version or metadata.version change while controllers write to
    ZooKeeper (ops.html "Limitations": "we do not support changing the metadata version ...
    during a migration"); and the migration starts only from IBP 3.9 ("Preparing for
    migration": the brokers must run 3.9 with inter.broker.protocol.version 3.9)."""
    touches = t.current in DUAL or t.requested in DUAL
    if not touches:
        return []
    head = f"phase {t.current} -> {t.requested} refused:"
    stay = f"keep it as it is until {upgrade(KRAFT)} finished"
    out = []
    if (
        obs.ibp_requested is not None
        and obs.ibp_running is not None
        and not same_ibp(obs.ibp_requested, obs.ibp_running)
        and t.requested != KRAFT_BROKERS  # KRaft brokers drop the IBP: not a change of it
    ):
        out.append(
            f"{head} inter.broker.protocol.version would change from {obs.ibp_running} to "
            f"{obs.ibp_requested} during the migration; {stay}"
        )
    if (
        obs.metadata_version_requested
        and obs.metadata_version_requested != obs.metadata_version_running
    ):
        out.append(
            f"{head} metadata.version would change to {obs.metadata_version_requested} "
            f"during the migration (kafka.metadataVersion); {stay}"
        )
    if (t.current, t.requested) == (ZOOKEEPER, MIGRATION) and not _is_39(obs.ibp_running):
        out.append(
            f"{head} the brokers run inter.broker.protocol.version {obs.ibp_running or '?'}, "
            f"the migration needs 3.9: set it to 3.9 in phase {ZOOKEEPER} (roll), then run "
            f"{upgrade(MIGRATION)}"
        )
    return out


def finalized_refusals(t: Transition, obs: ObservedState) -> list[str]:
    """A rollback (or staying in a dual-write phase) once Kafka says the migration is
    finalized: the controllers write POST_MIGRATION as soon as one without the migration flag
    becomes active (ActivationRecordsGenerator, 3.9), e.g. after an interrupted finalize."""
    if obs.zk_migration_state != ZK_POST_MIGRATION or t.requested == KRAFT:
        return []
    return [
        f"phase {t.current} -> {t.requested} refused: the controllers report ZkMigrationState "
        f"POST_MIGRATION (3): the migration was finalized and cannot be reverted; run "
        f"{upgrade(KRAFT)}"
    ]


GUARDS = (
    kafka4_refusals,
    finalized_refusals,
    version_refusals,
    migrated_refusals,
    finalize_refusals,
    health_refusals,
)


def preflight(current: str | None, requested: str, obs: ObservedState) -> list[str]:
    """Every reason to refuse ``current -> requested`` now; empty when it may go. A refused
    transition is reported alone: the guards describe steps that are not being taken."""
    t = transition(current, requested)
    if not t.accepted:
        assert t.refusal is not None
        return [t.refusal]
    out: list[str] = []
    for guard in GUARDS:
        out += guard(t, obs)
    return out


def _expected(obs: ObservedState) -> range:
    return range(obs.expected_brokers)


def _broker(obs: ObservedState, node_id: int) -> BrokerState | None:
    return next((b for b in obs.brokers if b.node_id == node_id), None)


def _describe(b: BrokerState | None) -> str:
    if b is None or b.mode is None:
        return "not running"
    return {
        BROKER_ZK: "in ZooKeeper mode without the migration",
        BROKER_ZK_MIGRATING: "in ZooKeeper mode (migrating)",
        BROKER_KRAFT: "in KRaft mode" + ("" if b.registered else ", not registered"),
    }.get(b.mode, f"in an unknown mode {b.mode!r}")


def same_ibp(a: str, b: str) -> bool:
    """The same inter.broker.protocol.version: "3.9" names the latest 3.9-IVn (Kafka reports a
    default as "3.9-IV0" where a file may say "3.9"), so a value without its IV suffix matches
    any IV of its release."""
    if a == b:
        return True
    if "-" in a and "-" in b:
        return False
    return a.split("-", 1)[0] == b.split("-", 1)[0]


def _is_39(ibp: str | None) -> bool:
    return ibp is not None and (ibp == "3.9" or ibp.startswith("3.9-"))


def _some(names: tuple[str, ...], n: int = 5) -> str:
    names_sorted = sorted(names)
    more = f" and {len(names_sorted) - n} more" if len(names_sorted) > n else ""
    return ", ".join(names_sorted[:n]) + more
