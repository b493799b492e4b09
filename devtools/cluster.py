"""A real TLS ZooKeeper ensemble and Kafka brokers as local processes, run from the chart.

The harness renders the chart (`helm template`), creates the certificates with kairn-certs' own
code into folders laid out like its Secrets, and runs each pod of the ZooKeeper and Kafka
StatefulSets as local processes through devtools/podspec.py: the rendered zoo.cfg,
server.properties, stunnel files, command lines and readiness probes, translated only where a
kubelet would (volumes, pod addresses). Each pod gets its own loopback address in a /24 of
127.0.0.0/8 picked at random per run, so pods keep the chart's ports and runs never clash.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agents.pki import issue as pki_issue
from agents.pki.model import Desired
from agents.pki.run import run as run_kairn_certs
from agents.pki.store import DirSecretStore
from devtools import TOOLS
from devtools.addresses import PodAddresses
from devtools.chart import HARNESS_VALUES, deep_merge, helm_template
from devtools.localpod import LocalPod
from devtools.podspec import KAFKA_BIN, PodIdentity, plan_pod, pod_hosts, statefulset_pod_spec
from devtools.procs import Proc
from devtools.waiting import wait_until

KAFKA_LIBS = TOOLS / "kafka" / "libs"

ZK_CLIENT, ZK_QUORUM, ZK_ELECTION = 2181, 2888, 3888
REPLICATION, TLS, SCRAM = 9091, 9093, 9094


@dataclass
class Identity:
    """A client identity's PEM files, and kafka-python settings for it."""

    cn: str
    crt: Path
    key: Path
    ca_file: Path

    def ssl_kwargs(self) -> dict:
        return {
            "security_protocol": "SSL",
            "ssl_cafile": str(self.ca_file),
            "ssl_certfile": str(self.crt),
            "ssl_keyfile": str(self.key),
        }

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.crt), str(self.key))
        return ctx


def agents_identity(folder: Path, cn: str, ca_file: Path, run_dir: Path) -> tuple[Identity, Path]:
    """The agents' identity (a super user) from its Secret's folder, for kafka-python, and the
    same identity as a properties file for Kafka's own (Java) tools."""
    identity = Identity(cn, folder / "user.crt", folder / "user.key", ca_file)
    properties = run_dir / "admin-client.properties"
    properties.write_text(
        "security.protocol=SSL\n"
        "ssl.keystore.type=PKCS12\n"
        f"ssl.keystore.location={folder / 'user.p12'}\n"
        f"ssl.keystore.password={(folder / 'user.password').read_text()}\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={ca_file}\n"
    )
    properties.chmod(0o600)
    return identity, properties


class Pod:
    """One pod of a rendered StatefulSet as processes that live and die together.

    Every ``start()`` plans the pod afresh from the cluster's current rendering, as a new pod
    of the StatefulSet would get the current template."""

    def __init__(self, cluster: LocalCluster, kind: str, ordinal: int):
        self.cluster, self.kind, self.ordinal = cluster, kind, ordinal
        self.name = cluster.pod_name(kind, ordinal)
        self.folder = cluster.run_dir / self.name
        self.local: LocalPod | None = None

    @property
    def containers(self) -> list[Proc]:
        return list(self.local.procs.values()) if self.local else []

    def start(self) -> None:
        if self.running():
            return
        run = self.cluster.plan(self.kind, self.ordinal)
        self.local = LocalPod(run, self.folder, tie_to_parent=self.cluster.tie_to_parent)
        self.local.start()

    def stop(self, grace: float = 60.0) -> None:
        """Graceful, main container first: Kafka runs its controlled shutdown while its
        ZooKeeper sidecar is still up."""
        if self.local:
            self.local.stop(grace)

    def kill(self) -> None:
        if self.local:
            self.local.kill()

    def running(self) -> bool:
        return self.local is not None and self.local.running()

    def ready(self) -> bool:
        """The chart's own readiness probes, run the way a kubelet runs them."""
        return self.local is not None and self.local.ready()

    def logs(self) -> list[Path]:
        return self.local.logs() if self.local else []


@dataclass
class _FolderSources:
    """The harness' sources: rendered ConfigMaps, Secrets as folders, claims in the pod."""

    configmaps: dict[str, dict[str, str]]
    secret_dir: Callable[[str], Path]

    def configmap(self, name: str) -> dict[str, str]:
        return self.configmaps[name]

    def volume(self, volume: dict, pod: PodIdentity, pod_dir: Path) -> Path | None:
        return pod_dir / "volumes" / volume["name"] if "persistentVolumeClaim" in volume else None


@dataclass
class LocalCluster:
    """ZooKeeper nodes and Kafka brokers from the chart; ``start()`` returns when every pod is
    Ready by the chart's probes and every broker is registered."""

    run_dir: Path
    zookeepers: int = 3
    brokers: int = 3
    fullname: str = "kairn"
    namespace: str = "kafka"
    tie_to_parent: bool = True
    values: dict = field(default_factory=dict)  # chart values on top of HARNESS_VALUES
    broker_overrides: dict[str, str] = field(default_factory=dict)  # extra kafka.config entries

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()
        ports = [ZK_CLIENT, ZK_QUORUM, ZK_ELECTION, REPLICATION, TLS, SCRAM]
        self.addresses = PodAddresses.pick(ports)
        self.secrets = self.run_dir / "secrets"
        self.zk_pods = [Pod(self, "zookeeper", i) for i in range(self.zookeepers)]
        self.kafka_pods = [Pod(self, "kafka", i) for i in range(self.brokers)]
        for pod in self.zk_pods + self.kafka_pods:  # in order: ZooKeeper first, then brokers
            self.address(pod.kind, pod.ordinal)
        self._rendered: tuple[str, dict] | None = None

    # ---- names ------------------------------------------------------------------------------
    def pod_name(self, kind: str, i: int) -> str:
        return f"{self.fullname}-{kind}-{i}"

    def address(self, kind: str, i: int) -> str:
        """The pod's own loopback address."""
        return self.addresses.of(self.namespace, self.pod_name(kind, i))

    def secret_dir(self, name: str) -> Path:
        return self.secrets / name

    @property
    def cluster_ca_file(self) -> Path:
        return self.secret_dir(f"{self.fullname}-cluster-ca-cert") / "ca.crt"

    # ---- the chart --------------------------------------------------------------------------
    def chart_values(self) -> dict:
        sizes = {"zookeeper": {"replicas": self.zookeepers}, "kafka": {"replicas": self.brokers}}
        if self.brokers < 3:
            sizes["kafka"].update(defaultReplicationFactor=self.brokers, minInsyncReplicas=1)
        values = deep_merge(deep_merge(HARNESS_VALUES, sizes), self.values)
        if self.broker_overrides:
            values = deep_merge(values, {"kafka": {"config": dict(self.broker_overrides)}})
        return values

    def rendering(self) -> dict:
        """(kind, name) -> manifest, rendered for the current values (cached per values)."""
        key = json.dumps(self.chart_values(), sort_keys=True)
        if self._rendered is None or self._rendered[0] != key:
            docs = helm_template(self.fullname, self.namespace, json.loads(key))
            self._rendered = (key, {(d["kind"], d["metadata"]["name"]): d for d in docs})
        return self._rendered[1]

    def plan(self, kind: str, i: int):
        manifests = self.rendering()
        sts = manifests[("StatefulSet", f"{self.fullname}-{kind}")]
        configmaps = {n: d.get("data", {}) for (k, n), d in manifests.items() if k == "ConfigMap"}
        hosts = {}
        for other, count in (("zookeeper", self.zookeepers), ("kafka", self.brokers)):
            other_sts = manifests[("StatefulSet", f"{self.fullname}-{other}")]
            hosts |= pod_hosts(
                other_sts, count, self.namespace, lambda j, o=other: self.address(o, j)
            )
        identity = PodIdentity(self.pod_name(kind, i), i, self.namespace, self.address(kind, i))
        return plan_pod(
            statefulset_pod_spec(sts),
            identity,
            self.run_dir / identity.name,
            _FolderSources(configmaps, self.secret_dir),
            hosts,
        )

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> None:
        if not KAFKA_LIBS.is_dir():
            raise RuntimeError(f"{KAFKA_LIBS} is missing: run `make setup`")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.make_certs()
        for p in self.zk_pods:
            p.start()
        self.wait_zookeeper_quorum(timeout)
        for p in self.kafka_pods:
            p.start()
        self.wait_up(timeout)
        self._write_state()

    def stop(self, grace: float = 15.0) -> None:
        """The whole cluster: every broker at once, then ZooKeeper. The last broker standing
        cannot hand its leaderships to anyone, so its controlled shutdown would retry for ~50 s
        (10 x 5 s); after ``grace`` it is killed, as a kubelet would after the grace period."""
        for pods in (self.kafka_pods, self.zk_pods):
            with ThreadPoolExecutor(len(pods)) as pool:
                list(pool.map(lambda p: p.stop(grace), pods))

    def kill_all(self) -> None:
        for p in self.kafka_pods + self.zk_pods:
            p.kill()

    def wait_up(self, timeout: float = 180.0) -> None:
        """Every broker registered and every pod Ready. A restarted broker is in ZooKeeper
        before its listeners accept connections, so registration alone is not enough."""
        self.wait_brokers_registered(timeout, expected=set(range(self.brokers)))
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120.0) -> None:
        pods = [p for p in self.zk_pods + self.kafka_pods if p.containers]
        wait_until(
            lambda: all(p.ready() for p in pods), timeout, "every pod Ready by its readiness probes"
        )

    # ---- certificates: kairn-certs' own code, Secrets as folders ------------------------------
    def make_certs(self, now: dt.datetime | None = None) -> None:
        """Run kairn-certs against the folder store; pod addresses are extra SANs of the brokers
        because clients here reach brokers by address instead of DNS name."""
        desired = Desired(
            self.fullname,
            self.namespace,
            self.zookeepers,
            self.brokers,
            kafka_extra_sans=tuple(self.address("kafka", i) for i in range(self.brokers)),
        )
        run_kairn_certs(DirSecretStore(self.secrets), desired, now or dt.datetime.now(dt.UTC))
        self.admin, self.admin_properties = agents_identity(
            self.secret_dir(f"{self.fullname}-agents-cert"),
            f"{self.fullname}-agents",
            self.cluster_ca_file,
            self.run_dir,
        )

    def kafka_tool(self, main_class: str, *args: str, timeout: float = 120) -> str:
        """Run one of Kafka's own command-line tools as the admin identity; return its output."""
        out = subprocess.run(
            [
                str(KAFKA_BIN / "kafka-run-class.sh"),
                main_class,
                "--bootstrap-server",
                self.bootstrap(),
                "--command-config",
                str(self.admin_properties),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "KAFKA_LOG4J_OPTS": "-Dlog4j.configuration=file:/dev/null"},
        )
        if out.returncode != 0:
            raise RuntimeError(f"{main_class} failed: {out.stderr.strip()[-2000:]}")
        return out.stdout

    def client_identity(self, cn: str) -> Identity:
        """A TLS user signed by the clients CA (no ACLs until someone grants them)."""
        ca_dir = self.secret_dir(f"{self.fullname}-clients-ca-cert")
        key_dir = self.secret_dir(f"{self.fullname}-clients-ca")
        ca = pki_issue.signing_ca(
            (ca_dir / "ca.crt").read_bytes(), (key_dir / "ca.key").read_bytes()
        )
        pair = pki_issue.issue_leaf(ca, cn, [], [], dt.datetime.now(dt.UTC), 30)
        folder = self.run_dir / "users"
        folder.mkdir(exist_ok=True)
        (folder / f"{cn}.crt").write_bytes(pki_issue.cert_pem(pair.cert))
        (folder / f"{cn}.key").write_bytes(pki_issue.key_pem(pair.key))
        return Identity(cn, folder / f"{cn}.crt", folder / f"{cn}.key", self.cluster_ca_file)

    # ---- ZooKeeper --------------------------------------------------------------------------
    def zookeeper_mode(self, i: int) -> str | None:
        """'leader', 'follower' or 'standalone' from ``srvr`` over mutual TLS; None if not
        serving."""
        for line in self.four_letter_word(i, "srvr").splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def four_letter_word(self, i: int, word: str) -> str:
        ctx = self.admin.ssl_context()
        ctx.check_hostname = False  # reached by address; the chain is still verified
        with (
            socket.create_connection((self.address("zookeeper", i), ZK_CLIENT), timeout=5) as raw,
            ctx.wrap_socket(raw) as s,
        ):
            s.sendall(word.encode())
            chunks = []
            while data := s.recv(4096):
                chunks.append(data)
        return b"".join(chunks).decode()

    def wait_zookeeper_quorum(self, timeout: float = 120.0) -> None:
        def quorum():
            modes = [self.zookeeper_mode(i) for i, p in enumerate(self.zk_pods) if p.running()]
            return all(modes) and (modes.count("leader") == 1 or modes == ["standalone"])

        wait_until(quorum, timeout, "a ZooKeeper quorum with every running node serving")

    # ---- Kafka ------------------------------------------------------------------------------
    def bootstrap(self, port: int = TLS) -> str:
        return ",".join(f"{self.address('kafka', i)}:{port}" for i in range(self.brokers))

    def admin_client(self, **extra):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap(), **self.admin.ssl_kwargs(), **extra
        )

    def registered_brokers(self) -> set[int]:
        admin = self.admin_client(request_timeout_ms=5000)
        try:
            return {b["broker_id"] for b in admin.describe_cluster()["brokers"]}
        finally:
            admin.close()

    def wait_brokers_registered(
        self, timeout: float = 120.0, expected: set[int] | None = None
    ) -> None:
        want = (
            expected
            if expected is not None
            else {i for i, p in enumerate(self.kafka_pods) if p.running()}
        )
        wait_until(
            lambda: self.registered_brokers() >= want, timeout, f"brokers {sorted(want)} registered"
        )

    def _write_state(self) -> None:
        state = {
            "run_dir": str(self.run_dir),
            "bootstrap_tls": self.bootstrap(TLS),
            "bootstrap_scram": self.bootstrap(SCRAM),
            "zookeeper": [self.address("zookeeper", i) for i in range(self.zookeepers)],
        }
        (self.run_dir / "cluster.json").write_text(json.dumps(state, indent=2))


def rss_bytes(pids: list[int]) -> int:
    """Sum of the resident set sizes of ``pids``, in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += sum(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except FileNotFoundError:
            pass
    return total
