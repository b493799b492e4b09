"""A Platform over the local process harness (devtools.cluster.LocalCluster, which runs the
chart's rendered StatefulSets as local processes), so the real roll runs against real ZooKeeper
and Kafka processes without Kubernetes.

"Deleting a pod" stops its processes (SIGTERM first: Kafka's controlled shutdown runs) and starts
them again from the current rendering, like a StatefulSet recreating the pod on its
updateRevision. Readiness is the chart's own readiness probes, run by the harness.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from .kube import same_template_but_config
from .model import KAFKA, ZOOKEEPER, PodInfo
from .plan import parse_properties


class LocalPlatform:
    """Revisions are hashes of the rendered pod templates (with a generation that `upgrade()`
    bumps, like a new image would), so changing the cluster's chart values (e.g. its
    ``broker_overrides``) makes pods outdated exactly as a `helm upgrade` would."""

    def __init__(self, cluster, grace: float = 60.0):
        self.cluster, self.grace = cluster, grace
        self.generation = {ZOOKEEPER: 0, KAFKA: 0}
        self.templates: dict[str, dict] = {}
        self.pod_revision: dict[str, str] = {}
        self.uid: dict[str, str] = {}
        self.started: dict[str, datetime] = {}
        self.deleted: list[str] = []  # every pod deleted, in order
        self.events: list[tuple[str, str, str]] = []
        self.renewed: set[str] = set()
        for comp in (ZOOKEEPER, KAFKA):
            for pod in self._pods(comp):
                self._new_pod(comp, pod.name)

    def _pods(self, component: str):
        return self.cluster.zk_pods if component == ZOOKEEPER else self.cluster.kafka_pods

    def _sts(self, component: str) -> dict:
        c = self.cluster
        return c.rendering()[("StatefulSet", f"{c.fullname}-{component}")]

    def _new_pod(self, component: str, name: str) -> None:
        self.pod_revision[name] = self.update_revision(component)
        self.uid[name] = uuid.uuid4().hex
        self.started[name] = datetime.now(UTC)

    # ---- what a test does -------------------------------------------------------------------
    def upgrade(self, component: str) -> str:
        """A new template revision with the same configuration (as a new image would give)."""
        self.generation[component] += 1
        return self.update_revision(component)

    def mark_current(self, name: str) -> None:
        """Pretend ``name`` already runs the update revision (e.g. it failed to come back)."""
        comp = ZOOKEEPER if "-zookeeper-" in name else KAFKA
        self.pod_revision[name] = self.update_revision(comp)

    # ---- Platform ---------------------------------------------------------------------------
    def deployed(self, component: str) -> bool:
        return component in (ZOOKEEPER, KAFKA)  # the ZooKeeper-mode harness has no controllers

    def replicas(self, component: str) -> int:
        return len(self._pods(component))

    def update_revision(self, component: str) -> str:
        template = copy.deepcopy(self._sts(component)["spec"]["template"])
        ann = template.setdefault("metadata", {}).setdefault("annotations", {})
        ann["kairn.dev/generation"] = str(self.generation[component])
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        rev = f"{self.cluster.fullname}-{component}-{digest}"
        self.templates[rev] = template
        return rev

    def pods(self, component: str) -> list[PodInfo]:
        pods = self._pods(component)
        with ThreadPoolExecutor(len(pods) or 1) as pool:  # the probes run side by side
            ready = list(pool.map(lambda p: p.ready(), pods))
        return [
            PodInfo(
                name=pod.name,
                ordinal=i,
                uid=self.uid[pod.name],
                revision=self.pod_revision[pod.name],
                ready=ready[i],
                running=pod.running(),
                started_at=self.started[pod.name],
            )
            for i, pod in enumerate(pods)
        ]

    def delete_pod(self, component: str, pod: PodInfo) -> None:
        p = self._pods(component)[pod.ordinal]
        p.stop(self.grace)
        self._new_pod(component, p.name)
        self.deleted.append(p.name)
        p.start()  # planned afresh from the current rendering

    def event(self, component: str, reason: str, message: str, warning: bool = False) -> None:
        self.events.append((component, reason, message))

    def cert_renewed(self, component: str, pods: list[PodInfo]) -> set[str]:
        return {p.name for p in pods if p.name in self.renewed}

    def config_only(self, component: str, revision: str, update_revision: str) -> bool:
        old, new = self.templates.get(revision), self.templates.get(update_revision)
        return (
            component == KAFKA
            and old is not None
            and new is not None
            and same_template_but_config({"spec": {"template": old}}, {"spec": {"template": new}})
        )

    def desired_broker_config(self, broker: int) -> dict[str, str] | None:
        """The rendered server.properties as this broker's new pod would get it (paths and
        addresses translated by the harness, as a kubelet mounts them)."""
        run = self.cluster.plan(KAFKA, broker)
        for path, text in run.files.items():
            if path.name == "server.properties":
                return parse_properties(text)
        return None
