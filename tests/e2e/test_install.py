"""The whole chart installed with helm on a control plane whose pods really run.

A control plane of its own (no kwok nodes) with process-backed nodes (devtools/kube/node.py):
`helm install` runs the PKI hook as a Job, the StatefulSet controller creates the ZooKeeper and
Kafka pods, the node runs them as processes with the chart's configuration, and the agents run
against the API server with their ServiceAccount's token. Then what a user does: ConfigMaps
become topics and users, `helm test`, `helm upgrade` (rolled by the post-upgrade hook through
the real StatefulSet controller while a producer runs), a refused upgrade (scaling: test_scaling.py).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from devtools.chart import HARNESS_VALUES, deep_merge
from devtools.kube import DEFAULT_BIN, ROOT
from devtools.kube.controlplane import ControlPlane
from devtools.waiting import wait_until
from tests.conftest import new_run_dir

from .helpers import kubectl, wait_for

RELEASE = "kairn"
os.environ.setdefault("KAIRN_NODE_RUNTIME", "auto")  # the kairn image's containers with podman


class Install:
    def __init__(self, cp: ControlPlane, namespace: str, run_dir: Path):
        self.cp, self.ns, self.run_dir = cp, namespace, run_dir
        self.kubeconfig = cp.kubeconfig
        self.values: dict = json.loads(json.dumps(HARNESS_VALUES))
        self.certs = run_dir / "client"

    @property
    def bootstrap(self) -> str:
        return f"{RELEASE}-kafka-bootstrap.{self.ns}.svc.cluster.local:9093"

    @property
    def bootstrap_scram(self) -> str:
        return f"{RELEASE}-kafka-bootstrap.{self.ns}.svc.cluster.local:9094"

    def helm(self, *args: str, values: dict | None = None, timeout: float = 1200):
        argv = [str(DEFAULT_BIN / "helm"), *args, "--namespace", self.ns]
        if args[0] in ("install", "upgrade"):
            vfile = self.run_dir / f"values-{uuid.uuid4().hex[:6]}.yaml"
            vfile.write_text(yaml.safe_dump(values if values is not None else self.values))
            argv += ["--values", str(vfile)]
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )

    def kubectl(self, *args: str, check: bool = True):
        return kubectl(self.kubeconfig, "-n", self.ns, *args, check=check)

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def secret(self, name: str, *where: str) -> dict[str, bytes]:
        data = self.get("secret", name, *where)["data"]
        return {k: base64.b64decode(v) for k, v in data.items()}

    def ssl(self) -> dict:
        """kafka-python TLS settings as the agents' identity (a super user), host names
        verified: the node's DNS block resolves the chart's service and pod names."""
        if not self.certs.exists():
            self.certs.mkdir()
            for key, value in self.secret(f"{RELEASE}-agents-cert").items():
                (self.certs / key).write_bytes(value)
        return {
            "security_protocol": "SSL",
            "ssl_cafile": str(self.certs / "ca.crt"),
            "ssl_certfile": str(self.certs / "user.crt"),
            "ssl_keyfile": str(self.certs / "user.key"),
        }

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=self.bootstrap, **self.ssl())

    def apply(self, doc: dict) -> None:
        path = self.run_dir / f"{doc['metadata']['name']}-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(doc))
        kubectl(self.kubeconfig, "apply", "-f", str(path))

    def declare(self, kind: str, name: str, spec: dict, namespace: str | None = None) -> None:
        where = ("-n", namespace) if namespace else ()
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": namespace or self.ns,
                    "labels": {"kairn.dev/cluster": RELEASE, "kairn.dev/type": kind},
                },
                "data": {"spec": yaml.safe_dump(spec)},
            }
        )
        wait_for(
            f"{kind} {name} Ready",
            lambda: (
                self.get("configmap", name, *where)["metadata"]["labels"].get("kairn.dev/state")
                == "Ready"
            ),
            timeout=120,
        )

    def pods(self, component: str) -> list[dict]:
        sel = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        return self.get("pods", "-l", sel)["items"]

    def pod_dirs(self, pod: str) -> list[Path]:
        return sorted((self.cp.run_dir / "node" / "pods" / self.ns).glob(f"{pod}.*"))


def _ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])
    )


@pytest.fixture(scope="module")
def install() -> Install:
    run_dir = new_run_dir("install")
    cp = ControlPlane(run_dir / "kube", nodes=0, process_nodes=3, die_with_parent=True)
    cp.start()
    inst = Install(cp, f"kafka-{uuid.uuid4().hex[:6]}", run_dir)
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


def test_install_runs_the_pki_hook_and_every_pod_for_real(install):
    secrets = {s["metadata"]["name"] for s in install.get("secrets")["items"]}
    assert {
        f"{RELEASE}-kafka-brokers",
        f"{RELEASE}-cluster-ca",
        f"{RELEASE}-agents-cert",
    } <= secrets
    certs_logs = [d for d in (install.cp.run_dir / "node" / "pods" / install.ns).glob("*certs*")]
    assert certs_logs, "the PKI hook's pod never ran on the node"
    for component, count in (("zookeeper", 3), ("kafka", 3), ("agents", 1)):
        pods = install.pods(component)
        assert len(pods) == count and all(_ready(p) for p in pods), component
    # each broker is a real process with its own address, and all three are registered
    admin = install.admin()
    try:
        assert {b["broker_id"] for b in admin.describe_cluster()["brokers"]} == {0, 1, 2}
    finally:
        admin.close()
    ips = {p["status"]["podIP"] for p in install.pods("kafka")}
    assert len(ips) == 3 and all(ip.startswith("127.") for ip in ips)


def test_a_topic_configmap_becomes_a_real_topic(install):
    install.declare("topic", "e2e.orders", {"partitions": 4, "replicas": 3})
    admin = install.admin()
    try:
        # Ready means the controller created it; brokers learn of it a moment later
        (topic,) = wait_until(
            lambda: [t for t in admin.describe_topics(["e2e.orders"]) if t["partitions"]],
            60,
            "e2e.orders in the brokers' metadata",
        )
    finally:
        admin.close()
    assert len(topic["partitions"]) == 4
    assert all(len(p["replica_nodes"]) == 3 for p in topic["partitions"])


def test_a_user_configmap_gives_a_secret_whose_password_logs_in(install):
    install.declare("topic", "e2e.billing", {"partitions": 1, "replicas": 3})
    install.declare(
        "user",
        "billing",
        {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [
                    {
                        "resource": {"type": "topic", "name": "e2e.billing"},
                        "operations": ["Write", "Describe"],
                    }
                ],
            },
        },
    )
    password = install.secret("billing")["password"].decode()
    producer = KafkaProducer(
        bootstrap_servers=install.bootstrap_scram,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="billing",
        sasl_plain_password=password,
        ssl_cafile=install.ssl()["ssl_cafile"],
        acks="all",
    )
    try:
        meta = producer.send("e2e.billing", b"paid").get(timeout=60)
        assert meta.offset >= 0
    finally:
        producer.close()


def test_helm_test_passes(install):
    out = install.helm("test", RELEASE, "--timeout", "5m")
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_tenant_added_by_helm_upgrade_restarts_nothing(install):
    """A team's namespace becomes a tenant with `helm upgrade`: its topic and user are
    reconciled by the running agents (nothing restarts), and the user's Secret, in the team's
    namespace, is all the team needs to connect."""
    team = f"team-{uuid.uuid4().hex[:4]}"
    install.kubectl("create", "namespace", team)

    def running() -> dict[str, int]:
        return {
            p["metadata"]["uid"]: sum(c["restartCount"] for c in p["status"]["containerStatuses"])
            for component in ("zookeeper", "kafka", "agents")
            for p in install.pods(component)
        }

    before = running()
    values = deep_merge(install.values, {"tenants": [{"namespace": team}]})
    out = install.helm(
        "upgrade", RELEASE, str(ROOT / "chart"), "--wait", "--timeout", "10m", values=values
    )
    assert out.returncode == 0, out.stderr
    install.values = values
    topic, user = f"{team}.events", f"{team}.app"
    install.declare("topic", topic, {"partitions": 1, "replicas": 3}, namespace=team)
    acl = {"resource": {"type": "topic", "name": f"{team}.", "patternType": "prefix"},
           "operations": ["Write", "Describe"]}  # fmt: skip
    install.declare(
        "user",
        user,
        {"authentication": {"type": "scram-sha-512"},
         "authorization": {"type": "simple", "acls": [acl]}},
        namespace=team,
    )  # fmt: skip
    assert running() == before
    secret = install.secret(user, "-n", team)
    (install.run_dir / f"{team}-ca.crt").write_bytes(secret["ca.crt"])
    producer = KafkaProducer(
        bootstrap_servers=install.bootstrap_scram,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=user,
        sasl_plain_password=secret["password"].decode(),
        ssl_cafile=str(install.run_dir / f"{team}-ca.crt"),
        acks="all",
    )
    try:
        assert producer.send(topic, b"from the team").get(timeout=60).offset >= 0
    finally:
        producer.close()


def _kill_broker(install: Install, ordinal: int) -> None:
    (pod_dir,) = install.pod_dirs(f"{RELEASE}-kafka-{ordinal}")
    os.killpg(int((pod_dir / "kafka.pid").read_text()), signal.SIGKILL)


def test_an_upgrade_while_a_broker_is_down_is_refused_and_changes_nothing(install):
    victim = f"{RELEASE}-kafka-1"
    hold = install.cp.run_dir / "node" / "hold" / install.ns / victim
    hold.parent.mkdir(parents=True, exist_ok=True)
    sts_before = install.get("statefulset", f"{RELEASE}-kafka")
    hold.touch()
    try:
        _kill_broker(install, 1)
        wait_for(
            f"{victim} not Ready",
            lambda: not _ready(install.get("pod", victim)),
            timeout=60,
        )
        changed = deep_merge(install.values, {"kafka": {"config": {"log.cleaner.threads": 2}}})
        out = install.helm(
            "upgrade", RELEASE, str(ROOT / "chart"), "--wait", "--timeout", "5m", values=changed
        )
    finally:
        hold.unlink()
    assert out.returncode != 0
    assert "preflight" in out.stderr, out.stderr
    sts_after = install.get("statefulset", f"{RELEASE}-kafka")
    assert sts_after["metadata"]["generation"] == sts_before["metadata"]["generation"]
    assert sts_after["status"]["updateRevision"] == sts_before["status"]["updateRevision"]
    # the broker comes back once released, and the cluster heals
    wait_until(lambda: _ready(install.get("pod", victim)), 180, f"{victim} Ready again")


def restart_ended_refresh_loop(cluster) -> str | None:
    """kafka-python 3.0.12's metadata refresh loop is a task that ends for good, silently,
    when an exception escapes it (one way: it awaits an in-flight refresh outside its try).
    The client then sends to the leaders it last knew for as long as NotLeaderForPartition
    names no newer one: once seen for minutes while every broker named the new leader. The
    client's fault, not Kafka's: the loop is restarted, and the fault returned to be counted."""
    loop = getattr(cluster, "_refresh_loop_future", None)
    if loop is None or not loop.is_done:
        return None
    cluster._refresh_loop_future = None
    cluster.start_refresh_loop()
    return f"metadata refresh loop ended: {loop.exception!r}"


class _Producer(threading.Thread):
    """acks=all, idempotent, numbered messages, the whole time."""

    def __init__(self, install: Install, topic: str):
        super().__init__(daemon=True)
        self.topic, self.acked, self.errors = topic, set(), []
        self.client_faults: list[str] = []  # the client's own, repaired: see watch_client()
        self.stop = threading.Event()
        self.producer = KafkaProducer(
            bootstrap_servers=install.bootstrap,
            acks="all",
            enable_idempotence=True,
            retries=2**31 - 1,
            delivery_timeout_ms=600_000,
            request_timeout_ms=30_000,
            # kafka-python 3.0 was once seen retrying NotLeaderForPartition against a stale
            # leader for minutes after a roll whose partitions were all led and in sync again:
            # refresh metadata often, so the client follows the roll as a Java client would
            metadata_max_age_ms=5_000,
            **install.ssl(),
        )

    def run(self) -> None:
        self.send_until_stopped()
        self.producer.flush(600)
        self.producer.close()

    def watch_client(self) -> None:
        if fault := restart_ended_refresh_loop(self.producer._metadata):
            self.client_faults.append(fault)

    def send_until_stopped(self) -> None:
        n = 0
        while not self.stop.wait(0.05):  # about 20 messages a second until told to stop
            self.watch_client()
            value = str(n).encode()
            future = self.producer.send(self.topic, value)
            future.add_callback(lambda _, v=value: self.acked.add(v))
            future.add_errback(lambda e: self.errors.append(repr(e)))
            n += 1


def _consume_all(install: Install, topic: str, partitions: int) -> set[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=install.bootstrap, **install.ssl())
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    seen: set[bytes] = set()
    deadline = time.monotonic() + 120
    while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            seen.update(r.value for r in records)
    consumer.close()
    return seen


def test_an_upgrade_rolls_brokers_controller_last_and_loses_nothing(install):
    install.declare(
        "topic",
        "e2e.roll",
        {"partitions": 3, "replicas": 3, "config": {"min.insync.replicas": 2}},
    )
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in install.pods("kafka")}
    producer = _Producer(install, "e2e.roll")
    producer.start()
    wait_until(lambda: len(producer.acked) > 20, 60, "the producer's first acks")
    # a static setting: a dynamic one is applied without restarts (tests/integration covers that)
    install.values = deep_merge(install.values, {"kafka": {"config": {"queued.max.requests": 400}}})
    started = time.monotonic()
    out = install.helm("upgrade", RELEASE, str(ROOT / "chart"), "--wait", "--timeout", "20m")
    roll_seconds = time.monotonic() - started
    producer.stop.set()
    producer.join(600)
    assert out.returncode == 0, out.stderr
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in install.pods("kafka")}
    assert all(after[name] != uid for name, uid in before.items()), "a broker was not restarted"

    lines = []
    for pod_dir in (install.cp.run_dir / "node" / "pods" / install.ns).glob(f"{RELEASE}-roller-*"):
        for log in pod_dir.glob("*.log"):
            lines += [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    restarts = [x for x in lines if x.get("step") == "restart" and x.get("component") == "kafka"]
    assert [x["controller"] for x in restarts] == [False, False, True], restarts

    consumed = _consume_all(install, "e2e.roll", 3)
    assert producer.errors == []
    lost = producer.acked - consumed
    print(f"roll: {roll_seconds:.1f} s, {len(producer.acked)} acked, {len(lost)} lost")
    assert not lost, f"{len(lost)} acknowledged messages lost"
