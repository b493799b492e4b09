"""kairn-roller's pure decisions, and the roll loop driven by in-memory stand-ins."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from agents.pki.model import RENEWED_AT, Secret
from agents.roller import cli, plan
from agents.roller.kube import pod_info, same_template_but_config
from agents.roller.model import KAFKA, ZOOKEEPER, KafkaView, Partition, PodInfo, Restart, ZkNode
from agents.roller.run import Roller, RollError, Settings
from agents.roller.zk import parse_mntr, parse_mode, parse_nodes


def pod(i, rev="r2", ready=True, running=True, kind="kafka"):
    return PodInfo(f"kairn-{kind}-{i}", i, f"uid-{i}", rev, ready, running)


def part(topic, n, replicas, isr, leader=None):
    return Partition(topic, n, replicas[0] if leader is None else leader, replicas, isr)


# ---- which pods -----------------------------------------------------------------------------
def test_restarts_outdated_and_renewed_only():
    pods = [pod(0, "r1"), pod(1, "r2"), pod(2, "r2")]
    got = plan.restarts(pods, "r2", cert_renewed={"kairn-kafka-2"})
    assert [(r.pod.ordinal, r.reason.split()[0]) for r in got] == [
        (0, "revision"),
        (2, "certificates"),
    ]


def test_restarts_none_is_a_valid_answer_and_all_takes_every_pod():
    pods = [pod(2), pod(0), pod(1)]
    assert plan.restarts(pods, "r2") == []
    assert [r.pod.ordinal for r in plan.restarts(pods, "r2", all_pods=True)] == [0, 1, 2]


def test_renewal_marks_from_the_pki_secret_feed_the_restart_set():
    from agents.pki.apply import pods_needing_restart

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    marks = {"kairn-kafka-0": "2026-01-02T00:00:00Z", "kairn-kafka-1": "2025-12-01T00:00:00Z"}
    secrets = {"kairn-kafka-brokers": Secret({}, {RENEWED_AT: json.dumps(marks)})}
    started = {"kairn-kafka-0": t0, "kairn-kafka-1": t0}
    assert pods_needing_restart(secrets, started) == ["kairn-kafka-0"]


# ---- order ----------------------------------------------------------------------------------
def test_zookeeper_followers_first_leader_last_broken_first():
    nodes = {0: ZkNode(0, "leader", 2), 1: ZkNode(1, "follower"), 2: ZkNode(2, None)}
    rs = [Restart(pod(i, kind="zookeeper", running=i != 2, ready=i != 2), "x") for i in range(3)]
    assert [r.pod.ordinal for r in plan.zookeeper_order(rs, nodes)] == [2, 1, 0]


def test_kafka_controller_last_unready_first():
    rs = [Restart(pod(i), "x") for i in range(3)]
    assert plan.kafka_next(rs, controller=0).pod.ordinal == 1
    assert plan.kafka_next(rs[:1], controller=0).pod.ordinal == 0
    rs[2] = Restart(pod(2, ready=False, running=False), "x")
    assert plan.kafka_next(rs, controller=1).pod.ordinal == 2
    assert plan.kafka_next([], controller=1) is None


def test_recovering_means_up_but_not_ready():
    assert plan.recovering(pod(0, ready=False, running=True))
    assert not plan.recovering(pod(0, ready=False, running=False))
    assert not plan.recovering(pod(0))


# ---- availability (Strimzi's KafkaAvailability) ---------------------------------------------
MIN = {"t": 2}


@pytest.mark.parametrize(
    ("replicas", "isr", "broker", "blocked"),
    [
        ((0, 1, 2), (0, 1, 2), 0, False),  # full ISR: may go
        ((0, 1, 2), (0, 1), 0, True),  # ISR == min ISR and broker in ISR: would fall below
        ((0, 1, 2), (0, 1), 2, False),  # ISR == min ISR, broker not in ISR: no change
        ((0, 1, 2), (0,), 1, True),  # ISR < min ISR, broker holds a replica
        ((0, 1, 2), (0,), 0, True),
        ((0, 1), (0,), 0, False),  # replicas <= min ISR: ignored
        ((0, 1), (0, 1), 1, False),
        ((1, 2, 3), (1,), 0, False),  # no replica on the broker
    ],
)
def test_availability(replicas, isr, broker, blocked):
    why = plan.availability_blockers(broker, [part("t", 0, replicas, isr)], MIN)
    assert bool(why) is blocked
    if blocked:
        assert "t-0" in why[0]


def test_availability_uses_default_min_isr_and_names_partitions():
    parts = [part("a", 3, (0, 1, 2), (0,)), part("b", 0, (0, 1, 2), (0, 1, 2))]
    assert plan.availability_blockers(0, parts, {}, default_min_isr=2) == [
        "partition a-3 has 1 in-sync replicas [0], below min.insync.replicas=2"
    ]
    assert plan.availability_blockers(1, parts, {}, default_min_isr=1) == []
    assert "would fall below" in plan.availability_blockers(0, parts, {}, default_min_isr=1)[0]


def test_out_of_sync():
    parts = [part("a", 0, (0, 1, 2), (1, 2)), part("a", 1, (1, 2), (1,))]
    assert plan.out_of_sync(0, parts) == ["a-0"]
    assert plan.out_of_sync(2, parts) == ["a-1"]


def test_backoff_doubles_to_a_cap():
    b = plan.backoff(0.25, 2, 2)
    assert [next(b) for _ in range(6)] == [0.25, 0.5, 1, 2, 2, 2]


# ---- health ---------------------------------------------------------------------------------
def test_zookeeper_problems():
    good = [ZkNode(0, "follower"), ZkNode(1, "leader", 2), ZkNode(2, "follower")]
    assert plan.zookeeper_problems(good, 3) == []
    missing = [ZkNode(0, "follower"), ZkNode(1, "leader", 1), ZkNode(2, None, error="refused")]
    got = plan.zookeeper_problems(missing, 3)
    assert "ZooKeeper node 2 is not serving (refused)" in got
    assert "ZooKeeper leader 1 has 1 of 2 followers synced" in got
    assert plan.zookeeper_problems([ZkNode(0, "follower"), ZkNode(1, "follower")], 2) == [
        "ZooKeeper has no leader"
    ]
    assert plan.zookeeper_problems([ZkNode(0, "standalone")], 1) == []


def test_zk_blockers():
    full = [ZkNode(0, "follower"), ZkNode(1, "leader", 2), ZkNode(2, "follower")]
    assert plan.zk_blockers(0, full, 3) == []
    lagging = [ZkNode(0, "follower"), ZkNode(1, "leader", 1), ZkNode(2, "follower")]
    assert plan.zk_blockers(0, lagging, 3)
    down = [ZkNode(0, None), ZkNode(1, "leader", 1), ZkNode(2, "follower")]
    assert plan.zk_blockers(0, down, 3) == []  # the broken one itself may restart
    assert plan.zk_blockers(2, down, 3)[0] == "ZooKeeper node 0 is not serving"


def test_pod_and_kafka_problems():
    assert plan.pod_problems("kafka", [pod(0), pod(2, ready=False)], 3) == [
        "kafka pod 1 is missing",
        "kafka pod kairn-kafka-2 is not Ready",
    ]
    view = KafkaView(
        -1,
        frozenset({0, 1}),
        (part("a", 0, (0, 1, 2), (0, 1)), part("a", 1, (0, 1, 2), (), leader=-1)),
    )
    assert plan.kafka_problems(view, 3) == [
        "brokers [2] are not registered",
        "no active Kafka controller",
        "1 offline partitions: a-1",
        "1 under-replicated partitions: a-0",
    ]


# ---- configuration --------------------------------------------------------------------------
def test_parse_properties():
    text = "# c\n! c\na=1\nb : two\nc=x=y\nlong=a,\\\n   b\nempty=\n"
    assert plan.parse_properties(text) == {
        "a": "1",
        "b": "two",
        "c": "x=y",
        "long": "a,b",
        "empty": "",
    }


def test_config_diff_dynamic_only():
    old = {"log.retention.ms": "100", "zookeeper.connect": "z", "broker.id": "0", "pw": None}
    new = {"log.retention.ms": "200", "zookeeper.connect": "z", "broker.id": "7", "pw": "s"}
    d = plan.config_diff(old, new)
    assert d.set == {"log.retention.ms": "200"} and d.dynamic_only and d.unknown == ("pw",)


def test_config_diff_static_change_added_and_removed_keys():
    old = {"zookeeper.connect": "a", "num.io.threads": "2", "gone": "1"}
    new = {"zookeeper.connect": "b", "num.io.threads": "4", "added.static": "1"}
    d = plan.config_diff(old, new)
    assert d.set == {"num.io.threads": "4"}
    assert d.static == ("added.static", "gone", "zookeeper.connect")
    assert not d.dynamic_only


def test_config_diff_skips_provider_references_and_reports_no_change():
    old = {"ssl.truststore.certificates": None, "a.b": "1"}
    new = {"ssl.truststore.certificates": "${dir:/x:ca.crt}", "a.b": "1"}
    d = plan.config_diff(old, new)
    assert d.empty and d.dynamic_only


# ---- adapters' parsing ----------------------------------------------------------------------
def test_zookeeper_parsing():
    assert parse_nodes("a:2181, b.c:2181") == [("a", 2181), ("b.c", 2181)]
    with pytest.raises(ValueError):
        parse_nodes("a")
    assert parse_mode("Zookeeper version: 3.8\nMode: follower\n") == "follower"
    assert parse_mode("This ZooKeeper instance is not currently serving requests") is None
    assert (
        parse_mntr("zk_synced_followers\t2\nzk_server_state\tleader\n")["zk_synced_followers"]
        == "2"
    )


def test_same_template_but_config():
    def rev(checksum, image="k:1"):
        return {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"checksum/config": checksum}},
                    "spec": {"containers": [{"image": image}]},
                    "$patch": "replace",
                }
            }
        }

    assert same_template_but_config(rev("a"), rev("b"))
    assert not same_template_but_config(rev("a"), rev("b", image="k:2"))
    assert not same_template_but_config({}, rev("b"))


def test_pod_info_from_a_kubernetes_pod():
    from kubernetes import client as k

    p = k.V1Pod(
        metadata=k.V1ObjectMeta(
            name="kairn-kafka-2",
            uid="u",
            labels={
                "controller-revision-hash": "kairn-kafka-abc",
                "apps.kubernetes.io/pod-index": "2",
            },
        ),
        status=k.V1PodStatus(
            phase="Running",
            conditions=[k.V1PodCondition(type="Ready", status="True")],
            container_statuses=[
                k.V1ContainerStatus(
                    name="kafka",
                    image="i",
                    image_id="",
                    ready=False,
                    restart_count=3,
                    state=k.V1ContainerState(
                        waiting=k.V1ContainerStateWaiting(reason="CrashLoopBackOff")
                    ),
                )
            ],
        ),
    )
    info = pod_info(p)
    assert (info.ordinal, info.revision, info.ready, info.running) == (
        2,
        "kairn-kafka-abc",
        True,
        False,
    )


# ---- the roll loop with in-memory stand-ins -------------------------------------------------
class FakeCluster:
    """Three brokers and three ZooKeeper nodes whose pods come back instantly in sync."""

    def __init__(self, controller=2, zk_leader=1, come_back=True):
        self.rev = {KAFKA: "k2", ZOOKEEPER: "z2"}
        self.pods_ = {
            c: [pod(i, rev="k1" if c == KAFKA else "z1", kind=c) for i in range(3)]
            for c in (KAFKA, ZOOKEEPER)
        }
        self.controller, self.zk_leader, self.come_back = controller, zk_leader, come_back
        self.deleted: list[str] = []
        self.events: list[str] = []
        self.isr = {0: (0, 1, 2)}
        self.altered: dict = {}
        self.live = {"log.retention.ms": "1"}
        self.desired = {"log.retention.ms": "1"}
        self.config_only_ = False

    # Platform
    def pods(self, c):
        return list(self.pods_[c])

    def update_revision(self, c):
        return self.rev[c]

    def replicas(self, c):
        return 3

    def delete_pod(self, c, p):
        self.deleted.append(p.name)
        new = PodInfo(p.name, p.ordinal, p.uid + "'", self.rev[c], self.come_back, self.come_back)
        self.pods_[c][p.ordinal] = new
        if c == KAFKA and p.ordinal == self.controller:
            self.controller = (self.controller + 1) % 3

    def event(self, c, reason, message, warning=False):
        self.events.append(reason)

    def cert_renewed(self, c, pods):
        return set()

    def config_only(self, c, r, u):
        return self.config_only_

    def desired_broker_config(self, b):
        return self.desired

    # Kafka
    def view(self, with_partitions=True):
        parts = tuple(part("t", n, (0, 1, 2), isr) for n, isr in self.isr.items())
        return KafkaView(self.controller, frozenset({0, 1, 2}), parts, {"t": 2})

    def broker_config(self, b):
        return {**self.live, **self.altered.get(b, {})}

    def alter_broker_config(self, b, values):
        self.altered[b] = values

    # ZooKeeper
    def status(self):
        return [
            ZkNode(
                i,
                "leader" if i == self.zk_leader else "follower",
                2 if i == self.zk_leader else None,
            )
            for i in range(3)
        ]


def roller(fc, **settings):
    logs = []
    r = Roller(
        fc,
        fc,
        fc,
        Settings(pod_timeout=5, poll=0.01, **settings),
        lambda *a, **k: logs.append((a, k)),
        sleep=lambda s: None,
    )
    return r, logs


def test_roll_order_zookeeper_leader_last_then_kafka_controller_last():
    fc = FakeCluster(controller=0, zk_leader=0)
    r, _ = roller(fc)
    r.roll()
    assert fc.deleted == [
        "kairn-zookeeper-1",
        "kairn-zookeeper-2",
        "kairn-zookeeper-0",
        "kairn-kafka-1",
        "kairn-kafka-2",
        "kairn-kafka-0",
    ]
    assert fc.events.count("Restarting") == 6


def test_roll_nothing_to_do():
    fc = FakeCluster()
    fc.rev = {KAFKA: "k1", ZOOKEEPER: "z1"}
    r, _ = roller(fc)
    assert r.roll()["restarted"] == []


def test_roll_blocked_stops_and_names_the_partition():
    fc = FakeCluster()
    fc.rev[ZOOKEEPER] = "z1"
    fc.isr = {0: (0, 1, 2), 4: (1, 0)}
    clock = [0.0]
    r = Roller(
        fc,
        fc,
        fc,
        Settings(pod_timeout=10, poll=0.01),
        lambda *a, **k: None,
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        clock=lambda: clock[0],
    )
    with pytest.raises(RollError) as e:
        r.roll()
    assert e.value.pod == "kairn-kafka-0" and "t-4" in e.value.reason
    assert fc.deleted == []


def test_roll_pod_not_coming_back_stops_the_roll():
    fc = FakeCluster(come_back=False)
    fc.rev[ZOOKEEPER] = "z1"
    clock = [0.0]
    r = Roller(
        fc,
        fc,
        fc,
        Settings(pod_timeout=3, poll=0.5),
        lambda *a, **k: None,
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        clock=lambda: clock[0],
    )
    with pytest.raises(RollError) as e:
        r.roll()
    assert fc.deleted == ["kairn-kafka-0"]
    assert e.value.pod == "kairn-kafka-0" and "not Ready" in e.value.reason


def test_roll_dynamic_config_change_restarts_nothing():
    fc = FakeCluster()
    fc.rev[ZOOKEEPER] = "z1"
    fc.config_only_ = True
    fc.desired = {"log.retention.ms": "2"}
    r, _ = roller(fc)
    out = r.roll()
    assert out["restarted"] == [] and sorted(out["reconfigured"]) == [
        f"kairn-kafka-{i}" for i in range(3)
    ]
    assert fc.altered == {i: {"log.retention.ms": "2"} for i in range(3)}


def test_roll_static_config_change_restarts():
    fc = FakeCluster()
    fc.rev[ZOOKEEPER] = "z1"
    fc.config_only_ = True
    fc.desired = {"log.retention.ms": "1", "zookeeper.connect": "x"}
    r, _ = roller(fc)
    assert len(r.roll()["restarted"]) == 3 and fc.altered == {}


def test_recovering_broker_is_waited_for_not_restarted_twice():
    fc = FakeCluster()
    fc.rev[ZOOKEEPER] = "z1"
    fc.pods_[KAFKA][0] = pod(0, rev="k1", ready=False, running=True)
    waits = [0]

    def sleep(_):
        waits[0] += 1
        if waits[0] == 3:  # recovery ends
            fc.pods_[KAFKA][0] = pod(0, rev="k1")

    r = Roller(fc, fc, fc, Settings(pod_timeout=100, poll=0.01), lambda *a, **k: None, sleep=sleep)
    r.roll()
    assert fc.deleted.count("kairn-kafka-0") == 1 and waits[0] >= 3


# ---- the command line -----------------------------------------------------------------------
def test_cli_help_and_missing_settings(capsys, monkeypatch):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert "preflight|roll" in capsys.readouterr().out
    for k in ("KAIRN_BOOTSTRAP", "KAIRN_ZOOKEEPER_NODES"):
        monkeypatch.delenv(k, raising=False)
    assert cli.main(["roll"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "kairn-roller: --bootstrap (KAIRN_BOOTSTRAP) is required"


def test_cli_env_fallbacks(monkeypatch):
    monkeypatch.setenv("KAIRN_ROLL_ALL", "true")
    monkeypatch.setenv("KAIRN_POD_TIMEOUT_SECONDS", "42")
    monkeypatch.setenv("KAIRN_TLS_CHECK_HOSTNAME", "false")
    args = cli.parser().parse_args(["roll"])
    assert args.all_pods is True and args.pod_timeout == 42 and args.tls_check_hostname is False
    monkeypatch.setenv("KAIRN_ROLL_ALL", "maybe")
    with pytest.raises(argparse_error()):
        cli.parser().parse_args(["roll"])


def argparse_error():
    import argparse

    return argparse.ArgumentTypeError


def test_cli_missing_tls_file(tmp_path, capsys):
    argv = [
        "--bootstrap",
        "b:9093",
        "--zookeeper-nodes",
        "z:2181",
        "--tls-ca-file",
        str(tmp_path / "nope"),
        "--tls-cert-file",
        "c",
        "--tls-key-file",
        "k",
        "preflight",
    ]
    assert cli.main(argv) == 2
    assert "does not exist" in capsys.readouterr().err.splitlines()[-1]


def test_a_topic_kafka_would_not_describe_blocks_restarts_and_preflight():
    from agents.roller.model import KafkaView, Partition
    from agents.roller.plan import availability_blockers, kafka_problems

    parts = [Partition("ok", 0, 0, (0, 1, 2), (0, 1, 2))]
    unreadable = {"hidden": "TopicAuthorizationFailedError"}
    assert availability_blockers(1, parts, {"ok": 2}) == []
    blocked = availability_blockers(1, parts, {"ok": 2}, 1, unreadable)
    assert blocked and "hidden" in blocked[0] and "cannot be checked" in blocked[0]
    view = KafkaView(0, frozenset({0, 1, 2}), tuple(parts), {"ok": 2}, unreadable)
    assert any("hidden" in p for p in kafka_problems(view, 3))
