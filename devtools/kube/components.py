"""The control plane's components and their command lines, as the ControlPlane in
controlplane.py starts them (a pure function of its folders, ports and settings)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from devtools.kube import CLUSTER_NAME

if TYPE_CHECKING:
    from devtools.kube.controlplane import ControlPlane

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")

# Start order; stop runs in reverse.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "provisioner",
    "process-node",
)
BINARIES = COMPONENTS[:-2]  # the others run with `python -m devtools.kube.<module>`

# Every controller a cluster runs by default (cloud controllers stay off without a cloud).
# The node lifecycle controller, which lifts the not-ready taint from new nodes, gets a long
# grace period: on a loaded machine a late kwok heartbeat must not get the fake nodes
# tainted and their pods evicted.
CONTROLLERS = ("*",)
NODE_MONITOR_GRACE = "10m"


def command(name: str, cp: ControlPlane) -> list[str]:
    """The full command line of component ``name`` of ``cp``."""
    # The Python components are told the run folder: their command lines name it, which is
    # how ControlPlane.stop() tells its own processes from others.
    if name == "provisioner":
        return [
            *(sys.executable, "-m", "devtools.kube.provisioner"),
            f"--kubeconfig={cp.kubeconfig}",
            f"--run-dir={cp.run_dir}",
        ]
    if name == "process-node":
        return [
            *(sys.executable, "-m", "devtools.kube.node"),
            f"--kubeconfig={cp.kubeconfig}",
            f"--run-dir={cp.run_dir / 'node'}",
            f"--nodes={cp.process_nodes}",
        ]
    args = {
        "etcd": _etcd,
        "kube-apiserver": _apiserver,
        "kube-controller-manager": _controller_manager,
        "kube-scheduler": _scheduler,
        "kwok": _kwok,
    }[name](cp)
    return [str(cp.bin_dir / name), *args]


def _etcd(cp: ControlPlane) -> list[str]:
    client, peer = cp.state["etcd"], cp.state["etcd_peer"]
    return [
        "--name=kairn",
        f"--data-dir={cp.run_dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=kairn={peer}",
        "--initial-cluster-state=new",
        "--log-level=warn",
        # Test data: skipping fsync keeps etcd fast on a busy shared disk.
        "--unsafe-no-fsync=true",
    ]


def _apiserver(cp: ControlPlane) -> list[str]:
    p = cp.pki_dir
    port = cp.server.rsplit(":", 1)[1]
    return [
        f"--etcd-servers={cp.state['etcd']}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={p / 'generated'}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        "--authorization-mode=Node,RBAC",
        "--anonymous-auth=true",
        # The default admission plugins stay on (NamespaceLifecycle, LimitRanger,
        # ServiceAccount, PodSecurity, ResourceQuota, the webhooks and policies, ...);
        # NodeRestriction is what kubeadm adds to them.
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={ISSUER}",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--api-audiences={ISSUER}",
        "--enable-bootstrap-token-auth=true",
        # 127.0.0.1 cannot be an endpoint of the `kubernetes` Service; nothing here
        # reaches the API server through that Service.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        "--v=1",
    ]


def _client_of_apiserver(cp: ControlPlane, name: str) -> list[str]:
    """What the controller manager and the scheduler both need: their kubeconfig for every
    purpose, no serving port and no leader election (there is one of each)."""
    kc = cp.run_dir / f"{name}.kubeconfig"
    return [
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--secure-port=0",
        "--leader-elect=false",
        "--v=1",
    ]


def _controller_manager(cp: ControlPlane) -> list[str]:
    p = cp.pki_dir
    return [
        *_client_of_apiserver(cp, "kube-controller-manager"),
        f"--controllers={','.join(CONTROLLERS)}",
        "--use-service-account-credentials=true",
        f"--root-ca-file={p / 'ca.crt'}",
        f"--service-account-private-key-file={p / 'sa.key'}",
        f"--cluster-signing-cert-file={p / 'ca.crt'}",
        f"--cluster-signing-key-file={p / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--cluster-name={CLUSTER_NAME}",
        f"--node-monitor-grace-period={NODE_MONITOR_GRACE}",
    ]


def _scheduler(cp: ControlPlane) -> list[str]:
    # A pod found unschedulable while its claim was being bound waits for an event to requeue
    # it; when that event is missed (seen once: a StatefulSet pod left Pending for the whole
    # 5-minute default), the periodic flush of the unschedulable queue is the only retry. A
    # test's budget is shorter than 5 minutes, so retry such pods after 15 s.
    return [
        *_client_of_apiserver(cp, "kube-scheduler"),
        "--pod-max-in-unschedulable-pods-duration=15s",
    ]


def _kwok(cp: ControlPlane) -> list[str]:
    key, value = KWOK_ANNOTATION
    return [
        f"--kubeconfig={cp.run_dir / 'kwok.kubeconfig'}",
        f"--config={cp.stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={key}={value}",
        "--node-lease-duration-seconds=40",
        f"--cidr={POD_CIDR}",
        "--node-ip=127.0.0.1",
    ]
