"""kairn-roller in KRaft mode against a real Kafka 4 cluster (devtools/kraft.py: 3 controllers,
node ids 100-102, and 3 brokers), with the command's own code and a Platform where deleting a
pod stops its process and starts it again (agents.roller.local_kraft). What behaves the same in
both modes (nothing outdated, renewed certificates, min.insync.replicas, preflight on a broker
down) is in test_roller.py, parametrized over both, on this module's cluster.

The cluster is formatted at metadata.version 4.0 (feature level 25), so the roll can raise it.
The tests run in file order and each leaves every node up."""

from __future__ import annotations

import threading
import time

import pytest

from agents.roller import cli
from agents.roller.broker_unregister import BrokerUnregister
from agents.roller.kafka import Kafka
from agents.roller.local_kraft import LocalKRaftPlatform
from agents.roller.model import CONTROLLER, KAFKA
from agents.roller.quorum import quorum_problems
from agents.roller.zk import TlsFiles
from agents.scaling import unregister
from bench.roll_load import Load, lost
from devtools.kraft import KRaftCluster
from devtools.waiting import wait_until
from tests.conftest import new_run_dir

pytestmark = pytest.mark.kafka

TOPICS = ["roller.a", "roller.b"]
FORMATTED_AT = "4.0"  # metadata.version 25 (4.0-IV3)


def tls(c) -> TlsFiles:
    return TlsFiles(str(c.cluster_ca_file), str(c.admin.crt), str(c.admin.key), False)


def run(c, platform, *argv, pod_timeout: float = 180, capsys=None) -> tuple[int, str]:
    if capsys:
        capsys.readouterr()
    t = tls(c)
    args = [
        "--bootstrap", c.bootstrap(),
        "--tls-ca-file", t.ca,
        "--tls-cert-file", t.cert,
        "--tls-key-file", t.key,
        "--tls-check-hostname", "false",
        "--pod-timeout", str(pod_timeout),
        "--log-level", "warning",
    ]  # fmt: skip
    rc = cli.main([*args, *argv], platform=platform)
    return rc, capsys.readouterr().err if capsys else ""


def client(c) -> dict:
    return {"bootstrap_servers": c.bootstrap(), **c.admin.ssl_kwargs()}


def kafka(c) -> Kafka:
    return Kafka(c.bootstrap(), tls(c))


def read(c, what: str):
    k = kafka(c)
    try:
        return getattr(k, what)()
    finally:
        k.close()


def healthy(c) -> bool:
    admin = c.admin_client(request_timeout_ms=5000)
    try:
        brokers = admin.describe_cluster()["brokers"]
        if {b["broker_id"] for b in brokers if not b.get("is_fenced")} != set(range(c.brokers)):
            return False
        in_sync = all(
            set(p["isr_nodes"]) == set(p["replica_nodes"])
            for t in admin.describe_topics()
            for p in t["partitions"]
        )
    finally:
        admin.close()
    return in_sync and not quorum_problems(read(c, "quorum"), c.controllers)


def heal(c) -> None:
    """Every node running, every broker unfenced, every partition in sync, the quorum caught up."""
    for n in c.nodes:
        if not n.running():
            n.stop()
            n.start()
    wait_until(lambda: healthy(c), 240, "every node back, partitions in sync, quorum caught up")


def start_cluster() -> KRaftCluster:
    c = KRaftCluster(new_run_dir("kraft-roller"), release_version=FORMATTED_AT)
    started = time.monotonic()
    try:
        c.start()
        c.startup_seconds = time.monotonic() - started
        admin = c.admin_client()
        try:
            admin.create_topics(
                {
                    t: {
                        "num_partitions": 6,
                        "replication_factor": 3,
                        "configs": {"min.insync.replicas": 2},
                    }
                    for t in TOPICS
                }
            )
        finally:
            admin.close()
        heal(c)
    except BaseException:
        c.stop(grace=5)
        raise
    return c


# One KRaft cluster for this module and the KRaft cases of test_roller.py (parametrized over
# both modes). pytest keeps one fixture per module that defines or imports it, so the cluster
# lives here, shared, and stops after this module (which runs after test_roller.py), or at the
# end of the session when only test_roller.py ran.
_SHARED: dict[str, KRaftCluster] = {}


def _stop_shared() -> None:
    c = _SHARED.pop("cluster", None)
    if c is not None:
        c.stop(grace=5)


@pytest.fixture(scope="session")
def roller_kraft_cluster():
    if "cluster" not in _SHARED:
        _SHARED["cluster"] = start_cluster()
    try:
        yield _SHARED["cluster"]
    finally:
        _stop_shared()


@pytest.fixture(scope="module", autouse=True)
def _stop_after_this_module():
    yield
    _stop_shared()


@pytest.fixture
def cluster(roller_kraft_cluster):
    return roller_kraft_cluster


@pytest.fixture
def platform(cluster):
    p = LocalKRaftPlatform(cluster, grace=60)
    yield p
    heal(cluster)


def leader(c) -> int:
    return read(c, "quorum").leader


# ---- preflight and the metadata.version refusals ----------------------------------------------
def test_preflight_sees_kraft_mode_and_passes(cluster, platform, capsys):
    rc, err = run(cluster, platform, "--log-level", "debug", "preflight", capsys=capsys)
    assert rc == 0, err
    assert '"mode": "kraft"' in err
    assert read(cluster, "features").finalized == 25


def test_preflight_refuses_a_metadata_version_no_node_supports(cluster, platform, capsys):
    rc, err = run(cluster, platform, "--metadata-version", "4.5", "preflight", capsys=capsys)
    assert rc == 1
    lines = [x for x in err.splitlines() if x.startswith("kairn-roller: preflight:")]
    assert "metadata.version 34 (4.5-IV0) is not supported by brokers [0, 1, 2]" in lines[0]
    assert "they support up to 33 (4.4-IV2)" in lines[0]
    # the controller, asked with validate_only, refuses it too (it knows the controllers' ranges)
    assert any("Kafka refuses raising metadata.version from 25" in x for x in lines), lines


def test_preflight_refuses_a_downgrade_kafka_forbids(cluster, platform, capsys):
    rc, err = run(cluster, platform, "--metadata-version", "3.9", "preflight", capsys=capsys)
    assert rc == 1
    line = err.strip().splitlines()[-1]
    assert "Kafka refuses lowering metadata.version from 25 (4.0-IV3) to 21 (3.9-IV0)" in line
    assert read(cluster, "features").finalized == 25  # validate-only: nothing changed


# ---- the roll ---------------------------------------------------------------------------------
def test_full_roll_under_load_controllers_then_brokers_then_metadata_version(
    cluster, platform, capsys
):
    quorum_before = read(cluster, "quorum")
    platform.upgrade(CONTROLLER)
    platform.upgrade(KAFKA)
    with Load(client(cluster), TOPICS, rate=40, tag="kraft-full") as load:
        wait_until(lambda: load.acked_count() >= 40, 60, "the load to be acknowledged")
        rc, err = run(
            cluster, platform, "--log-level", "info", "--metadata-version", "4.4", "roll",
            capsys=capsys,
        )  # fmt: skip
        result = load.stop()
    assert rc == 0, err
    controllers = [n for n in platform.deleted if "-controller-" in n]
    brokers = [n for n in platform.deleted if "-kafka-" in n]
    assert platform.deleted == controllers + brokers  # controllers first
    assert len(controllers) == 3 and len(brokers) == 3
    assert controllers[-1] == f"kairn-controller-{quorum_before.leader - 100}"  # leader last
    assert all(down == [] for down in platform.down_at_delete.values())
    # one election: the leader's own restart (followers restarting never moved it)
    assert read(cluster, "quorum").epoch == quorum_before.epoch + 1
    assert result.errors == []
    assert sum(len(v) for v in result.acked.values()) > 100
    assert lost(client(cluster), result) == dict.fromkeys(TOPICS, 0)
    # raised after every node runs the new revision, and seen by the brokers
    assert read(cluster, "features").finalized == 33
    reasons = [r for _, r, _ in platform.events]
    assert reasons.count("Restarting") == 6 and reasons[-1] == "MetadataVersion"
    assert err.count('"step": "restart"') == 6 and err.count('"step": "back"') == 6


def test_preflight_refuses_lowering_the_raised_metadata_version(cluster, platform, capsys):
    rc, err = run(cluster, platform, "--metadata-version", FORMATTED_AT, "preflight", capsys=capsys)
    assert rc == 1
    assert "Kafka refuses lowering metadata.version from 33 (4.4-IV2) to 25 (4.0-IV3)" in err
    rc, err = run(cluster, platform, "--metadata-version", "4.4-IV2", "preflight", capsys=capsys)
    assert rc == 0, err  # already there: nothing to do


def test_a_controller_killed_mid_roll_stops_it_cleanly_then_it_completes(cluster, platform, capsys):
    """SIGKILL a controller the roll has not reached while the first follower restarts: the
    roll waits for the quorum to be whole, restarts no other controller, and stops at its
    timeout; once the killed one is back (as the kubelet would restart it) a new roll ends it."""
    lead = leader(cluster)
    first, second = sorted(n for n in (100, 101, 102) if n != lead)
    victim = cluster.controller_nodes[second - 100]
    platform.upgrade(CONTROLLER)

    def kill_when_the_roll_is_under_way():
        wait_until(lambda: f"kairn-controller-{first - 100}" in platform.deleted, 120, "restart")
        victim.kill()

    killer = threading.Thread(target=kill_when_the_roll_is_under_way, daemon=True)
    with Load(client(cluster), TOPICS, rate=40, tag="kraft-kill") as load:
        wait_until(lambda: load.acked_count() >= 40, 60, "the load to be acknowledged")
        killer.start()
        rc, err = run(cluster, platform, "roll", pod_timeout=25, capsys=capsys)
        killer.join()
        assert rc == 1
        last = err.strip().splitlines()[-1]
        assert f"roll stopped at kairn-controller-{first - 100}" in last, last
        # the killed voter: "is not caught up", or "has never caught up" when a new leader
        # was elected meanwhile (its timestamps start over)
        assert f"controller node {second} " in last and "caught up" in last, last
        assert platform.deleted == [f"kairn-controller-{first - 100}"]
        assert platform.events[-1][:2] == (CONTROLLER, "RollFailed")
        victim.start()  # the kubelet restarts the killed container
        rc, err = run(cluster, platform, "roll", capsys=capsys)
        result = load.stop()
    assert rc == 0, err
    assert platform.deleted == [f"kairn-controller-{n - 100}" for n in (first, second, lead)]
    assert all(down == [] for down in platform.down_at_delete.values())
    assert result.errors == []
    assert lost(client(cluster), result) == dict.fromkeys(TOPICS, 0)


def test_a_controller_down_fails_preflight_until_it_is_back(cluster, platform, capsys):
    follower = next(n for n in (100, 101, 102) if n != leader(cluster))
    node = cluster.controller_nodes[follower - 100]
    node.stop()
    wait_until(
        lambda: quorum_problems(read(cluster, "quorum"), 3), 30, "the quorum to miss a voter"
    )
    rc, err = run(cluster, platform, "preflight", capsys=capsys)
    assert rc == 1
    assert f"controller node {follower} is not caught up" in err
    assert f"controller pod kairn-controller-{follower - 100} is not Ready" in err
    node.start()
    rc, err = run(cluster, platform, "preflight", "--wait", "120", capsys=capsys)
    assert rc == 0, err


# ---- scale-in: the removed broker's registration ----------------------------------------------
def registered(c) -> dict[int, bool]:
    """Every registered broker with its fenced flag (DescribeCluster v2, fenced ones included)."""
    admin = c.admin_client(request_timeout_ms=5000)
    try:
        return {
            b["broker_id"]: bool(b.get("is_fenced")) for b in admin.describe_cluster()["brokers"]
        }
    finally:
        admin.close()


def test_scale_in_unregisters_the_removed_broker_after_the_roll(cluster, platform, capsys):
    """As after `kafka.replicas: 2`: the highest broker's pod goes for good; the roll hook's last
    step unregisters it from the controllers, never while it still runs, and a second run finds
    nothing to do. The broker then starts again (it registers anew) for the later tests."""
    removed = cluster.broker_nodes[2]
    platform.scale(KAFKA, 2)
    # still running (a pod that has not terminated): waited for, then left alone with a warning
    rc, err = run(cluster, platform, "--log-level", "info", "roll", pod_timeout=5, capsys=capsys)
    assert rc == 0, err
    assert registered(cluster) == {0: False, 1: False, 2: False}
    assert "the pod of broker 2 still exists" in err
    assert [r for _, r, _ in platform.events] == ["BrokerUnregisterSkipped"]

    removed.stop()  # the StatefulSet controller deletes the pod: controlled shutdown, fenced
    wait_until(lambda: registered(cluster).get(2) is True, 60, "broker 2 to be fenced")
    started = time.monotonic()
    rc, err = run(cluster, platform, "--log-level", "info", "roll", capsys=capsys)
    took = time.monotonic() - started
    assert rc == 0, err
    assert registered(cluster) == {0: False, 1: False}
    assert '"step": "unregister"' in err and '"broker": 2' in err and '"already": false' in err
    assert [r for _, r, _ in platform.events][-1] == "BrokerUnregistered"
    with capsys.disabled():
        print(f"\nthe roll with the unregister step: {took:.1f} s")

    # idempotent: a second run sends nothing; the id sent anyway counts as done
    rc, err = run(cluster, platform, "--log-level", "info", "roll", capsys=capsys)
    assert rc == 0, err
    assert '"step": "unregister"' not in err
    assert [r for _, r, _ in platform.events].count("BrokerUnregistered") == 1
    answer = BrokerUnregister(cluster.bootstrap(), tls(cluster))(2)
    assert answer.error_code == unregister.BROKER_ID_NOT_REGISTERED, answer
    assert unregister.done(answer)
    assert registered(cluster) == {0: False, 1: False}

    removed.start()  # a later scale-out: the same id registers again
    wait_until(lambda: registered(cluster) == {0: False, 1: False, 2: False}, 120, "broker 2 back")
