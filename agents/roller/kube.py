"""Kubernetes adapter (kubernetes client 36): the StatefulSets' pods, revisions, pod deletion,
Events on the StatefulSet, certificate renewal marks, the Kafka configuration file."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

from agents.pki import apply as pki_apply
from agents.pki.model import Secret

from .model import CONTROLLER, KAFKA, ZOOKEEPER, PodInfo
from .plan import parse_properties

REVISION_LABEL = "controller-revision-hash"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
CONFIG_CHECKSUM = "checksum/config"
# Container states that mean "broken", not "starting": a restart cannot make these worse.
_BROKEN = {
    "CrashLoopBackOff",
    "Error",
    "CreateContainerConfigError",
    "CreateContainerError",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "RunContainerError",
}


def pod_info(pod) -> PodInfo:
    """A V1Pod as the roller sees it."""
    meta, status = pod.metadata, pod.status
    labels = meta.labels or {}
    ordinal = labels.get(POD_INDEX_LABEL)
    ordinal = int(ordinal) if ordinal is not None else int(meta.name.rsplit("-", 1)[1])
    ready = any(
        c.type == "Ready" and c.status == "True" for c in (status and status.conditions) or []
    )
    running = True
    if status is not None:
        if status.phase in ("Failed", "Succeeded"):
            running = False
        for cs in (status.container_statuses or []) + (status.init_container_statuses or []):
            waiting = cs.state.waiting if cs.state is not None else None
            if waiting is not None and waiting.reason in _BROKEN:
                running = False
        for cs in status.container_statuses or []:
            if cs.state is not None and cs.state.terminated is not None:
                running = False
    return PodInfo(
        name=meta.name,
        ordinal=ordinal,
        uid=meta.uid,
        revision=labels.get(REVISION_LABEL, ""),
        ready=ready,
        running=running,
        started_at=status.start_time if status is not None else None,
        deleting=meta.deletion_timestamp is not None,
    )


def same_template_but_config(old: dict, new: dict) -> bool:
    """Two ControllerRevision payloads whose pod templates differ at most in the
    `checksum/config` annotation (so the change is in the ConfigMap alone)."""

    def template(data):
        t = copy.deepcopy(((data or {}).get("spec") or {}).get("template") or {})
        ann = (t.get("metadata") or {}).get("annotations") or {}
        ann.pop(CONFIG_CHECKSUM, None)
        return t

    return bool(old) and bool(new) and template(old) == template(new)


class KubePlatform:
    def __init__(
        self,
        namespace: str,
        statefulsets: dict[str, str],
        fullname: str,
        api_client=None,
        log=None,
    ):
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.client = client
        self.ns, self.sts, self.fullname = namespace, statefulsets, fullname
        self.log = log or (lambda *a, **k: None)

    def _sts(self, component: str):
        return self.apps.read_namespaced_stateful_set(
            self.sts[component], self.ns, _request_timeout=30
        )

    def deployed(self, component: str) -> bool:
        """The component's StatefulSet exists (KRaft mode: the controllers')."""
        from kubernetes.client.rest import ApiException

        if component not in self.sts:
            return False
        try:
            self._sts(component)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def replicas(self, component: str) -> int:
        return int(self._sts(component).spec.replicas or 0)

    def update_revision(self, component: str) -> str:
        # the name of a ControllerRevision ("<statefulset>-<hash>"), as pods carry it in their
        # controller-revision-hash label
        sts = self._sts(component)
        return sts.status.update_revision or sts.status.current_revision or ""

    def pods(self, component: str) -> list[PodInfo]:
        sts = self._sts(component)
        selector = ",".join(f"{k}={v}" for k, v in sorted(sts.spec.selector.match_labels.items()))
        items = self.core.list_namespaced_pod(
            self.ns, label_selector=selector, _request_timeout=30
        ).items
        prefix = f"{sts.metadata.name}-"
        out = []
        for p in items:
            suffix = p.metadata.name[len(prefix) :]
            if p.metadata.name.startswith(prefix) and suffix.isdigit():
                out.append(pod_info(p))
        return sorted(out, key=lambda p: p.ordinal)

    def delete_pod(self, component: str, pod: PodInfo) -> None:
        from kubernetes.client.rest import ApiException

        body = self.client.V1DeleteOptions(preconditions=self.client.V1Preconditions(uid=pod.uid))
        try:
            self.core.delete_namespaced_pod(pod.name, self.ns, body=body, _request_timeout=30)
        except ApiException as e:
            if e.status not in (404, 409):  # already gone or already replaced
                raise

    def event(self, component: str, reason: str, message: str, warning: bool = False) -> None:
        from kubernetes.client.rest import ApiException

        c = self.client
        now = datetime.now(UTC)
        sts = self.sts[component]
        try:
            uid = self._sts(component).metadata.uid
            self.core.create_namespaced_event(
                self.ns,
                c.CoreV1Event(
                    metadata=c.V1ObjectMeta(name=f"{sts}.{uuid.uuid4().hex[:12]}"),
                    involved_object=c.V1ObjectReference(
                        api_version="apps/v1",
                        kind="StatefulSet",
                        name=sts,
                        namespace=self.ns,
                        uid=uid,
                    ),
                    reason=reason,
                    message=message[:1000],
                    type="Warning" if warning else "Normal",
                    first_timestamp=now,
                    last_timestamp=now,
                    count=1,
                    source=c.V1EventSource(component="kairn-roller"),
                    reporting_component="kairn.dev/roller",
                    reporting_instance="kairn-roller",
                ),
                _request_timeout=30,
            )
        except ApiException as e:  # an Event is a courtesy: never fail the roll for it
            self.log("event not posted", level="warning", status=e.status, reason=reason)

    def cert_renewed(self, component: str, pods: list[PodInfo]) -> set[str]:
        from kubernetes.client.rest import ApiException

        # the PKI hook's component Secrets (the controllers': <fullname>-kafka-controllers)
        secret = {
            KAFKA: "kafka-brokers",
            ZOOKEEPER: "zookeeper-nodes",
            CONTROLLER: "kafka-controllers",
        }
        if component not in secret:
            return set()
        name = f"{self.fullname}-{secret[component]}"
        try:
            s = self.core.read_namespaced_secret(name, self.ns, _request_timeout=30)
        except ApiException as e:
            if e.status != 404:
                self.log(
                    "certificate renewal marks not readable",
                    level="warning",
                    secret=name,
                    status=e.status,
                )
            return set()
        secrets = {name: Secret({}, dict(s.metadata.annotations or {}))}
        started = {p.name: p.started_at for p in pods if p.started_at is not None}
        return set(pki_apply.pods_needing_restart(secrets, started))

    def _revision_data(self, name: str) -> dict | None:
        from kubernetes.client.rest import ApiException

        try:
            return self.apps.read_namespaced_controller_revision(
                name, self.ns, _request_timeout=30
            ).data
        except ApiException as e:
            self.log(
                "controller revision not readable", level="warning", name=name, status=e.status
            )
            return None

    def config_only(self, component: str, revision: str, update_revision: str) -> bool:
        if component != KAFKA or not revision or not update_revision:
            return False
        old, new = self._revision_data(revision), self._revision_data(update_revision)
        return same_template_but_config(old or {}, new or {})

    def desired_broker_config(self, broker: int) -> dict[str, str] | None:
        from kubernetes.client.rest import ApiException

        name = f"{self.sts[KAFKA]}-config"
        try:
            cm = self.core.read_namespaced_config_map(name, self.ns, _request_timeout=30)
        except ApiException as e:
            self.log("Kafka config not readable", level="warning", name=name, status=e.status)
            return None
        text = (cm.data or {}).get("server.properties")
        return parse_properties(text) if text is not None else None

    # ---- the migration hooks (agents/migration) ---------------------------------------------
    def labels(self, component: str) -> dict[str, str] | None:
        """The StatefulSet's metadata.labels; None when it does not exist."""
        from kubernetes.client.rest import ApiException

        if component not in self.sts:
            return None
        try:
            return dict(self._sts(component).metadata.labels or {})
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def leftover_pods(self, component: str) -> list[str]:
        """Pods named like the component's StatefulSet's (``<name>-<ordinal>``), whether or not
        the StatefulSet still exists: Helm deletes a StatefulSet, its pods go a moment later."""
        prefix = f"{self.sts[component]}-"
        items = self.core.list_namespaced_pod(self.ns, _request_timeout=30).items
        return sorted(
            p.metadata.name
            for p in items
            if p.metadata.name.startswith(prefix) and p.metadata.name[len(prefix) :].isdigit()
        )

    def delete_claims(self, component: str, replicas: int, template: str = "data") -> list[str]:
        """Delete the claims ``<template>-<statefulset>-<ordinal>`` of the component's first
        ``replicas`` pods, by name (the chart grants delete on those names only); the names
        whose delete was accepted (none when already gone)."""
        from kubernetes.client.rest import ApiException

        out = []
        for i in range(replicas):
            name = f"{template}-{self.sts[component]}-{i}"
            try:
                self.core.delete_namespaced_persistent_volume_claim(
                    name, self.ns, _request_timeout=30
                )
                out.append(name)
            except ApiException as e:
                if e.status != 404:
                    raise
        return out

    def delete_objects(self, objects: list[tuple[str, str]]) -> list[str]:
        """Delete ("StatefulSet" | "Service" | "ConfigMap" | "PodDisruptionBudget", name) by name
        (the kept ZooKeeper objects after a finalize; the chart grants delete on those names);
        "<kind>/<name>" of each delete accepted, none for what is already gone."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        policy = client.PolicyV1Api(self.apps.api_client)
        deleters = {
            "StatefulSet": self.apps.delete_namespaced_stateful_set,
            "Service": self.core.delete_namespaced_service,
            "ConfigMap": self.core.delete_namespaced_config_map,
            "PodDisruptionBudget": policy.delete_namespaced_pod_disruption_budget,
        }
        out = []
        for kind, name in objects:
            try:
                deleters[kind](name, self.ns, _request_timeout=30)
                out.append(f"{kind}/{name}")
            except ApiException as e:
                if e.status != 404:
                    raise
        return out

    def secret_data(self, name: str) -> dict[str, bytes] | None:
        """A Secret's data decoded; None when it does not exist."""
        import base64

        from kubernetes.client.rest import ApiException

        try:
            s = self.core.read_namespaced_secret(name, self.ns, _request_timeout=30)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}

    def create_secret(self, name: str, data: dict[str, bytes], labels: dict[str, str]) -> bool:
        """Create a Secret; False when one of that name already exists (never overwritten)."""
        import base64

        from kubernetes.client.rest import ApiException

        c = self.client
        body = c.V1Secret(
            metadata=c.V1ObjectMeta(name=name, labels=labels),
            type="Opaque",
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        )
        try:
            self.core.create_namespaced_secret(self.ns, body, _request_timeout=30)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True
