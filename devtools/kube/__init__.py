"""A local Kubernetes control plane made of the real server programs.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as local processes; kwok
plays the kubelets of a few fake nodes (it marks nodes Ready, brings scheduled pods to Running
and Ready, and moves the pods of Jobs to Succeeded). No container runs: pods exist only as API
objects, but every API object goes through the real validation, admission, RBAC, watch cache,
controllers and garbage collector.

    cp = ControlPlane(run_dir)
    cp.start()                 # returns once the API server is ready and the nodes are Ready
    cp.kubeconfig              # admin kubeconfig (system:masters)
    cp.stop()                  # SIGTERM, then SIGKILL; nothing is left running

`python -m devtools.kube up RUNDIR` / `down RUNDIR` do the same from a shell.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .pki import ClusterPKI

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = ROOT / ".tools" / "bin"
DEFAULT_STAGES = ROOT / ".tools" / "share" / "kwok" / "stages.yaml"

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
CLUSTER_NAME = "kairn-local"
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
BINARIES = COMPONENTS[:-2]
PYTHON_COMPONENTS = {"provisioner", "process-node"}  # run with `python -m devtools.kube.<name>`
PROCESS_NODE_PREFIX = "kairn-node"

# Every controller a cluster runs by default (cloud controllers stay off without a cloud).
# The node lifecycle controller, which lifts the not-ready taint from new nodes, gets a long
# grace period: on a loaded machine a late kwok heartbeat must not get the fake nodes
# tainted and their pods evicted.
CONTROLLERS = ("*",)
NODE_MONITOR_GRACE = "10m"

PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    # The parent may have died between fork and prctl.
    if os.getppid() == 1:
        os._exit(1)


def _owned(pid: int, run_dir: Path) -> bool:
    """True when pid is alive and is one of ours (its command line names our run folder)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return str(run_dir).encode() in cmdline


def _kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [
            {
                "name": CLUSTER_NAME,
                "context": {"cluster": CLUSTER_NAME, "user": user, "namespace": "default"},
            }
        ],
        "current-context": CLUSTER_NAME,
    }
    # JSON is YAML: every consumer (client-go, kubectl, helm, the Python client) reads it.
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok in `run_dir`.

    die_with_parent: children get PR_SET_PDEATHSIG, so they end when the starting thread does
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
        return self.kwok_node_names + [
            f"{PROCESS_NODE_PREFIX}-{i}" for i in range(self.process_nodes)
        ]

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
            self._spawn("etcd", self._etcd_args())
            self._wait(deadline, "etcd health", self._etcd_healthy)
            self.timings["etcd"] = time.monotonic() - t0
            self._spawn("kube-apiserver", self._apiserver_args())
            self._wait(deadline, "kube-apiserver /readyz", self._apiserver_ready)
            self.timings["api_ready"] = time.monotonic() - t0
            for name in COMPONENTS[2:]:
                if name != "process-node" or self.process_nodes:
                    self._spawn(name, self._args(name))
            self._create_nodes()
            self._wait(
                deadline,
                "ServiceAccount default/default and kube-root-ca.crt",
                self._controllers_working,
            )
            self._wait(deadline, "fake nodes Ready", self._nodes_ready)
            self._wait(
                deadline,
                "default StorageClass",
                lambda: self._get("/apis/storage.k8s.io/v1/storageclasses/standard") is not None,
            )
            self.timings["usable"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stops every component, also ones started by another process (from the pidfiles)."""
        for name in reversed(COMPONENTS):
            pid = self._pid(name)
            proc = self._procs.pop(name, None)
            if pid is not None and _owned(pid, self.run_dir):
                # the process node stops its pods first: brokers shut down in a controlled way
                self._terminate(pid, proc, timeout + 40 if name == "process-node" else timeout)
            elif proc is not None:
                proc.poll()
            (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)

    def running(self) -> list[str]:
        return [
            n for n in COMPONENTS if (p := self._pid(n)) is not None and _owned(p, self.run_dir)
        ]

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
        path = Path(path)
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CLUSTER_NAME,
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki_dir / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [
                {"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": "token"}}
            ],
            "current-context": CLUSTER_NAME,
        }
        path.write_text(json.dumps(cfg, indent=2) + "\n")
        path.chmod(0o600)
        return path

    def service_account_kubeconfig(
        self, path: str | os.PathLike, namespace: str, name: str, seconds: int = 3600
    ) -> Path:
        """A kubeconfig with a fresh token of ServiceAccount namespace/name."""
        req = urllib.request.Request(
            f"{self.server}/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            data=json.dumps(
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {"expirationSeconds": seconds},
                }
            ).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10, context=self._ssl_context()) as r:
            token = json.loads(r.read())["status"]["token"]
        return self.token_kubeconfig(path, token)

    def compact_etcd(self) -> int:
        """Compacts etcd's history up to its current revision (physically), the way the API
        server's periodic compaction does. Returns that revision."""
        rev = int(self._etcd_call("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
        self._etcd_call("/v3/kv/compaction", {"revision": str(rev), "physical": True})
        return rev

    def restart_apiserver(self, timeout: float = 120.0) -> None:
        """Restarts kube-apiserver on the same port, as an upgrade or a crash would."""
        deadline = time.monotonic() + timeout
        pid = self._pid("kube-apiserver")
        if pid is not None and _owned(pid, self.run_dir):
            self._terminate(pid, self._procs.pop("kube-apiserver", None), 20.0)
        self._spawn("kube-apiserver", self._apiserver_args())
        self._wait(deadline, "kube-apiserver /readyz", self._apiserver_ready)

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
        self.pki = pki

    def _write_kubeconfigs(self) -> None:
        ca = self.pki_dir / "ca.crt"
        for name in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
            path = self.kubeconfig if name == "admin" else self.run_dir / f"{name}.kubeconfig"
            _kubeconfig(
                path,
                self.server,
                ca,
                self.pki_dir / f"{name}.crt",
                self.pki_dir / f"{name}.key",
                name,
            )

    # ----------------------------------------------------------------- arguments
    def _args(self, name: str) -> list[str]:
        return {
            "etcd": self._etcd_args,
            "kube-apiserver": self._apiserver_args,
            "kube-controller-manager": self._kcm_args,
            "kube-scheduler": self._scheduler_args,
            "kwok": self._kwok_args,
            "provisioner": self._provisioner_args,
            "process-node": self._process_node_args,
        }[name]()

    def _etcd_args(self) -> list[str]:
        client, peer = self.state["etcd"], self.state["etcd_peer"]
        return [
            "--name=kairn",
            f"--data-dir={self.run_dir / 'etcd'}",
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

    def _apiserver_args(self) -> list[str]:
        p = self.pki_dir
        port = self.server.rsplit(":", 1)[1]
        return [
            f"--etcd-servers={self.state['etcd']}",
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

    def _kcm_args(self) -> list[str]:
        p = self.pki_dir
        kc = self.run_dir / "kube-controller-manager.kubeconfig"
        return [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--secure-port=0",
            "--leader-elect=false",
            f"--controllers={','.join(CONTROLLERS)}",
            "--use-service-account-credentials=true",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--cluster-name={CLUSTER_NAME}",
            f"--node-monitor-grace-period={NODE_MONITOR_GRACE}",
            "--v=1",
        ]

    def _scheduler_args(self) -> list[str]:
        kc = self.run_dir / "kube-scheduler.kubeconfig"
        return [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--secure-port=0",
            "--leader-elect=false",
            "--v=1",
        ]

    def _kwok_args(self) -> list[str]:
        key, value = KWOK_ANNOTATION
        return [
            f"--kubeconfig={self.run_dir / 'kwok.kubeconfig'}",
            f"--config={self.stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            "--node-lease-duration-seconds=40",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
        ]

    def _provisioner_args(self) -> list[str]:
        return [
            "-m",
            "devtools.kube.provisioner",
            f"--kubeconfig={self.kubeconfig}",
            f"--run-dir={self.run_dir}",
        ]

    def _process_node_args(self) -> list[str]:
        return [
            "-m",
            "devtools.kube.node",
            f"--kubeconfig={self.kubeconfig}",
            f"--run-dir={self.run_dir / 'node'}",
            f"--nodes={self.process_nodes}",
        ]

    # ----------------------------------------------------------------- processes
    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (owned by the child)
        try:
            proc = subprocess.Popen(
                [sys.executable if name in PYTHON_COMPONENTS else str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        finally:
            log.close()
        self._procs[name] = proc
        (self.pid_dir / f"{name}.pid").write_text(f"{proc.pid}\n")

    def _pid(self, name: str) -> int | None:
        try:
            return int((self.pid_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _terminate(self, pid: int, proc: subprocess.Popen | None, timeout: float) -> None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(pid, sig)  # each component leads its own process group
            except ProcessLookupError:
                pass
            except PermissionError:
                os.kill(pid, sig)
            end = time.monotonic() + wait
            while time.monotonic() < end:
                if proc is not None:
                    if proc.poll() is not None:
                        return
                elif not _owned(pid, self.run_dir):
                    return
                time.sleep(0.05)
        raise ControlPlaneError(f"process {pid} survived SIGKILL")

    def _wait(self, deadline: float, what: str, check) -> None:
        """Polls `check` until it returns true; fails at the deadline or when a component
        exits, with the end of that component's log."""
        last_error = None
        while True:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                        f"{self.log(name)}"
                    )
            try:
                if check():
                    return
            except Exception as e:  # the server is still coming up
                last_error = e
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"timed out waiting for {what} (last error: {last_error})")
            time.sleep(0.1)

    # ----------------------------------------------------------------- readiness
    def _etcd_call(self, path: str, body: dict) -> dict:
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

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
            return json.loads(r.read()).get("health") == "true"

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return ctx

    def _apiserver_ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                self.server + "/readyz", timeout=5, context=self._ssl_context()
            ) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    def _get(self, path: str) -> dict | None:
        try:
            with urllib.request.urlopen(
                self.server + path, timeout=5, context=self._ssl_context()
            ) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def _controllers_working(self) -> bool:
        return (
            self._get("/api/v1/namespaces/default/serviceaccounts/default") is not None
            and self._get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt") is not None
        )

    def _nodes_ready(self) -> bool:
        for name in self.node_names:
            node = self._get(f"/api/v1/nodes/{name}")
            if node is None:
                return False
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            if conds.get("Ready") != "True":
                return False
            # The node lifecycle controller lifts the not-ready taint once the node is Ready;
            # until then nothing schedules there.
            if node.get("spec", {}).get("taints"):
                return False
        return True

    def _create_nodes(self) -> None:
        key, value = KWOK_ANNOTATION
        for name in self.kwok_node_names:
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                        "topology.kubernetes.io/zone": f"zone-{name[-1]}",
                    },
                },
                "spec": {},
                "status": {
                    "allocatable": {
                        "cpu": "32",
                        "memory": "256Gi",
                        "pods": "110",
                        "ephemeral-storage": "1Ti",
                    },
                    "capacity": {
                        "cpu": "32",
                        "memory": "256Gi",
                        "pods": "110",
                        "ephemeral-storage": "1Ti",
                    },
                    "nodeInfo": {
                        "architecture": "amd64",
                        "operatingSystem": "linux",
                        "kubeletVersion": "fake",
                        "kubeProxyVersion": "fake",
                    },
                },
            }
            req = urllib.request.Request(
                self.server + "/api/v1/nodes",
                data=json.dumps(node).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=10, context=self._ssl_context()):
                    pass
            except urllib.error.HTTPError as e:
                if e.code != 409:
                    raise ControlPlaneError(f"creating node {name}: {e.code} {e.read()!r}") from e
