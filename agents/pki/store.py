"""Where Secrets live: a small adapter so the same run works against Kubernetes, memory, or a
directory. `create` fails if the Secret exists; `replace` fails if it changed since it was read
(its resource_version), so two concurrent runs cannot silently overwrite each other."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Protocol

from .model import Secret


class Conflict(Exception):
    """The Secret was created or changed by someone else since it was read."""


class SecretStore(Protocol):
    def get(self, name: str) -> Secret | None: ...
    def create(self, name: str, secret: Secret) -> Secret: ...
    def replace(self, name: str, secret: Secret) -> Secret: ...


class MemorySecretStore:
    def __init__(self, secrets: dict[str, Secret] | None = None):
        self.secrets: dict[str, Secret] = {}
        self.writes = 0
        for n, s in (secrets or {}).items():
            self.create(n, s)
        self.writes = 0

    def get(self, name: str) -> Secret | None:
        return self.secrets.get(name)

    def create(self, name: str, secret: Secret) -> Secret:
        if name in self.secrets:
            raise Conflict(f"Secret {name} already exists")
        return self._put(name, secret, 1)

    def replace(self, name: str, secret: Secret) -> Secret:
        cur = self.secrets.get(name)
        if cur is None or cur.resource_version != secret.resource_version:
            raise Conflict(f"Secret {name} changed since it was read")
        return self._put(name, secret, int(cur.resource_version) + 1)

    def _put(self, name: str, s: Secret, version: int) -> Secret:
        self.writes += 1
        stored = Secret(dict(s.data), dict(s.annotations), dict(s.labels), str(version), s.type)
        self.secrets[name] = stored
        return stored


class DirSecretStore(MemorySecretStore):
    """Secrets as files: DIR/<secret>/<key>, metadata in DIR/<secret>/.meta.json. Lets the local
    harness get the very certificates the hook would write, without Kubernetes."""

    META = ".meta.json"

    def __init__(self, root: Path):
        self.root = Path(root)
        seed = {}
        for d in sorted(self.root.glob("*/")) if self.root.is_dir() else []:
            meta = json.loads((d / self.META).read_text()) if (d / self.META).exists() else {}
            data = {f.name: f.read_bytes() for f in d.iterdir() if f.name != self.META}
            seed[d.name] = Secret(data, meta.get("annotations", {}), meta.get("labels", {}))
        super().__init__(seed)

    def _put(self, name: str, s: Secret, version: int) -> Secret:
        stored = super()._put(name, s, version)
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            if f.name not in s.data and f.name != self.META:
                f.unlink()
        for key, value in s.data.items():
            # Keys and passwords: readable by the owner only. Written to a temporary name and
            # renamed, so a reader never sees half a file.
            tmp = d / f".{key}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(value)
            tmp.replace(d / key)
        meta = {"annotations": dict(s.annotations), "labels": dict(s.labels)}
        (d / self.META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        return stored


class KubeSecretStore:
    """Secrets of one namespace through the Kubernetes API (kubernetes client, CoreV1Api)."""

    def __init__(self, namespace: str, api=None):
        from kubernetes import client, config

        if api is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.CoreV1Api()
        self.api, self.ns, self.client = api, namespace, client

    def get(self, name: str) -> Secret | None:
        from kubernetes.client.exceptions import ApiException

        try:
            obj = self.api.read_namespaced_secret(name, self.ns)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return _from_kube(obj)

    def pod_names(self) -> list[str]:
        """The namespace's pods (names only): whose certificates a scale-in made stale."""
        pods = self.api.list_namespaced_pod(self.ns, _request_timeout=30).items
        return [p.metadata.name for p in pods]

    def create(self, name: str, secret: Secret) -> Secret:
        body = self._body(name, secret)
        return self._call(name, self.api.create_namespaced_secret, self.ns, body)

    def replace(self, name: str, secret: Secret) -> Secret:
        body = self._body(name, secret)
        return self._call(name, self.api.replace_namespaced_secret, name, self.ns, body)

    def _call(self, name: str, fn, *args) -> Secret:
        from kubernetes.client.exceptions import ApiException

        try:
            return _from_kube(fn(*args))
        except ApiException as e:
            if e.status == 409:
                raise Conflict(f"Secret {name} changed since it was read ({e.reason})") from None
            raise

    def _body(self, name: str, s: Secret):
        c = self.client
        meta = c.V1ObjectMeta(
            name=name,
            namespace=self.ns,
            annotations=dict(s.annotations),
            labels=dict(s.labels),
            resource_version=s.resource_version,
        )
        data = {k: base64.b64encode(v).decode() for k, v in s.data.items()}
        return c.V1Secret(metadata=meta, type=s.type, data=data)


def _from_kube(obj) -> Secret:
    data = {k: base64.b64decode(v) for k, v in (obj.data or {}).items()}
    m = obj.metadata
    ann, labels = dict(m.annotations or {}), dict(m.labels or {})
    return Secret(data, ann, labels, m.resource_version, obj.type or "Opaque")
