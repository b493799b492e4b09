"""A pod's ConfigMaps, Secrets, claims and projected volumes, read from the API server: the
Sources (devtools/podspec.py) of the process-backed node."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

from kubernetes import client

from devtools.kube.kubeconfig import write_kubeconfig
from devtools.podspec import PodIdentity


class ApiSources:
    def __init__(self, core: client.CoreV1Api, pod: dict, pod_dir: Path, claims_dir: Path):
        self.core, self.pod, self.pod_dir, self.claims_dir = core, pod, pod_dir, claims_dir
        self.ns = pod["metadata"]["namespace"]
        # set when a projected volume carries a ServiceAccount token: the pod's in-cluster
        # configuration
        self.kubeconfig: Path | None = None

    def configmap(self, name: str) -> dict[str, str]:
        cm = self.core.read_namespaced_config_map(name, self.ns)
        data = dict(cm.data or {})
        for k, v in (cm.binary_data or {}).items():
            data[k] = base64.b64decode(v).decode("utf-8", "replace")
        return data

    def secret_dir(self, name: str) -> Path:
        secret = self.core.read_namespaced_secret(name, self.ns)
        folder = self.pod_dir / "secrets" / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        for key, value in (secret.data or {}).items():
            path = folder / key
            path.write_bytes(base64.b64decode(value))
            path.chmod(0o600)
        return folder

    def volume(self, volume: dict, pod: PodIdentity, pod_dir: Path) -> Path | None:
        if "persistentVolumeClaim" in volume:
            return self._claim(volume["persistentVolumeClaim"]["claimName"])
        if "projected" in volume:
            return self._projected(volume)
        return None

    def _claim(self, name: str) -> Path:
        """The claim's folder, by claim name. The storage class reclaims with Delete: a claim
        deleted and made again under the same name (a StatefulSet's pod after its claim was
        removed) gets an empty volume, as a cluster's provisioner would give it, so the folder
        of an older claim of that name is emptied first (recorded by the claim's uid)."""
        uid = self.core.read_namespaced_persistent_volume_claim(name, self.ns).metadata.uid
        folder = self.claims_dir / self.ns / name
        marker = folder.parent / f".{name}.uid"
        if folder.exists() and marker.exists() and marker.read_text() != uid:
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(uid)
        return folder

    def _projected(self, volume: dict) -> Path:
        folder = self.pod_dir / "volumes" / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for source in volume["projected"].get("sources", []):
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                token = self._token(sat.get("audience"), sat.get("expirationSeconds", 3607))
                (folder / sat["path"]).write_text(token)
                self.kubeconfig = write_kubeconfig(
                    self.pod_dir / "kubeconfig",
                    self.core.api_client.configuration.host,
                    folder / "ca.crt",
                    {"tokenFile": str(folder / sat["path"])},
                    user="pod",
                    namespace=self.ns,
                )
            elif "configMap" in source:
                data = self.configmap(source["configMap"]["name"])
                items = source["configMap"].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (folder / item["path"]).write_text(data[item["key"]])
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items", []):
                    path = item["fieldRef"]["fieldPath"]
                    if path != "metadata.namespace":
                        raise ValueError(f"unsupported projected downward API field {path}")
                    (folder / item["path"]).write_text(self.ns)
            else:
                raise ValueError(f"unsupported projected volume source {sorted(source)}")
        return folder

    def _token(self, audience: str | None, seconds: int) -> str:
        meta = self.pod["metadata"]
        # 3607 s and bound to the pod: the API server extends it, as for a kubelet's tokens
        req = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[audience] if audience else [],
                expiration_seconds=seconds,
                bound_object_ref=client.V1BoundObjectReference(
                    kind="Pod", api_version="v1", name=meta["name"], uid=meta["uid"]
                ),
            )
        )
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        resp = self.core.create_namespaced_service_account_token(sa, self.ns, req)
        return resp.status.token
