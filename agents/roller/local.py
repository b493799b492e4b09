"""A Platform over the local process harness (devtools.cluster.LocalCluster), so the real roll
runs against real ZooKeeper and Kafka processes without Kubernetes.

"Deleting a pod" stops its processes (SIGTERM first: Kafka's controlled shutdown runs) and starts
them again with the current configuration, like a StatefulSet recreating the pod on its
updateRevision. `upgrade()` plays `helm upgrade`: a new revision for a StatefulSet's template.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import uuid
from datetime import UTC, datetime

from .model import KAFKA, ZOOKEEPER, PodInfo


def api_versions_ok(host: str, port: int, ctx: ssl.SSLContext, timeout: float = 4.0) -> bool:
    """The chart's readiness check: an ApiVersions request over mutual TLS is answered."""
    client_id = b"kairn-readiness"
    request = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw) as s,
        ):
            s.sendall(struct.pack(">i", len(request)) + request)
            head = b""
            while len(head) < 10:
                chunk = s.recv(10 - len(head))
                if not chunk:
                    return False
                head += chunk
            _size, corr, error = struct.unpack(">iih", head)
            return corr == 7 and error == 0
    except (OSError, ssl.SSLError):
        return False


class LocalPlatform:
    def __init__(self, cluster, grace: float = 60.0):
        self.cluster, self.grace = cluster, grace
        self.revision = {ZOOKEEPER: "zookeeper-1", KAFKA: "kafka-1"}
        self.pod_revision: dict[str, str] = {}
        self.uid: dict[str, str] = {}
        self.started: dict[str, datetime] = {}
        self.deleted: list[str] = []  # every pod deleted, in order
        self.events: list[tuple[str, str, str]] = []
        self.renewed: set[str] = set()
        self.config_only_upgrade = False
        self._lock = threading.Lock()
        for comp in (ZOOKEEPER, KAFKA):
            for pod in self._pods(comp):
                self._new_pod(comp, pod.name)

    def _pods(self, component: str):
        return self.cluster.zk_pods if component == ZOOKEEPER else self.cluster.kafka_pods

    def _new_pod(self, component: str, name: str) -> None:
        self.pod_revision[name] = self.revision[component]
        self.uid[name] = uuid.uuid4().hex
        self.started[name] = datetime.now(UTC)

    # ---- what a test does -------------------------------------------------------------------
    def upgrade(self, component: str, config_only: bool = False) -> str:
        """A new template revision (a `helm upgrade` that changed the StatefulSet)."""
        n = int(self.revision[component].rsplit("-", 1)[1]) + 1
        self.revision[component] = f"{component}-{n}"
        self.config_only_upgrade = config_only
        return self.revision[component]

    def mark_current(self, name: str) -> None:
        """Pretend ``name`` already runs the update revision (e.g. it failed to come back)."""
        comp = ZOOKEEPER if "-zookeeper-" in name else KAFKA
        self.pod_revision[name] = self.revision[comp]

    # ---- Platform ---------------------------------------------------------------------------
    def replicas(self, component: str) -> int:
        return len(self._pods(component))

    def update_revision(self, component: str) -> str:
        return self.revision[component]

    def _ready(self, component: str, i: int) -> bool:
        c = self.cluster
        if not self._pods(component)[i].running():
            return False
        if component == ZOOKEEPER:
            try:
                return c.zookeeper_mode(i) is not None
            except OSError:
                return False
        ctx = c.admin.ssl_context()
        ctx.check_hostname = False
        return api_versions_ok(c.addr.pod("kafka", i), 9093, ctx)

    def pods(self, component: str) -> list[PodInfo]:
        with self._lock:
            out = []
            for i, pod in enumerate(self._pods(component)):
                out.append(
                    PodInfo(
                        name=pod.name,
                        ordinal=i,
                        uid=self.uid[pod.name],
                        revision=self.pod_revision[pod.name],
                        ready=self._ready(component, i),
                        running=pod.running(),
                        started_at=self.started[pod.name],
                    )
                )
            return out

    def delete_pod(self, component: str, pod: PodInfo) -> None:
        with self._lock:
            i = pod.ordinal
            p = self._pods(component)[i]
            p.stop(self.grace)
            if component == KAFKA:
                self.cluster.write_broker_config(i)
            self._new_pod(component, p.name)
            self.deleted.append(p.name)
            p.start()

    def event(self, component: str, reason: str, message: str, warning: bool = False) -> None:
        self.events.append((component, reason, message))

    def cert_renewed(self, component: str, pods: list[PodInfo]) -> set[str]:
        return {p.name for p in pods if p.name in self.renewed}

    def config_only(self, component: str, revision: str, update_revision: str) -> bool:
        return component == KAFKA and self.config_only_upgrade

    def desired_broker_config(self, broker: int) -> dict[str, str] | None:
        return {k: str(v) for k, v in self.cluster.broker_properties(broker).items()}
