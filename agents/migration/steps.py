"""What each node group's configuration is in each phase, and the ordered steps the hooks carry
out for each transition. Pure: the chart renders `node_config`, the roll hook walks `plan`.

Sources (apache/kafka, branch 3.9, commit c821449f), cited below by short name:
- ops.html: docs/ops.html, "ZooKeeper to KRaft Migration" (its subsections and the revert
  table "Reverting to ZooKeeper mode During the Migration"), and "KRaft Monitoring Metrics".
- KafkaConfig: core/src/main/scala/kafka/server/KafkaConfig.scala, validateValues().
- ZkMigrationState: metadata/src/main/java/org/apache/kafka/metadata/migration/
  ZkMigrationState.java.
- Activation: metadata/src/main/java/org/apache/kafka/controller/ActivationRecordsGenerator.java.
- Metrics: metadata/.../controller/metrics/ControllerMetadataMetrics(Publisher).java.
- ZkData: core/src/main/scala/kafka/zk/ZkData.scala (ControllerZNode, MigrationZNode).
- KafkaServer: core/src/main/scala/kafka/server/KafkaServer.scala (KAFKA-16463).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .phases import (
    DUAL,
    FORWARD,
    KRAFT,
    KRAFT_BROKERS,
    MIGRATION,
    ROLLBACK,
    ZOOKEEPER,
    Transition,
    parse_phase,
    transition,
)

BROKER, CONTROLLER = "broker", "controller"
ACL_AUTHORIZER = "kafka.security.authorizer.AclAuthorizer"
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
CONTROLLER_LISTENER = "CONTROLLER"


@dataclass(frozen=True)
class Cluster:
    """What the chart knows that the phase-dependent settings need.

    Exactly one of ``quorum_voters`` (static quorum, `controller.quorum.voters`,
    "100@host:9090,...") and ``quorum_bootstrap`` (dynamic quorum, KIP-853,
    `controller.quorum.bootstrap.servers`) is set: KafkaConfig accepts either for a migration
    (validateQuorumVotersAndQuorumBootstrapServerForMigration). ``protocol_map``: the brokers'
    listener.security.protocol.map without a CONTROLLER entry. ``zookeeper_client``: the
    brokers' other zookeeper.* client settings, dropped and restored with zookeeper.connect
    (ops.html revert table: "re-add those configurations as well")."""

    zookeeper_connect: str
    protocol_map: str
    quorum_voters: str | None = None
    quorum_bootstrap: str | None = None
    inter_broker_listener: str = "REPLICATION"
    inter_broker_protocol: str = "3.9"
    controller_protocol: str = "SSL"
    zookeeper_client: dict[str, str] = field(default_factory=dict)

    def quorum(self) -> dict[str, str | None]:
        if (self.quorum_voters is None) == (self.quorum_bootstrap is None):
            raise ValueError(
                "set exactly one of controller.quorum.voters and "
                "controller.quorum.bootstrap.servers"
            )
        return {
            "controller.quorum.voters": self.quorum_voters,
            "controller.quorum.bootstrap.servers": self.quorum_bootstrap,
        }

    def zookeeper(self, keep: bool) -> dict[str, str | None]:
        keys = {"zookeeper.connect": self.zookeeper_connect, **self.zookeeper_client}
        return {k: (v if keep else None) for k, v in keys.items()}


def controllers_deployed(phase: str) -> bool:
    return parse_phase(phase) != ZOOKEEPER


def node_config(phase: str, role: str, node_id: int, cluster: Cluster) -> dict[str, str | None]:
    """The Kafka properties of a ``role`` node (BROKER or CONTROLLER) with id ``node_id`` in
    ``phase`` that differ between phases. None: the key must be absent from the node's file.
    Everything else (listeners, TLS, SASL, super users) is the chart's as in either mode."""
    phase = parse_phase(phase)
    if role == BROKER:
        return _broker(phase, node_id, cluster)
    if role == CONTROLLER:
        if phase == ZOOKEEPER:
            raise ValueError(f"phase {ZOOKEEPER} has no controllers (controllers_deployed)")
        return _controller(phase, node_id, cluster)
    raise ValueError(f"role {role!r} is not one of {BROKER}, {CONTROLLER}")


def _broker(phase: str, node_id: int, c: Cluster) -> dict[str, str | None]:
    with_controller = f"{CONTROLLER_LISTENER}:{c.controller_protocol},{c.protocol_map}"
    if phase == ZOOKEEPER:
        # KafkaConfig: a ZooKeeper broker without the migration must have no
        # controller.listener.names; the quorum keys are ignored there, so dropped too.
        return {
            "broker.id": str(node_id),
            "node.id": None,
            "process.roles": None,
            **c.zookeeper(keep=True),
            "zookeeper.metadata.migration.enable": None,
            **dict.fromkeys(c.quorum()),
            "controller.listener.names": None,
            "listener.security.protocol.map": c.protocol_map,
            "inter.broker.protocol.version": c.inter_broker_protocol,
            "authorizer.class.name": ACL_AUTHORIZER,
        }
    if phase == MIGRATION:
        # ops.html "Enter Migration Mode on the Brokers": keep broker.id (KafkaConfig: >= 0, no
        # generated ids), IBP 3.9, the migration flag, the quorum, controller.listener.names
        # and its entry in the protocol map. ACLs stay in ZooKeeper for a ZooKeeper broker
        # (the controllers keep them in step by dual write): AclAuthorizer until the next phase.
        return {
            "broker.id": str(node_id),
            "node.id": None,
            "process.roles": None,
            **c.zookeeper(keep=True),
            "zookeeper.metadata.migration.enable": "true",
            **c.quorum(),
            "controller.listener.names": CONTROLLER_LISTENER,
            "listener.security.protocol.map": with_controller,
            "inter.broker.protocol.version": c.inter_broker_protocol,
            "authorizer.class.name": ACL_AUTHORIZER,
        }
    # KRAFT_BROKERS and KRAFT: ops.html "Migrating brokers to KRaft": node.id = the old
    # broker.id, process.roles=broker, no ZooKeeper settings, no IBP (metadata.version rules),
    # no migration flag, no control.plane.listener.name, StandardAuthorizer instead of
    # AclAuthorizer. KafkaConfig: a KRaft broker's controller listener must be in the map.
    return {
        "broker.id": None,
        "node.id": str(node_id),
        "process.roles": "broker",
        **c.zookeeper(keep=False),
        "zookeeper.metadata.migration.enable": None,
        **c.quorum(),
        "controller.listener.names": CONTROLLER_LISTENER,
        "listener.security.protocol.map": with_controller,
        "inter.broker.protocol.version": None,
        "control.plane.listener.name": None,
        "authorizer.class.name": STANDARD_AUTHORIZER,
    }


def _controller(phase: str, node_id: int, c: Cluster) -> dict[str, str | None]:
    dual = phase in DUAL
    # ops.html "Provisioning the KRaft controller quorum": process.roles=controller, a node.id
    # no broker uses, the quorum, controller.listener.names, the migration flag,
    # zookeeper.connect, and the brokers' inter.broker.listener.name "to allow KRaft controller
    # send RPCs to brokers" (so its protocol is in the map too). "Finalizing the migration"
    # removes the flag and the ZooKeeper settings. The controllers run StandardAuthorizer
    # throughout: ACLs are migrated into the metadata log (ZkAclMigrationClient) and ops.html
    # names AclAuthorizer only for the brokers' change. Dropping inter.broker.listener.name
    # at finalize is our choice (a KRaft-installed controller has none); ops.html's sample
    # leaves it under "Other configs".
    protocols = f"{CONTROLLER_LISTENER}:{c.controller_protocol}"
    if dual:
        protocols += f",{c.inter_broker_listener}:{c.controller_protocol}"
    zk = {"zookeeper.connect": c.zookeeper_connect if dual else None}
    zk.update({k: (v if dual else None) for k, v in c.zookeeper_client.items()})
    return {
        "node.id": str(node_id),
        "process.roles": CONTROLLER,
        **c.quorum(),
        "controller.listener.names": CONTROLLER_LISTENER,
        "zookeeper.metadata.migration.enable": "true" if dual else None,
        **zk,
        "inter.broker.listener.name": c.inter_broker_listener if dual else None,
        "listener.security.protocol.map": protocols,
        "authorizer.class.name": STANDARD_AUTHORIZER,
    }


# ---- signals waited for ---------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    name: str
    what: str
    source: str
    verified: bool  # read in Kafka's 3.9 source; False: an assumption to test in the wiring


# ZkMigrationState and MigratingZkBrokerCount are gauges of kafka.controller:type=
# KafkaController. Every controller sets them from its own metadata image
# (ControllerMetadataMetricsPublisher, added for every controller in ControllerServer), so
# any caught-up controller answers; the log line "Completed migration of metadata from
# ZooKeeper to KRaft" is not used.
QUORUM_READY = Signal(
    "quorum-ready",
    "DescribeQuorum: a leader, every voter caught up (agents/roller/quorum.py)",
    "roller",
    True,
)
ZK_PRE_MIGRATION = Signal(
    "zk-state-pre-migration",
    "ZkMigrationState = 2 (PRE_MIGRATION): controllers waiting for the brokers",
    "ZkMigrationState; Activation writes it on an empty log with the flag on",
    True,
)
ZK_MIGRATED = Signal(
    "zk-state-migration",
    "ZkMigrationState = 1 (MIGRATION): ZooKeeper's metadata committed to the log, the "
    "controller writing to both",
    "ZkMigrationState; QuorumController.completeMigration writes it",
    True,
)
ZK_FINALIZED = Signal(
    "zk-state-post-migration",
    "ZkMigrationState = 3 (POST_MIGRATION): finalized",
    "Activation: written when a controller without the flag becomes active",
    True,
)
ALL_BROKERS_MIGRATING = Signal(
    "migrating-zk-brokers-all",
    "MigratingZkBrokerCount = the number of brokers",
    "Metrics: counts registrations with isMigratingZkBroker",
    True,
)
NO_ZK_BROKERS = Signal(
    "migrating-zk-brokers-none",
    "MigratingZkBrokerCount = 0",
    "Metrics",
    True,
)
BROKERS_REREGISTERED = Signal(
    "brokers-reregistered",
    "every broker registered unfenced with the controllers by its current process "
    "(DescribeCluster through --bootstrap-controller)",
    "KAFKA-20960 (not in the 3.9 source read here)",
    False,
)
MIGRATION_ZNODE = Signal(
    "migration-znode",
    "/migration holds kraft_controller_id of the active controller",
    "ZkData MigrationZNode",
    True,
)
ZK_CONTROLLER_BROKER = Signal(
    "zk-controller-broker",
    "/controller names a broker id without kraftControllerEpoch: a ZooKeeper controller again",
    "ZkData ControllerZNode",
    True,
)
HEALTHY = Signal(
    "healthy",
    "every broker registered, no offline or under-replicated partition (roller preflight)",
    "roller",
    True,
)


# ---- steps ----------------------------------------------------------------------------------

DEPLOY, ROLL, WAIT, ZK_READ, ZK_DELETE, DEPROVISION, REMOVE_ZOOKEEPER = (
    "deploy",
    "roll",
    "wait",
    "zk-read",
    "zk-delete",
    "deprovision",
    "remove-zookeeper",
)


@dataclass(frozen=True)
class Step:
    """One thing the hook does. ``target``: "controllers", "brokers" or a znode path.
    ``config``: the phase whose node_config the rolled or deployed nodes get."""

    action: str
    target: str
    why: str
    config: str | None = None
    waits_for: tuple[Signal, ...] = ()


@dataclass(frozen=True)
class Plan:
    transition: Transition
    steps: tuple[Step, ...] = ()


def plan(current: str | None, requested: str) -> Plan:
    """The steps of ``current -> requested``; none for an install, an unchanged phase or a
    refused transition (preflight reports the refusal)."""
    t = transition(current, requested)
    if t.kind not in (FORWARD, ROLLBACK):
        return Plan(t)
    return Plan(t, _STEPS[(t.current, t.requested)]())


def _roll_brokers(config: str, why: str, *signals: Signal) -> Step:
    # one at a time with the roller's availability rules (min.insync.replicas kept)
    return Step(ROLL, "brokers", why, config, (HEALTHY, *signals))


def _to_migration() -> tuple[Step, ...]:
    return (
        Step(
            ZK_READ,
            "/cluster/id",
            "controllers are formatted with the cluster's own id "
            "(ops.html: zookeeper-shell get /cluster/id)",
        ),
        Step(
            DEPLOY,
            "controllers",
            "controllers in migration mode, formatted with that id",
            MIGRATION,
            (QUORUM_READY, ZK_PRE_MIGRATION),
        ),
        _roll_brokers(
            MIGRATION,
            "brokers with the migration settings; the migration starts "
            "once the last one restarted (ops.html)",
        ),
        Step(
            WAIT,
            "controllers",
            "the metadata migrated and dual write on",
            waits_for=(ZK_MIGRATED, ALL_BROKERS_MIGRATING, MIGRATION_ZNODE),
        ),
    )


def _to_kraft_brokers() -> tuple[Step, ...]:
    return (
        _roll_brokers(
            KRAFT_BROKERS,
            'brokers into KRaft, same ids (ops.html "Migrating brokers to KRaft")',
            BROKERS_REREGISTERED,
        ),
        Step(
            WAIT,
            "controllers",
            "no broker left in ZooKeeper mode, still dual-writing",
            waits_for=(NO_ZK_BROKERS, ZK_MIGRATED),
        ),
    )


def _to_kraft() -> tuple[Step, ...]:
    return (
        # checked again right before the point of no return (preflight ran minutes earlier)
        Step(
            WAIT,
            "controllers",
            "every broker re-registered, none in ZooKeeper mode (KAFKA-20960)",
            waits_for=(BROKERS_REREGISTERED, NO_ZK_BROKERS, ZK_MIGRATED),
        ),
        # followers first, the leader last (the roller's order); the first controller
        # without the flag to become active writes POST_MIGRATION
        Step(
            ROLL,
            "controllers",
            "controllers without the migration flag and ZooKeeper "
            '(ops.html "Finalizing the migration")',
            KRAFT,
            (QUORUM_READY, ZK_FINALIZED),
        ),
        Step(
            REMOVE_ZOOKEEPER,
            "zookeeper",
            "ZooKeeper's StatefulSet removed, its volumes "
            "kept (ops.html: deprovision ZooKeeper once finalized)",
        ),
    )


def _zk_cleanup() -> tuple[Step, ...]:
    # ops.html's revert table, row "Enter Migration Mode on the brokers": deprovision the
    # controllers, rmr /controller (so a broker becomes the old-style controller), get then
    # rmr /migration (else a later attempt skips the copy from ZooKeeper: strimzi#11262).
    # The controllers' volumes go too: brokers drop their own metadata log when they next
    # start with the migration flag (KafkaServer, KAFKA-16463), controllers do not (the
    # maintainers' note on apache/kafka#17792). The brokers' roll follows at once: no
    # controller is elected until a broker restarts without the flag (apache/kafka#15287).
    return (
        Step(DEPROVISION, "controllers", "controllers and their volumes deleted"),
        Step(ZK_READ, "/migration", "kept in the Job log for debugging (ops.html)"),
        Step(ZK_DELETE, "/controller", "a broker becomes the ZooKeeper controller again"),
        Step(ZK_DELETE, "/migration", "the migration state cleared: a later attempt starts over"),
    )


def _migration_to_zookeeper() -> tuple[Step, ...]:
    return (
        *_zk_cleanup(),
        _roll_brokers(
            ZOOKEEPER,
            "brokers without the migration flag, the quorum and controller.listener.names",
            ZK_CONTROLLER_BROKER,
        ),
    )


def _back_to_migration() -> Step:
    # ops.html revert row "Migrating brokers to KRaft", first roll: broker.id back,
    # process.roles gone, zookeeper.connect and the other zookeeper.* settings restored,
    # the migration flag kept ("Do not set it to false until the second cluster roll")
    return _roll_brokers(
        MIGRATION,
        "brokers back in ZooKeeper mode, migration flag kept",
        ALL_BROKERS_MIGRATING,
        ZK_MIGRATED,
    )


_STEPS = {
    (ZOOKEEPER, MIGRATION): _to_migration,
    (MIGRATION, KRAFT_BROKERS): _to_kraft_brokers,
    (KRAFT_BROKERS, KRAFT): _to_kraft,
    (MIGRATION, ZOOKEEPER): _migration_to_zookeeper,
    (KRAFT_BROKERS, MIGRATION): lambda: (_back_to_migration(),),
}
