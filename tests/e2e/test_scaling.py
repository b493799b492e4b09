"""Scaling brokers with `helm upgrade` on a control plane whose pods really run (one install
for every case, in this order): 3 -> 4 brokers with the post-upgrade rebalance (its pod killed
with SIGKILL in the middle of a batch, the Job's next pod resuming it), 4 -> 3 refused while
broker 3 holds replicas, a rebalance ConfigMap's dry run and approved run (served by the agents
Deployment's container) with a topic agent's replication-factor change running beside it,
4 -> 3 with kafka.scaleIn.drain, and the next PKI hook dropping broker 3's certificate. Each
upgrade has an acks=all idempotent producer running through it, and every acknowledged
message is consumed afterwards.

Every wait is bounded by what is left of the test's pytest timeout (``Budget``; the first
test's budget includes the install), and says what it waited for when it runs out: helm's
--timeout, the rebalance Job's deadline (and with it the rebalancer's own time limit), the
producer's last flush. A producer that cannot deliver at the end fails the test with the
partitions it holds and the leader it sends them to beside the leader Kafka names, instead of
retrying until pytest kills the run."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import pytest
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaTimeoutError

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
    started = time.monotonic()
    run_dir = new_run_dir("scaling")
    cp = ControlPlane(run_dir / "kube", nodes=0, process_nodes=3, die_with_parent=True)
    cp.start()
    inst = Install(cp, f"scale-{uuid.uuid4().hex[:6]}", run_dir)
    inst.started = started  # the first test's budget counts the install (pytest's timer does)
    # the rebalance ConfigMaps' server looks at least every 2 s (a watch wakes it sooner)
    inst.values = deep_merge(
        inst.values, {"kafka": {"rebalance": {"requests": {"intervalSeconds": 2}}}}
    )
    try:
        out = inst.helm(
            "install", RELEASE, str(ROOT / "chart"), "--create-namespace", "--wait",
            "--timeout", "6m", timeout=420,
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


class Budget:
    """What is left of a test's pytest timeout, so that every wait ends, and says what it
    waited for, before pytest-timeout kills the test without a word about it."""

    def __init__(self, total: float, started: float):
        self.total, self.started = total, started

    def left(self, reserve: float = 0) -> float:
        return self.total - (time.monotonic() - self.started) - reserve

    def take(self, most: float, what: str, reserve: float = 30) -> float:
        """Seconds for one wait: ``most``, or less when the budget (keeping ``reserve`` for
        what comes after) is shorter; fails at once when nothing is left."""
        seconds = min(most, self.left(reserve))
        if seconds < 5:
            pytest.fail(f"no time left for {what}: {self.left():.0f} s of {self.total:.0f} s")
        return seconds


@pytest.fixture
def budget(request, cluster) -> Budget:
    marker = request.node.get_closest_marker("timeout")
    total = float(marker.args[0]) if marker else float(request.config.getini("timeout"))
    started = getattr(cluster, "started", None) or time.monotonic()
    cluster.started = None  # later tests start their own clock
    return Budget(total, started)


class Producer(_Producer):
    """test_install's acks=all idempotent producer, whose end is bounded: ``finish()`` stops
    it, flushes for at most ``seconds`` and, when something is still not acknowledged, fails
    with the partitions it holds, the leader the client sends them to and the leader Kafka
    names (a client stuck on a stale leader and a partition without one look different)."""

    def run(self) -> None:  # the flush is finish()'s, bounded
        self.send_until_stopped()

    def finish(self, inst: Install, seconds: float) -> None:
        """Flushes in slices of 15 s; a slice that ends with batches pending is reported
        (printed: which partitions, the client's leader and Kafka's) and followed by a forced
        metadata refresh, so that a client stuck on a stale leader shows itself in the
        output, and recovers, instead of retrying NotLeaderForPartition until the timeout."""
        self.stop.set()
        self.join(10)
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.producer.flush(timeout=max(1.0, min(15.0, deadline - time.monotonic())))
                break
            except KafkaTimeoutError:
                stuck = self.stuck(inst)
                if time.monotonic() >= deadline:
                    self.producer.close(timeout=5)
                    pytest.fail(f"the producer did not deliver within {seconds:.0f} s: {stuck}")
                print(f"producer still flushing, metadata refresh forced: {stuck}")
                self.watch_client()
                self.producer._metadata.request_update()
        self.producer.close(timeout=10)

    def stuck(self, inst: Install) -> str:
        pending = sorted({b.topic_partition for b in self.producer._accumulator._incomplete.all()})
        client = {tp: self.producer._metadata.leader_for_partition(tp) for tp in pending}
        try:
            kafka = {(t, p): leader for (t, p), leader in leaders(inst).items()}
        except Exception as e:  # Kafka itself not answering is the finding then
            kafka = {"error": repr(e)}
        cluster = self.producer._metadata
        age = time.monotonic() - cluster._last_successful_refresh_ms / 1000
        return (
            "; ".join(
                f"{tp.topic}-{tp.partition}: client sends to {client[tp]}, Kafka's leader "
                f"{kafka.get((tp.topic, tp.partition), kafka.get('error'))}"
                for tp in pending
            )
            or "no batch pending (the flush itself stalled)"
        ) + (
            f" (client metadata {age:.0f} s old, a refresh in flight: "
            f"{cluster.metadata_refresh_in_progress})"
        )


def leaders(inst: Install) -> dict:
    """{(topic, partition): leader} as Kafka reports it, without layout()'s ISR check."""
    admin = inst.admin()
    try:
        return {
            (t["name"], p["partition_index"]): p["leader_id"]
            for t in admin.describe_topics()
            for p in t["partitions"]
        }
    finally:
        admin.close()


def diagnose(inst: Install) -> str:
    """What the hooks last said and what Kafka is still moving: for a failure message."""
    lines = []
    for job in ("preflight", "rebalance"):
        said = hook_log(inst, job)
        if said:
            lines.append(f"{job}: {json.dumps(said[-1])[:600]}")
    try:
        admin = inst.admin()
        try:
            moving = sorted(
                f"{tp.topic}-{tp.partition}" for tp in admin.list_partition_reassignments()
            )
        finally:
            admin.close()
        lines.append(f"reassignments in Kafka: {moving}")
    except Exception as e:
        lines.append(f"reassignments not listed: {e!r}")
    return "\n".join(lines)


def upgrade(inst: Install, values: dict, what: str, budget: Budget, during=None):
    """`helm upgrade` with the producer running (and ``during()`` while helm runs), every
    part within ``budget``: helm's --timeout leaves time for the producer's last flush and
    the consumer."""
    producer = Producer(inst, TOPIC)
    producer.start()
    wait_until(lambda: len(producer.acked) > 20, budget.take(60, "first acks"),
               "the producer's first acks")  # fmt: skip
    helm_seconds = int(budget.take(900, f"helm upgrade ({what})", reserve=150))
    started = time.monotonic()
    result = {}

    def run():
        result["out"] = inst.helm("upgrade", RELEASE, str(ROOT / "chart"), "--wait",
                                  "--timeout", f"{helm_seconds}s", values=values,
                                  timeout=helm_seconds + 30)  # fmt: skip

    helm = threading.Thread(target=run, daemon=True)
    helm.start()
    try:
        if during:
            during(lambda: not helm.is_alive())
        helm.join(helm_seconds + 40)
        assert not helm.is_alive(), f"helm upgrade ({what}) outlived its --timeout"
    except BaseException:
        producer.stop.set()  # no producer left sending into the teardown
        raise
    out = result["out"]
    inst.timings[what] = round(time.monotonic() - started, 1)
    producer.finish(inst, budget.take(90, "the producer's last flush", reserve=60))
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


def kill_mid_batch(inst: Install, helm_ended, budget: Budget) -> dict:
    """SIGKILL the rebalancer as soon as its first batch is moving; what that batch was."""

    def unless_ended(check):
        def wrapped():
            if helm_ended():
                raise HelmEnded("helm upgrade ended before the rebalancer could be killed")
            return check()

        return wrapped

    first = wait_until(unless_ended(lambda: hook_pods(inst, "rebalance")),
                       budget.take(300, "the rebalance pod", reserve=200),
                       "the rebalance pod", fatal=(HelmEnded,))[0]  # fmt: skip
    batch = wait_until(
        unless_ended(
            lambda: [x for x in hook_log(inst, "rebalance", first) if x.get("step") == "batch"]
        ),
        budget.take(180, "the first batch", reserve=200),
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
            30,
            "the first batch's reassignments listed by Kafka",
            interval=0.1,
        )
    finally:
        admin.close()
    os.killpg(int((first / "roller.pid").read_text()), signal.SIGKILL)
    return {"pod": first, "partitions": batch["partitions"]}


@pytest.mark.timeout(900)  # the install counts: it is this test's module fixture
def test_three_to_four_brokers_levels_replicas_and_leaders(cluster, budget):
    """The rebalance is slowed down (150 KiB a partition, 50 KiB/s, 3 partitions a batch) so
    that its first pod can be killed in the middle of a batch. The rebalance Job's deadline
    ends inside helm's --timeout, so a rebalancer that cannot finish says which partitions
    it waited for."""
    fill(cluster, 150 * 1024)
    deadline = int(budget.left(reserve=240))
    cluster.values = deep_merge(
        cluster.values,
        {
            "kafka": {
                "replicas": 4,
                "rebalance": {"throttleBytes": 51200, "batchSize": 3, "deadlineSeconds": deadline},
            }
        },
    )
    killed = {}
    out = upgrade(
        cluster,
        cluster.values,
        "3 -> 4",
        budget,
        during=lambda ended: killed.update(kill_mid_batch(cluster, ended, budget)),
    )
    assert out.returncode == 0, f"{out.stderr}\n{diagnose(cluster)}"
    # the PKI hook issued the new broker its certificate before the StatefulSet grew
    assert f"{RELEASE}-kafka-3.crt" in cluster.secret(f"{RELEASE}-kafka-brokers")
    # the Job's next pod resumed the killed pod's batch and did not move it again
    later = [d for d in hook_pods(cluster, "rebalance") if d != killed["pod"]]
    assert later, "no second rebalance pod"
    resumed = [x for d in later for x in hook_log(cluster, "rebalance", d)]
    assert any(x.get("step") == "resume" for x in resumed), resumed
    # no replica of the killed batch is copied again: a later batch may only change the order
    # of its replicas (preferred leaders are levelled afresh each round), never their set
    again = {
        p: reps
        for x in resumed
        if x.get("step") == "batch"
        for p, reps in x["partitions"].items()
        if p in killed["partitions"]
    }
    copied_again = {p for p, reps in again.items() if set(reps) != set(killed["partitions"][p])}
    assert not copied_again, (killed["partitions"], again)
    print(f"the killed batch: {killed['partitions']}; reordered later: {again}")
    reps, leads = wait_until(lambda: layout(cluster), budget.take(120, "in sync", 5),
                             "every partition in sync")  # fmt: skip
    brokers = [0, 1, 2, 3]
    replica_counts, leader_counts = counts(reps.values(), brokers), counts(leads.values(), brokers)
    print(f"after 3 -> 4: replicas {replica_counts}, leaders {leader_counts}")
    assert max(replica_counts.values()) - min(replica_counts.values()) <= 1
    assert max(leader_counts.values()) - min(leader_counts.values()) <= 1
    assert all(len(r) == 3 for (t, _), r in reps.items() if t == TOPIC)
    assert dynamic_throttles(cluster, brokers, sorted({t for t, _ in reps})) == {}
    done = [x for x in hook_log(cluster, "rebalance") if x.get("step") == "done"]
    assert done and done[-1]["replicas_copied"] > 0, done


def test_four_to_three_without_drain_is_refused_and_changes_nothing(cluster, budget):
    before = cluster.get("statefulset", f"{RELEASE}-kafka")
    values = deep_merge(cluster.values, {"kafka": {"replicas": 3}})
    out = upgrade(cluster, values, "4 -> 3 refused", budget)
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


def request_status(inst: Install, name: str, wanted, budget: Budget, what: str) -> dict:
    """The rebalance ConfigMap's status once ``wanted(status)``, as the agents Deployment's
    server writes it (nobody else serves it here)."""

    def status():
        cm = inst.get("configmap", name)
        found = json.loads(
            (cm["metadata"].get("annotations") or {}).get("kairn.dev/status") or "{}"
        )
        return (cm, found) if found and wanted(found) else None

    return wait_until(status, budget.take(240, what), what, interval=0.5)


def test_a_rebalance_configmap_shows_its_plan_then_runs_beside_a_replication_factor_change(
    cluster, budget
):
    """The agents Deployment's server shows the plan of removing broker 3; approved, it runs
    while the topic agent raises another topic's replication factor from 2 to 3: neither
    cancels the other's reassignments (the rebalancer leaves a topic the topic agent is
    moving alone and waits for it when it must empty broker 3 of it; the topic agent waits
    only for reassignments of its own topic), the topic ends with 3 replicas and the
    rebalance Ready."""
    rf_topic = "e2e.rf"
    cluster.declare("topic", rf_topic, {"partitions": 4, "replicas": 2})
    before, _ = wait_until(lambda: layout(cluster), budget.take(120, "in sync"),
                           "every partition in sync")  # fmt: skip
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
    cm, status = request_status(cluster, "shrink", lambda s: s.get("reason") == "ProposalReady",
                                budget, "the proposal of rebalance shrink")  # fmt: skip
    assert cm["metadata"]["labels"]["kairn.dev/state"] == "Pending", status
    plan = status["plan"]
    assert sorted(m["partition"] for m in plan["moves"] if 3 in m["from"]) == on_three
    assert all(3 not in m["to"] for m in plan["moves"])
    assert layout(cluster)[0] == before, "a proposal moved something"
    # approved, and the other topic's replication factor raised at the same time
    doc["metadata"]["annotations"] = {"kairn.dev/approve": "true"}
    cluster.apply(doc)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": rf_topic,
                "namespace": cluster.ns,
                "labels": {"kairn.dev/cluster": RELEASE, "kairn.dev/type": "topic"},
            },
            "data": {"spec": "partitions: 4\nreplicas: 3\n"},
        }
    )
    cm, status = request_status(
        cluster, "shrink", lambda s: s.get("state") in ("Ready", "Error"), budget,
        "rebalance shrink Ready",
    )  # fmt: skip
    assert (status["state"], status["reason"]) == ("Ready", "Rebalanced"), status
    assert "kairn.dev/approve" not in cm["metadata"]["annotations"]

    def rf_done():
        reps, _ = layout(cluster)
        mine = [r for (t, _), r in reps.items() if t == rf_topic]
        return reps if len(mine) == 4 and all(len(r) == 3 for r in mine) else None

    reps = wait_until(rf_done, budget.take(180, "replication factor 3"),
                      f"{rf_topic} at replication factor 3, in sync")  # fmt: skip
    wait_until(
        lambda: (
            cluster.get("configmap", rf_topic)["metadata"]["labels"].get("kairn.dev/state")
            == "Ready"
        ),
        budget.take(120, f"topic {rf_topic} Ready"),
        f"topic {rf_topic} Ready after its replication-factor change",
    )
    # the rebalance's own moves are done: nothing of TOPIC on broker 3 (the topic agent may
    # have put e2e.rf's new replicas there after the rebalancer moved its old ones off: broker
    # 3 is still a broker of the cluster), every replication factor kept, nothing moving
    assert all(3 not in r for (t, _), r in reps.items() if t == TOPIC)
    assert all(len(r) == 3 for (t, _), r in reps.items() if t in (TOPIC, rf_topic))
    admin = cluster.admin()
    try:
        assert not admin.list_partition_reassignments()
    finally:
        admin.close()
    assert dynamic_throttles(cluster, [0, 1, 2, 3], sorted({t for t, _ in reps})) == {}
    print(f"rebalance shrink: {status['message']}")


def test_four_to_three_with_drain_empties_broker_three_first(cluster, budget):
    """A topic created on four brokers holds replicas on broker 3, which the drain moves off
    before Helm removes it; the PKI hook of the next upgrade drops broker 3's certificate
    (it runs before the drain of its own upgrade, while pod 3 still exists)."""
    cluster.declare("topic", "e2e.drain", {"partitions": 4, "replicas": 3})
    held = [k for k, r in layout(cluster)[0].items() if 3 in r]
    assert held, "nothing on broker 3 to drain"
    cluster.values = deep_merge(
        cluster.values,
        {
            "kafka": {
                "replicas": 3,
                "scaleIn": {"drain": True},
                "rebalance": {"throttleBytes": 52428800, "batchSize": 10},
            }
        },
    )
    out = upgrade(cluster, cluster.values, "4 -> 3 drained", budget)
    assert out.returncode == 0, f"{out.stderr}\n{diagnose(cluster)}"
    assert cluster.get("statefulset", f"{RELEASE}-kafka")["spec"]["replicas"] == 3
    wait_until(lambda: len(cluster.pods("kafka")) == 3, budget.take(120, "pod 3 gone"),
               "pod 3 gone")  # fmt: skip
    reps, leads = wait_until(lambda: layout(cluster), budget.take(120, "in sync"),
                             "no under-replicated partition")  # fmt: skip
    assert all(3 not in r for r in reps.values())
    assert all(len(r) == 3 for (t, _), r in reps.items() if t == TOPIC)
    brokers = [0, 1, 2]
    print(f"after 4 -> 3: replicas {counts(reps.values(), brokers)}, "
          f"leaders {counts(leads.values(), brokers)}")  # fmt: skip
    assert dynamic_throttles(cluster, brokers, sorted({t for t, _ in reps})) == {}
    secret = f"{RELEASE}-kafka-brokers"
    gone = f"{RELEASE}-kafka-3."
    assert [k for k in cluster.secret(secret) if k.startswith(gone)], "dropped too early"
    started, seconds = time.monotonic(), int(budget.take(300, "the next upgrade", 20))
    out = cluster.helm("upgrade", RELEASE, str(ROOT / "chart"), "--wait", "--timeout",
                       f"{seconds}s", timeout=seconds + 15)  # fmt: skip
    cluster.timings["next upgrade"] = round(time.monotonic() - started, 1)
    assert out.returncode == 0, out.stderr
    left = [k for k in cluster.secret(secret) if k.startswith(gone)]
    assert left == [], left
    assert f"{RELEASE}-kafka-0.crt" in cluster.secret(secret)
    print(f"upgrade times: {cluster.timings}")
