"""agents/migration/signals.py and observe.parse_metrics: the pure readings and decisions of the
migration hooks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.migration import signals as sg
from agents.migration.observe import parse_addresses, parse_metrics
from agents.migration.phases import (
    BROKER_KRAFT,
    BROKER_ZK,
    BROKER_ZK_MIGRATING,
    KRAFT,
    KRAFT_BROKERS,
    MIGRATION,
    PHASES,
    ZOOKEEPER,
)

Z, M, B, K = ZOOKEEPER, MIGRATION, KRAFT_BROKERS, KRAFT


# ---- which phase, which hook ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "controllers", "zookeeper", "phase"),
    [
        ("migration", True, True, M),
        ("kraft-brokers", True, True, B),
        ("kraft", True, True, K),  # a finalize whose roll has not removed ZooKeeper yet
        ("zookeeper", False, True, Z),
        (None, True, False, K),  # a release from before the label
        (None, False, True, Z),
        (None, True, True, Z),
        ("", False, False, Z),
    ],
)
def test_current_phase_from_the_label_or_what_is_deployed(label, controllers, zookeeper, phase):
    assert sg.current_phase(label, controllers, zookeeper) == phase


def test_current_phase_refuses_an_unknown_label():
    with pytest.raises(ValueError, match="not a metadata mode"):
        sg.current_phase("dual-write", True, True)


@pytest.mark.parametrize("current", PHASES)
@pytest.mark.parametrize("requested", PHASES)
def test_preflight_is_the_migrations_for_every_change_and_the_dual_phases(current, requested):
    mine = sg.preflight_is_migration(current, requested)
    assert mine == (current != requested or requested in (M, B))


@pytest.mark.parametrize(
    ("requested", "zk", "ctl", "kind"),
    [
        (M, True, True, "migration"),
        (B, True, True, "migration"),
        (K, True, True, "finalize"),
        (K, False, True, None),  # a KRaft install, or a finalize already done: today's roll
        (Z, True, False, "maybe-revert"),
        (Z, True, True, None),  # controllers still there: today's roll refuses the mix
    ],
)
def test_roll_kind(requested, zk, ctl, kind):
    assert sg.roll_kind(requested, zk, ctl) == kind


# ---- znodes ---------------------------------------------------------------------------------
KRAFT_CLAIM = b'{"version":2,"brokerid":101,"timestamp":"1","kraftControllerEpoch":7}'
BROKER_CLAIM = b'{"version":2,"brokerid":1,"timestamp":"1"}'


# as a Kafka 3.9 broker of the harness wrote it (ZooKeeper mode, no migration)
BROKER_39 = b'{"version":2,"brokerid":0,"timestamp":"1796288730381","kraftControllerEpoch":-1}'


def test_controller_znode():
    assert sg.parse_controller(BROKER_CLAIM).names_broker
    real = sg.parse_controller(BROKER_39)
    assert real.names_broker and not real.kraft and real.broker_id == 0
    assert not sg.needs_revert(None, real)
    k = sg.parse_controller(KRAFT_CLAIM)
    assert k.kraft and k.broker_id == 101 and not k.names_broker
    assert not sg.parse_controller(None).names_broker
    assert not sg.parse_controller(b"garbage").names_broker
    # an id of a controller without the epoch field still is no broker
    assert not sg.parse_controller(b'{"brokerid":100}').names_broker


def test_revert_pending_and_which_controller_claim_is_deleted():
    none = sg.parse_controller(None)
    assert sg.needs_revert(b"{}", none)
    assert sg.needs_revert(None, sg.parse_controller(KRAFT_CLAIM))
    assert not sg.needs_revert(None, sg.parse_controller(BROKER_CLAIM))
    assert not sg.needs_revert(None, none)
    assert sg.delete_controller_znode(sg.parse_controller(KRAFT_CLAIM))
    assert sg.delete_controller_znode(sg.parse_controller(b"garbage"))
    assert not sg.delete_controller_znode(sg.parse_controller(BROKER_CLAIM))
    assert not sg.delete_controller_znode(none)


def test_zk_controller_wait():
    assert sg.zk_controller_missing(sg.parse_controller(BROKER_CLAIM)) is None
    assert "does not exist" in sg.zk_controller_missing(sg.parse_controller(None))
    assert "not a broker's claim" in sg.zk_controller_missing(sg.parse_controller(KRAFT_CLAIM))


def test_cluster_id():
    assert sg.cluster_id(b'{"version":"1","id":"AbCdEfGhIjKlMnOpQrStUv"}') == (
        "AbCdEfGhIjKlMnOpQrStUv"
    )
    assert sg.cluster_id(None) is None
    assert sg.cluster_id(b"[1]") is None
    assert sg.cluster_id(b'{"id":""}') is None


def test_kraft_secret_created_kept_or_refused():
    assert sg.kraft_secret(None, False, "zk") == (sg.CREATE, "")
    assert sg.kraft_secret("zk", True, "zk")[0] == sg.KEEP
    action, why = sg.kraft_secret("other", True, "zk")
    assert action == sg.REFUSE and "other" in why and "zk" in why
    assert sg.kraft_secret(None, False, None)[0] == sg.REFUSE
    assert sg.kraft_secret(None, True, "zk")[0] == sg.REFUSE  # a Secret without cluster.id


# ---- metrics --------------------------------------------------------------------------------
EXPORTER = """\
# HELP kafka_controller_kafkacontroller_activecontrollercount Attribute exposed for management
# TYPE kafka_controller_kafkacontroller_activecontrollercount gauge
kafka_controller_kafkacontroller_activecontrollercount 1.0
# HELP kafka_server_raft_current_leader current-leader
# TYPE kafka_server_raft_current_leader gauge
kafka_server_raft_current_leader 101.0
# TYPE kafka_controller_kafkacontroller_zkmigrationstate gauge
kafka_controller_kafkacontroller_zkmigrationstate 1.0
# TYPE kafka_controller_kafkacontroller_migratingzkbrokercount gauge
kafka_controller_kafkacontroller_migratingzkbrokercount 3.0
# TYPE jvm_memory_bytes_used gauge
jvm_memory_bytes_used{area="heap",} 1.2345678E7
"""


def test_exporter_text_parsed_into_a_reading():
    samples = parse_metrics(EXPORTER)
    assert samples[sg.ZK_STATE] == 1.0 and samples["jvm_memory_bytes_used"] == 12345678.0
    r = sg.reading(1, samples)
    assert (r.leader, r.active, r.zk_state, r.migrating) == (101, True, 1, 3)
    assert sg.reading(0, {}) == sg.ControllerReading(0)
    assert sg.reading(0, {sg.LEADER: float("nan")}).leader is None
    assert parse_addresses(" a:9404, b:9404,,") == ["a:9404", "b:9404"]
    assert parse_addresses(None) == []


def ctl(i, leader=101, active=False, zk=1, migrating=3, error=None):
    if error:
        return sg.ControllerReading(i, error=error)
    return sg.ControllerReading(i, leader, active, zk, migrating)


def test_summarize_takes_the_active_controllers_gauges():
    q = sg.summarize([ctl(0, zk=2), ctl(1, active=True), ctl(2, zk=2)], 3)
    assert (q.leader, q.active, q.zk_state, q.migrating, q.problems) == (101, 101, 1, 3, ())
    assert sg.quorum_missing(q) is None


def test_summarize_problems():
    q = sg.summarize([ctl(0), ctl(1, error="URLError: refused"), ctl(2)], 3)
    assert q.active is None and "controller 101 metrics not readable" in q.problems[0]
    assert "0 controllers report themselves active" in sg.quorum_missing(q)
    q = sg.summarize([ctl(0, leader=-1, active=True)], 3)
    assert "no controller names a quorum leader" in q.problems
    assert "controller 101 has no metrics address" in q.problems
    two = sg.summarize([ctl(0, active=True), ctl(1, active=True), ctl(2)], 3)
    assert "2 controllers report themselves active, not 1" in two.problems


@given(
    st.lists(st.one_of(st.none(), st.integers(-1, 102)), min_size=1, max_size=5),
    st.integers(0, 4),
)
def test_a_leader_is_only_one_a_majority_names(leaders, active):
    readings = [ctl(i, leader=x, active=i == active) for i, x in enumerate(leaders)]
    q = sg.summarize(readings, len(leaders))
    if q.leader is not None:
        assert q.leader >= 0
        assert sum(x == q.leader for x in leaders) > len(leaders) // 2
    else:
        assert sg.quorum_missing(q) is not None


# ---- waits ----------------------------------------------------------------------------------
def q_(zk=1, migrating=3, active=101, problems=()):
    return sg.QuorumSignals(101, active, zk, migrating, problems)


def test_migration_waits():
    assert sg.migration_started_missing(q_(zk=2)) is None
    assert sg.migration_started_missing(q_(zk=1)) is None
    assert "NONE (0)" in sg.migration_started_missing(q_(zk=0))
    assert "unreadable" in sg.migration_started_missing(q_(zk=None))
    znode = json.dumps({"kraft_controller_id": 101, "kraft_controller_epoch": 3}).encode()
    assert sg.migrated_missing(q_(), 3, znode) is None
    assert "MigratingZkBrokerCount is 2, not 3" in sg.migrated_missing(q_(migrating=2), 3, znode)
    assert "PRE_MIGRATION (2)" in sg.migrated_missing(q_(zk=2), 3, znode)
    assert "kraft_controller_id None" in sg.migrated_missing(q_(), 3, None)
    assert "not the active controller 102" in sg.migrated_missing(q_(active=102), 3, znode)
    assert sg.migrated_missing(q_(problems=("x",)), 3, znode) == "x"


def test_kraft_brokers_and_finalize_waits():
    assert sg.kraft_brokers_missing(q_(migrating=0), 3, {0, 1, 2}, set()) is None
    assert "brokers [2] not registered" in sg.kraft_brokers_missing(q_(migrating=0), 3, {0, 1}, ())
    assert "brokers [1] fenced" in sg.kraft_brokers_missing(q_(migrating=0), 3, {0, 1, 2}, {1})
    assert "not 0" in sg.kraft_brokers_missing(q_(migrating=1), 3, {0, 1, 2}, ())
    assert "POST_MIGRATION (3)" in sg.kraft_brokers_missing(q_(zk=3, migrating=0), 3, {0, 1, 2}, ())
    assert sg.finalized_missing(q_(zk=3)) is None
    assert "MIGRATION (1), not POST_MIGRATION (3)" in sg.finalized_missing(q_(zk=1))
    # a removed broker still fenced after a scale-in is not one of the expected ones
    assert sg.brokers_registered_missing(2, {0, 1, 2}, {2}) is None


def test_pods_missing():
    assert sg.pods_missing("controller", [(0, True), (1, True)], 2) is None
    assert sg.pods_missing("controller", [(0, False)], 2) == (
        "controller pods [1] missing; controller pods [0] not Ready"
    )


# ---- brokers' modes, approximated -----------------------------------------------------------
@pytest.mark.parametrize(
    ("phase", "mode"),
    [(Z, BROKER_ZK), (M, BROKER_ZK_MIGRATING), (B, BROKER_KRAFT), (K, BROKER_KRAFT)],
)
def test_broker_mode_from_the_statefulsets_phase_and_revision(phase, mode):
    assert sg.broker_mode(phase, True, "r2", "r2") == mode
    assert sg.broker_mode(phase, True, "r1", "r2") == sg.OUTDATED
    assert sg.broker_mode(phase, False, "r2", "r2") is None


def test_broker_registered():
    assert sg.broker_registered(BROKER_KRAFT, 1, {0, 1}, None, 3)
    assert not sg.broker_registered(BROKER_KRAFT, 2, {0, 1}, None, 3)
    assert sg.broker_registered(BROKER_ZK_MIGRATING, 1, {0, 1, 2}, 3, 3)
    assert not sg.broker_registered(BROKER_ZK_MIGRATING, 1, {0, 1, 2}, 2, 3)
    assert not sg.broker_registered(BROKER_ZK, 1, {0, 1, 2}, 3, 3)
    assert not sg.broker_registered(None, 1, {0, 1, 2}, 3, 3)


def test_broker_count_fixed_through_a_phase_change():
    assert sg.replicas_refusal(Z, M, 3, None) is None
    assert sg.replicas_refusal(Z, M, 3, 3) is None
    why = sg.replicas_refusal(M, B, 3, 4)
    assert "kafka.replicas would change from 3 to 4" in why and "phase zookeeper or kraft" in why


def test_brokers_follow_the_elected_zookeeper_controller():
    claim = sg.parse_controller(b'{"version":2,"brokerid":1}')
    assert sg.brokers_follow_zk_controller_missing(claim, {0: {1}, 1: {1}, 2: {1}}, 3) is None
    assert "does not exist" in sg.brokers_follow_zk_controller_missing(
        sg.parse_controller(None), {}, 3
    )
    kraft = sg.parse_controller(b'{"version":2,"brokerid":101,"kraftControllerEpoch":3}')
    assert "not a broker's claim" in sg.brokers_follow_zk_controller_missing(kraft, {}, 3)
    assert sg.brokers_follow_zk_controller_missing(claim, {0: {1}, 1: {1}}, 3) == (
        "2 of 3 brokers answered Metadata"
    )
    # a broker following a KRaft controller names a random live broker: 1 among others
    assert sg.brokers_follow_zk_controller_missing(claim, {0: {1}, 1: {1}, 2: {0, 1}}, 3) == (
        "broker 1 holds /controller; brokers naming another controller: {2: [0, 1]}"
    )


def test_stale_leaders_are_the_unrolled_leaders_keeping_rolled_replicas_out():
    from agents.roller.model import Partition as P

    parts = [
        P("a", 0, 1, (0, 1, 2), (1, 2)),  # 0 rolled, kept out by 1 (not rolled)
        P("a", 1, 1, (0, 1, 2), (1, 2)),
        P("b", 0, 2, (0, 1, 2), (2, 1)),  # kept out by 2
        P("b", 1, 0, (0, 1, 2), (0,)),  # led by the rolled broker: not this stall
        P("c", 0, 1, (0, 1, 2), (0, 1, 2)),  # in sync
        P("d", 0, -1, (0, 1), ()),  # offline: not this stall
    ]
    assert sg.stale_leaders(parts, {0}) == [1, 2]
    assert sg.stale_leaders(parts, set()) == []
    assert sg.stale_leaders(parts, {0, 1, 2}) == []


def test_a_deleted_pod_is_back_on_the_revision_and_ready():
    from agents.roller.model import PodInfo

    old = PodInfo("k-0", 0, "u1", "r1", True, True)
    assert sg.pod_back_missing(old, None, "r2") == "pod not recreated yet"
    assert sg.pod_back_missing(old, old, "r2") == "old pod still there"
    assert "not r2" in sg.pod_back_missing(old, PodInfo("k-0", 0, "u2", "r1", True, True), "r2")
    assert sg.pod_back_missing(old, PodInfo("k-0", 0, "u2", "r2", False, True), "r2") == (
        "pod not Ready"
    )
    assert sg.pod_back_missing(old, PodInfo("k-0", 0, "u2", "r2", True, True), "r2") is None


def test_the_controller_epoch_is_raised_only_below_the_kraft_controllers():
    mig = b'{"version":0,"kraft_controller_id":101,"kraft_controller_epoch":7}'
    claim = b'{"version":2,"brokerid":101,"kraftControllerEpoch":9}'
    assert sg.controller_epoch_to_write(b"4", mig, None) == 7
    assert sg.controller_epoch_to_write(b"4", mig, claim) == 9
    assert sg.controller_epoch_to_write(b"7", mig, None) is None  # the next election takes 8
    assert sg.controller_epoch_to_write(b"12", mig, claim) is None
    assert sg.controller_epoch_to_write(None, None, None) is None  # no migration recorded
    broker = b'{"version":2,"brokerid":0,"kraftControllerEpoch":-1}'
    assert sg.controller_epoch_to_write(b"3", None, broker) is None
    assert sg.controller_epoch_to_write(b"garbage", mig, None) == 7
