"""From ZooKeeper to KRaft, and on to Kafka 4, by `helm upgrade`, with nothing lost (issue 20).

One ZooKeeper-mode install on process-backed nodes (3 ZooKeeper nodes, 3 brokers, and
kafka.controller.replicas 3 for the phases that have controllers), then, in file order on that
install: topics with data and configs, a SCRAM user and a TLS user with ACLs and quotas
declared through the agents' ConfigMaps; an acks=all idempotent producer, a consumer group and
an offline-partitions sampler (Metadata every second) running from the first test to the last.
The walk: zookeeper -> migration (a broker SIGKILLed during the roll) -> kraft-brokers (a
topic and a user declared there) -> migration -> zookeeper (the rollback) -> migration ->
kraft-brokers -> kraft (finalized on Kafka 3.9) -> Kafka 4, each refusal of preflight tried
where it applies (the upgrade fails, no StatefulSet changes). After every phase the same
checks (``check_phase``): every user allowed and denied exactly as before, what Kafka holds
for them and for the topics unchanged, the StatefulSets' `kairn.dev/metadata-mode` label,
no offline partition so far, no send error, and the agents still reconciling a new topic.
The last test stops the producer and consumes everything it had acknowledged.

A step that fails leaves the cluster where it is: the steps that need another phase are
skipped, and the last test still checks what was acknowledged and prints the figures."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from devtools.chart import HARNESS_VALUES, deep_merge
from devtools.kube import ROOT
from devtools.kube.controlplane import ControlPlane
from devtools.waiting import wait_until
from tests.conftest import new_run_dir

from .migration_checks import (
    Figures,
    GroupConsumer,
    OfflineSampler,
    Step,
    TimedProducer,
    User,
    access,
    kafka_view,
    topic_configs,
)
from .test_install import RELEASE, Install, _consume_all, _ready
from .test_kraft import _pods_dir, _RollLog

LABEL = "kairn.dev/metadata-mode"
KAFKA3 = "3.9.2"  # the finalize keeps Kafka 3.9; the next upgrade drops the pin
KAFKA4 = "4.4.0"
STREAM, STREAM_PARTITIONS = "mig.stream", 3
DATA = {  # topics with data and per-topic configs that must survive every phase
    "mig.retained": {
        "partitions": 2,
        "replicas": 3,
        "config": {"retention.ms": 86_400_000, "min.insync.replicas": 2},
    },
    "mig.compacted": {
        "partitions": 1,
        "replicas": 3,
        "config": {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": 0.9},
    },
}
RECORDS = 200  # in each data topic, unique keys
MIGRATION_VALUES = {"kafka": {"controller": {"replicas": 3, "heapOpts": "-Xms192m -Xmx192m"}}}
HELM_TIMEOUT = 900  # one phase's helm upgrade; a refusal's gets 300


class Cluster(Install):
    phase: str
    producer: TimedProducer
    consumer: GroupConsumer
    sampler: OfflineSampler
    users: list[User]
    baseline: dict
    figures: Figures
    checks: int = 0


@pytest.fixture(scope="module")
def mig() -> Cluster:
    # the hooks run this checkout's kairn-roller as local processes
    runtime = os.environ.get("KAIRN_NODE_RUNTIME")
    os.environ["KAIRN_NODE_RUNTIME"] = "process"
    run_dir = new_run_dir("migration")
    cp = ControlPlane(run_dir / "kube", nodes=0, process_nodes=3, die_with_parent=True)
    cp.start()
    inst = Cluster(cp, f"mig-{uuid.uuid4().hex[:6]}", run_dir)
    inst.values = deep_merge(HARNESS_VALUES, MIGRATION_VALUES)
    inst.figures = Figures()
    inst.phase = "zookeeper"
    try:
        step = Step("install (zookeeper)", time.monotonic())
        out = inst.helm(
            "install", RELEASE, str(ROOT / "chart"), "--create-namespace", "--wait",
            "--timeout", "10m", timeout=660,
        )  # fmt: skip
        step.ended, step.ok = time.monotonic(), out.returncode == 0
        inst.figures.steps.append(step)
        assert out.returncode == 0, out.stderr + f"\npods: {_pods_dir(inst)}"
        yield inst
    finally:
        for name in ("producer", "consumer", "sampler"):
            thread = getattr(inst, name, None)
            if thread is not None:
                thread.stop.set()
        cp.stop()
        if runtime is None:
            os.environ.pop("KAIRN_NODE_RUNTIME", None)
        else:
            os.environ["KAIRN_NODE_RUNTIME"] = runtime


# ---- what every phase is checked for --------------------------------------------------------
def statefulsets(inst: Install) -> dict[str, dict]:
    items = inst.get("statefulsets", "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    return {s["metadata"]["name"]: s for s in items}


def snapshot(inst: Install) -> dict[str, tuple]:
    """Each StatefulSet's generation, update revision and phase label."""
    return {
        n: (
            s["metadata"]["generation"],
            s["status"].get("updateRevision"),
            (s["metadata"].get("labels") or {}).get(LABEL),
        )
        for n, s in statefulsets(inst).items()
    }


def claims(inst: Install, component: str) -> list[str]:
    return sorted(
        c["metadata"]["name"]
        for c in inst.get("pvc")["items"]
        if c["metadata"]["name"].startswith(f"data-{RELEASE}-{component}-")
    )


def controller_id(inst: Install) -> int:
    def read():
        admin = inst.admin()
        try:
            return [admin.describe_cluster()["controller_id"]]  # broker 0 is falsy
        finally:
            admin.close()

    return wait_until(read, 60, "DescribeCluster", retry_on=(Exception,))[0]


def check_phase(inst: Cluster, phase: str) -> None:
    """What must hold after every phase (and after every refusal)."""
    inst.checks += 1
    assert inst.sampler.max == 0, f"offline partitions seen: {inst.sampler.offline[:5]}"
    assert inst.producer.errors == [], inst.producer.errors[:5]
    names = [u.name for u in inst.users]
    assert access(inst.users) == inst.baseline["access"]
    assert kafka_view(inst, names) == inst.baseline["view"]
    assert topic_configs(inst, list(DATA)) == inst.baseline["configs"]
    # the agents keep reconciling: a new topic declared now becomes Ready and gets leaders
    topic = f"mig.after-{inst.checks}-{phase}"
    inst.declare("topic", topic, {"partitions": 1, "replicas": 3})
    wait_until(lambda: leaders(inst, topic), 60, f"{topic} led", retry_on=(Exception,))
    inst.sampler.watch(topic)
    # what `kubectl get sts -L kairn.dev/metadata-mode` shows
    labels = {n: v[2] for n, v in snapshot(inst).items()}
    assert labels and set(labels.values()) == {phase}, f"{LABEL} labels {labels}, not {phase}"


def leaders(inst: Install, topic: str) -> bool:
    admin = inst.admin()
    try:
        (t,) = admin.describe_topics([topic])
        return bool(t["partitions"]) and all(p["leader_id"] >= 0 for p in t["partitions"])
    finally:
        admin.close()


def need(inst: Cluster, phase: str) -> None:
    if inst.phase != phase:
        pytest.skip(f"the cluster is in phase {inst.phase}, this step starts from {phase}")


# ---- upgrades -------------------------------------------------------------------------------
def mode(inst: Cluster, phase: str, **kafka) -> dict:
    return deep_merge(inst.values, {"kafka": {"metadata": {"mode": phase}, **kafka}})


def upgrade(inst: Cluster, values: dict, timeout: int = HELM_TIMEOUT):
    return inst.helm(
        "upgrade", RELEASE, str(ROOT / "chart"), "--wait", "--timeout", f"{timeout}s",
        values=values, timeout=timeout + 60,
    )  # fmt: skip


def roll_failure(inst: Install, out, old: set) -> str:
    """helm's stderr and the last lines of the hook pods of this upgrade."""
    lines = [out.stderr.strip()]
    for d in sorted(set(_pods_dir(inst).glob(f"{RELEASE}-*")) - old):
        if "-roller-" in d.name or "-preflight-" in d.name:
            for log in sorted(d.glob("*.log")):
                tail = log.read_text().splitlines()[-6:]
                lines.append(f"{log.relative_to(_pods_dir(inst))}:\n  " + "\n  ".join(tail))
    return "\n".join(lines) + f"\npods: {_pods_dir(inst)}"


def walk(inst: Cluster, phase: str, values: dict | None = None, on_line=None) -> list[dict]:
    """One phase: `helm upgrade` (rerun once when the roll failed, as a user would), timed,
    then the checks. Returns the roll Job's log lines."""
    values = values or mode(inst, phase)
    step = Step(f"{inst.phase} -> {phase}", time.monotonic())
    inst.figures.steps.append(step)
    old = set(_pods_dir(inst).iterdir())
    roll_log = _RollLog(inst, on_line or (lambda rec: None))
    roll_log.start()
    out = upgrade(inst, values)
    lines = roll_log.finish()
    if out.returncode != 0 and on_line is not None:  # the kill made it stop: the same again
        step.note = "rerun after: " + out.stderr.strip().splitlines()[-1][:120]
        print(f"{step.name} failed, rerun:\n{roll_failure(inst, out, old)}")
        rerun = _RollLog(inst)
        rerun.start()
        out = upgrade(inst, values)
        lines += rerun.finish()
    step.ended, step.ok = time.monotonic(), out.returncode == 0
    step.acked, step.consumed = len(inst.producer.acked), len(inst.consumer.seen)
    assert out.returncode == 0, roll_failure(inst, out, old)
    inst.values, inst.phase = values, phase
    waits = [r for r in lines if "waited_for" in r and r.get("seconds") is not None]
    print(f"\n{step.name}: {step.ended - step.started:.1f} s; waits: "
          + "; ".join(f"{r['waited_for']} {r.get('seconds')} s" for r in waits))  # fmt: skip
    check_phase(inst, phase)
    return lines


def refused(inst: Cluster, values: dict, expected: str) -> None:
    """`helm upgrade` refused by preflight: it fails, names ``expected``, and no StatefulSet
    changed (generation, update revision, phase label); the cluster still passes the checks."""
    before = snapshot(inst)
    old = set(_pods_dir(inst).iterdir())
    out = upgrade(inst, values, timeout=300)
    assert out.returncode != 0, "the upgrade was not refused"
    said = roll_failure(inst, out, old)
    assert "preflight" in out.stderr, said
    assert expected in said, said
    assert snapshot(inst) == before
    print(f"\nrefused as expected: {expected}")
    check_phase(inst, inst.phase)


# ---- 1. setup -------------------------------------------------------------------------------
def user_login(inst: Install, name: str, kind: str) -> dict:
    secret = inst.secret(name)
    folder = inst.run_dir / f"user-{name}"
    folder.mkdir(exist_ok=True)
    (folder / "ca.crt").write_bytes(secret.get("ca.crt", b""))
    if kind == "tls":
        (folder / "user.crt").write_bytes(secret["user.crt"])
        (folder / "user.key").write_bytes(secret["user.key"])
        return {
            "bootstrap_servers": inst.bootstrap,
            "security_protocol": "SSL",
            "ssl_cafile": str(folder / "ca.crt"),
            "ssl_certfile": str(folder / "user.crt"),
            "ssl_keyfile": str(folder / "user.key"),
        }
    return {
        "bootstrap_servers": inst.bootstrap_scram,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": name,
        "sasl_plain_password": secret["password"].decode(),
        "ssl_cafile": inst.ssl()["ssl_cafile"],
    }


def declare_user(inst: Install, name: str, kind: str, topic: str, quotas: dict) -> User:
    inst.declare("topic", topic, {"partitions": 1, "replicas": 3})
    acls = [
        {"resource": {"type": "topic", "name": topic}, "operations": ["Write", "Read", "Describe"]},
        {"resource": {"type": "group", "name": name}, "operations": ["Read"]},
    ]
    spec = {"authentication": {"type": kind}, "authorization": {"type": "simple", "acls": acls}}
    inst.declare("user", name, {**spec, "quotas": quotas})
    return User(name, user_login(inst, name, kind), topic, name, other_topic="mig.retained")


def fill(inst: Install) -> None:
    producer = KafkaProducer(bootstrap_servers=inst.bootstrap, acks="all", **inst.ssl())
    for topic in DATA:
        for i in range(RECORDS):
            producer.send(topic, key=f"k{i}".encode(), value=f"{topic}-{i}".encode())
    producer.flush(60)
    producer.close()


def read_all(inst: Install, topic: str, partitions: int) -> dict[bytes, bytes]:
    consumer = KafkaConsumer(bootstrap_servers=inst.bootstrap, **inst.ssl())
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    seen: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 120
    while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            seen.update((r.key, r.value) for r in records)
    consumer.close()
    return seen


@pytest.mark.timeout(1200)  # the install counts: it is this test's module fixture
def test_setup_users_topics_and_clients_on_zookeeper(mig):
    for topic, spec in DATA.items():
        mig.declare("topic", topic, spec)
    mig.declare(
        "topic",
        STREAM,
        {"partitions": STREAM_PARTITIONS, "replicas": 3, "config": {"min.insync.replicas": 2}},
    )
    fill(mig)
    mig.users = [
        declare_user(mig, "mig-scram", "scram-sha-512", "mig.scram",
                     {"producerByteRate": 1048576, "consumerByteRate": 2097152}),
        declare_user(mig, "mig-tls", "tls", "mig.tls", {"requestPercentage": 55}),
    ]  # fmt: skip
    mig.producer = TimedProducer(mig, STREAM)
    mig.producer.start()
    mig.consumer = GroupConsumer(mig, STREAM, "mig-consumer", lambda: len(mig.producer.acked))
    mig.consumer.start()
    mig.sampler = OfflineSampler(mig, [*DATA, STREAM, "mig.scram", "mig.tls", "__consumer_offsets"])
    mig.sampler.start()
    wait_until(lambda: len(mig.producer.acked) > 20, 60, "the producer's first acks")
    names = [u.name for u in mig.users]

    def answered():
        got = access(mig.users)
        return got if all(v is True or v is False for v in got.values()) else None

    allowed = wait_until(answered, 180, "every user's first answers")
    # what the ACLs say: own topic and group allowed, the others denied
    assert allowed == {
        k: (" in group mig-nobody" not in k and "writes mig.retained" not in k) for k in allowed
    }, allowed
    mig.baseline = {
        "access": allowed,
        "view": kafka_view(mig, names),
        "configs": topic_configs(mig, list(DATA)),
    }
    view = mig.baseline["view"]
    assert view["scram"]["mig-scram"] and not view["scram"]["mig-tls"], view
    assert view["quotas"]["mig-scram"] == {
        "producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0}  # fmt: skip
    assert view["quotas"]["mig-tls"] == {"request_percentage": 55.0}
    assert all(view["acls"][u] for u in names), view
    assert mig.baseline["configs"]["mig.compacted"]["cleanup.policy"] == "compact"
    assert mig.baseline["configs"]["mig.retained"]["retention.ms"] == "86400000"
    print(f"\nbaseline: {mig.baseline}")
    check_phase(mig, "zookeeper")


# ---- 3. refusals and 4. the walk, in order --------------------------------------------------
def test_skipping_a_phase_is_refused(mig):
    need(mig, "zookeeper")
    refused(mig, mode(mig, "kraft-brokers"), "skips phase migration")


def test_a_kafka_4_image_before_kraft_is_refused(mig):
    need(mig, "zookeeper")
    refused(mig, mode(mig, "migration", image={"tag": KAFKA4}), "has no ZooKeeper mode")


def _kill_broker(inst: Install, name: str) -> None:
    uid = inst.get("pod", name)["metadata"]["uid"]
    pid = (_pods_dir(inst) / f"{name}.{uid[:8]}" / "kafka.pid").read_text()
    os.killpg(int(pid), signal.SIGKILL)


@pytest.mark.timeout(2400)
def test_zookeeper_to_migration_with_a_broker_killed_mid_roll(mig):
    """When the roll restarts its first broker, another broker (not the ZooKeeper controller
    when there is a choice) is SIGKILLed; the node restarts it. The roll must wait for it or
    stop cleanly; a rerun of the same upgrade completes the phase."""
    need(mig, "zookeeper")
    zk_controller = controller_id(mig)
    killed: list[tuple[str, float]] = []

    def kill_on_first_restart(rec: dict) -> None:
        if rec.get("step") == "restart" and rec.get("component") == "kafka" and not killed:
            first = int(rec["pod"].rsplit("-", 1)[1])
            victim = next(i for i in (0, 1, 2) if i not in (first, zk_controller))
            _kill_broker(mig, f"{RELEASE}-kafka-{victim}")
            killed.append((f"{RELEASE}-kafka-{victim}", time.monotonic()))

    lines = walk(mig, "migration", on_line=kill_on_first_restart)
    assert killed, "the roll never logged a broker restart"
    mig.figures.steps[-1].note += f" killed {killed[0][0]}"
    restarts = [r["pod"] for r in lines if r.get("step") == "restart" and
                r.get("component") == "kafka"]  # fmt: skip
    print(f"broker restarts: {restarts}")
    # the controllers were deployed and every broker carries the migration settings now
    assert len([p for p in mig.pods("controller") if _ready(p)]) == 3
    secrets = {s["metadata"]["name"] for s in mig.get("secrets")["items"]}
    assert f"{RELEASE}-kraft-cluster" in secrets


def test_an_ibp_change_during_the_migration_is_refused(mig):
    need(mig, "migration")
    values = mode(mig, "migration", config={"inter.broker.protocol.version": "3.8"})
    refused(mig, values, "inter.broker.protocol.version would change")


def test_a_metadata_version_change_during_the_migration_is_refused(mig):
    need(mig, "migration")
    refused(mig, mode(mig, "migration", metadataVersion="3.8"), "metadata.version would change")


@pytest.mark.timeout(1800)
def test_migration_to_kraft_brokers_and_a_topic_and_user_declared_there(mig):
    need(mig, "migration")
    walk(mig, "kraft-brokers")
    late = declare_user(mig, "mig-late", "scram-sha-512", "mig.late", {"producerByteRate": 524288})
    mig.late = late
    got = access([late])
    assert got == {k: (" in group mig-nobody" not in k and "writes mig.retained" not in k)
                   for k in got}, got  # fmt: skip
    mig.sampler.watch("mig.late")


def test_kraft_brokers_to_zookeeper_in_one_step_is_refused(mig):
    need(mig, "kraft-brokers")
    refused(mig, mode(mig, "zookeeper"), "roll back one phase at a time")


@pytest.mark.timeout(1800)
def test_rollback_kraft_brokers_to_migration(mig):
    need(mig, "kraft-brokers")
    walk(mig, "migration")


@pytest.mark.timeout(1800)
def test_rollback_migration_to_zookeeper(mig):
    need(mig, "migration")
    walk(mig, "zookeeper")
    assert "kairn-controller" not in statefulsets(mig)
    assert mig.pods("controller") == []
    assert claims(mig, "controller") == []
    assert controller_id(mig) < 100, "a KRaft controller still holds /controller"
    assert late_user_works(mig)


@pytest.mark.timeout(1800)
def test_zookeeper_to_migration_again(mig):
    need(mig, "zookeeper")
    walk(mig, "migration")


@pytest.mark.timeout(1800)
def test_migration_to_kraft_brokers_again(mig):
    need(mig, "migration")
    walk(mig, "kraft-brokers")


def test_finalizing_while_a_broker_is_down_is_refused(mig):
    """A broker held down by the node (its process killed, not restarted while the hold
    exists): the finalize is refused and nothing changes; released, the broker comes back."""
    need(mig, "kraft-brokers")
    victim = f"{RELEASE}-kafka-2"
    hold = mig.cp.run_dir / "node" / "hold" / mig.ns / victim
    hold.parent.mkdir(parents=True, exist_ok=True)
    before = snapshot(mig)
    old = set(_pods_dir(mig).iterdir())
    hold.touch()
    try:
        _kill_broker(mig, victim)
        wait_until(lambda: not _ready(mig.get("pod", victim)), 60, f"{victim} not Ready")
        out = upgrade(mig, mode(mig, "kraft", image={"tag": KAFKA3}), timeout=300)
    finally:
        hold.unlink()
    said = roll_failure(mig, out, old)
    assert out.returncode != 0 and "preflight" in out.stderr, said
    assert "broker 2 is not running" in said, said
    assert snapshot(mig) == before
    print(f"\nfinalize with {victim} down refused:\n{said}")
    wait_until(lambda: _ready(mig.get("pod", victim)), 180, f"{victim} Ready again")
    # partitions back in sync before the checks (the sampler only counts leaderless ones)
    check_phase(mig, "kraft-brokers")


@pytest.mark.timeout(1800)
def test_finalize_kraft_on_kafka_3(mig):
    need(mig, "kraft-brokers")
    zk_claims = claims(mig, "zookeeper")
    walk(mig, "kraft", values=mode(mig, "kraft", image={"tag": KAFKA3}))
    assert f"{RELEASE}-zookeeper" not in statefulsets(mig)
    assert claims(mig, "zookeeper") == zk_claims and zk_claims, "ZooKeeper's volumes not kept"


def test_a_rollback_after_finalizing_is_refused(mig):
    need(mig, "kraft")
    refused(mig, mode(mig, "kraft-brokers"), "the migration was finalized")


@pytest.mark.timeout(1800)
def test_kraft_to_kafka_4(mig):
    need(mig, "kraft")
    values = mode(mig, "kraft", image={"tag": ""})
    values["kafka"]["metadata"]["kraftImageTag"] = KAFKA4
    walk(mig, "kraft", values=values)
    mig.figures.steps[-1].name = f"kraft: Kafka {KAFKA3} -> {KAFKA4}"
    mig.phase = "kafka4"


@pytest.mark.timeout(1200)
def test_kafka_4_metadata_version(mig):
    need(mig, "kafka4")
    mig.phase = "kraft"
    walk(mig, "kraft", values=deep_merge(mig.values, {"kafka": {"metadataVersion": "4.4"}}))
    mig.figures.steps[-1].name = "kraft: metadata.version 4.4"
    mig.phase = "kafka4"


# ---- the end --------------------------------------------------------------------------------
def late_user_works(inst: Cluster) -> bool:
    late = getattr(inst, "late", None)
    if late is None:
        return True
    got = access([late])
    return got == {k: (" in group mig-nobody" not in k and "writes mig.retained" not in k)
                   for k in got}  # fmt: skip


@pytest.mark.timeout(900)
def test_every_acknowledged_message_is_consumed(mig):
    if not hasattr(mig, "producer"):
        pytest.skip("the setup failed")
    producer = mig.producer
    try:
        producer.finish(mig, 120)
    finally:
        mig.sampler.stop.set()
        print(f"\n{mig.figures.table(producer)}")
    consumed = _consume_all(mig, STREAM, STREAM_PARTITIONS)
    deadline = time.monotonic() + 2 * GroupConsumer.STALL + 30  # time to replace a stalled one
    while not producer.acked <= mig.consumer.seen and time.monotonic() < deadline:
        time.sleep(0.5)
    mig.consumer.stop.set()
    lost = producer.acked - consumed
    print(
        f"acked {len(producer.acked)}, consumed {len(consumed)} (group consumer "
        f"{len(mig.consumer.seen)}, {len(mig.consumer.failures)} client failures), lost "
        f"{len(lost)}, send errors {len(producer.errors)}; offline max {mig.sampler.max} in "
        f"{mig.sampler.samples} samples ({len(mig.sampler.errors)} unanswered); phase {mig.phase}"
        f"; client faults repaired: producer {producer.client_faults or 0}, consumer "
        f"{mig.consumer.client_faults or 0}"
    )
    assert not lost, f"{len(lost)} acknowledged messages lost"
    unread = producer.acked - mig.consumer.seen
    assert not unread, f"the consumer group never read {len(unread)} acknowledged messages"
    assert producer.errors == []
    assert mig.sampler.max == 0, mig.sampler.offline[:5]
    for topic, spec in DATA.items():
        records = read_all(mig, topic, spec["partitions"])
        assert len(records) == RECORDS, (topic, len(records))
    assert late_user_works(mig)
