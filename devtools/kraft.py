"""A local KRaft cluster from Kafka 4's jars: 3 controllers and 3 brokers as local processes.

A stand-in until the chart renders KRaft mode (issue 19): the chart has no controller
StatefulSet yet, so this module writes the controllers' configuration itself, and the brokers'
from the chart's ZooKeeper-mode server.properties with ZooKeeper and AclAuthorizer swapped for
the KRaft settings. When the chart renders KRaft, devtools/cluster.py runs that rendering as
it runs the ZooKeeper one, and this module goes.

What it keeps from the ZooKeeper harness (devtools/cluster.py, whose helpers it reuses): the
certificates of kairn-certs' own code in folders laid out like its Secrets, one loopback
address per node in a /24 picked at random per run (so every node keeps the chart's ports),
the chart's client listeners (REPLICATION 9091, TLS 9093, SCRAM 9094 with SCRAM-SHA-512),
mutual TLS everywhere else, the same super users, and the processes of devtools/procs.py.

KRaft's own parts:
- dedicated controllers (``process.roles=controller``), not combined nodes: the chart's
  default, and the roll order (controllers, then brokers) needs them apart;
- node ids: brokers keep the pod index (0, 1, 2, as ``broker.id`` today); controllers are
  ``CONTROLLER_ID_BASE`` + index, so the two never collide;
- the CONTROLLER listener (9090) with mutual TLS; controllers present certificates of the
  cluster CA with the brokers' CN, so the brokers' and controllers' principal is the one
  super user ``User:<fullname>-kafka`` that StandardAuthorizer lets through;
- a dynamic quorum (KIP-853): ``controller.quorum.bootstrap.servers``, the controllers
  formatted with ``--initial-controllers``, the brokers with ``--no-initial-controllers``;
- storage formatted once per run with one cluster id: a node whose data folder already holds
  meta.properties is never formatted again, so a restarted node keeps its identity. SCRAM
  credentials need no bootstrapping (``kafka-storage format --add-scram``): brokers talk to
  each other and to the controllers over mutual TLS, and SCRAM users are created by the user
  agent through the brokers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agents.pki import issue as pki_issue
from agents.pki.model import Desired
from agents.pki.run import run as run_kairn_certs
from agents.pki.store import DirSecretStore
from devtools import TOOLS
from devtools.addresses import PodAddresses
from devtools.chart import HARNESS_VALUES, helm_template
from devtools.cluster import REPLICATION, SCRAM, TLS, agents_identity
from devtools.podspec import KAFKA_BIN
from devtools.procs import Proc
from devtools.waiting import wait_until

KAFKA4_LIBS = TOOLS / "kafka4" / "libs"
CONTROLLER = 9090
CONTROLLER_ID_BASE = 100
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

# The chart's broker settings that belong to ZooKeeper mode, or that this module sets per node.
_NOT_KRAFT = ("zookeeper.", "authorizer.class.name", "log.dirs", "listeners")

# Broker settings of the chart that a KRaft controller reads instead (Kafka 4 warns on brokers).
_TOPIC_DEFAULTS = ("num.partitions", "default.replication.factor")

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
"""


class NodeExited(RuntimeError):
    """A controller or broker process ended while the cluster was expected up."""


def kafka_uuid() -> str:
    """A random id as Kafka writes one (Uuid.randomUuid: 16 bytes, URL-safe base64, no
    padding, never starting with '-'): cluster ids and directory ids."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def parse_properties(text: str) -> dict[str, str]:
    """key=value lines (the chart writes no continuation lines)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def render_properties(props: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in sorted(props.items()))


@dataclass
class Node:
    """One controller or broker: its folder, server.properties and process."""

    cluster: KRaftCluster
    role: str  # "controller" or "broker"
    index: int
    proc: Proc | None = field(default=None, repr=False)

    @property
    def node_id(self) -> int:
        return self.index + (CONTROLLER_ID_BASE if self.role == "controller" else 0)

    @property
    def name(self) -> str:
        kind = "controller" if self.role == "controller" else "kafka"
        return f"{self.cluster.fullname}-{kind}-{self.index}"

    @property
    def address(self) -> str:
        return self.cluster.addresses.of(self.cluster.namespace, self.name)

    @property
    def folder(self) -> Path:
        return self.cluster.run_dir / self.name

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def config(self) -> Path:
        return self.folder / "server.properties"

    def formatted(self) -> bool:
        return (self.data / "meta.properties").is_file()

    def start(self) -> None:
        if self.proc is None:
            heap = "-Xms192m -Xmx192m" if self.role == "controller" else "-Xms384m -Xmx384m"
            self.proc = Proc(
                self.name,
                [str(KAFKA_BIN / "kafka-run-class.sh"), "kafka.Kafka", str(self.config)],
                self.folder / "kafka.log",
                env=self.cluster.java_env(heap),
                tie_to_parent=self.cluster.tie_to_parent,
            )
        self.proc.start()

    def stop(self, grace: float = 30.0) -> None:
        if self.proc:
            self.proc.stop(grace)

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()

    def running(self) -> bool:
        return self.proc is not None and self.proc.running()


@dataclass
class KRaftCluster:
    """Controllers and brokers of Kafka 4 in KRaft mode; ``start()`` formats the storage of
    nodes that have none and returns when every broker is registered and unfenced."""

    run_dir: Path
    controllers: int = 3
    brokers: int = 3
    fullname: str = "kairn"
    namespace: str = "kafka"
    tie_to_parent: bool = True
    release_version: str | None = None  # kafka-storage --release-version (None: the latest)

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()
        self.addresses = PodAddresses.pick([CONTROLLER, REPLICATION, TLS, SCRAM])
        self.secrets = self.run_dir / "secrets"
        self.controller_nodes = [Node(self, "controller", i) for i in range(self.controllers)]
        self.broker_nodes = [Node(self, "broker", i) for i in range(self.brokers)]
        for n in self.nodes:  # in order: the controllers' addresses first
            _ = n.address
        state = self.run_dir / "kraft.json"
        self.cluster_id = (
            json.loads(state.read_text())["cluster_id"] if state.is_file() else kafka_uuid()
        )

    @property
    def nodes(self) -> list[Node]:
        return self.controller_nodes + self.broker_nodes

    def secret_dir(self, name: str) -> Path:
        return self.secrets / name

    @property
    def cluster_ca_file(self) -> Path:
        return self.secret_dir(f"{self.fullname}-cluster-ca-cert") / "ca.crt"

    @property
    def controller_secret(self) -> Path:
        return self.secret_dir(f"{self.fullname}-kafka-controllers")

    def java_env(self, heap: str, log_level: str = "INFO") -> dict[str, str]:
        log4j = self.run_dir / f"log4j2-{log_level.lower()}.properties"
        if not log4j.is_file():
            log4j.write_text(_LOG4J2.format(level=log_level))
        return {
            "KAIRN_KAFKA_LIBS": str(KAFKA4_LIBS),
            "KAFKA_HEAP_OPTS": heap,
            "KAFKA_LOG4J_OPTS": f"-Dlog4j2.configurationFile={log4j}",
        }

    # ---- certificates: kairn-certs' own code, Secrets as folders ------------------------------
    def make_certs(self, now: dt.datetime | None = None) -> None:
        """kairn-certs for the CAs, the brokers and the agents' identity (no ZooKeeper); the
        controllers' leaves from the same cluster CA, laid out like a component Secret."""
        now = now or dt.datetime.now(dt.UTC)
        desired = Desired(
            self.fullname,
            self.namespace,
            zookeeper_replicas=0,
            kafka_replicas=self.brokers,
            kafka_extra_sans=tuple(n.address for n in self.broker_nodes),
        )
        run_kairn_certs(DirSecretStore(self.secrets), desired, now)
        ca = pki_issue.signing_ca(
            self.cluster_ca_file.read_bytes(),
            (self.secret_dir(f"{self.fullname}-cluster-ca") / "ca.key").read_bytes(),
        )
        folder = self.controller_secret
        folder.mkdir(parents=True, exist_ok=True)
        for n in self.controller_nodes:
            if (folder / f"{n.name}.p12").is_file():
                continue
            pair = pki_issue.issue_leaf(
                ca, f"{self.fullname}-kafka", [n.name, "localhost"], [n.address], now, 30
            )
            password = pki_issue.new_password()
            (folder / f"{n.name}.crt").write_bytes(pki_issue.cert_pem(pair.cert))
            (folder / f"{n.name}.key").write_bytes(pki_issue.key_pem(pair.key))
            (folder / f"{n.name}.p12").write_bytes(
                pki_issue.keystore_p12(n.name, pair, [ca.cert], password)
            )
            (folder / f"{n.name}.password").write_bytes(password)
        self.admin, self.admin_properties = agents_identity(
            self.secret_dir(f"{self.fullname}-agents-cert"),
            f"{self.fullname}-agents",
            self.cluster_ca_file,
            self.run_dir,
        )

    # ---- configuration ----------------------------------------------------------------------
    def chart_broker_properties(self) -> dict[str, str]:
        """The chart's broker settings (ZooKeeper mode) without what KRaft replaces, the
        mount paths of its Secrets turned into this run's folders."""
        docs = helm_template(self.fullname, self.namespace, HARNESS_VALUES)
        (text,) = [
            d["data"]["server.properties"]
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{self.fullname}-kafka-config"
        ]
        props = {k: v for k, v in parse_properties(text).items() if not k.startswith(_NOT_KRAFT)}
        mounts = {
            "/etc/kafka/cluster-ca": str(self.secret_dir(f"{self.fullname}-cluster-ca-cert")),
            "/etc/kafka/clients-ca": str(self.secret_dir(f"{self.fullname}-clients-ca-cert")),
        }
        for key, value in props.items():
            for mount, folder in mounts.items():
                value = value.replace(mount, folder)
            props[key] = value
        return props

    def quorum_bootstrap(self) -> str:
        return ",".join(f"{n.address}:{CONTROLLER}" for n in self.controller_nodes)

    def _common(self, node: Node, secret: Path) -> dict[str, str]:
        return {
            "node.id": str(node.node_id),
            "process.roles": node.role,
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.bootstrap.servers": self.quorum_bootstrap(),
            "log.dirs": str(node.data),
            "authorizer.class.name": STANDARD_AUTHORIZER,
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{self.fullname}-kafka;User:{self.fullname}-agents",
            "ssl.client.auth": "required",
            "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(secret / f"{node.name}.p12"),
            "ssl.keystore.password": (secret / f"{node.name}.password").read_text(),
        }

    def properties(self, node: Node, base: dict[str, str]) -> dict[str, str]:
        if node.role == "controller":
            # in KRaft mode the controller applies these defaults to CreateTopics, not the broker
            defaults = {k: base[k] for k in _TOPIC_DEFAULTS if k in base}
            return {
                **defaults,
                **self._common(node, self.controller_secret),
                "listeners": f"CONTROLLER://{node.address}:{CONTROLLER}",
                "advertised.listeners": f"CONTROLLER://{node.address}:{CONTROLLER}",
                "listener.security.protocol.map": "CONTROLLER:SSL",
                "ssl.truststore.type": "PEM",  # controllers trust the cluster CA alone
                "ssl.truststore.location": str(self.cluster_ca_file),
            }
        listeners = ",".join(
            f"{name}://{node.address}:{port}"
            for name, port in (("REPLICATION", REPLICATION), ("TLS", TLS), ("SCRAM", SCRAM))
        )
        props = {**base, **self._common(node, self.secret_dir(f"{self.fullname}-kafka-brokers"))}
        props.update(
            {
                "listeners": listeners,
                "advertised.listeners": listeners,
                "listener.security.protocol.map": (
                    f"CONTROLLER:SSL,{base['listener.security.protocol.map']}"
                ),
            }
        )
        return props

    # ---- storage ----------------------------------------------------------------------------
    def format_storage(self) -> None:
        """kafka-storage format for every node without meta.properties, all with this run's
        cluster id; the controllers with the initial voter set (each with its directory id)."""
        todo = [n for n in self.nodes if not n.formatted()]
        if not todo:
            return
        voters = ",".join(
            f"{n.node_id}@{n.address}:{CONTROLLER}:{kafka_uuid()}" for n in self.controller_nodes
        )
        env = {**os.environ, **self.java_env("-Xmx128m", "WARN")}

        def fmt(node: Node) -> None:
            quorum = (
                ["--initial-controllers", voters]
                if node.role == "controller"
                else ["--no-initial-controllers"]
            )
            out = subprocess.run(
                [
                    str(KAFKA_BIN / "kafka-run-class.sh"),
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    self.cluster_id,
                    "--config",
                    str(node.config),
                    *quorum,
                    *(["--release-version", self.release_version] if self.release_version else []),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            if out.returncode != 0:
                raise RuntimeError(f"kafka-storage format of {node.name} failed: {out.stderr}")

        with ThreadPoolExecutor(2) as pool:  # two cores: more JVMs at once only queue
            list(pool.map(fmt, todo))

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> None:
        if not KAFKA4_LIBS.is_dir():
            raise RuntimeError(f"{KAFKA4_LIBS} is missing: run `make setup`")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.make_certs()
        base = self.chart_broker_properties()
        for n in self.nodes:
            n.folder.mkdir(parents=True, exist_ok=True)
            n.config.write_text(render_properties(self.properties(n, base)))
            n.config.chmod(0o600)
        self.format_storage()
        (self.run_dir / "kraft.json").write_text(
            json.dumps(
                {
                    "cluster_id": self.cluster_id,
                    "controllers": self.quorum_bootstrap(),
                    "bootstrap_tls": self.bootstrap(TLS),
                    "bootstrap_scram": self.bootstrap(SCRAM),
                },
                indent=2,
            )
        )
        for n in self.nodes:
            n.start()
        self.wait_brokers_registered(timeout)

    def stop(self, grace: float = 15.0) -> None:
        """Brokers first (their controlled shutdown needs the controllers), then controllers."""
        for nodes in (self.broker_nodes, self.controller_nodes):
            with ThreadPoolExecutor(len(nodes)) as pool:
                list(pool.map(lambda n: n.stop(grace), nodes))

    def kill_all(self) -> None:
        for n in self.nodes:
            n.kill()

    def logs(self) -> list[Path]:
        return [n.folder / "kafka.log" for n in self.nodes]

    # ---- clients ----------------------------------------------------------------------------
    def bootstrap(self, port: int = TLS) -> str:
        return ",".join(f"{n.address}:{port}" for n in self.broker_nodes)

    def admin_client(self, **extra):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap(), **self.admin.ssl_kwargs(), **extra
        )

    def registered_brokers(self) -> set[int]:
        """Brokers in the metadata the brokers serve: registered and unfenced."""
        admin = self.admin_client(request_timeout_ms=5000)
        try:
            return {b["broker_id"] for b in admin.describe_cluster()["brokers"]}
        finally:
            admin.close()

    def wait_brokers_registered(self, timeout: float = 180.0) -> None:
        """Until every running broker is registered; a node that exits ends the wait."""
        want = {n.node_id for n in self.broker_nodes if n.running()}

        def registered() -> bool:
            for n in self.nodes:
                if n.proc and not n.running():
                    raise NodeExited(f"{n.name} exited ({n.proc.exit_code()}): {n.proc.log}")
            return self.registered_brokers() >= want

        wait_until(registered, timeout, f"brokers {sorted(want)} registered", fatal=(NodeExited,))

    def kafka_tool(self, main_class: str, *args: str, controllers: bool = False) -> str:
        """One of Kafka 4's command-line tools as the admin identity, against the brokers or
        (``controllers``) the controllers; its output."""
        target = (
            ["--bootstrap-controller", self.quorum_bootstrap()]
            if controllers
            else ["--bootstrap-server", self.bootstrap()]
        )
        out = subprocess.run(
            [
                str(KAFKA_BIN / "kafka-run-class.sh"),
                main_class,
                *target,
                "--command-config",
                str(self.admin_properties),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **self.java_env("-Xmx128m", "WARN")},
        )
        if out.returncode != 0:
            raise RuntimeError(f"{main_class} failed: {out.stderr.strip()[-2000:]}")
        return out.stdout
