"""Helpers of the e2e tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kubernetes import client

from devtools.kube import DEFAULT_BIN
from devtools.kube.controlplane import ControlPlane
from devtools.waiting import wait_until


def wait_for(what: str, check, timeout: float = 60.0, interval: float = 0.2):
    """Polls `check` until it returns something truthy; an API error means "not yet", any
    other error fails the test at once."""
    return wait_until(check, timeout, what, interval, retry_on=(client.ApiException,))


def gone(read) -> bool:
    """True once `read()` answers 404."""
    try:
        read()
    except client.ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def token_kubeconfig(kube: ControlPlane, path: Path, token: str) -> Path:
    """A kubeconfig that authenticates with a bearer token only."""
    return kube.token_kubeconfig(path, token)


def token_client(kube: ControlPlane, token: str) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = kube.server
    conf.ssl_ca_cert = str(kube.pki_dir / "ca.crt")
    conf.api_key = {"BearerToken": token}
    conf.api_key_prefix = {"BearerToken": "Bearer"}
    return client.ApiClient(conf)


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DEFAULT_BIN / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        env={**os.environ, "HOME": str(kubeconfig.parent)},
    )
