"""The one kubeconfig writer: the components', the administrator's, a ServiceAccount token's
and a pod's own kubeconfig differ only in their credentials."""

from __future__ import annotations

import json
import os
from pathlib import Path

from devtools.kube import CLUSTER_NAME


def write_kubeconfig(
    path: str | os.PathLike,
    server: str,
    ca_file: Path,
    credentials: dict[str, str],
    *,
    user: str = "user",
    namespace: str | None = None,
) -> Path:
    """A kubeconfig of one cluster, user and context, readable by its owner only.
    ``credentials``: client-certificate and client-key, or token, or tokenFile."""
    context = {"cluster": CLUSTER_NAME, "user": user}
    if namespace:
        context["namespace"] = namespace
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": CLUSTER_NAME, "context": context}],
        "current-context": CLUSTER_NAME,
    }
    path = Path(path)
    # JSON is YAML: every consumer (client-go, kubectl, helm, the Python client) reads it.
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)
    return path
