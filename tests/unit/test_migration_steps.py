"""agents/migration/steps.py: each phase's settings per role, and the steps of every transition
in the order Kafka 3.9's ops.html (and its revert table) gives."""

from __future__ import annotations

import pytest

from agents.migration import steps as sp
from agents.migration.phases import KRAFT, KRAFT_BROKERS, MIGRATION, PHASES, ZOOKEEPER
from agents.migration.steps import (
    ACL_AUTHORIZER,
    BROKER,
    CONTROLLER,
    STANDARD_AUTHORIZER,
    Cluster,
    node_config,
    plan,
)

Z, M, B, K = ZOOKEEPER, MIGRATION, KRAFT_BROKERS, KRAFT
QUORUM = "c-0.ctl:9090,c-1.ctl:9090,c-2.ctl:9090"
CLUSTER = Cluster(
    zookeeper_connect="127.0.0.1:2181",
    protocol_map="REPLICATION:SSL,TLS:SSL,SCRAM:SASL_SSL",
    quorum_bootstrap=QUORUM,
    zookeeper_client={"zookeeper.session.timeout.ms": "18000"},
)
ZK_KEYS = {"zookeeper.connect", "zookeeper.session.timeout.ms"}


def test_broker_in_each_phase():
    assert node_config(Z, BROKER, 2, CLUSTER) == {
        "broker.id": "2",
        "node.id": None,
        "process.roles": None,
        "zookeeper.connect": "127.0.0.1:2181",
        "zookeeper.session.timeout.ms": "18000",
        "zookeeper.metadata.migration.enable": None,
        "controller.quorum.voters": None,
        "controller.quorum.bootstrap.servers": None,
        "controller.listener.names": None,
        "listener.security.protocol.map": "REPLICATION:SSL,TLS:SSL,SCRAM:SASL_SSL",
        "inter.broker.protocol.version": "3.9",
        "authorizer.class.name": ACL_AUTHORIZER,
    }
    assert node_config(M, BROKER, 2, CLUSTER) == {
        "broker.id": "2",
        "node.id": None,
        "process.roles": None,
        "zookeeper.connect": "127.0.0.1:2181",
        "zookeeper.session.timeout.ms": "18000",
        "zookeeper.metadata.migration.enable": "true",
        "controller.quorum.voters": None,
        "controller.quorum.bootstrap.servers": QUORUM,
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:SSL,REPLICATION:SSL,TLS:SSL,SCRAM:SASL_SSL",
        "inter.broker.protocol.version": "3.9",
        "authorizer.class.name": ACL_AUTHORIZER,
    }
    kraft = {
        "broker.id": None,
        "node.id": "2",
        "process.roles": "broker",
        "zookeeper.connect": None,
        "zookeeper.session.timeout.ms": None,
        "zookeeper.metadata.migration.enable": None,
        "controller.quorum.voters": None,
        "controller.quorum.bootstrap.servers": QUORUM,
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:SSL,REPLICATION:SSL,TLS:SSL,SCRAM:SASL_SSL",
        "inter.broker.protocol.version": None,
        "control.plane.listener.name": None,
        "authorizer.class.name": STANDARD_AUTHORIZER,
    }
    assert node_config(B, BROKER, 2, CLUSTER) == kraft
    assert node_config(K, BROKER, 2, CLUSTER) == kraft


def test_controller_in_each_phase():
    dual = {
        "node.id": "101",
        "process.roles": "controller",
        "controller.quorum.voters": None,
        "controller.quorum.bootstrap.servers": QUORUM,
        "controller.listener.names": "CONTROLLER",
        "zookeeper.metadata.migration.enable": "true",
        "zookeeper.connect": "127.0.0.1:2181",
        "zookeeper.session.timeout.ms": "18000",
        "inter.broker.listener.name": "REPLICATION",
        "listener.security.protocol.map": "CONTROLLER:SSL,REPLICATION:SSL",
        "authorizer.class.name": STANDARD_AUTHORIZER,
    }
    assert node_config(M, CONTROLLER, 101, CLUSTER) == dual
    assert node_config(B, CONTROLLER, 101, CLUSTER) == dual  # still writing to ZooKeeper
    final = node_config(K, CONTROLLER, 101, CLUSTER)
    assert final == {
        **dual,
        "zookeeper.metadata.migration.enable": None,
        "zookeeper.connect": None,
        "zookeeper.session.timeout.ms": None,
        "inter.broker.listener.name": None,
        "listener.security.protocol.map": "CONTROLLER:SSL",
    }


@pytest.mark.parametrize("phase", PHASES)
def test_kafka_config_rules_hold_in_every_phase(phase):
    """The KafkaConfig.validateValues rules (3.9) the settings must satisfy."""
    b = {k: v for k, v in node_config(phase, BROKER, 0, CLUSTER).items() if v is not None}
    if "process.roles" in b:  # KRaft broker
        assert b["node.id"] == "0" and "broker.id" not in b
        assert not ZK_KEYS & set(b) and "inter.broker.protocol.version" not in b
        assert "CONTROLLER:" in b["listener.security.protocol.map"]
    elif b.get("zookeeper.metadata.migration.enable") == "true":
        assert int(b["broker.id"]) >= 0 and b["controller.listener.names"]
        assert b.get("controller.quorum.voters") or b.get("controller.quorum.bootstrap.servers")
        assert b["inter.broker.protocol.version"] >= "3.4"
    else:  # ZooKeeper broker: controller.listener.names must be empty
        assert "controller.listener.names" not in b and b["zookeeper.connect"]
    if phase != Z:
        c = {k: v for k, v in node_config(phase, CONTROLLER, 100, CLUSTER).items() if v}
        if c.get("zookeeper.metadata.migration.enable") == "true":
            assert c["zookeeper.connect"]  # required by KafkaConfig in KRaft mode
        else:
            assert not ZK_KEYS & set(c)


def test_static_quorum_and_malformed_input():
    static = Cluster("zk:2181", "REPLICATION:SSL", quorum_voters="100@c-0:9090")
    cfg = node_config(M, BROKER, 0, static)
    assert cfg["controller.quorum.voters"] == "100@c-0:9090"
    assert cfg["controller.quorum.bootstrap.servers"] is None
    with pytest.raises(ValueError, match="exactly one"):
        node_config(M, BROKER, 0, Cluster("zk:2181", "X:SSL"))
    with pytest.raises(ValueError, match="exactly one"):
        node_config(M, BROKER, 0, Cluster("zk:2181", "X:SSL", "1@a:1", "a:1"))
    with pytest.raises(ValueError, match="has no controllers"):
        node_config(Z, CONTROLLER, 100, CLUSTER)
    with pytest.raises(ValueError, match="role 'zookeeper'"):
        node_config(M, "zookeeper", 0, CLUSTER)
    with pytest.raises(ValueError, match="use one of"):
        node_config("dual-write", BROKER, 0, CLUSTER)
    assert [sp.controllers_deployed(p) for p in PHASES] == [False, True, True, True]


def outline(current, requested):
    return [(s.action, s.target, s.config) for s in plan(current, requested).steps]


def waits(step):
    return {s.name for s in step.waits_for}


# (current, requested) -> (action, target, config) in order
PLANS = {
    (Z, M): [
        ("zk-read", "/cluster/id", None),
        ("deploy", "controllers", M),
        ("roll", "brokers", M),
        ("wait", "controllers", None),
    ],
    (M, B): [("roll", "brokers", B), ("wait", "controllers", None)],
    (B, K): [
        ("wait", "controllers", None),
        ("roll", "controllers", K),
        ("remove-zookeeper", "zookeeper", None),
    ],
    (M, Z): [
        ("deprovision", "controllers", None),
        ("zk-read", "/migration", None),
        ("zk-delete", "/controller", None),
        ("zk-delete", "/migration", None),
        ("roll", "brokers", Z),
    ],
    (B, M): [("roll", "brokers", M)],
}


@pytest.mark.parametrize(("current", "requested"), sorted(PLANS))
def test_steps_of_every_transition(current, requested):
    assert outline(current, requested) == PLANS[(current, requested)]


@pytest.mark.parametrize(
    ("current", "requested"),
    [(None, Z), (None, K), (Z, Z), (K, K), (Z, K), (K, Z), (None, M), (B, Z)],
)
def test_no_steps_for_installs_unchanged_or_refused(current, requested):
    assert plan(current, requested).steps == ()


def test_signals_waited_for():
    to_m = plan(Z, M).steps
    assert waits(to_m[1]) == {"quorum-ready", "zk-state-pre-migration"}
    assert waits(to_m[-1]) == {"zk-state-migration", "migrating-zk-brokers-all", "migration-znode"}
    to_b = plan(M, B).steps
    assert "brokers-reregistered" in waits(to_b[0])
    assert waits(to_b[-1]) == {"migrating-zk-brokers-none", "zk-state-migration"}
    fin = plan(B, K).steps
    # the re-registration check comes before the first controller loses the flag
    assert {"brokers-reregistered", "migrating-zk-brokers-none"} <= waits(fin[0])
    assert "zk-state-post-migration" in waits(fin[1])
    assert "zk-controller-broker" in waits(plan(M, Z).steps[-1])
    # the first roll of the kraft-brokers revert keeps dual write: the brokers come back as
    # migrating ZooKeeper brokers before the controllers go
    assert {"migrating-zk-brokers-all", "zk-state-migration"} <= waits(plan(B, M).steps[0])
    every = [s for t in PLANS for s in plan(*t).steps]
    assert all(
        s.verified for step in every for s in step.waits_for if s.name != "brokers-reregistered"
    )
    assert not sp.BROKERS_REREGISTERED.verified
    assert all("healthy" in waits(s) for s in every if s.action == "roll" and s.target == "brokers")


def test_rollback_restores_what_the_kraft_brokers_dropped():
    """The revert row "Migrating brokers to KRaft": broker.id back, process.roles gone,
    zookeeper.connect and the other zookeeper.* settings restored, the migration flag kept."""
    first = plan(B, M).steps[0]
    back = node_config(first.config, BROKER, 1, CLUSTER)
    assert back["broker.id"] == "1" and back["process.roles"] is None
    assert back["zookeeper.connect"] and back["zookeeper.session.timeout.ms"] == "18000"
    assert back["zookeeper.metadata.migration.enable"] == "true"
    assert back["authorizer.class.name"] == ACL_AUTHORIZER
    last = node_config(plan(M, Z).steps[-1].config, BROKER, 1, CLUSTER)
    assert last["zookeeper.metadata.migration.enable"] is None
    assert last["controller.listener.names"] is None
    assert last["controller.quorum.bootstrap.servers"] is None
