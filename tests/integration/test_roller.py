"""kairn-roller against the real cluster: the command's own code, with a Platform where
deleting a pod stops its processes (controlled shutdown) and starts them again with the
current configuration (agents.roller.local).

The cases whose behaviour is the same in both metadata modes run against both (parametrized:
the ZooKeeper cluster, and the KRaft cluster of test_roller_kraft.py, one cluster per mode);
the KRaft-only cases are in test_roller_kraft.py."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import pytest
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

from agents.roller import cli
from agents.roller.kafka import Kafka
from agents.roller.local import LocalPlatform
from agents.roller.local_kraft import LocalKRaftPlatform
from agents.roller.model import KAFKA, ZOOKEEPER
from agents.roller.zk import TlsFiles, ZooKeeper
from bench.roll_load import Load, lost
from devtools.waiting import wait_until
from tests.integration import test_roller_kraft as kraft
from tests.integration.test_roller_kraft import roller_kraft_cluster  # noqa: F401 (fixture)

pytestmark = pytest.mark.kafka

TOPICS = ["roller.a", "roller.b"]


def zk_nodes(c) -> str:
    return ",".join(f"{c.address('zookeeper', i)}:2181" for i in range(c.zookeepers))


def tls(c) -> TlsFiles:
    # ZooKeeper certificates name the pods by DNS only; the harness reaches them by address
    return TlsFiles(str(c.cluster_ca_file), str(c.admin.crt), str(c.admin.key), False)


def base_args(c, pod_timeout: float = 180) -> list[str]:
    t = tls(c)
    return [
        "--bootstrap", c.bootstrap(),
        "--zookeeper-nodes", zk_nodes(c),
        "--tls-ca-file", t.ca,
        "--tls-cert-file", t.cert,
        "--tls-key-file", t.key,
        "--tls-check-hostname", "false",
        "--pod-timeout", str(pod_timeout),
        "--log-level", "warning",
    ]  # fmt: skip


def run(c, platform, *argv, pod_timeout: float = 180, capsys=None) -> tuple[int, str]:
    if capsys:
        capsys.readouterr()
    rc = cli.main([*base_args(c, pod_timeout), *argv], platform=platform)
    err = capsys.readouterr().err if capsys else ""
    return rc, err


def client(c) -> dict:
    return {"bootstrap_servers": c.bootstrap(), **c.admin.ssl_kwargs()}


def all_in_sync(c) -> bool:
    admin = c.admin_client(request_timeout_ms=5000)
    try:
        registered = {b["broker_id"] for b in admin.describe_cluster()["brokers"]}
        if registered != set(range(c.brokers)):
            return False
        return all(
            set(p["isr_nodes"]) == set(p["replica_nodes"])
            for t in admin.describe_topics()
            for p in t["partitions"]
        )
    finally:
        admin.close()


def heal(c) -> None:
    """Every pod running with the default configuration, every partition in sync."""
    for p in c.zk_pods:
        if not p.running():
            p.stop()
            p.start()
    c.wait_zookeeper_quorum(120)
    for p in c.kafka_pods:
        if not p.running():
            p.stop()  # what is left of it (its sidecar)
            p.start()
    wait_until(lambda: all_in_sync(c), 240, "every broker registered and every partition in sync")


@pytest.fixture(scope="module")
def cluster(kafka_cluster):
    admin = kafka_cluster.admin_client()
    try:
        have = set(admin.list_topics())
        new = {
            t: {"num_partitions": 6, "replication_factor": 3, "configs": {"min.insync.replicas": 2}}
            for t in TOPICS
            if t not in have
        }
        if new:
            admin.create_topics(new, wait_for_metadata=True)
    finally:
        admin.close()
    heal(kafka_cluster)
    return kafka_cluster


@pytest.fixture
def platform(cluster):
    p = LocalPlatform(cluster, grace=60)
    yield p
    cluster.broker_overrides.clear()
    heal(cluster)


def zk(c) -> ZooKeeper:
    return ZooKeeper([(c.address("zookeeper", i), 2181) for i in range(c.zookeepers)], tls(c))


def controller(c) -> int:
    k = Kafka(c.bootstrap(), tls(c))
    try:
        return k.view(with_partitions=False).controller
    finally:
        k.close()


def zk_leader(c) -> int:
    modes = [c.zookeeper_mode(i) for i in range(c.zookeepers)]
    return modes.index("leader")


@dataclass
class Mode:
    """One metadata mode's cluster and Platform, for the cases that behave the same in both."""

    name: str
    cluster: object
    platform: object

    @property
    def kraft(self) -> bool:
        return self.name == "kraft"

    def run(self, *argv, pod_timeout: float = 180, capsys=None) -> tuple[int, str]:
        runner = kraft.run if self.kraft else run
        return runner(self.cluster, self.platform, *argv, pod_timeout=pod_timeout, capsys=capsys)

    def broker(self, i: int):
        return self.cluster.broker_nodes[i] if self.kraft else self.cluster.kafka_pods[i]

    def in_sync(self) -> bool:
        return kraft.healthy(self.cluster) if self.kraft else all_in_sync(self.cluster)

    def spare_broker(self) -> int:
        """A broker to stop: in ZooKeeper mode not the controller (its move is another test);
        KRaft brokers have no controller role."""
        return 1 if self.kraft else (controller(self.cluster) + 1) % 3


@pytest.fixture(params=["zookeeper", "kraft"])
def mode(request):
    if request.param == "zookeeper":
        c = request.getfixturevalue("cluster")
        m = Mode("zookeeper", c, LocalPlatform(c, grace=60))
        yield m
        c.broker_overrides.clear()
        heal(c)
    else:
        c = request.getfixturevalue("roller_kraft_cluster")
        yield Mode("kraft", c, LocalKRaftPlatform(c, grace=60))
        kraft.heal(c)


# ---- the roll -------------------------------------------------------------------------------
def test_nothing_outdated_restarts_nothing(mode, capsys):
    rc, err = mode.run("roll", capsys=capsys)
    assert rc == 0, err
    assert mode.platform.deleted == []


def test_zookeeper_roll_restarts_the_leader_last(cluster, platform, capsys):
    leader = zk_leader(cluster)
    platform.upgrade(ZOOKEEPER)
    rc, err = run(cluster, platform, "roll", capsys=capsys)
    assert rc == 0, err
    assert len(platform.deleted) == 3
    assert platform.deleted[-1] == f"kairn-zookeeper-{leader}"
    assert all(r == "Restarting" for _, r, _ in platform.events)
    modes = sorted(cluster.zookeeper_mode(i) for i in range(3))
    assert modes == ["follower", "follower", "leader"]


def test_full_roll_under_load_loses_nothing_and_elects_once(cluster, platform, capsys):
    zk_leader_before, controller_before = zk_leader(cluster), controller(cluster)
    epoch_before = zk(cluster).controller_epoch()
    platform.upgrade(ZOOKEEPER)
    platform.upgrade(KAFKA)
    with Load(client(cluster), TOPICS, rate=40, tag="full") as load:
        wait_until(lambda: load.acked_count() >= 40, 60, "the load to be acknowledged")
        rc, err = run(cluster, platform, "--log-level", "info", "roll", capsys=capsys)
        result = load.stop()
    assert rc == 0, err
    epoch_after = zk(cluster).controller_epoch()
    kafka_order = [n for n in platform.deleted if "-kafka-" in n]
    zk_order = [n for n in platform.deleted if "-zookeeper-" in n]
    assert platform.deleted == zk_order + kafka_order  # ZooKeeper first
    assert zk_order[-1] == f"kairn-zookeeper-{zk_leader_before}"
    assert kafka_order[-1] == f"kairn-kafka-{controller_before}"
    assert len(kafka_order) == 3 and len(zk_order) == 3
    assert epoch_after - epoch_before == 1, (epoch_before, epoch_after)
    assert result.errors == []
    assert sum(len(v) for v in result.acked.values()) > 100
    assert lost(client(cluster), result) == dict.fromkeys(TOPICS, 0)
    # one JSON log line per step, an Event per restart
    assert err.count('"step": "restart"') == 6 and err.count('"step": "back"') == 6
    assert [r for _, r, _ in platform.events].count("Restarting") == 6


def test_renewed_certificates_restart_only_that_pod(mode, capsys):
    mode.platform.renewed = {"kairn-kafka-1"}
    rc, err = mode.run("roll", capsys=capsys)
    assert rc == 0, err
    assert mode.platform.deleted == ["kairn-kafka-1"]


def test_refuses_below_min_isr_with_a_broker_down(mode, capsys):
    down = mode.spare_broker()
    mode.broker(down).stop()
    mode.platform.upgrade(KAFKA)
    mode.platform.mark_current(f"kairn-kafka-{down}")  # its replacement failed to come back
    wait_until(lambda: not mode.in_sync(), 60, "partitions to lose an in-sync replica")
    rc, err = mode.run("roll", pod_timeout=8, capsys=capsys)
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert "may not restart" in last and "partition roller." in last, last
    assert "min.insync.replicas=2" in last
    assert mode.platform.deleted == []


def test_broker_that_does_not_come_back_stops_the_roll(cluster, platform, capsys):
    first = min({0, 1, 2} - {controller(cluster)})
    # a static setting Kafka refuses to start with
    cluster.broker_overrides["controlled.shutdown.max.retries"] = "not-a-number"
    uids = {p.name: p.uid for p in platform.pods(KAFKA)}
    rc, err = run(cluster, platform, "roll", pod_timeout=25, capsys=capsys)
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert f"roll stopped at kairn-kafka-{first}" in last and "timed out" in last, last
    assert platform.deleted == [f"kairn-kafka-{first}"]
    after = {p.name: p.uid for p in platform.pods(KAFKA)}
    untouched = [n for n in uids if n != f"kairn-kafka-{first}"]
    assert all(after[n] == uids[n] for n in untouched)
    assert all(cluster.kafka_pods[int(n[-1])].running() for n in untouched)
    assert [r for _, r, _ in platform.events][-1] == "RollFailed"


def test_only_dynamic_config_changed_alters_configs_and_restarts_nothing(cluster, platform, capsys):
    cluster.broker_overrides["log.cleaner.threads"] = "2"
    k = Kafka(cluster.bootstrap(), tls(cluster))
    try:
        rc, err = run(cluster, platform, "roll", capsys=capsys)
        assert rc == 0, err
        assert platform.deleted == []
        assert [r for _, r, _ in platform.events] == ["Reconfigured"] * 3
        assert all(k.broker_config(b).get("log.cleaner.threads") == "2" for b in range(3))
    finally:
        k.close()
        admin = cluster.admin_client()
        try:
            admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.BROKER,
                        str(b),
                        {"log.cleaner.threads": (AlterConfigOp.DELETE, None)},
                    )
                    for b in range(3)
                ],
                incremental=True,
            )
        finally:
            admin.close()


def test_a_dynamic_config_kafka_refuses_stops_the_roll_before_any_restart(
    cluster, platform, capsys
):
    cluster.broker_overrides["num.io.threads"] = "0"
    rc, err = run(cluster, platform, "roll", capsys=capsys)
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert "refused ['num.io.threads']" in last and "at least 1" in last, last
    assert platform.deleted == []


def test_static_config_change_restarts_every_broker(cluster, platform, capsys):
    cluster.broker_overrides["controlled.shutdown.max.retries"] = "9"  # static (chart: 10)
    rc, err = run(cluster, platform, "roll", capsys=capsys)
    assert rc == 0, err
    assert sorted(platform.deleted) == [f"kairn-kafka-{i}" for i in range(3)]


# ---- preflight ------------------------------------------------------------------------------
def test_preflight_passes_on_a_healthy_cluster(mode, capsys):
    rc, err = mode.run("preflight", capsys=capsys)
    assert rc == 0, err


def test_preflight_fails_on_under_replicated_partitions(mode, capsys):
    down = mode.spare_broker()
    mode.broker(down).stop()
    wait_until(lambda: not mode.in_sync(), 60, "partitions to lose an in-sync replica")
    rc, err = mode.run("preflight", capsys=capsys)
    assert rc == 1
    lines = [line for line in err.splitlines() if line.startswith("kairn-roller: preflight:")]
    # the shared cluster holds other tests' topics too, and the message names only the first
    # ten, so check the count rather than a name
    counts = [
        int(m.group(1))
        for line in lines
        if (m := re.search(r"(\d+) under-replicated partitions: ", line))
    ]
    assert counts and counts[0] > 0, lines
    # a KRaft broker that shut down stays registered, fenced, until its registration expires
    gone = (f"brokers [{down}] are not registered", f"brokers [{down}] are fenced")
    assert any(g in line for line in lines for g in gone), lines
    assert any(f"kafka pod kairn-kafka-{down} is not Ready" in line for line in lines)


def test_preflight_fails_on_a_missing_zookeeper_follower_and_waits(cluster, platform, capsys):
    leader = zk_leader(cluster)
    follower = (leader + 1) % 3
    cluster.zk_pods[follower].stop()
    rc, err = run(cluster, platform, "preflight", capsys=capsys)
    assert rc == 1
    assert f"ZooKeeper node {follower} is not serving" in err
    assert "of 2 followers synced" in err
    # --wait: the follower comes back while preflight retries. The pod is started from this
    # thread: the harness ties its processes to the thread that starts them.
    out: dict = {}
    waiting = threading.Thread(
        target=lambda: out.update(
            rc=cli.main([*base_args(cluster), "preflight", "--wait", "120"], platform=platform)
        )
    )
    waiting.start()
    cluster.zk_pods[follower].start()
    waiting.join()
    assert out["rc"] == 0, capsys.readouterr().err
