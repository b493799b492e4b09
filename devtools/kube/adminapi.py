"""The control plane's own requests to etcd and to the API server (as the administrator), with
nothing but the standard library: `python -m devtools.kube up` needs no Kubernetes client."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from devtools.kube import ControlPlaneError


class AdminApi:
    def __init__(self, server: str, etcd_url: str, pki_dir: Path):
        self.server, self.etcd_url, self.pki_dir = server, etcd_url, pki_dir

    def etcd(self, path: str, body: dict) -> dict:
        """One request to etcd's JSON gateway (v3); ControlPlaneError with etcd's answer when
        it refuses."""
        req = urllib.request.Request(
            self.etcd_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise ControlPlaneError(
                f"etcd {path}: {e.code} {e.read().decode(errors='replace')}"
            ) from e

    def etcd_healthy(self) -> bool:
        with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
            return json.loads(r.read()).get("health") == "true"

    def ready(self) -> bool:
        """The API server's /readyz."""
        try:
            with urllib.request.urlopen(
                self.server + "/readyz", timeout=5, context=self._ssl_context()
            ) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    def get(self, path: str) -> dict | None:
        """An object; None when it does not exist."""
        try:
            with urllib.request.urlopen(
                self.server + path, timeout=5, context=self._ssl_context()
            ) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(
            self.server + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10, context=self._ssl_context()) as r:
            return json.loads(r.read())

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return ctx
