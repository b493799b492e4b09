"""Every pod the chart renders passes the Pod Security Standard "restricted" profile (checked
field by field, as the admission controller does) plus kairn's own rules: numeric UIDs,
read-only root filesystems, no service-account token where the pod does not use the API."""

from __future__ import annotations

import pytest

from tests.chart.helpers import KRAFT_CASES, MATRIX, containers, pod_specs, render

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
}
# Pods that talk to the Kubernetes API need their token; nothing else may mount one.
API_CLIENTS = {
    "Deployment/kairn-agents",
    "Job/kairn-certs",
    "Job/kairn-preflight",
    "Job/kairn-roller",
}


def restricted_violations(spec: dict) -> list[str]:
    """The "restricted" (v1.29+) checks of pod-security admission, as messages."""
    bad: list[str] = []
    psc = spec.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            bad.append(f"{field} is set")
    for v in spec.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            bad.append(f"volume {v['name']} uses {sorted(kinds - ALLOWED_VOLUMES)}")
    for s in psc.get("sysctls", []):
        if s["name"] not in SAFE_SYSCTLS:
            bad.append(f"unsafe sysctl {s['name']}")
    if psc.get("runAsUser") == 0:
        bad.append("pod runAsUser 0")
    for c in containers(spec):
        sc = c.get("securityContext", {})
        n = c["name"]
        if sc.get("privileged"):
            bad.append(f"{n}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{n}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            bad.append(f"{n}: capabilities do not drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{n}: adds capabilities {caps['add']}")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            bad.append(f"{n}: runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            bad.append(f"{n}: runs as UID 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            bad.append(f"{n}: seccompProfile is {seccomp}")
        if sc.get("procMount", "Default") != "Default":
            bad.append(f"{n}: procMount {sc['procMount']}")
        for p in c.get("ports", []):
            if p.get("hostPort"):
                bad.append(f"{n}: hostPort {p['hostPort']}")
        windows = sc.get("windowsOptions", {})
        if windows.get("hostProcess"):
            bad.append(f"{n}: hostProcess")
    return bad


def kairn_violations(name: str, spec: dict) -> list[str]:
    bad: list[str] = []
    psc = spec.get("securityContext", {})
    for c in containers(spec):
        sc = c.get("securityContext", {})
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        if not isinstance(uid, int) or uid < 1000:
            bad.append(f"{c['name']}: runAsUser {uid!r} is not a numeric non-system UID")
        if not sc.get("readOnlyRootFilesystem"):
            bad.append(f"{c['name']}: root filesystem is writable")
        if "limits" not in c.get("resources", {}) or "requests" not in c["resources"]:
            bad.append(f"{c['name']}: no resource requests and limits")
    token = spec.get("automountServiceAccountToken", True)
    if token and name not in API_CLIENTS:
        bad.append("mounts a service account token it does not use")
    return bad


@pytest.mark.parametrize("case", MATRIX)
def test_every_pod_is_restricted(case):
    pods = dict(pod_specs(render("helm3", case)))
    metadata = (
        "StatefulSet/kairn-controller" if case in KRAFT_CASES else "StatefulSet/kairn-zookeeper"
    )
    assert {"StatefulSet/kairn-kafka", metadata} <= set(pods)
    problems = {
        name: restricted_violations(spec) + kairn_violations(name, spec)
        for name, spec in pods.items()
    }
    assert not {k: v for k, v in problems.items() if v}


def test_the_checks_reject_an_unsafe_pod():
    spec = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True, "runAsUser": 0}}],
    }
    found = " ".join(restricted_violations(spec) + kairn_violations("Pod/x", spec))
    for expected in (
        "hostNetwork",
        "hostPath",
        "privileged",
        "allowPrivilegeEscalation",
        "drop ALL",
        "runAsNonRoot",
        "UID 0",
        "seccompProfile",
        "writable",
        "service account token",
    ):
        assert expected in found, expected
