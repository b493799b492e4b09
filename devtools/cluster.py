"""A real TLS ZooKeeper ensemble and Kafka brokers as local processes, wired as in the chart.

Each "pod" gets two loopback addresses out of a per-run /24 in 127.0.0.0/8: a pod address (what
the network sees; the chart's Service and pod DNS names map to it) and a pod-local address (what
``127.0.0.1`` means inside the pod). So every pod uses the chart's own ports (docs/wiring.md)
without clashing with its neighbours or with another run. ZooKeeper binds only its pod-local
address and is reached through its stunnel sidecar with mutual TLS; brokers reach ZooKeeper
through their own sidecar; Kafka's listeners use TLS natively, with the ACL authorizer on.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devtools import testpki
from devtools.procs import Proc

ROOT = Path(__file__).resolve().parent.parent
KAFKA_LIBS = ROOT / ".tools" / "kafka" / "libs"

ZK_CLIENT, ZK_LOCAL_CLIENT, ZK_QUORUM, ZK_ELECTION = 2181, 12181, 2888, 3888
REPLICATION, TLS, SCRAM = 9091, 9093, 9094


def wait_until(check: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll ``check`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # the condition is not met yet; remember why
            last_error = e
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


@dataclass(frozen=True)
class Addresses:
    """The run's loopback /24: ``prefix`` is like '127.83.17.'."""

    prefix: str

    def pod(self, kind: str, i: int) -> str:
        return f"{self.prefix}{(10 if kind == 'zookeeper' else 110) + i}"

    def local(self, kind: str, i: int) -> str:
        return f"{self.prefix}{(60 if kind == 'zookeeper' else 160) + i}"

    @staticmethod
    def pick(ports: list[int]) -> Addresses:
        """A random /24 whose first pod addresses have the ports free (another run may hold one)."""
        for _ in range(50):
            cand = Addresses(f"127.{random.randint(64, 254)}.{random.randint(0, 254)}.")
            if all(_free(cand.pod(k, 0), p) for k in ("zookeeper", "kafka") for p in ports):
                return cand
        raise RuntimeError("no free loopback /24 found")


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


@dataclass
class Identity:
    """A client identity's files, and kafka-python settings for it."""

    cn: str
    files: testpki.LeafFiles
    ca_file: Path

    def ssl_kwargs(self) -> dict:
        return {
            "security_protocol": "SSL",
            "ssl_cafile": str(self.ca_file),
            "ssl_certfile": str(self.files.crt),
            "ssl_keyfile": str(self.files.key),
        }

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.files.crt), str(self.files.key))
        return ctx


class Pod:
    """Containers that live and die together, like a pod's."""

    def __init__(self, name: str, folder: Path, containers: list[Proc]):
        self.name, self.folder, self.containers = name, folder, containers

    def start(self) -> None:
        for c in self.containers:
            if not c.running():
                c.start()

    def stop(self, grace: float = 60.0) -> None:
        """Graceful: SIGTERM to the main container first (Kafka runs its controlled shutdown
        while its ZooKeeper sidecar is still up), then the sidecar."""
        for c in self.containers:
            c.stop(grace)

    def kill(self) -> None:
        for c in self.containers:
            c.kill()

    def running(self) -> bool:
        return all(c.running() for c in self.containers)

    def logs(self) -> list[Path]:
        return [c.log for c in self.containers]


@dataclass
class LocalCluster:
    """ZooKeeper nodes and Kafka brokers; ``start()`` returns when a produce over mTLS works."""

    run_dir: Path
    zookeepers: int = 3
    brokers: int = 3
    fullname: str = "kairn"
    namespace: str = "kafka"
    tie_to_parent: bool = True
    broker_heap: str = "384m"
    zookeeper_heap: str = "96m"
    broker_overrides: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()
        self.addr = Addresses.pick([ZK_CLIENT, ZK_QUORUM, ZK_ELECTION, REPLICATION, TLS, SCRAM])
        self.zk_pods: list[Pod] = []
        self.kafka_pods: list[Pod] = []
        self.certs = self.run_dir / "certs"

    # ---- names, as in the chart -------------------------------------------------------------
    def pod_name(self, kind: str, i: int) -> str:
        return f"{self.fullname}-{kind}-{i}"

    def pod_fqdn(self, kind: str, i: int) -> str:
        svc = "zookeeper-nodes" if kind == "zookeeper" else "kafka-brokers"
        return f"{self.pod_name(kind, i)}.{self.fullname}-{svc}.{self.namespace}.svc.cluster.local"

    def _sans(self, kind: str, i: int) -> tuple[list[str], list[str]]:
        svc = "zookeeper-client" if kind == "zookeeper" else "kafka-bootstrap"
        dns = [
            self.pod_fqdn(kind, i),
            f"{self.fullname}-{svc}",
            f"{self.fullname}-{svc}.{self.namespace}.svc",
            f"{self.fullname}-{svc}.{self.namespace}.svc.cluster.local",
            "localhost",
        ]
        return dns, [self.addr.pod(kind, i), self.addr.local(kind, i), "127.0.0.1"]

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> None:
        if not KAFKA_LIBS.is_dir():
            raise RuntimeError(f"{KAFKA_LIBS} is missing: run `make setup`")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._make_certs()
        self.zk_pods = [self._zookeeper_pod(i) for i in range(self.zookeepers)]
        self.kafka_pods = [self._kafka_pod(i) for i in range(self.brokers)]
        for p in self.zk_pods:
            p.start()
        self.wait_zookeeper_quorum(timeout)
        for p in self.kafka_pods:
            p.start()
        self.wait_brokers_registered(timeout)
        self._write_state()

    def stop(self) -> None:
        for p in self.kafka_pods:
            p.stop()
        for p in self.zk_pods:
            p.stop()

    def kill_all(self) -> None:
        for p in self.kafka_pods + self.zk_pods:
            p.kill()

    # ---- certificates -----------------------------------------------------------------------
    def _make_certs(self) -> None:
        cluster_ca = testpki.new_ca(f"{self.fullname}-cluster-ca")
        clients_ca = testpki.new_ca(f"{self.fullname}-clients-ca")
        self.certs.mkdir(parents=True, exist_ok=True)
        self.cluster_ca_file = self.certs / "cluster-ca.crt"
        self.cluster_ca_file.write_bytes(cluster_ca.pem)
        # brokers trust both CAs for client certificates; ZooKeeper only the cluster CA
        self.broker_trust_file = self.certs / "broker-trust.crt"
        self.broker_trust_file.write_bytes(cluster_ca.pem + clients_ca.pem)
        self.clients_ca = clients_ca
        self.pod_certs: dict[str, testpki.LeafFiles] = {}
        for kind, count in (("zookeeper", self.zookeepers), ("kafka", self.brokers)):
            for i in range(count):
                dns, ips = self._sans(kind, i)
                cn = f"{self.fullname}-{kind}"
                name = self.pod_name(kind, i)
                self.pod_certs[name] = testpki.issue(cluster_ca, cn, dns, ips, self.certs, name)
        agents_cn = f"{self.fullname}-agents"
        self.admin = Identity(
            agents_cn,
            testpki.issue(cluster_ca, agents_cn, [], [], self.certs, agents_cn),
            self.cluster_ca_file,
        )

    def client_identity(self, cn: str) -> Identity:
        """A TLS user signed by the clients CA (no ACLs until someone grants them)."""
        return Identity(
            cn,
            testpki.issue(self.clients_ca, cn, [], [], self.certs / "users", cn),
            self.cluster_ca_file,
        )

    # ---- ZooKeeper --------------------------------------------------------------------------
    def _zookeeper_pod(self, i: int) -> Pod:
        name, myid = self.pod_name("zookeeper", i), i + 1
        folder = self.run_dir / name
        local = self.addr.local("zookeeper", i)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "data" / "myid").write_text(f"{myid}\n")
        servers = "\n".join(
            f"server.{j + 1}={local}:{28880 + j + 1}:{38880 + j + 1}"
            for j in range(self.zookeepers)
        )
        (folder / "zoo.cfg").write_text(
            f"""tickTime=2000
initLimit=10
syncLimit=5
dataDir={folder / "data"}
clientPort={ZK_LOCAL_CLIENT}
clientPortAddress={local}
admin.enableServer=false
4lw.commands.whitelist=srvr,stat,ruok,mntr
reconfigEnabled=false
standaloneEnabled={"true" if self.zookeepers == 1 else "false"}
{servers}
"""
        )
        zk = self._java(
            "zookeeper",
            folder,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            [str(folder / "zoo.cfg")],
            self.zookeeper_heap,
        )
        cert = self.pod_certs[name]
        sections = [
            self._stunnel_server(
                "client", self.addr.pod("zookeeper", i), ZK_CLIENT, local, ZK_LOCAL_CLIENT
            ),
            self._stunnel_server(
                "quorum", self.addr.pod("zookeeper", i), ZK_QUORUM, local, 28880 + myid
            ),
            self._stunnel_server(
                "election", self.addr.pod("zookeeper", i), ZK_ELECTION, local, 38880 + myid
            ),
        ]
        for j in range(self.zookeepers):
            if j == i:
                continue
            peer, check = self.addr.pod("zookeeper", j), self.pod_fqdn("zookeeper", j)
            sections.append(
                self._stunnel_client(
                    f"quorum-{j + 1}", local, 28880 + j + 1, [f"{peer}:{ZK_QUORUM}"], check
                )
            )
            sections.append(
                self._stunnel_client(
                    f"election-{j + 1}", local, 38880 + j + 1, [f"{peer}:{ZK_ELECTION}"], check
                )
            )
        tls = self._stunnel(folder, cert, self.cluster_ca_file, sections)
        return Pod(name, folder, [zk, tls])

    def zookeeper_mode(self, i: int) -> str | None:
        """'leader', 'follower' or 'standalone' from ``srvr`` over mutual TLS; None if not serving."""
        out = self.four_letter_word(i, "srvr")
        for line in out.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def four_letter_word(self, i: int, word: str) -> str:
        ctx = self.admin.ssl_context()
        ctx.check_hostname = False  # we connect by address; the chain is still verified
        with socket.create_connection((self.addr.pod("zookeeper", i), ZK_CLIENT), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(word.encode())
                chunks = []
                while data := s.recv(4096):
                    chunks.append(data)
        return b"".join(chunks).decode()

    def wait_zookeeper_quorum(self, timeout: float = 120.0) -> None:
        def quorum():
            modes = [
                self.zookeeper_mode(i) if p.running() else None for i, p in enumerate(self.zk_pods)
            ]
            running = [m for p, m in zip(self.zk_pods, modes, strict=True) if p.running()]
            return all(running) and (modes.count("leader") == 1 or modes == ["standalone"])

        wait_until(quorum, timeout, "a ZooKeeper quorum with every running node serving")

    # ---- Kafka ------------------------------------------------------------------------------
    def broker_properties(self, i: int) -> dict[str, str]:
        pod, local = self.addr.pod("kafka", i), self.addr.local("kafka", i)
        cert = self.pod_certs[self.pod_name("kafka", i)]
        min_isr = "2" if self.brokers >= 3 else "1"
        rf = str(min(3, self.brokers))
        props = {
            "broker.id": str(i),
            "zookeeper.connect": f"{local}:{ZK_CLIENT}",
            "zookeeper.connection.timeout.ms": "30000",
            "log.dirs": str(self.run_dir / self.pod_name("kafka", i) / "data"),
            "listeners": f"REPLICATION://{pod}:{REPLICATION},TLS://{pod}:{TLS},SCRAM://{pod}:{SCRAM}",
            "advertised.listeners": f"REPLICATION://{pod}:{REPLICATION},TLS://{pod}:{TLS},SCRAM://{pod}:{SCRAM}",
            "listener.security.protocol.map": "REPLICATION:SSL,TLS:SSL,SCRAM:SASL_SSL",
            "inter.broker.listener.name": "REPLICATION",
            "listener.name.replication.ssl.client.auth": "required",
            "listener.name.tls.ssl.client.auth": "required",
            "listener.name.scram.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.scram.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(cert.p12),
            "ssl.keystore.password": cert.password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.broker_trust_file),
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
            "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{self.fullname}-kafka;User:{self.fullname}-agents",
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "auto.create.topics.enable": "false",
            "unclean.leader.election.enable": "false",
            # small and quick for a 2-core machine; the chart keeps Kafka's defaults
            "offsets.topic.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
        }
        props.update(self.broker_overrides)
        return props

    def _kafka_pod(self, i: int) -> Pod:
        name = self.pod_name("kafka", i)
        folder = self.run_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        self.write_broker_config(i)
        kafka = self._java(
            "kafka", folder, "kafka.Kafka", [str(folder / "server.properties")], self.broker_heap
        )
        zks = [f"{self.addr.pod('zookeeper', j)}:{ZK_CLIENT}" for j in range(self.zookeepers)]
        check = f"{self.fullname}-zookeeper-client.{self.namespace}.svc"
        sidecar = self._stunnel_client(
            "zookeeper", self.addr.local("kafka", i), ZK_CLIENT, zks, check
        )
        tls = self._stunnel(folder, self.pod_certs[name], self.cluster_ca_file, [sidecar])
        return Pod(name, folder, [kafka, tls])

    def write_broker_config(self, i: int) -> None:
        props = self.broker_properties(i)
        path = self.run_dir / self.pod_name("kafka", i) / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def bootstrap(self, port: int = TLS) -> str:
        return ",".join(f"{self.addr.pod('kafka', i)}:{port}" for i in range(self.brokers))

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

    # ---- process helpers --------------------------------------------------------------------
    def _java(self, role: str, folder: Path, main: str, args: list[str], heap: str) -> Proc:
        log4j = folder / "log4j.properties"
        log4j.write_text(_LOG4J)
        argv = [
            shutil.which("java") or "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{log4j}",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp",
            f"{KAFKA_LIBS}/*",
            main,
            *args,
        ]
        return Proc(
            f"{folder.name}/{role}",
            argv,
            folder / f"{role}.log",
            cwd=folder,
            tie_to_parent=self.tie_to_parent,
            pidfile=folder / f"{role}.pid",
        )

    def _stunnel(
        self, folder: Path, cert: testpki.LeafFiles, ca: Path, sections: list[str]
    ) -> Proc:
        conf = folder / "stunnel.conf"
        conf.write_text(
            f"""foreground = yes
pid =
debug = notice
output = /dev/stdout
cert = {cert.crt}
key = {cert.key}
CAfile = {ca}
verifyChain = yes
requireCert = yes
sslVersionMin = TLSv1.2
"""
            + "".join(sections)
        )
        return Proc(
            f"{folder.name}/tls-sidecar",
            [shutil.which("stunnel") or "stunnel", str(conf)],
            folder / "tls-sidecar.log",
            tie_to_parent=self.tie_to_parent,
            pidfile=folder / "tls-sidecar.pid",
        )

    @staticmethod
    def _stunnel_server(name: str, host: str, port: int, to_host: str, to_port: int) -> str:
        return f"\n[{name}]\naccept = {host}:{port}\nconnect = {to_host}:{to_port}\n"

    @staticmethod
    def _stunnel_client(
        name: str, host: str, port: int, targets: list[str], check_host: str
    ) -> str:
        connects = "".join(f"connect = {t}\n" for t in targets)
        return f"\n[{name}]\nclient = yes\naccept = {host}:{port}\n{connects}checkHost = {check_host}\n"

    def _write_state(self) -> None:
        state = {
            "run_dir": str(self.run_dir),
            "bootstrap_tls": self.bootstrap(TLS),
            "bootstrap_scram": self.bootstrap(SCRAM),
            "zookeeper": [self.addr.pod("zookeeper", i) for i in range(self.zookeepers)],
        }
        (self.run_dir / "cluster.json").write_text(json.dumps(state, indent=2))


_LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.zookeeper=INFO
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
"""


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
