"""What the local nodes report to the API server, as pure functions: Node objects (for kwok's
fake nodes and the process-backed ones) and the status of a pod the process node runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

HOST_IP = "127.0.0.1"  # the address of every local node
# Both kinds of node offer the same room; nothing here measures the machine.
CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}


def timestamp() -> str:
    """Now, as the API server writes times."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(
    name: str, labels: dict[str, str], status: dict, annotations: dict[str, str] | None = None
) -> dict:
    """A Node with the well-known labels a kubelet sets, plus ``labels``."""
    metadata: dict = {
        "name": name,
        "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **labels,
        },
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Node", "metadata": metadata, "spec": {}, "status": status}


def node_status(
    node_info: dict[str, str], addresses: list[dict] | None = None, ready_at: str | None = None
) -> dict:
    """A node's capacity and nodeInfo; with ``ready_at``, a Ready condition of that time (a
    heartbeat)."""
    status: dict = {
        "capacity": dict(CAPACITY),
        "allocatable": dict(CAPACITY),
        "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", **node_info},
    }
    if addresses:
        status["addresses"] = addresses
    if ready_at:
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "process-backed node is running",
                "lastHeartbeatTime": ready_at,
                "lastTransitionTime": ready_at,
            }
        ]
    return status


@dataclass
class PodState:
    """What the process node knows of one pod; the input of ``pod_status``."""

    start_time: str
    phase: str = "Pending"
    waiting: tuple[str, str] | None = ("ContainerCreating", "")  # (reason, message)
    started_at: dict[str, str] = field(default_factory=dict)
    finished_at: dict[str, str] = field(default_factory=dict)
    terminated: dict[str, int | None] = field(default_factory=dict)  # exit codes, None: killed
    ready: dict[str, bool] = field(default_factory=dict)  # the last readiness probe results
    transitions: dict[str, tuple[str, str]] = field(default_factory=dict)  # condition: (status, at)
    # read from the pod's processes before each report:
    address: str | None = None  # the pod IP, once the pod's sandbox (its LocalPod) exists
    restarts: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # the running containers' processes
    started: set[str] = field(default_factory=set)  # containers started at least once


def pod_status(spec: dict, s: PodState, now: str) -> tuple[dict, dict[str, tuple[str, str]]]:
    """The pod's status for the API server, and the conditions' transitions to remember."""
    inits = spec.get("initContainers", [])
    sidecars = {c["name"] for c in inits if c.get("restartPolicy") == "Always"}
    init_statuses = [_container_status(c, s, now, c["name"] in sidecars) for c in inits]
    main_statuses = [_container_status(c, s, now, True) for c in spec["containers"]]
    serving = main_statuses + [st for st in init_statuses if st["name"] in sidecars]
    all_ready = s.phase == "Running" and all(st["ready"] for st in serving)
    sandbox = s.address is not None
    transitions = dict(s.transitions)

    def condition(kind: str, ok: bool) -> dict:
        status = "True" if ok else "False"
        if transitions.get(kind, ("", ""))[0] != status:
            transitions[kind] = (status, now)
        return {"type": kind, "status": status, "lastTransitionTime": transitions[kind][1]}

    status = {
        "phase": s.phase,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "startTime": s.start_time,
        "conditions": [
            condition("PodReadyToStartContainers", sandbox),
            condition("Initialized", sandbox and s.phase != "Pending"),
            condition("ContainersReady", all_ready),
            condition("Ready", all_ready),
        ],
        "initContainerStatuses": init_statuses,
        "containerStatuses": main_statuses,
    }
    if sandbox:
        status["podIP"] = s.address
        status["podIPs"] = [{"ip": s.address}]
    return status, transitions


def _container_status(c: dict, s: PodState, now: str, may_be_ready: bool) -> dict:
    """``may_be_ready``: a main container or a native sidecar (a run-once init container is
    never ready)."""
    name = c["name"]
    st: dict = {
        "name": name,
        "image": c.get("image", ""),
        "imageID": "",
        "restartCount": s.restarts.get(name, 0),
        "ready": False,
        "started": False,
    }
    if name in s.terminated:
        code = s.terminated[name]
        st["state"] = {
            "terminated": {
                "exitCode": code if code is not None else 137,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": s.started_at.get(name, s.start_time),
                "finishedAt": s.finished_at.get(name, now),
            }
        }
    elif name in s.pids:
        st["containerID"] = f"process://{s.pids[name]}"
        st["state"] = {"running": {"startedAt": s.started_at[name]}}
        st["started"] = True
        st["ready"] = may_be_ready and s.ready.get(name, False)
    else:
        reason, message = s.waiting or (
            ("CrashLoopBackOff", "") if name in s.started else ("PodInitializing", "")
        )
        st["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    return st
