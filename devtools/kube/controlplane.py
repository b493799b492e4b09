"""A local Kubernetes control plane made of the real server programs.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as local processes; kwok
plays the kubelets of a few fake nodes (it marks nodes Ready, brings scheduled pods to Running
and Ready, and moves the pods of Jobs to Succeeded). No container runs: pods exist only as API
objects, but every API object goes through the real validation, admission, RBAC, watch cache,
controllers and garbage collector. With ``process_nodes``, devtools/kube/node.py adds nodes
whose pods do run, as local processes.

    cp = ControlPlane(run_dir)
    cp.start()                 # returns once the API server is ready and the nodes are Ready
    cp.kubeconfig              # admin kubeconfig (system:masters)
    cp.stop()                  # SIGTERM, then SIGKILL; nothing is left running

`python -m devtools.kube up RUNDIR` / `down RUNDIR` do the same from a shell.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
from pathlib import Path

from devtools.kube import (
    DEFAULT_BIN,
    DEFAULT_STAGES,
    ROOT,
    ControlPlaneError,
    process_node_names,
)
from devtools.kube.adminapi import AdminApi
from devtools.kube.components import BINARIES, COMPONENTS, KWOK_ANNOTATION, SERVICE_IP, command
from devtools.kube.kubeconfig import write_kubeconfig
from devtools.kube.pki import ClusterPKI
from devtools.kube.status import node_object, node_status
from devtools.procs import alive, end_group, spawn
from devtools.waiting import wait_until

KWOK_NODE_INFO = {"kubeletVersion": "fake", "kubeProxyVersion": "fake"}


class _ComponentExited(ControlPlaneError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok in `run_dir`.

    die_with_parent: children get PR_SET_PDEATHSIG, so they end when the starting process does
    (for tests). Leave it off for a control plane that outlives the command starting it.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        bin_dir: str | os.PathLike | None = None,
        nodes: int = 3,
        die_with_parent: bool = False,
        stages: str | os.PathLike | None = None,
        process_nodes: int = 0,
    ):
        self.run_dir = Path(run_dir).resolve()
        self.bin_dir = Path(bin_dir or os.environ.get("KAIRN_KUBE_BIN") or DEFAULT_BIN)
        self.nodes = nodes
        self.process_nodes = process_nodes  # nodes whose pods really run (devtools/kube/node.py)
        self.die_with_parent = die_with_parent
        self.stages = Path(stages or DEFAULT_STAGES)
        self.pki_dir = self.run_dir / "pki"
        self.log_dir = self.run_dir / "logs"
        self.pid_dir = self.run_dir / "pids"
        self.kubeconfig = self.run_dir / "kubeconfig"
        self.state_file = self.run_dir / "state.json"
        self._procs: dict[str, subprocess.Popen] = {}
        self.state: dict = {}
        self.timings: dict[str, float] = {}

    # ----------------------------------------------------------------- public API
    @property
    def server(self) -> str:
        return self.state["server"]

    @property
    def etcd_url(self) -> str:
        return self.state["etcd"]

    @property
    def kwok_node_names(self) -> list[str]:
        return [f"kwok-node-{i}" for i in range(self.nodes)]

    @property
    def node_names(self) -> list[str]:
        return self.kwok_node_names + process_node_names(self.process_nodes)

    def start(self, timeout: float = 180.0) -> ControlPlane:
        if self.running():
            raise ControlPlaneError(f"a control plane is already running in {self.run_dir}")
        for name in BINARIES:
            if not (self.bin_dir / name).exists():
                raise ControlPlaneError(
                    f"{self.bin_dir / name} is missing: run scripts/setup-kube.sh"
                )
        if not self.stages.exists():
            raise ControlPlaneError(f"{self.stages} is missing: run scripts/setup-kube.sh")
        t0 = time.monotonic()
        deadline = t0 + timeout
        # A fresh cluster every time: old data would carry old certificates' objects.
        for sub in ("etcd", "pki", "logs", "pids"):
            shutil.rmtree(self.run_dir / sub, ignore_errors=True)
        for sub in (self.log_dir, self.pid_dir):
            sub.mkdir(parents=True, exist_ok=True)
        self._write_pki()
        etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
        self.state = {
            "server": f"https://127.0.0.1:{api_port}",
            "etcd": f"http://127.0.0.1:{etcd_port}",
            "etcd_peer": f"http://127.0.0.1:{peer_port}",
            "kubeconfig": str(self.kubeconfig),
            "nodes": self.node_names,
            "process_nodes": self.process_nodes,
        }
        self.state_file.write_text(json.dumps(self.state, indent=2) + "\n")
        self._write_kubeconfigs()
        try:
            self._spawn("etcd")
            self._wait(deadline, "etcd health", lambda: self.admin_api.etcd_healthy())
            self.timings["etcd"] = time.monotonic() - t0
            self._spawn("kube-apiserver")
            self._wait(deadline, "kube-apiserver /readyz", lambda: self.admin_api.ready())
            self.timings["api_ready"] = time.monotonic() - t0
            for name in COMPONENTS[2:]:
                if name != "process-node" or self.process_nodes:
                    self._spawn(name)
            self._create_kwok_nodes()
            self._wait(
                deadline,
                "ServiceAccount default/default and kube-root-ca.crt",
                self._controllers_working,
            )
            self._wait(deadline, "every node Ready", self.nodes_ready)
            self._wait(
                deadline,
                "default StorageClass",
                lambda: (
                    self.admin_api.get("/apis/storage.k8s.io/v1/storageclasses/standard")
                    is not None
                ),
            )
            self.timings["usable"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stops every component, also ones started by another process (from the pidfiles)."""
        for name in reversed(COMPONENTS):
            # the process node stops its pods first: brokers shut down in a controlled way
            self._terminate(name, timeout + 40 if name == "process-node" else timeout)

    def running(self) -> list[str]:
        return [n for n in COMPONENTS if self._owned_pid(n) is not None]

    def load(self) -> ControlPlane:
        """Reads the state of a control plane started earlier in the same run folder."""
        self.state = json.loads(self.state_file.read_text())
        self.process_nodes = self.state.get("process_nodes", 0)
        return self

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))

    def token_kubeconfig(self, path: str | os.PathLike, token: str) -> Path:
        """Writes a kubeconfig that authenticates with a bearer token only (for example a
        ServiceAccount token from the TokenRequest API), so a process run with it has exactly
        that account's permissions."""
        return write_kubeconfig(
            path, self.server, self.pki_dir / "ca.crt", {"token": token}, user="token"
        )

    def service_account_kubeconfig(
        self, path: str | os.PathLike, namespace: str, name: str, seconds: int = 3600
    ) -> Path:
        """A kubeconfig with a fresh token of ServiceAccount namespace/name."""
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        }
        answer = self.admin_api.post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", request
        )
        return self.token_kubeconfig(path, answer["status"]["token"])

    def compact_etcd(self) -> int:
        """Compacts etcd's history up to its current revision (physically), the way the API
        server's periodic compaction does. Returns that revision."""
        rev = int(self.admin_api.etcd("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
        self.admin_api.etcd("/v3/kv/compaction", {"revision": str(rev), "physical": True})
        return rev

    def restart_apiserver(self, timeout: float = 120.0) -> None:
        """Restarts kube-apiserver on the same port, as an upgrade or a crash would."""
        deadline = time.monotonic() + timeout
        self._terminate("kube-apiserver", 20.0)
        self._spawn("kube-apiserver")
        self._wait(deadline, "kube-apiserver /readyz", lambda: self.admin_api.ready())

    def log(self, name: str, tail: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-tail:])
        except OSError:
            return ""

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- files
    def _write_pki(self) -> None:
        pki = ClusterPKI(self.pki_dir)
        pki.ensure_ca()
        pki.server(
            "apiserver",
            dns=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=("127.0.0.1", SERVICE_IP),
        )
        pki.client("admin", "kairn-admin", ("system:masters",))
        pki.client("kube-controller-manager", "system:kube-controller-manager")
        pki.client("kube-scheduler", "system:kube-scheduler")
        # kwok writes the status of every node and pod it plays; the Node authorizer would
        # allow that only per node, so it authenticates as an administrator.
        pki.client("kwok", "kwok", ("system:masters",))
        pki.service_account_keys()

    def _write_kubeconfigs(self) -> None:
        for name in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
            write_kubeconfig(
                self.kubeconfig if name == "admin" else self.run_dir / f"{name}.kubeconfig",
                self.server,
                self.pki_dir / "ca.crt",
                {
                    "client-certificate": str(self.pki_dir / f"{name}.crt"),
                    "client-key": str(self.pki_dir / f"{name}.key"),
                },
                user=name,
                namespace="default",
            )

    # ----------------------------------------------------------------- processes
    def _spawn(self, name: str) -> None:
        proc = spawn(
            command(name, self),
            self.log_dir / f"{name}.log",
            cwd=ROOT,
            die_with_parent=signal.SIGTERM if self.die_with_parent else None,
        )
        self._procs[name] = proc
        (self.pid_dir / f"{name}.pid").write_text(f"{proc.pid}\n")

    def _owned_pid(self, name: str) -> int | None:
        """The pid of component ``name`` if it is running and one of ours (its command line
        names our run folder)."""
        try:
            pid = int((self.pid_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid, command_has=str(self.run_dir)) else None

    def _terminate(self, name: str, timeout: float) -> None:
        pid, proc = self._owned_pid(name), self._procs.pop(name, None)
        if pid is not None:
            if proc is not None:
                gone = lambda: proc.poll() is not None  # noqa: E731 (reaps our own child)
            else:
                gone = lambda: not alive(pid, command_has=str(self.run_dir))  # noqa: E731
            end_group(pid, gone, timeout)  # each component leads its own process group
        elif proc is not None:
            proc.poll()
        (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)

    def _wait(self, deadline: float, what: str, check) -> None:
        """Polls `check` until it returns true; fails at the deadline or when a component
        exits, with the end of that component's log."""

        def check_components_first():
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise _ComponentExited(
                        f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                        f"{self.log(name)}"
                    )
            return check()

        try:
            wait_until(
                check_components_first,
                deadline - time.monotonic(),
                what,
                interval=0.1,
                fatal=(_ComponentExited,),
            )
        except TimeoutError as e:
            raise ControlPlaneError(str(e)) from None

    # ----------------------------------------------------------------- etcd and the API
    @property
    def admin_api(self) -> AdminApi:
        return AdminApi(self.server, self.etcd_url, self.pki_dir)

    def _controllers_working(self) -> bool:
        return (
            self.admin_api.get("/api/v1/namespaces/default/serviceaccounts/default") is not None
            and self.admin_api.get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt")
            is not None
        )

    def nodes_ready(self) -> bool:
        """Every node Ready and untainted: the node lifecycle controller lifts the not-ready
        taint once a node is Ready; until then nothing schedules there."""
        for name in self.node_names:
            node = self.admin_api.get(f"/api/v1/nodes/{name}")
            if node is None:
                return False
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            if conds.get("Ready") != "True" or node.get("spec", {}).get("taints"):
                return False
        return True

    def _create_kwok_nodes(self) -> None:
        key, value = KWOK_ANNOTATION
        for name in self.kwok_node_names:
            node = node_object(
                name,
                {"type": "kwok", "topology.kubernetes.io/zone": f"zone-{name[-1]}"},
                node_status(KWOK_NODE_INFO),
                annotations={key: value, "node.alpha.kubernetes.io/ttl": "0"},
            )
            try:
                self.admin_api.post("/api/v1/nodes", node)
            except urllib.error.HTTPError as e:
                if e.code != 409:
                    raise ControlPlaneError(f"creating node {name}: {e.code} {e.read()!r}") from e
