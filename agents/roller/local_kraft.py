"""A Platform over the local KRaft cluster (devtools.kraft.KRaftCluster: 3 controllers, node ids
100-102, and 3 brokers as local processes), so the real KRaft roll and preflight run against real
Kafka 4 processes without Kubernetes.

"Deleting a pod" stops its process (SIGTERM first: a controller resigns, a broker runs its
controlled shutdown) and starts it again, like a StatefulSet recreating the pod on its
updateRevision. A pod is Ready while its process runs and its own listener (CONTROLLER for a
controller, TLS for a broker) accepts connections, as a tcpSocket readiness probe would say.
"""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

from .model import CONTROLLER, KAFKA, PodInfo

CONTROLLER_PORT, TLS_PORT = 9090, 9093


class LocalKRaftPlatform:
    """Revisions are a generation per component that `upgrade()` bumps, as a new image would.
    ``down_at_delete`` records, for every controller deleted, the other controllers whose
    process was not running at that moment: the roll must never make the quorum short."""

    def __init__(self, cluster, grace: float = 60.0):
        self.cluster, self.grace = cluster, grace
        self.generation = {CONTROLLER: 0, KAFKA: 0}
        self.pod_revision: dict[str, str] = {}
        self.uid: dict[str, str] = {}
        self.started: dict[str, datetime] = {}
        self.deleted: list[str] = []  # every pod deleted, in order
        self.down_at_delete: dict[str, list[str]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.renewed: set[str] = set()
        self.scaled: dict[str, int] = {}  # spec.replicas after a scale-in, per component
        for comp in (CONTROLLER, KAFKA):
            for node in self._nodes(comp):
                self._new_pod(comp, node.name)

    def _nodes(self, component: str):
        c = self.cluster
        return c.controller_nodes if component == CONTROLLER else c.broker_nodes

    def _new_pod(self, component: str, name: str) -> None:
        self.pod_revision[name] = self.update_revision(component)
        self.uid[name] = uuid.uuid4().hex
        self.started[name] = datetime.now(UTC)

    # ---- what a test does -------------------------------------------------------------------
    def upgrade(self, component: str) -> str:
        """A new template revision (as a new image would give)."""
        self.generation[component] += 1
        return self.update_revision(component)

    def scale(self, component: str, replicas: int) -> None:
        """spec.replicas set to ``replicas`` (a scale-in): the nodes above it keep a pod only
        while their process runs (a terminating pod); the test stops them, as the
        StatefulSet controller would."""
        self.scaled[component] = replicas

    def mark_current(self, name: str) -> None:
        """Pretend ``name`` already runs the update revision."""
        comp = CONTROLLER if "-controller-" in name else KAFKA
        self.pod_revision[name] = self.update_revision(comp)

    # ---- Platform ---------------------------------------------------------------------------
    def deployed(self, component: str) -> bool:
        return component in (CONTROLLER, KAFKA)

    def replicas(self, component: str) -> int:
        return self.scaled.get(component, len(self._nodes(component)))

    def update_revision(self, component: str) -> str:
        return f"{self.cluster.fullname}-{component}-g{self.generation[component]}"

    def pods(self, component: str) -> list[PodInfo]:
        port = CONTROLLER_PORT if component == CONTROLLER else TLS_PORT
        return [
            PodInfo(
                name=n.name,
                ordinal=i,
                uid=self.uid[n.name],
                revision=self.pod_revision[n.name],
                ready=n.running() and _accepts(n.address, port),
                running=n.running(),
                started_at=self.started[n.name],
            )
            for i, n in enumerate(self._nodes(component))
            if i < self.replicas(component) or n.running()
        ]

    def delete_pod(self, component: str, pod: PodInfo) -> None:
        node = self._nodes(component)[pod.ordinal]
        if component == CONTROLLER:
            self.down_at_delete[node.name] = [
                n.name for n in self.cluster.controller_nodes if n is not node and not n.running()
            ]
        node.stop(self.grace)
        self._new_pod(component, node.name)
        node.start()
        self.deleted.append(node.name)

    def event(self, component: str, reason: str, message: str, warning: bool = False) -> None:
        self.events.append((component, reason, message))

    def cert_renewed(self, component: str, pods: list[PodInfo]) -> set[str]:
        return {p.name for p in pods if p.name in self.renewed}

    def config_only(self, component: str, revision: str, update_revision: str) -> bool:
        return False  # the harness writes the configuration itself: every change restarts

    def desired_broker_config(self, broker: int) -> dict[str, str] | None:
        return None


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
