"""Scaling brokers with `helm upgrade` on a control plane whose pods really run (one install
for every case, in this order): 3 -> 4 brokers with the post-upgrade rebalance (its pod killed
with SIGKILL in the middle of a batch, the Job's next pod resuming it), 4 -> 3 refused while
broker 3 holds replicas, a rebalance ConfigMap's dry run and approved run, 4 -> 3 with
kafka.scaleIn.drain. Each upgrade has an acks=all idempotent producer running through it,
and every acknowledged message is consumed afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from devtools.chart import deep_merge
from devtools.kube import ROOT
from devtools.kube.controlplane import ControlPlane
from devtools.waiting import wait_until
from tests.conftest import new_run_dir

from .test_install import RELEASE, Install, _consume_all, _Producer

TOPIC, PARTITIONS = "e2e.scaling", 8
THROTTLES = (
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
)
TOPIC_THROTTLES = (
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
)


@pytest.fixture(scope="module")
def cluster():
    # the hooks run this checkout's kairn-roller as local processes (an image built earlier
    # would carry older code)
    runtime = os.environ.get("KAIRN_NODE_RUNTIME")
    os.environ["KAIRN_NODE_RUNTIME"] = "process"
    run_dir = new_run_dir("scaling")
    cp = ControlPlane(run_dir / "kube", nodes=0, process_nodes=3, die_with_parent=True)
    cp.start()
    inst = Install(cp, f"scale-{uuid.uuid4().hex[:6]}", run_dir)
    try:
        out = inst.helm(
            "install", RELEASE, str(ROOT / "chart"), "--create-namespace", "--wait",
            "--timeout", "10m",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        inst.declare(
            "topic",
            TOPIC,
            {"partitions": PARTITIONS, "replicas": 3, "config": {"min.insync.replicas": 2}},
        )
        inst.timings = {}
        yield inst
    finally:
        cp.stop()
        if runtime is None:
            os.environ.pop("KAIRN_NODE_RUNTIME", None)
        else:
            os.environ["KAIRN_NODE_RUNTIME"] = runtime


def layout(inst: Install) -> tuple[dict, dict]:
    """{(topic, partition): replicas} and {(topic, partition): leader} as Kafka reports them."""
    admin = inst.admin()
    try:
        topics = admin.describe_topics()
    finally:
        admin.close()
    reps, leaders = {}, {}
    for t in topics:
        for p in t["partitions"]:
            key = (t["name"], p["partition_index"])
            reps[key], leaders[key] = tuple(p["replica_nodes"]), p["leader_id"]
            assert set(p["isr_nodes"]) == set(p["replica_nodes"]), f"{key} under-replicated"
    return reps, leaders


def counts(values, brokers) -> dict[int, int]:
    out = {b: 0 for b in brokers}
    for v in values:
        for b in v if isinstance(v, tuple) else (v,):
            out[b] += 1
    return out


def dynamic_throttles(inst: Install, brokers, topics) -> dict:
    admin = inst.admin()
    try:
        res = [ConfigResource(ConfigResourceType.BROKER, str(b)) for b in brokers]
        res += [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        described = admin.describe_configs(res, config_filter="all")
    finally:
        admin.close()
    found = {}
    for kind, names in (("broker", THROTTLES), ("topic", TOPIC_THROTTLES)):
        for resource, configs in described.get(kind, {}).items():
            for n in names:
                entry = configs.get(n) or {}
                if entry.get("config_source", "").startswith("DYNAMIC") and entry.get("value"):
                    found[f"{kind} {resource} {n}"] = entry["value"]
    return found


def upgrade(inst: Install, values: dict, what: str, during=None):
    """`helm upgrade` with the producer running (and ``during()`` while helm runs)."""
    producer = _Producer(inst, TOPIC)
    producer.start()
    wait_until(lambda: len(producer.acked) > 20, 60, "the producer's first acks")
    started = time.monotonic()
    result = {}

    def run():
        result["out"] = inst.helm("upgrade", RELEASE, str(ROOT / "chart"), "--wait",
                                  "--timeout", "15m", values=values)  # fmt: skip

    helm = threading.Thread(target=run)
    helm.start()
    if during:
        during(lambda: not helm.is_alive())
    helm.join()
    out = result["out"]
    inst.timings[what] = round(time.monotonic() - started, 1)
    producer.stop.set()
    producer.join(600)
    consumed = _consume_all(inst, TOPIC, PARTITIONS)
    assert producer.errors == []
    lost = producer.acked - consumed
    print(f"{what}: {inst.timings[what]} s, {len(producer.acked)} acked, {len(lost)} lost")
    assert not lost, f"{len(lost)} acknowledged messages lost"
    return out


def hook_pods(inst: Install, job: str) -> list:
    pods = (inst.cp.run_dir / "node" / "pods" / inst.ns).glob(f"{RELEASE}-{job}-*")
    return sorted(pods, key=lambda d: d.stat().st_mtime)


def hook_log(inst: Install, job: str, pod_dir=None) -> list[dict]:
    lines = []
    for d in [pod_dir] if pod_dir else hook_pods(inst, job):
        for log in d.glob("*.log"):
            lines += [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    return lines


def fill(inst: Install, per_partition: int) -> None:
    """Data for the moves to copy: ``per_partition`` bytes in each partition."""
    producer = KafkaProducer(bootstrap_servers=inst.bootstrap, acks="all", **inst.ssl())
    for p in range(PARTITIONS):
        for i in range(per_partition // 10240):
            producer.send(TOPIC, f"fill-{p}-{i}".encode().ljust(10240, b"."), partition=p)
    producer.flush(120)
    producer.close()


class HelmEnded(Exception):
    pass


def kill_mid_batch(inst: Install, helm_ended) -> dict:
    """SIGKILL the rebalancer as soon as its first batch is moving; what that batch was."""

    def unless_ended(check):
        def wrapped():
            if helm_ended():
                raise HelmEnded("helm upgrade ended before the rebalancer could be killed")
            return check()

        return wrapped

    first = wait_until(unless_ended(lambda: hook_pods(inst, "rebalance")), 600,
                       "the rebalance pod", fatal=(HelmEnded,))[0]  # fmt: skip
    batch = wait_until(
        unless_ended(
            lambda: [x for x in hook_log(inst, "rebalance", first) if x.get("step") == "batch"]
        ),
        300,
        "the first batch moving",
        interval=0.1,
        fatal=(HelmEnded,),
    )[0]
    admin = inst.admin()
    try:  # the batch is moving in Kafka, not only logged
        wait_until(
            lambda: (
                {f"{tp.topic}-{tp.partition}" for tp in admin.list_partition_reassignments()}
                & set(batch["partitions"])
            ),
            60,
            "the first batch's reassignments listed by Kafka",
            interval=0.1,
        )
    finally:
        admin.close()
    os.killpg(int((first / "roller.pid").read_text()), signal.SIGKILL)
    return {"pod": first, "partitions": batch["partitions"]}


def test_three_to_four_brokers_levels_replicas_and_leaders(cluster):
    """The rebalance is slowed down (300 KiB a partition, 50 KiB/s, 3 partitions a batch) so
    that its first pod can be killed in the middle of a batch."""
    fill(cluster, 300 * 1024)
    cluster.values = deep_merge(
        cluster.values,
        {"kafka": {"replicas": 4, "rebalance": {"throttleBytes": 51200, "batchSize": 3}}},
    )
    killed = {}
    out = upgrade(
        cluster,
        cluster.values,
        "3 -> 4",
        during=lambda ended: killed.update(kill_mid_batch(cluster, ended)),
    )
    assert out.returncode == 0, out.stderr
    # the Job's next pod resumed the killed pod's batch and did not move it again
    later = [d for d in hook_pods(cluster, "rebalance") if d != killed["pod"]]
    assert later, "no second rebalance pod"
    resumed = [x for d in later for x in hook_log(cluster, "rebalance", d)]
    assert any(x.get("step") == "resume" for x in resumed), resumed
    moved_again = {p for x in resumed if x.get("step") == "batch" for p in x["partitions"]}
    assert not moved_again & set(killed["partitions"]), (killed, moved_again)
    reps, leaders = wait_until(lambda: layout(cluster), 120, "every partition in sync")
    brokers = [0, 1, 2, 3]
    replica_counts, leader_counts = (
        counts(reps.values(), brokers),
        counts(leaders.values(), brokers),
    )
    print(f"after 3 -> 4: replicas {replica_counts}, leaders {leader_counts}")
    assert max(replica_counts.values()) - min(replica_counts.values()) <= 1
    assert max(leader_counts.values()) - min(leader_counts.values()) <= 1
    assert all(len(r) == 3 for (t, _), r in reps.items() if t == TOPIC)
    assert dynamic_throttles(cluster, brokers, sorted({t for t, _ in reps})) == {}
    done = [x for x in hook_log(cluster, "rebalance") if x.get("step") == "done"]
    assert done and done[-1]["replicas_copied"] > 0, done


def test_four_to_three_without_drain_is_refused_and_changes_nothing(cluster):
    before = cluster.get("statefulset", f"{RELEASE}-kafka")
    values = deep_merge(cluster.values, {"kafka": {"replicas": 3}})
    out = upgrade(cluster, values, "4 -> 3 refused")
    assert out.returncode != 0
    assert "kairn-preflight" in out.stderr, out.stderr
    refusals = [x for x in hook_log(cluster, "preflight") if x.get("step") == "scale-in"]
    (line,) = refusals[-1]["problems"]
    assert "removes broker(s) 3" in line and "kafka.scaleIn.drain=true" in line, line
    assert f"{TOPIC}-" in line
    events = cluster.get("events", "--field-selector", "reason=ScaleInRefused")["items"]
    assert events and events[-1]["involvedObject"]["name"] == f"{RELEASE}-kafka"
    after = cluster.get("statefulset", f"{RELEASE}-kafka")
    assert after["spec"]["replicas"] == 4
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def serve_requests_once(inst: Install) -> None:
    """One pass of `kairn-roller rebalance --requests`, as the cluster's agents identity."""
    ssl = inst.ssl()
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "kairn-roller"), "rebalance", "--requests", "--once"],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "KUBECONFIG": str(inst.kubeconfig),
            "KAIRN_NAMESPACE": inst.ns,
            "KAIRN_FULLNAME": RELEASE,
            "KAIRN_CLUSTER": RELEASE,
            "KAIRN_BOOTSTRAP": inst.bootstrap,
            "KAIRN_ZOOKEEPER_NODES": f"{RELEASE}-zookeeper-0.{RELEASE}-zookeeper-nodes:2181",
            "KAIRN_TLS_CA_FILE": ssl["ssl_cafile"],
            "KAIRN_TLS_CERT_FILE": ssl["ssl_certfile"],
            "KAIRN_TLS_KEY_FILE": ssl["ssl_keyfile"],
        },
    )
    assert out.returncode == 0, out.stderr


def test_a_rebalance_configmap_shows_its_plan_then_runs_once_approved(cluster):
    before, _ = wait_until(lambda: layout(cluster), 120, "every partition in sync")
    on_three = sorted(f"{t}-{p}" for (t, p), r in before.items() if 3 in r)
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "shrink",
            "namespace": cluster.ns,
            "labels": {"kairn.dev/cluster": RELEASE, "kairn.dev/type": "rebalance"},
        },
        "data": {"spec": "mode: remove-brokers\nbrokers: [3]\n"},
    }
    cluster.apply(doc)
    serve_requests_once(cluster)
    cm = cluster.get("configmap", "shrink")
    status = json.loads(cm["metadata"]["annotations"]["kairn.dev/status"])
    assert cm["metadata"]["labels"]["kairn.dev/state"] == "Pending", status
    assert status["reason"] == "ProposalReady"
    plan = status["plan"]
    assert sorted(m["partition"] for m in plan["moves"] if 3 in m["from"]) == on_three
    assert all(3 not in m["to"] for m in plan["moves"])
    assert layout(cluster)[0] == before, "a proposal moved something"
    # another mode, approved: carried out once, the approval taken back
    doc["data"]["spec"] = "mode: full\n"
    doc["metadata"]["annotations"] = {"kairn.dev/approve": "true"}
    cluster.apply(doc)
    serve_requests_once(cluster)
    cm = cluster.get("configmap", "shrink")
    status = json.loads(cm["metadata"]["annotations"]["kairn.dev/status"])
    assert (cm["metadata"]["labels"]["kairn.dev/state"], status["reason"]) == (
        "Ready",
        "Rebalanced",
    ), status
    assert "kairn.dev/approve" not in cm["metadata"]["annotations"]
    reps, _ = wait_until(lambda: layout(cluster), 120, "every partition in sync")
    counted = counts(reps.values(), [0, 1, 2, 3])
    assert max(counted.values()) - min(counted.values()) <= 1


def test_four_to_three_with_drain_empties_broker_three_first(cluster):
    cluster.values = deep_merge(
        cluster.values, {"kafka": {"replicas": 3, "scaleIn": {"drain": True}}}
    )
    out = upgrade(cluster, cluster.values, "4 -> 3 drained")
    assert out.returncode == 0, out.stderr
    assert cluster.get("statefulset", f"{RELEASE}-kafka")["spec"]["replicas"] == 3
    wait_until(lambda: len(cluster.pods("kafka")) == 3, 120, "pod 3 gone")
    reps, leaders = wait_until(lambda: layout(cluster), 120, "no under-replicated partition")
    assert all(3 not in r for r in reps.values())
    assert all(len(r) == 3 for (t, _), r in reps.items() if t == TOPIC)
    brokers = [0, 1, 2]
    print(f"after 4 -> 3: replicas {counts(reps.values(), brokers)}, "
          f"leaders {counts(leaders.values(), brokers)}")  # fmt: skip
    assert dynamic_throttles(cluster, brokers, sorted({t for t, _ in reps})) == {}
    print(f"upgrade times: {cluster.timings}")
