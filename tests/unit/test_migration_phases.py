"""agents/migration/phases.py: every transition, every refusal, the guards, and properties over
random sequences of requested modes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.migration import phases as ph
from agents.migration.phases import (
    BROKER_KRAFT,
    BROKER_ZK,
    BROKER_ZK_MIGRATING,
    FORWARD,
    INSTALL,
    KRAFT,
    KRAFT_BROKERS,
    MIGRATION,
    NONE,
    PHASES,
    REFUSED,
    ROLLBACK,
    ZOOKEEPER,
    BrokerState,
    ObservedState,
    preflight,
    transition,
)

Z, M, B, K = ZOOKEEPER, MIGRATION, KRAFT_BROKERS, KRAFT

# (current, requested) -> (kind, next step)
TABLE = {
    (None, Z): (INSTALL, Z),
    (None, K): (INSTALL, K),
    (None, M): (REFUSED, Z),
    (None, B): (REFUSED, Z),
    (Z, Z): (NONE, Z),
    (Z, M): (FORWARD, M),
    (Z, B): (REFUSED, M),
    (Z, K): (REFUSED, M),
    (M, Z): (ROLLBACK, Z),
    (M, M): (NONE, M),
    (M, B): (FORWARD, B),
    (M, K): (REFUSED, B),
    (B, Z): (REFUSED, M),
    (B, M): (ROLLBACK, M),
    (B, B): (NONE, B),
    (B, K): (FORWARD, K),
    (K, Z): (REFUSED, K),
    (K, M): (REFUSED, K),
    (K, B): (REFUSED, K),
    (K, K): (NONE, K),
}


def test_table_covers_every_pair():
    assert set(TABLE) == {(c, r) for c in (None, *PHASES) for r in PHASES}


@pytest.mark.parametrize(("current", "requested"), sorted(TABLE, key=str))
def test_transition_table(current, requested):
    t = transition(current, requested)
    assert (t.kind, t.next_step) == TABLE[(current, requested)]
    assert t.accepted == (t.kind != REFUSED)
    assert (t.refusal is None) == t.accepted


REFUSALS = {
    (None, M): "kafka.metadata.mode=migration is a migration phase, not a way to install (a new "
    "install): install with kafka.metadata.mode=zookeeper (then helm upgrade --set "
    "kafka.metadata.mode=migration) or kafka.metadata.mode=kraft",
    (B, Z): "kafka.metadata.mode=zookeeper from phase kraft-brokers: roll back one phase at a "
    "time: helm upgrade --set kafka.metadata.mode=migration first, then zookeeper",
    (Z, K): "kafka.metadata.mode=kraft skips phase migration (the release is in phase "
    "zookeeper): run helm upgrade --set kafka.metadata.mode=migration first",
    (Z, B): "kafka.metadata.mode=kraft-brokers skips phase migration (the release is in phase "
    "zookeeper): run helm upgrade --set kafka.metadata.mode=migration first",
    (M, K): "kafka.metadata.mode=kraft skips phase kraft-brokers (the release is in phase "
    "migration): run helm upgrade --set kafka.metadata.mode=kraft-brokers first",
    (K, Z): "kafka.metadata.mode=zookeeper from phase kraft: the migration was finalized (or the "
    "release was installed in KRaft mode) and Kafka cannot go back to ZooKeeper after that; "
    "keep kafka.metadata.mode=kraft",
}


@pytest.mark.parametrize(("current", "requested"), sorted(REFUSALS, key=str))
def test_refusal_messages(current, requested):
    assert transition(current, requested).refusal == REFUSALS[(current, requested)]


@pytest.mark.parametrize("bad", ["Kraft", "kraft_brokers", "", None, 3, "zk"])
def test_malformed_mode_is_a_value_error_naming_the_accepted_values(bad):
    with pytest.raises(ValueError, match="zookeeper, migration, kraft-brokers, kraft"):
        transition(Z, bad)
    if bad is not None:  # None as the current phase means a new install
        with pytest.raises(ValueError, match="use one of"):
            transition(bad, Z)


# ---- guards -----------------------------------------------------------------------------------


def brokers(mode, n=3, registered=True, fenced=False):
    return tuple(BrokerState(i, mode, registered, fenced) for i in range(n))


def healthy(**kw):
    base = dict(
        expected_brokers=3,
        brokers=brokers(BROKER_ZK),
        kafka_version="3.9.1",
        ibp_running="3.9",
        ibp_requested="3.9",
    )
    base.update(kw)
    return ObservedState(**base)


def test_healthy_steps_pass():
    assert preflight(Z, M, healthy()) == []
    migrated = healthy(brokers=brokers(BROKER_ZK_MIGRATING), zk_migration_state=1)
    assert preflight(M, B, migrated) == []
    assert preflight(M, Z, migrated) == []
    kraft = healthy(
        brokers=brokers(BROKER_KRAFT),
        zk_migration_state=1,
        migrating_zk_brokers=0,
        ibp_running=None,
        ibp_requested=None,
    )
    assert preflight(B, K, kraft) == []
    assert preflight(B, Z, kraft) == [REFUSALS[(B, Z)]]
    assert preflight(B, M, kraft) == []
    assert preflight(None, K, ObservedState(0, kafka_version="4.4.0")) == []


def test_refused_transition_is_reported_alone():
    sick = healthy(offline=("t-0",), kafka_version="4.4.0")
    assert preflight(Z, K, sick) == [REFUSALS[(Z, K)]]


def test_finalize_refused_while_a_broker_runs_in_zookeeper_mode():
    obs = healthy(
        brokers=(*brokers(BROKER_KRAFT, 2), BrokerState(2, BROKER_ZK_MIGRATING, True)),
        zk_migration_state=1,
        migrating_zk_brokers=1,
        ibp_running=None,
    )
    assert preflight(B, K, obs) == [
        "phase kraft-brokers -> kraft refused: broker 2 is in ZooKeeper mode (migrating); run "
        "helm upgrade --set kafka.metadata.mode=kraft-brokers again (it rolls the brokers into "
        "KRaft), then retry",
        "phase kraft-brokers -> kraft refused: the controllers' MigratingZkBrokerCount is 1, "
        "not 0; run helm upgrade --set kafka.metadata.mode=kraft-brokers again (it rolls the "
        "brokers into KRaft), then retry",
    ]


def test_finalize_refused_until_every_broker_reregistered():
    obs = healthy(
        brokers=(
            BrokerState(0, BROKER_KRAFT, True),
            BrokerState(1, BROKER_KRAFT, False),
            BrokerState(2, BROKER_KRAFT, True, fenced=True),
        ),
        zk_migration_state=1,
        migrating_zk_brokers=0,
        ibp_running=None,
    )
    assert preflight(B, K, obs) == [
        "phase kraft-brokers -> kraft refused: broker 1 has not re-registered with the KRaft "
        "controllers (KAFKA-20960: finalize only after every broker re-registered); run helm "
        "upgrade --set kafka.metadata.mode=kraft-brokers again (it rolls the brokers into "
        "KRaft), then retry",
        "phase kraft-brokers -> kraft refused: broker 2 is fenced with the KRaft controllers "
        "(KAFKA-20960: finalize only after every broker re-registered); run helm upgrade --set "
        "kafka.metadata.mode=kraft-brokers again (it rolls the brokers into KRaft), then retry",
    ]


def test_finalize_refused_with_unreadable_controller_state():
    obs = healthy(brokers=brokers(BROKER_KRAFT), ibp_running=None)
    out = preflight(B, K, obs)
    assert any("MigratingZkBrokerCount is unreadable" in m for m in out)
    assert any("ZkMigrationState unreadable, not MIGRATION (1)" in m for m in out)


def test_kraft_brokers_refused_before_the_metadata_is_migrated():
    obs = healthy(
        brokers=(*brokers(BROKER_ZK_MIGRATING, 2), BrokerState(2, BROKER_ZK, False)),
        zk_migration_state=2,
    )
    assert preflight(M, B, obs) == [
        "phase migration -> kraft-brokers refused: the controllers report ZkMigrationState "
        "PRE_MIGRATION (2), not MIGRATION (1): the metadata is not migrated yet; run helm "
        "upgrade --set kafka.metadata.mode=migration again to finish phase migration",
        "phase migration -> kraft-brokers refused: broker 2 is in ZooKeeper mode without the "
        "migration, not a ZooKeeper-mode broker with the migration enabled and registered with "
        "the controllers; run helm upgrade --set kafka.metadata.mode=migration again to finish "
        "phase migration",
    ]


@pytest.mark.parametrize(
    ("current", "requested", "expected"),
    [
        (
            Z,
            Z,
            "Kafka 4.4.0 has no ZooKeeper mode and cannot run phase zookeeper -> zookeeper "
            "(the release is in phase zookeeper): keep the Kafka 3.9 image and run helm upgrade "
            "--set kafka.metadata.mode=zookeeper",
        ),
        (
            Z,
            M,
            "Kafka 4.4.0 has no ZooKeeper mode and cannot run phase zookeeper -> migration "
            "(the release is in phase zookeeper): keep the Kafka 3.9 image and run helm upgrade "
            "--set kafka.metadata.mode=migration",
        ),
        (
            B,
            K,
            "Kafka 4.4.0 has no ZooKeeper mode and cannot run phase kraft-brokers -> kraft "
            "(the release is in phase kraft-brokers): finalize on Kafka 3.9 first (helm upgrade "
            "--set kafka.metadata.mode=kraft with the 3.9 image), then upgrade",
        ),
        (
            None,
            Z,
            "Kafka 4.4.0 has no ZooKeeper mode and cannot run phase None -> zookeeper "
            "(a new install): keep the Kafka 3.9 image and run helm upgrade --set "
            "kafka.metadata.mode=zookeeper",
        ),
    ],
)
def test_kafka4_image_refused_unless_kraft(current, requested, expected):
    obs = ObservedState(0, kafka_version="4.4.0")
    assert ph.kafka4_refusals(transition(current, requested), obs) == [expected]


def test_kafka4_image_after_finalize_is_fine():
    assert ph.kafka4_refusals(transition(K, K), ObservedState(0, kafka_version="4.0")) == []


def test_malformed_kafka_version_is_a_value_error():
    with pytest.raises(ValueError, match=r"3\.9, 3\.9\.1 or 4\.4\.0"):
        ph.kafka4_refusals(transition(Z, M), ObservedState(0, kafka_version="latest"))


def test_version_changes_refused_during_the_migration():
    obs = healthy(
        brokers=brokers(BROKER_ZK_MIGRATING),
        zk_migration_state=1,
        ibp_requested="3.8",
        metadata_version_requested="3.9-IV0",
    )
    assert ph.version_refusals(transition(M, M), obs) == [
        "phase migration -> migration refused: inter.broker.protocol.version would change from "
        "3.9 to 3.8 during the migration; keep it as it is until helm upgrade --set "
        "kafka.metadata.mode=kraft finished",
        "phase migration -> migration refused: metadata.version would change to 3.9-IV0 during "
        "the migration (kafka.metadataVersion); keep it as it is until helm upgrade --set "
        "kafka.metadata.mode=kraft finished",
    ]
    # in plain ZooKeeper mode an IBP change is an ordinary upgrade
    assert ph.version_refusals(transition(Z, Z), obs) == []


def test_migration_needs_ibp_39():
    out = ph.version_refusals(transition(Z, M), healthy(ibp_running="3.8", ibp_requested="3.8"))
    assert out == [
        "phase zookeeper -> migration refused: the brokers run inter.broker.protocol.version "
        "3.8, the migration needs 3.9: set it to 3.9 in phase zookeeper (roll), then run helm "
        "upgrade --set kafka.metadata.mode=migration"
    ]
    assert (
        ph.version_refusals(
            transition(Z, M), healthy(ibp_running="3.9-IV0", ibp_requested="3.9-IV0")
        )
        == []
    )


def test_rollback_refused_once_kafka_reports_the_migration_finalized():
    obs = healthy(brokers=brokers(BROKER_KRAFT), zk_migration_state=3, migrating_zk_brokers=0)
    msg = (
        "phase kraft-brokers -> migration refused: the controllers report ZkMigrationState "
        "POST_MIGRATION (3): the migration was finalized and cannot be reverted; run helm "
        "upgrade --set kafka.metadata.mode=kraft"
    )
    assert preflight(B, M, obs) == [msg]
    assert ph.finalized_refusals(transition(B, K), obs) == []


def test_unhealthy_cluster_refused_for_steps_and_rollbacks():
    obs = healthy(
        brokers=brokers(BROKER_ZK, 2),
        offline=("a-0",),
        under_replicated=("b-1", "b-0"),
        problems=("ZooKeeper has no leader",),
    )
    tail = (
        "nothing was changed: run helm upgrade --set kafka.metadata.mode=migration again once it is"
    )
    assert preflight(Z, M, obs) == [
        f"phase zookeeper -> migration refused, the cluster is not healthy: {p}; {tail}"
        for p in (
            "broker 2 is not running",
            "1 offline partitions: a-0",
            "2 under-replicated partitions: b-0, b-1",
            "ZooKeeper has no leader",
        )
    ]
    assert ph.health_refusals(transition(M, Z), obs)  # rollbacks too
    assert ph.health_refusals(transition(Z, Z), obs) == []  # the roller's own preflight


# ---- properties -------------------------------------------------------------------------------

modes = st.lists(st.sampled_from(PHASES), max_size=30)


@settings(max_examples=400, deadline=None)
@given(start=st.sampled_from((None, *PHASES)), requests=modes)
def test_random_request_sequences(start, requests):
    phase = start
    history = [phase]
    for req in requests:
        t = transition(phase, req)
        if not t.accepted:
            # names the next allowed step, which is itself accepted from here
            assert f"kafka.metadata.mode={t.next_step}" in t.refusal
            assert phase is None or f"phase {phase}" in t.refusal
            assert f"kafka.metadata.mode={req}" in t.refusal
            assert transition(phase, t.next_step).accepted
            continue
        if phase == KRAFT:
            assert req == KRAFT  # nothing leaves kraft
        phase = req
        history.append(phase)
    # every entry into a phase comes from the one before it (or is an install / rollback)
    for before, after in itertools.pairwise(history):
        if after == MIGRATION:
            assert before in (ZOOKEEPER, MIGRATION, KRAFT_BROKERS)
        if after == KRAFT_BROKERS:
            assert before in (MIGRATION, KRAFT_BROKERS)
        if after == KRAFT and before is not None:
            assert before in (KRAFT_BROKERS, KRAFT)
        if before == KRAFT:
            assert after == KRAFT


@settings(max_examples=200, deadline=None)
@given(requests=modes)
def test_the_path_from_zookeeper_to_kraft_passes_every_phase_in_order(requests):
    phase, forward = ZOOKEEPER, [ZOOKEEPER]
    for req in requests:
        t = transition(phase, req)
        if t.accepted and t.kind != NONE:
            phase = req
            # a rollback resets the forward path to where it went back to
            forward = forward[: forward.index(req) + 1] if req in forward else [*forward, req]
    if phase == KRAFT:
        assert forward == [ZOOKEEPER, MIGRATION, KRAFT_BROKERS, KRAFT]
