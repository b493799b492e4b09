"""The chart installed in KRaft mode (kafka.metadata.mode: kraft) on a control plane whose pods
really run: process-backed nodes run the controllers and brokers on Kafka 4's jars
(devtools/podspec.py maps the apache/kafka:4.x image to devtools/kafka-bin4), each pod's
format-storage init container formats its volume with the cluster id that the PKI hook created,
and the agents reconcile ConfigMaps against the KRaft cluster. One install for the module, then
what a user's upgrades do (the tests run in file order):

- `helm upgrade` of a setting that needs restarts: the post-upgrade hook (kairn-roller) rolls the
  controllers (followers, the quorum leader last), then the brokers, while an acks=all
  idempotent producer runs, and then raises metadata.version (`kafka.metadataVersion`).
- a controller SIGKILLed in the middle of a controller roll: the roll waits until the node has
  restarted it and the quorum is whole again before it restarts another controller.
- a metadata.version downgrade Kafka forbids: preflight refuses it, nothing changes.

The install is formatted at metadata.version 4.0 (`kafka.metadata.formatVersion`, feature level
25) so that the upgrade has a step to take. Only one Kafka 4 build is installed here
(tools/kafka4/pom.xml: 4.4.0, devtools/kafka-bin4), so "4.x to a newer 4.x" is covered by the
metadata.version step on the same binaries: a cluster formatted at 4.0's level, rolled, then
raised to 4.4's; a real image change rolls the same way (a new revision of both StatefulSets).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer

from agents.roller import quorum
from agents.roller.kafka import Kafka
from agents.roller.model import QuorumView
from agents.roller.zk import TlsFiles
from devtools.chart import HARNESS_VALUES, deep_merge
from devtools.kube import ROOT
from devtools.kube.controlplane import ControlPlane
from devtools.waiting import wait_until
from tests.conftest import new_run_dir

from .test_install import RELEASE, Install, _consume_all, _Producer, _ready

FORMATTED_AT = "4.0"  # metadata.version 25 (4.0-IV3); the upgrade raises it to 4.4's
FORMATTED_LEVEL, NEWEST, NEWEST_LEVEL = 25, "4.4", 33  # 33: 4.4-IV2, the newest 4.4.0 offers
KRAFT_VALUES = {
    "kafka": {
        "metadata": {"mode": "kraft", "formatVersion": FORMATTED_AT},
        "controller": {"heapOpts": "-Xms192m -Xmx192m"},
    },
}


@pytest.fixture(scope="module")
def kraft() -> Install:
    # the kairn commands from this checkout (an image built before a change to kairn-certs
    # would run the old PKI hook); test_install.py covers the podman runtime
    runtime = os.environ.get("KAIRN_NODE_RUNTIME")
    os.environ["KAIRN_NODE_RUNTIME"] = "process"
    run_dir = new_run_dir("install-kraft")
    cp = ControlPlane(run_dir / "kube", nodes=0, process_nodes=3, die_with_parent=True)
    cp.start()
    inst = Install(cp, f"kraft-{uuid.uuid4().hex[:6]}", run_dir)
    inst.values = deep_merge(HARNESS_VALUES, KRAFT_VALUES)
    try:
        started = time.monotonic()
        out = inst.helm(
            "install", RELEASE, str(ROOT / "chart"), "--create-namespace", "--wait",
            "--timeout", "10m",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr + f"\npods: {cp.run_dir / 'node' / 'pods'}"
        inst.install_seconds = time.monotonic() - started
        yield inst
    finally:
        cp.stop()
        if runtime is None:
            os.environ.pop("KAIRN_NODE_RUNTIME", None)
        else:
            os.environ["KAIRN_NODE_RUNTIME"] = runtime


def test_kraft_install_runs_controllers_and_brokers_without_zookeeper(kraft):
    secrets = {s["metadata"]["name"] for s in kraft.get("secrets")["items"]}
    assert {f"{RELEASE}-kafka-controllers", f"{RELEASE}-kraft-cluster"} <= secrets
    assert f"{RELEASE}-zookeeper-nodes" not in secrets
    assert kraft.pods("zookeeper") == []
    for component, count in (("controller", 3), ("kafka", 3), ("agents", 1)):
        pods = kraft.pods(component)
        assert len(pods) == count and all(_ready(p) for p in pods), component
    admin = kraft.admin()
    try:
        assert {b["broker_id"] for b in admin.describe_cluster()["brokers"]} == {0, 1, 2}
    finally:
        admin.close()
    # every node formatted its own volume once, for the cluster id of the PKI hook's Secret
    cluster_id = kraft.secret(f"{RELEASE}-kraft-cluster")["cluster.id"].decode()
    for name, node_id in [(f"{RELEASE}-controller-{i}", 100 + i) for i in range(3)] + [
        (f"{RELEASE}-kafka-{i}", i) for i in range(3)
    ]:
        claim = kraft.cp.run_dir / "node" / "claims" / kraft.ns / f"data-{name}"
        text = (claim / "data" / "meta.properties").read_text()
        assert f"cluster.id={cluster_id}" in text and f"node.id={node_id}\n" in text, name


def test_a_topic_configmap_becomes_a_topic_on_kraft(kraft):
    kraft.declare("topic", "kraft.orders", {"partitions": 4, "replicas": 3})
    admin = kraft.admin()
    try:
        (topic,) = wait_until(
            lambda: [t for t in admin.describe_topics(["kraft.orders"]) if t["partitions"]],
            60,
            "kraft.orders in the brokers' metadata",
        )
    finally:
        admin.close()
    assert len(topic["partitions"]) == 4
    assert all(len(p["replica_nodes"]) == 3 for p in topic["partitions"])


def test_a_scram_user_configmap_produces_and_consumes_on_kraft(kraft):
    kraft.declare("topic", "kraft.billing", {"partitions": 1, "replicas": 3})
    kraft.declare(
        "user",
        "kraft-billing",
        {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [
                    {
                        "resource": {"type": "topic", "name": "kraft.billing"},
                        "operations": ["Write", "Read", "Describe"],
                    },
                    {
                        "resource": {"type": "group", "name": "kraft-billing"},
                        "operations": ["Read"],
                    },
                ],
            },
        },
    )
    login = {
        "bootstrap_servers": kraft.bootstrap_scram,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "kraft-billing",
        "sasl_plain_password": kraft.secret("kraft-billing")["password"].decode(),
        "ssl_cafile": kraft.ssl()["ssl_cafile"],
    }
    producer = KafkaProducer(acks="all", **login)
    try:
        assert producer.send("kraft.billing", b"paid").get(timeout=60).offset >= 0
    finally:
        producer.close()
    consumer = KafkaConsumer(
        "kraft.billing",
        group_id="kraft-billing",
        auto_offset_reset="earliest",
        consumer_timeout_ms=60_000,
        **login,
    )
    try:
        assert next(iter(consumer)).value == b"paid"
    finally:
        consumer.close()


def test_helm_test_passes_on_kraft(kraft):
    out = kraft.helm("test", RELEASE, "--timeout", "5m")
    assert out.returncode == 0, out.stdout + out.stderr


# ---- upgrades: the KRaft roll on a real StatefulSet controller and process-backed nodes ---------
def _kafka(inst: Install, timeout_ms: int = 10_000) -> Kafka:
    """kairn-roller's own Kafka adapter, as the agents' identity (what the hooks use)."""
    ssl = inst.ssl()
    tls = TlsFiles(ssl["ssl_cafile"], ssl["ssl_certfile"], ssl["ssl_keyfile"])
    return Kafka(inst.bootstrap, tls, request_timeout_ms=timeout_ms)


def _read(inst: Install, what: str):
    k = _kafka(inst)
    try:
        return wait_until(lambda: getattr(k, what)(), 60, what, retry_on=(Exception,))
    finally:
        k.close()


def _uids(inst: Install, component: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in inst.pods(component)}


def _pods_dir(inst: Install):
    return inst.cp.run_dir / "node" / "pods" / inst.ns


class _RollLog(threading.Thread):
    """Follows the roll Job's pods' logs (the roller's JSON lines) while an upgrade runs, and
    keeps each line with the moment it was seen (the roller's own ts has whole seconds only).
    Pods of earlier upgrades' Jobs are left out. ``on_line`` is called with each new line."""

    def __init__(self, inst: Install, on_line: Callable[[dict], None] = lambda rec: None):
        super().__init__(daemon=True)
        self.inst, self.on_line = inst, on_line
        self.old = set(_pods_dir(inst).glob(f"{RELEASE}-roller-*"))
        self.lines: list[tuple[float, dict]] = []
        self.done = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        read: dict = {}
        while True:
            last = self.done.is_set()  # one more pass after the upgrade returned
            for pod_dir in sorted(set(_pods_dir(self.inst).glob(f"{RELEASE}-roller-*")) - self.old):
                for log in sorted(pod_dir.glob("*.log")):
                    complete = log.read_text().split("\n")[:-1]
                    for text in complete[read.get(log, 0) :]:
                        if text.startswith("{"):
                            rec = json.loads(text)
                            self.lines.append((time.monotonic(), rec))
                            try:
                                self.on_line(rec)
                            except BaseException as e:  # reported by the test, not lost
                                self.failure = self.failure or e
                    read[log] = len(complete)
            if last:
                return
            self.done.wait(0.1)

    def finish(self) -> list[dict]:
        self.done.set()
        self.join(30)
        if self.failure:
            raise self.failure
        return [rec for _, rec in self.lines]

    def restarts(self, component: str | None = None) -> list[tuple[float, dict]]:
        return [
            (t, r)
            for t, r in self.lines
            if r.get("step") == "restart" and component in (None, r.get("component"))
        ]


class _QuorumWatch(threading.Thread):
    """DescribeQuorum several times a second while a roll runs: (when answered, view or None)."""

    def __init__(self, inst: Install):
        super().__init__(daemon=True)
        self.kafka = _kafka(inst, timeout_ms=3000)
        self.samples: list[tuple[float, QuorumView | None]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.wait(0.25):
                try:
                    view = self.kafka.quorum()
                except Exception:  # no leader, or the broker asked is restarting
                    view = None
                self.samples.append((time.monotonic(), view))
        finally:
            self.kafka.close()

    def finish(self) -> None:
        self.stop.set()
        self.join(30)


def _upgrade(inst: Install, values: dict, timeout: str = "20m"):
    return inst.helm(
        "upgrade", RELEASE, str(ROOT / "chart"), "--wait", "--timeout", timeout, values=values
    )  # fmt: skip


def test_an_upgrade_rolls_controllers_then_brokers_and_then_raises_metadata_version(kraft):
    """A static setting of the controllers and of the brokers, and kafka.metadataVersion, in
    one `helm upgrade`: the post-upgrade hook restarts every controller (followers, then the
    quorum leader), then every broker (ordinal order: KRaft brokers have no controller role to
    save for last), each only when the quorum or the partitions allow, and only then finalizes
    metadata.version 4.4, while an acks=all idempotent producer loses nothing."""
    kraft.declare(
        "topic",
        "kraft.roll",
        {"partitions": 3, "replicas": 3, "config": {"min.insync.replicas": 2}},
    )
    assert _read(kraft, "features").finalized == FORMATTED_LEVEL
    leader = _read(kraft, "quorum").leader
    before = {c: _uids(kraft, c) for c in ("controller", "kafka")}
    producer = _Producer(kraft, "kraft.roll")
    producer.start()
    wait_until(lambda: len(producer.acked) > 20, 60, "the producer's first acks")
    static = {"queued.max.requests": 400}  # static: a dynamic one needs no restart
    values = deep_merge(
        kraft.values,
        {"kafka": {"config": static, "controller": {"config": static}, "metadataVersion": NEWEST}},
    )
    roll_log = _RollLog(kraft)
    roll_log.start()
    started = time.monotonic()
    out = _upgrade(kraft, values)
    roll_seconds = time.monotonic() - started
    lines = roll_log.finish()
    producer.stop.set()
    producer.join(600)
    assert out.returncode == 0, out.stderr + f"\npods: {_pods_dir(kraft)}"
    kraft.values = values

    for component, pods in before.items():
        after = _uids(kraft, component)
        assert all(after[name] != uid for name, uid in pods.items()), f"a {component} kept its pod"
    restarts = [r for _, r in roll_log.restarts()]
    assert [(r["component"], r["pod"]) for r in restarts][3:] == [
        ("kafka", f"{RELEASE}-kafka-{i}") for i in range(3)
    ], restarts
    controllers = restarts[:3]
    assert all(r["component"] == "controller" for r in controllers), restarts
    # the followers first, the quorum leader of before the upgrade last (and the roller knew it)
    assert controllers[-1]["pod"] == f"{RELEASE}-controller-{leader - 100}", controllers
    assert [r["leader"] for r in controllers] == [False, False, True], controllers
    backs = [r["pod"] for r in lines if r.get("step") == "back"]
    assert backs == [r["pod"] for r in restarts]  # each back in sync before the next went
    # metadata.version: raised after the last broker was back, and served by the brokers
    steps = [r.get("step") for r in lines]
    (mv,) = [r for r in lines if r.get("step") == "metadata-version"]
    assert steps.index("metadata-version") > max(i for i, s in enumerate(steps) if s == "back")
    assert (mv["before"], mv["after"]) == ("25 (4.0-IV3)", "33 (4.4-IV2)"), mv
    assert _read(kraft, "features").finalized == NEWEST_LEVEL

    consumed = _consume_all(kraft, "kraft.roll", 3)
    assert producer.errors == []
    lost = producer.acked - consumed
    done = next(r for r in lines if r.get("step") == "done")
    print(
        f"\nKRaft roll (3 controllers, 3 brokers, metadata.version 25 -> 33): helm upgrade "
        f"{roll_seconds:.1f} s, the roller {done['seconds']} s; {len(producer.acked)} acked, "
        f"{len(lost)} lost, {len(producer.errors)} send errors"
    )
    assert not lost, f"{len(lost)} acknowledged messages lost"


def _kill_controller(inst: Install, name: str) -> None:
    uid = inst.get("pod", name)["metadata"]["uid"]
    pid = (_pods_dir(inst) / f"{name}.{uid[:8]}" / "controller.pid").read_text()
    os.killpg(int(pid), signal.SIGKILL)


def test_a_controller_killed_mid_roll_is_waited_for_before_the_next_controller(kraft):
    """While the roll restarts the first follower, SIGKILL the other follower's process: the
    quorum is short (the leader alone, or with one of them) until the node restarts the killed
    process and it catches up. The node holds the killed one down until the first follower's
    new pod is Ready and has been a caught-up voter for 3 s (three of the roller's polls), so
    the roller sees a restarted follower that is back while the quorum is still short. It must
    restart no other controller before the quorum is whole: it waits (or, at its pod timeout,
    stops cleanly and a rerun of the upgrade completes)."""
    kraft.declare(
        "topic",
        "kraft.kill",
        {"partitions": 3, "replicas": 3, "config": {"min.insync.replicas": 2}},
    )
    leader = _read(kraft, "quorum").leader
    first, victim = sorted(n for n in (100, 101, 102) if n != leader)
    first_pod, victim_pod = (f"{RELEASE}-controller-{n - 100}" for n in (first, victim))
    before = {c: _uids(kraft, c) for c in ("controller", "kafka")}
    killed_at: list[float] = []
    released: list[float] = []
    hold = kraft.cp.run_dir / "node" / "hold" / kraft.ns / victim_pod
    hold.parent.mkdir(parents=True, exist_ok=True)
    first_ready: list[float] = []

    def first_caught_up_for(seconds: float) -> bool:
        # DescribeQuorum's view of the first follower since its new pod was Ready
        recent = [v for t, v in watch.samples if t > first_ready[0]]
        if not recent or time.monotonic() - first_ready[0] < seconds:
            return False
        return all(v and (me := v.voter(first)) and not quorum.behind(me, v) for v in recent[-12:])

    def release_when_the_first_is_back() -> None:
        try:
            wait_until(
                lambda: (
                    (p := kraft.get("pod", first_pod))["metadata"]["uid"]
                    != before["controller"][first_pod]
                    and _ready(p)
                ),
                180,
                f"{first_pod} recreated and Ready",
            )
            first_ready.append(time.monotonic())
            wait_until(lambda: first_caught_up_for(3.0), 120, f"{first_pod} a caught-up voter")
        finally:
            hold.unlink(missing_ok=True)
            released.append(time.monotonic())

    def kill_when_the_first_controller_restarts(rec: dict) -> None:
        if rec.get("step") == "restart" and rec.get("pod") == first_pod and not killed_at:
            hold.touch()
            _kill_controller(kraft, victim_pod)
            killed_at.append(time.monotonic())
            threading.Thread(target=release_when_the_first_is_back, daemon=True).start()

    producer = _Producer(kraft, "kraft.kill")
    producer.start()
    wait_until(lambda: len(producer.acked) > 20, 60, "the producer's first acks")
    # only the controllers' configuration: the brokers stay as they are
    values = deep_merge(kraft.values, {"kafka": {"controller": {"config": {
        "queued.max.requests": 500}}}})  # fmt: skip
    watch = _QuorumWatch(kraft)
    watch.start()
    roll_log = _RollLog(kraft, kill_when_the_first_controller_restarts)
    roll_log.start()
    started = time.monotonic()
    out = _upgrade(kraft, values)
    lines = roll_log.finish()
    reruns = []
    if out.returncode != 0:  # stopped cleanly at its timeout: the same upgrade again finishes it
        assert any(r.get("msg") == "roll stopped" for r in lines), out.stderr
        rerun_log = _RollLog(kraft)
        rerun_log.start()
        out = _upgrade(kraft, values)
        reruns = rerun_log.finish()
        roll_log.lines += rerun_log.lines
    roll_seconds = time.monotonic() - started
    watch.finish()
    producer.stop.set()
    producer.join(600)
    assert out.returncode == 0, out.stderr + f"\npods: {_pods_dir(kraft)}"
    kraft.values = values
    hold.unlink(missing_ok=True)
    assert killed_at, "the first controller's restart was never logged"
    (kill,) = killed_at
    assert first_ready and released, "the first follower never came back while the other was held"
    # while the first follower was back and the killed one held down, the roller restarted
    # nothing and did not count the first follower as back either
    seen = {r["pod"]: t for t, r in roll_log.lines if r.get("step") == "back"}
    assert seen[first_pod] > released[0], (seen[first_pod] - kill, released[0] - kill)

    # the quorum as DescribeQuorum saw it: short after the kill, whole again later
    def whole(view: QuorumView | None) -> bool:
        return view is not None and not quorum.quorum_problems(view, 3)

    after_kill = [(t, v) for t, v in watch.samples if t > kill]
    short = [t for t, v in after_kill if not whole(v)]
    assert short, "the quorum never looked short after the kill"
    whole_again = next(t for t, v in after_kill if t > short[0] and whole(v))
    # no controller restarted from the kill until the quorum was whole again (1 s for the
    # roller's own read being fresher than this watch's)
    controller_restarts = roll_log.restarts("controller")
    during = [r["pod"] for t, r in controller_restarts if kill < t < whole_again - 1.0]
    assert during == [], (during, whole_again - kill)
    next_restart = next(t for t, r in controller_restarts if t > kill)
    assert next_restart >= whole_again - 1.0 and next_restart > released[0]
    # the roll then finished: every controller restarted once, the quorum leader last
    pods = [r["pod"] for _, r in controller_restarts]
    assert sorted(pods) == [f"{RELEASE}-controller-{i}" for i in range(3)], pods
    # the leader last: the kill may have moved it (a leader without a majority resigns), and it
    # may have moved to the controller restarted first, then no restart is the leader's
    assert pods[0] == first_pod, pods
    flags = [r["leader"] for _, r in controller_restarts]
    assert True not in flags[:-1], list(zip(pods, flags, strict=True))
    after = _uids(kraft, "controller")
    assert all(after[name] != uid for name, uid in before["controller"].items())
    assert _uids(kraft, "kafka") == before["kafka"]  # no broker restarted
    assert not quorum.quorum_problems(_read(kraft, "quorum"), 3)

    consumed = _consume_all(kraft, "kraft.kill", 3)
    assert producer.errors == []
    lost = producer.acked - consumed
    print(
        f"\ncontroller roll with {victim_pod} SIGKILLed: {roll_seconds:.1f} s "
        f"({'1 upgrade' if not reruns else 'stopped, completed by a rerun'}); after the kill: "
        f"{first_pod} Ready {first_ready[0] - kill:.1f} s, {victim_pod} released "
        f"{released[0] - kill:.1f} s, quorum whole {whole_again - kill:.1f} s, next controller "
        f"restarted {next_restart - kill:.1f} s; {len(producer.acked)} acked, {len(lost)} lost"
    )
    assert not lost, f"{len(lost)} acknowledged messages lost"


def test_a_metadata_version_downgrade_is_refused_by_preflight(kraft):
    """metadata.version back to 4.0's after it was raised: Kafka refuses that downgrade (it
    would lose metadata), so preflight refuses the upgrade and no StatefulSet changes."""
    statefulsets = [f"{RELEASE}-controller", f"{RELEASE}-kafka"]
    before = {n: kraft.get("statefulset", n) for n in statefulsets}
    old = set(_pods_dir(kraft).glob(f"{RELEASE}-preflight-*"))
    values = deep_merge(
        kraft.values,
        {"kafka": {"metadataVersion": FORMATTED_AT, "config": {"queued.max.requests": 300}}},
    )
    out = _upgrade(kraft, values, timeout="5m")
    assert out.returncode != 0
    assert "preflight" in out.stderr, out.stderr
    logs = "".join(
        log.read_text()
        for d in set(_pods_dir(kraft).glob(f"{RELEASE}-preflight-*")) - old
        for log in d.glob("*.log")
    )
    assert "Kafka refuses lowering metadata.version from 33 (4.4-IV2) to 25 (4.0-IV3)" in logs
    for name, sts in before.items():
        now = kraft.get("statefulset", name)
        assert now["metadata"]["generation"] == sts["metadata"]["generation"], name
        assert now["status"]["updateRevision"] == sts["status"]["updateRevision"], name
    assert _read(kraft, "features").finalized == NEWEST_LEVEL
