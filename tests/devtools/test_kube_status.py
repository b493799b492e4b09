"""What the local nodes report (devtools/kube/status.py): pure functions, no API server."""

from __future__ import annotations

from devtools.kube.status import HOST_IP, PodState, node_object, node_status, pod_status

T0, T1 = "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z"

SPEC = {
    "initContainers": [
        {"name": "init", "image": "kairn:1"},
        {"name": "tls", "image": "kairn:1", "restartPolicy": "Always"},
    ],
    "containers": [{"name": "kafka", "image": "apache/kafka:3.9.1"}],
}


def _conditions(status: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def _states(status: dict) -> dict[str, dict]:
    return {
        c["name"]: c["state"] for c in status["initContainerStatuses"] + status["containerStatuses"]
    }


def test_a_pod_not_started_yet_is_pending_without_an_address():
    status, _ = pod_status(SPEC, PodState(start_time=T0), T0)
    assert status["phase"] == "Pending"
    assert "podIP" not in status
    assert status["hostIP"] == HOST_IP
    assert set(_conditions(status).values()) == {"False"}
    assert {s["waiting"]["reason"] for s in _states(status).values()} == {"ContainerCreating"}


def test_a_running_pod_is_ready_when_its_main_containers_and_sidecars_are():
    state = PodState(
        start_time=T0,
        phase="Running",
        waiting=None,
        address="127.80.1.2",
        started_at={"init": T0, "tls": T0, "kafka": T0},
        finished_at={"init": T0},
        terminated={"init": 0},
        ready={"tls": True, "kafka": False},
        pids={"tls": 11, "kafka": 12},
        started={"init", "tls", "kafka"},
    )
    status, transitions = pod_status(SPEC, state, T0)
    assert status["podIP"] == "127.80.1.2" and status["podIPs"] == [{"ip": "127.80.1.2"}]
    assert _conditions(status) == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "False",
        "Ready": "False",
    }
    states = _states(status)
    assert states["init"]["terminated"]["reason"] == "Completed"
    assert states["kafka"] == {"running": {"startedAt": T0}}
    by_name = {c["name"]: c for c in status["containerStatuses"]}
    assert by_name["kafka"]["containerID"] == "process://12"

    state.ready["kafka"] = True
    state.transitions = transitions
    status, _ = pod_status(SPEC, state, T1)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"] == {"type": "Ready", "status": "True", "lastTransitionTime": T1}
    # an unchanged condition keeps the time of its last transition
    assert conditions["Initialized"]["lastTransitionTime"] == T0
    sidecar = next(c for c in status["initContainerStatuses"] if c["name"] == "tls")
    assert sidecar["ready"] and sidecar["started"]


def test_a_run_once_init_container_is_never_ready():
    state = PodState(
        start_time=T0,
        phase="Pending",
        waiting=None,
        address="127.80.1.2",
        started_at={"init": T0},
        ready={"init": True},
        pids={"init": 10},
        started={"init"},
    )
    status, _ = pod_status(SPEC, state, T0)
    init = status["initContainerStatuses"][0]
    assert init["started"] and not init["ready"]
    assert _conditions(status)["Initialized"] == "False"


def test_exited_containers_show_exit_codes_and_restarts():
    state = PodState(
        start_time=T0,
        phase="Running",
        waiting=None,
        address="127.80.1.2",
        terminated={"kafka": None},
        restarts={"kafka": 3},
        started={"init", "tls", "kafka"},
    )
    status, _ = pod_status(SPEC, state, T1)
    kafka = status["containerStatuses"][0]
    assert kafka["restartCount"] == 3
    assert kafka["state"]["terminated"] == {
        "exitCode": 137,  # killed
        "reason": "Error",
        "startedAt": T0,
        "finishedAt": T1,
    }
    # a sidecar that has run and is down again waits in CrashLoopBackOff
    assert _states(status)["tls"] == {"waiting": {"reason": "CrashLoopBackOff"}}


def test_a_pod_that_cannot_start_says_why():
    state = PodState(start_time=T0, waiting=("CreateContainerConfigError", "Not Found: cm"))
    status, _ = pod_status(SPEC, state, T0)
    assert _states(status)["kafka"] == {
        "waiting": {"reason": "CreateContainerConfigError", "message": "Not Found: cm"}
    }


def test_node_objects_carry_the_well_known_labels_capacity_and_heartbeat():
    node = node_object(
        "kairn-node-0",
        {"kairn.dev/process-node": "true"},
        node_status({"kubeletVersion": "v1"}, [{"type": "InternalIP", "address": HOST_IP}], T0),
        annotations={"a": "b"},
    )
    meta, status = node["metadata"], node["status"]
    assert meta["labels"]["kubernetes.io/hostname"] == "kairn-node-0"
    assert meta["labels"]["kairn.dev/process-node"] == "true"
    assert meta["annotations"] == {"a": "b"}
    assert status["capacity"] == status["allocatable"] and status["capacity"]["pods"] == "110"
    assert status["nodeInfo"] == {
        "architecture": "amd64",
        "operatingSystem": "linux",
        "kubeletVersion": "v1",
    }
    (ready,) = status["conditions"]
    assert ready["type"] == "Ready" and ready["lastHeartbeatTime"] == T0


def test_a_node_without_heartbeat_has_no_conditions():
    status = node_status({"kubeletVersion": "fake"})
    assert "conditions" not in status and "addresses" not in status
