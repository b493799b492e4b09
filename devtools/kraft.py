"""A local KRaft cluster of Kafka 4 run from the chart's KRaft rendering: controllers and brokers
as local processes, as devtools/cluster.py runs the ZooKeeper-mode rendering.

The harness renders the chart with ``kafka.metadata.mode: kraft`` (`helm template`), creates the
certificates and the cluster id Secret with kairn-certs' own code into folders laid out like its
Secrets, and runs each pod of the controller and broker StatefulSets through devtools/podspec.py
and devtools/localpod.py: the rendered server.properties, log4j 2 configuration, command lines,
the format-storage init container (it formats a data volume once, and refuses a volume of
another cluster or node), the JMX exporter agent and the readiness probes. Each pod gets its
own loopback address in a /24 picked at random per run, so every pod keeps the chart's ports.

What the chart decides and this module only reads: dedicated controllers with node ids
100 + ordinal, brokers with their ordinal, the CONTROLLER listener (9090) with mutual TLS, the
controllers presenting certificates with the brokers' CN (one super user for every node),
StandardAuthorizer, a dynamic quorum (KIP-853: controllers formatted with
``--initial-controllers``, brokers with ``--no-initial-controllers``), topic defaults on the
controllers. docs/kraft.md has the reasons.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from agents.pki.model import Desired
from agents.pki.run import run as run_kairn_certs
from agents.pki.store import DirSecretStore
from devtools import TOOLS
from devtools.addresses import PodAddresses
from devtools.chart import HARNESS_VALUES, deep_merge, helm_template
from devtools.cluster import REPLICATION, SCRAM, TLS, Pod, _FolderSources, agents_identity
from devtools.podspec import KAFKA4_BIN, PodIdentity, plan_pod, pod_hosts, statefulset_pod_spec
from devtools.waiting import wait_until

KAFKA4_LIBS = TOOLS / "kafka4" / "libs"
KAFKA_BIN = KAFKA4_BIN  # Kafka 4's tools, for kafka_tool and the tests
CONTROLLER = 9090
CONTROLLER_ID_BASE = 100
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

# Small and quick for a 2-core machine, on top of the ZooKeeper harness' broker settings.
KRAFT_HARNESS_VALUES = {
    "kafka": {
        "metadata": {"mode": "kraft"},
        "controller": {"heapOpts": "-Xms192m -Xmx192m"},
    },
}

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = OUT
"""


class NodeExited(RuntimeError):
    """A controller or broker process ended while the cluster was expected up."""


def parse_properties(text: str) -> dict[str, str]:
    """key=value lines (the chart writes no continuation lines)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


class Node(Pod):
    """One controller or broker pod: the chart's pod of its StatefulSet as local processes."""

    def __init__(self, cluster: KRaftCluster, role: str, index: int):
        self.role, self.index = role, index  # role: "controller" or "broker"
        super().__init__(cluster, "controller" if role == "controller" else "kafka", index)

    @property
    def node_id(self) -> int:
        return self.index + (CONTROLLER_ID_BASE if self.role == "controller" else 0)

    @property
    def address(self) -> str:
        return self.cluster.address(self.kind, self.index)

    @property
    def data(self) -> Path:
        """log.dirs: the data claim mounted at /var/lib/kafka, folder data."""
        return self.folder / "volumes" / "data" / "data"

    def formatted(self) -> bool:
        return (self.data / "meta.properties").is_file()

    @property
    def proc(self):
        """The Kafka process (the pod's main container), or None before the first start."""
        return self.local.procs.get(self.kind) if self.local else None

    def stop(self, grace: float = 30.0) -> None:
        super().stop(grace)


@dataclass
class KRaftCluster:
    """Controllers and brokers of Kafka 4 from the chart's KRaft rendering; ``start()`` returns
    when every pod is Ready by the chart's probes and every broker is registered and unfenced."""

    run_dir: Path
    controllers: int = 3
    brokers: int = 3
    fullname: str = "kairn"
    namespace: str = "kafka"
    tie_to_parent: bool = True
    release_version: str | None = None  # metadata.version to format with (None: the newest)
    values: dict = field(default_factory=dict)  # chart values on top of the harness'

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()
        self.addresses = PodAddresses.pick([CONTROLLER, REPLICATION, TLS, SCRAM])
        self.secrets = self.run_dir / "secrets"
        self.controller_nodes = [Node(self, "controller", i) for i in range(self.controllers)]
        self.broker_nodes = [Node(self, "broker", i) for i in range(self.brokers)]
        for n in self.nodes:  # in order: the controllers' addresses first
            _ = n.address
        self._rendered: tuple[str, dict] | None = None

    @property
    def nodes(self) -> list[Node]:
        return self.controller_nodes + self.broker_nodes

    # ---- names ------------------------------------------------------------------------------
    def pod_name(self, kind: str, i: int) -> str:
        return f"{self.fullname}-{kind}-{i}"

    def address(self, kind: str, i: int) -> str:
        return self.addresses.of(self.namespace, self.pod_name(kind, i))

    def secret_dir(self, name: str) -> Path:
        return self.secrets / name

    @property
    def cluster_ca_file(self) -> Path:
        return self.secret_dir(f"{self.fullname}-cluster-ca-cert") / "ca.crt"

    @property
    def cluster_id(self) -> str:
        """The cluster id kairn-certs created (Secret <fullname>-kraft-cluster)."""
        return (self.secret_dir(f"{self.fullname}-kraft-cluster") / "cluster.id").read_text()

    def java_env(self, heap: str, log_level: str = "INFO") -> dict[str, str]:
        """The environment of Kafka 4's tools run from here (kafka_tool)."""
        log4j = self.run_dir / f"log4j2-{log_level.lower()}.properties"
        if not log4j.is_file():
            log4j.write_text(_LOG4J2.format(level=log_level))
        return {
            "KAIRN_KAFKA_LIBS": str(KAFKA4_LIBS),
            "KAFKA_HEAP_OPTS": heap,
            "KAFKA_LOG4J_OPTS": f"-Dlog4j2.configurationFile={log4j}",
        }

    # ---- the chart --------------------------------------------------------------------------
    def chart_values(self) -> dict:
        sizes = {"kafka": {"replicas": self.brokers, "controller": {"replicas": self.controllers}}}
        if self.brokers < 3:
            sizes["kafka"].update(defaultReplicationFactor=self.brokers, minInsyncReplicas=1)
        if self.release_version:
            sizes["kafka"]["metadata"] = {"formatVersion": self.release_version}
        values = deep_merge(deep_merge(HARNESS_VALUES, KRAFT_HARNESS_VALUES), sizes)
        return deep_merge(values, self.values)

    def rendering(self) -> dict:
        """(kind, name) -> manifest, rendered for the current values (cached per values)."""
        key = json.dumps(self.chart_values(), sort_keys=True)
        if self._rendered is None or self._rendered[0] != key:
            docs = helm_template(self.fullname, self.namespace, json.loads(key))
            self._rendered = (key, {(d["kind"], d["metadata"]["name"]): d for d in docs})
        return self._rendered[1]

    def statefulset(self, kind: str) -> dict:
        return self.rendering()[("StatefulSet", f"{self.fullname}-{kind}")]

    def server_properties(self, kind: str) -> dict[str, str]:
        """The rendered server.properties of the controllers ("controller") or brokers ("kafka")."""
        cm = self.rendering()[("ConfigMap", f"{self.fullname}-{kind}-config")]
        return parse_properties(cm["data"]["server.properties"])

    def plan(self, kind: str, i: int):
        manifests = self.rendering()
        configmaps = {n: d.get("data", {}) for (k, n), d in manifests.items() if k == "ConfigMap"}
        hosts = {}
        for other, count in (("controller", self.controllers), ("kafka", self.brokers)):
            hosts |= pod_hosts(
                self.statefulset(other),
                count,
                self.namespace,
                lambda j, o=other: self.address(o, j),
            )
        identity = PodIdentity(self.pod_name(kind, i), i, self.namespace, self.address(kind, i))
        return plan_pod(
            statefulset_pod_spec(self.statefulset(kind)),
            identity,
            self.run_dir / identity.name,
            _FolderSources(configmaps, self.secret_dir),
            hosts,
        )

    # ---- certificates and the cluster id: kairn-certs' own code, Secrets as folders ------------
    def make_certs(self, now: dt.datetime | None = None) -> None:
        """kairn-certs for the CAs, controllers, brokers, the agents' identity and the cluster id
        (created on the first run only); pod addresses are extra SANs, as clients and peers
        here reach pods by address."""
        desired = Desired(
            self.fullname,
            self.namespace,
            zookeeper_replicas=0,
            kafka_replicas=self.brokers,
            kafka_extra_sans=tuple(n.address for n in self.broker_nodes),
            controller_replicas=self.controllers,
            controller_extra_sans=tuple(n.address for n in self.controller_nodes),
        )
        run_kairn_certs(DirSecretStore(self.secrets), desired, now or dt.datetime.now(dt.UTC))
        self.admin, self.admin_properties = agents_identity(
            self.secret_dir(f"{self.fullname}-agents-cert"),
            f"{self.fullname}-agents",
            self.cluster_ca_file,
            self.run_dir,
        )

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> None:
        if not KAFKA4_LIBS.is_dir():
            raise RuntimeError(f"{KAFKA4_LIBS} is missing: run `make setup`")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.make_certs()
        # every pod at once, as podManagementPolicy Parallel does; each formats its own storage
        # first (a JVM each: two at a time on two cores)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda n: n.start(), self.nodes))
        self.wait_up(timeout)
        self._write_state()

    def stop(self, grace: float = 15.0) -> None:
        """Brokers first (their controlled shutdown needs the controllers), then controllers."""
        for nodes in (self.broker_nodes, self.controller_nodes):
            with ThreadPoolExecutor(len(nodes)) as pool:
                list(pool.map(lambda n: n.stop(grace), nodes))

    def kill_all(self) -> None:
        for n in self.nodes:
            n.kill()

    def logs(self) -> list[Path]:
        return [log for n in self.nodes for log in n.logs()]

    def wait_up(self, timeout: float = 180.0) -> None:
        """Every running broker registered and unfenced, every pod Ready by its probes."""
        self.wait_brokers_registered(timeout)
        wait_until(
            lambda: all(n.ready() for n in self.nodes if n.local),
            timeout,
            "every pod Ready by its readiness probes",
        )

    def _write_state(self) -> None:
        state = {
            "run_dir": str(self.run_dir),
            "cluster_id": self.cluster_id,
            "controllers": self.quorum_bootstrap(),
            "bootstrap_tls": self.bootstrap(TLS),
            "bootstrap_scram": self.bootstrap(SCRAM),
        }
        (self.run_dir / "kraft.json").write_text(json.dumps(state, indent=2))

    # ---- clients ----------------------------------------------------------------------------
    def quorum_bootstrap(self) -> str:
        return ",".join(f"{n.address}:{CONTROLLER}" for n in self.controller_nodes)

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
                if n.local and (gone := n.local.exited()):
                    raise NodeExited(f"{n.name} exited {gone}: {n.folder}")
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
