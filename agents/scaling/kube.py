"""The rebalancer's record in Kubernetes: a ConfigMap of its own (not one Helm manages) whose
``partitions`` entry lists the batch it started and has not cleaned up yet."""

from __future__ import annotations

import json
import time

from .plan import Key

PARTITIONS = "partitions"


class ConfigMapRecord:
    def __init__(self, namespace: str, name: str, labels: dict[str, str], api_client=None):
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self.core = client.CoreV1Api(api_client)
        self.client = client
        self.ns, self.name, self.labels = namespace, name, labels

    def read(self) -> list[Key]:
        from kubernetes.client.rest import ApiException

        try:
            cm = self.core.read_namespaced_config_map(self.name, self.ns, _request_timeout=30)
        except ApiException as e:
            if e.status == 404:
                return []
            raise
        return [(t, int(p)) for t, p in json.loads((cm.data or {}).get(PARTITIONS) or "[]")]

    def write(self, keys: list[Key]) -> None:
        from kubernetes.client.rest import ApiException

        data = {PARTITIONS: json.dumps([[t, p] for t, p in keys])}
        try:
            self.core.patch_namespaced_config_map(
                self.name, self.ns, {"data": data}, _request_timeout=30
            )
        except ApiException as e:
            if e.status != 404:
                raise
            body = self.client.V1ConfigMap(
                metadata=self.client.V1ObjectMeta(name=self.name, labels=self.labels), data=data
            )
            self.core.create_namespaced_config_map(self.ns, body, _request_timeout=30)

    def clear(self) -> None:
        self.write([])


class RebalanceConfigMaps:
    """The release's ConfigMaps labelled ``kairn.dev/type: rebalance``, and their status."""

    def __init__(self, namespace: str, release: str, api_client=None):
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api_client = client.ApiClient()
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.ns, self.release = namespace, release
        self.selector = f"kairn.dev/cluster={release},kairn.dev/type=rebalance"
        self.version: str | None = None  # the last list's resourceVersion

    def list(self) -> list[dict]:
        found = self.core.list_namespaced_config_map(
            self.ns, label_selector=self.selector, _request_timeout=30
        )
        self.version = found.metadata.resource_version
        return [self.api.sanitize_for_serialization(cm) for cm in found.items]

    def wait(self, seconds: float) -> None:
        """Returns at the first change of a rebalance ConfigMap since the last list, or after
        ``seconds`` (a watch from the list's resourceVersion; one that is too old ends it)."""
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        if self.version is None:  # nothing listed yet: a watch would replay everything at once
            time.sleep(seconds)
            return
        w = watch.Watch()
        try:
            for _ in w.stream(
                self.core.list_namespaced_config_map,
                self.ns,
                label_selector=self.selector,
                resource_version=self.version,
                timeout_seconds=max(1, int(seconds)),
                _request_timeout=seconds + 30,
            ):
                return
        except ApiException as e:
            if e.status != 410:  # 410 Gone: the version is too old, list again
                raise
        finally:
            w.stop()

    def report(self, cm: dict, outcome, approved_done: bool) -> None:
        """State label and status annotation; the approval is taken back once it ran."""
        from agents.common.status import STATE_LABEL, STATUS_ANNOTATION, now_iso

        status = {
            "state": outcome.state,
            "reason": outcome.reason,
            "message": outcome.message[:1000],
            "time": now_iso(),
            **outcome.extra,
        }
        annotations: dict = {STATUS_ANNOTATION: json.dumps(status, sort_keys=True)}
        if approved_done:
            annotations["kairn.dev/approve"] = None
        body = {"metadata": {"labels": {STATE_LABEL: outcome.state}, "annotations": annotations}}
        self.core.patch_namespaced_config_map(
            cm["metadata"]["name"], self.ns, body, _request_timeout=30
        )
