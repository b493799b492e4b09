"""The rebalancer's record in Kubernetes: a ConfigMap of its own (not one Helm manages) whose
``partitions`` entry lists the batch it started and has not cleaned up yet."""

from __future__ import annotations

import json

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
