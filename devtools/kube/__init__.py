"""A local Kubernetes made of the real server programs, for tests and `make up`.

- controlplane.py: ``ControlPlane`` runs etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler, kwok and the volume provisioner as local processes (components.py holds
  their command lines); ``python -m devtools.kube up|down|status RUNDIR`` from a shell.
- node.py: the process-backed node, a kubelet stand-in whose pods run as local processes.
- pytest_plugin.py: one control plane per test session, and API clients for it.

This package itself holds only names the modules share, so importing one starts nothing.
"""

from devtools import ROOT, TOOLS

DEFAULT_BIN = TOOLS / "bin"
DEFAULT_STAGES = TOOLS / "share" / "kwok" / "stages.yaml"
CLUSTER_NAME = "kairn-local"
PROCESS_NODE_PREFIX = "kairn-node"

__all__ = [
    "CLUSTER_NAME",
    "DEFAULT_BIN",
    "DEFAULT_STAGES",
    "PROCESS_NODE_PREFIX",
    "ROOT",
    "ControlPlaneError",
    "process_node_names",
]


class ControlPlaneError(RuntimeError):
    pass


def process_node_names(count: int) -> list[str]:
    return [f"{PROCESS_NODE_PREFIX}-{i}" for i in range(count)]
