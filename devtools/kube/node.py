"""A process-backed node for the local control plane: it plays the kubelet for the pods bound
to its nodes and runs each container as a local process. Test support, not part of kairn.

For each pod scheduled to one of its nodes it materialises the ConfigMap, Secret and projected
ServiceAccount volumes into a folder of the pod, sets the environment, runs the containers
(devtools/podspec.py translates the pod, devtools/localpod.py runs it: init containers in
order, native sidecars, then the main containers), reports phase, pod IP and readiness from the
pod's own readiness probes, restarts containers per restartPolicy, marks Job pods Succeeded or
Failed from their exit codes, and stops the processes when the pod is deleted (SIGTERM, SIGKILL
after the grace period) before removing the pod object, as a kubelet does.

What differs from a kubelet, and why:
- Pod IPs are loopback addresses (one per pod, in a /24 of 127/8 picked per node process), and
  cluster DNS is a block of /etc/hosts (devtools/kube/hosts.py), so names stay names and TLS
  host-name verification works.
- The in-cluster API configuration is a kubeconfig (``KUBECONFIG``) that carries the pod's own
  projected ServiceAccount token: the same identity and RBAC, without a fixed
  /var/run/secrets path on the machine.
- Volumes are copies made at container start; Secrets are not refreshed while a pod runs.
- Liveness and startup probes are not run; readiness probes run at most every PROBE_PERIOD.
- Listener addresses, log.dirs and zookeeper.connect in a broker's files are rewritten (the
  pod's address, a local folder), so kairn-roller's comparison of a broker's running settings
  with the ConfigMap always finds static differences here: a roll never takes its
  "dynamic settings only" shortcut, and scaling out restarts the existing brokers, which in a
  cluster would not happen.
- Tests can hold a pod: while `<run-dir>/hold/<namespace>/<pod>` exists, containers that
  exit stay down.

    python -m devtools.kube.node --kubeconfig FILE --run-dir DIR [--nodes 3]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config, watch

from devtools.kube import PROCESS_NODE_PREFIX
from devtools.kube.hosts import HostsFile, dns_entries
from devtools.localpod import InitContainerFailed, LocalPod
from devtools.podspec import PodIdentity, plan_pod

log = logging.getLogger("process-node")

DOMAIN = "cluster.local"
PROBE_PERIOD = 2.0  # seconds; the chart's periods are for real clusters, tests want quick answers
MAX_BACKOFF = 20.0  # seconds between restarts of a crashing container (a kubelet: 300)
HOST_IP = "127.0.0.1"


def node_names(count: int) -> list[str]:
    return [f"{PROCESS_NODE_PREFIX}-{i}" for i in range(count)]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Addresses:
    """One loopback address per pod name, stable for the life of the node process, so that a
    StatefulSet pod keeps its address across restarts as it keeps its DNS name."""

    def __init__(self):
        self.prefix = f"127.{random.randint(64, 254)}.{random.randint(0, 254)}."
        self._by_pod: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def of(self, namespace: str, name: str) -> str:
        with self._lock:
            key = (namespace, name)
            if key not in self._by_pod:
                used = set(self._by_pod.values())
                free = [
                    f"{self.prefix}{i}" for i in range(2, 255) if f"{self.prefix}{i}" not in used
                ]
                if not free:
                    raise RuntimeError("no loopback address left for pods")
                self._by_pod[key] = free[0]
            return self._by_pod[key]


class ApiSources:
    """A pod's ConfigMaps, Secrets, claims and projected volumes, read from the API server."""

    def __init__(self, node: ProcessNode, pod: dict, pod_dir: Path):
        self.node, self.pod, self.pod_dir = node, pod, pod_dir
        self.ns = pod["metadata"]["namespace"]
        self.kubeconfig: Path | None = None

    def configmap(self, name: str) -> dict[str, str]:
        cm = self.node.core.read_namespaced_config_map(name, self.ns)
        data = dict(cm.data or {})
        for k, v in (cm.binary_data or {}).items():
            data[k] = base64.b64decode(v).decode("utf-8", "replace")
        return data

    def secret_dir(self, name: str) -> Path:
        secret = self.node.core.read_namespaced_secret(name, self.ns)
        folder = self.pod_dir / "secrets" / name
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        for key, value in (secret.data or {}).items():
            path = folder / key
            path.write_bytes(base64.b64decode(value))
            path.chmod(0o600)
        return folder

    def volume(self, volume: dict, pod: PodIdentity, pod_dir: Path) -> Path | None:
        if "persistentVolumeClaim" in volume:
            return (
                self.node.run_dir
                / "claims"
                / self.ns
                / volume["persistentVolumeClaim"]["claimName"]
            )
        if "projected" in volume:
            return self._projected(volume)
        return None

    def _projected(self, volume: dict) -> Path:
        folder = self.pod_dir / "volumes" / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        for source in volume["projected"].get("sources", []):
            if "serviceAccountToken" in source:
                sat = source["serviceAccountToken"]
                token = self._token(sat.get("audience"), sat.get("expirationSeconds", 3607))
                (folder / sat["path"]).write_text(token)
                self.kubeconfig = self._write_kubeconfig(folder / sat["path"], folder / "ca.crt")
            elif "configMap" in source:
                data = self.configmap(source["configMap"]["name"])
                items = source["configMap"].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (folder / item["path"]).write_text(data[item["key"]])
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items", []):
                    path = item["fieldRef"]["fieldPath"]
                    if path != "metadata.namespace":
                        raise ValueError(f"unsupported projected downward API field {path}")
                    (folder / item["path"]).write_text(self.ns)
            else:
                raise ValueError(f"unsupported projected volume source {sorted(source)}")
        return folder

    def _token(self, audience: str | None, seconds: int) -> str:
        meta = self.pod["metadata"]
        # 3607 s and bound to the pod: the API server extends it, as for a kubelet's tokens
        req = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[audience] if audience else [],
                expiration_seconds=seconds,
                bound_object_ref=client.V1BoundObjectReference(
                    kind="Pod", api_version="v1", name=meta["name"], uid=meta["uid"]
                ),
            )
        )
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        resp = self.node.core.create_namespaced_service_account_token(sa, self.ns, req)
        return resp.status.token

    def _write_kubeconfig(self, token_file: Path, ca_file: Path) -> Path:
        path = self.pod_dir / "kubeconfig"
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "in-cluster",
                    "cluster": {"server": self.node.server, "certificate-authority": str(ca_file)},
                }
            ],
            "users": [{"name": "pod", "user": {"tokenFile": str(token_file)}}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {"cluster": "in-cluster", "user": "pod", "namespace": self.ns},
                }
            ],
            "current-context": "in-cluster",
        }
        path.write_text(json.dumps(cfg, indent=2) + "\n")
        path.chmod(0o600)
        return path


class PodWorker(threading.Thread):
    """Runs one pod (one UID) from start to its final deletion."""

    def __init__(self, node: ProcessNode, pod: dict):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.node, self.pod, self.uid = node, pod, meta["uid"]
        self.ns, self.pod_name = meta["namespace"], meta["name"]
        self.address = node.addresses.of(self.ns, self.pod_name)
        self.dir = node.run_dir / "pods" / self.ns / f"{self.pod_name}.{self.uid[:8]}"
        self.wake = threading.Event()
        self.local: LocalPod | None = None
        self.phase = "Pending"
        self.waiting: tuple[str, str] | None = ("ContainerCreating", "")
        self.started_at: dict[str, str] = {}
        self.finished_at: dict[str, str] = {}
        self.terminated: dict[str, int | None] = {}
        self.ready: dict[str, bool] = {}
        self.next_probe: dict[str, float] = {}
        self.next_restart: dict[str, float] = {}
        self.transitions: dict[str, tuple[str, str]] = {}
        self.start_time = _now()
        self.sent: dict | None = None
        self.stopping = False

    # ---- events from the watch ------------------------------------------------------------
    def update(self, pod: dict | None) -> None:
        self.pod = pod
        self.wake.set()

    # ---- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("%s/%s: worker failed", self.ns, self.pod_name)
        finally:
            self.node.forget(self.uid)

    def _loop(self) -> None:
        retry_at = 0.0
        while not self.node.stopping.is_set():
            pod = self.pod
            if pod is None:  # deleted without grace (force): nothing to wait for
                self._stop_pod(0)
                return
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                self._stop_pod(meta.get("deletionGracePeriodSeconds"))
                self._final_delete()
                return
            if self.local is None and self.phase == "Pending" and time.monotonic() >= retry_at:
                if not self._start(pod):
                    retry_at = time.monotonic() + 2
            elif self.local is not None and self.phase == "Running":
                self._supervise()
            self._report()
            self.wake.wait(0.5)
            self.wake.clear()

    def _start(self, pod: dict) -> bool:
        self.dir.mkdir(parents=True, exist_ok=True)
        labels = pod["metadata"].get("labels") or {}
        identity = PodIdentity(
            self.pod_name,
            int(labels.get("apps.kubernetes.io/pod-index", "0")),
            self.ns,
            self.address,
            labels=labels,
            annotations=pod["metadata"].get("annotations") or {},
            node=pod["spec"]["nodeName"],
        )
        sources = ApiSources(self.node, pod, self.dir)
        try:
            run = plan_pod(pod["spec"], identity, self.dir, sources)
        except (client.ApiException, KeyError, ValueError, OSError) as e:
            reason = getattr(e, "reason", None) or type(e).__name__
            self.waiting = ("CreateContainerConfigError", f"{reason}: {str(e)[:300]}")
            log.info("%s/%s: cannot start yet: %s", self.ns, self.pod_name, self.waiting[1])
            return False
        if sources.kubeconfig:  # in-cluster configuration: the pod's own ServiceAccount token
            for c in run.containers:
                c.env.setdefault("KUBECONFIG", str(sources.kubeconfig))
        self.local = LocalPod(run, self.dir)
        self.waiting = None
        self.phase = "Running"
        self._report()  # the pod IP, before the containers, as a sandbox gets it
        try:
            self.local.start()
        except InitContainerFailed as e:
            log.info("%s/%s: %s", self.ns, self.pod_name, e)
            self.terminated[e.container] = e.code
            self.local.kill()
            if run.restart_policy == "Never":
                self.phase = "Failed"
            else:
                self.local, self.phase = None, "Pending"
                self.waiting = ("Init:CrashLoopBackOff", str(e))
                return False
        now = _now()
        for c in run.containers:
            self.started_at[c.name] = now
            if c.init and c.name in self.local.init_codes:
                self.terminated[c.name] = self.local.init_codes[c.name]
                self.finished_at[c.name] = now
        log.info("%s/%s: started at %s", self.ns, self.pod_name, self.address)
        return True

    def _supervise(self) -> None:
        local = self.local
        assert local is not None
        policy = local.run.restart_policy
        now = time.monotonic()
        for name, code in local.exited().items():
            spec = local.specs[name]
            again = spec.sidecar or policy == "Always" or (policy == "OnFailure" and code != 0)
            if not again:
                if name not in self.terminated:
                    self.terminated[name] = code
                    self.finished_at[name] = _now()
                continue
            if self.node.held(self.ns, self.pod_name):
                self.ready[name] = False
                continue  # a test keeps this pod's crashed containers down
            if name not in self.next_restart:
                backoff = min(MAX_BACKOFF, 2.0 ** local.restarts[name])
                self.next_restart[name] = now + backoff
                self.ready[name] = False
                log.info(
                    "%s/%s: %s exited with %s; restart in %.0fs",
                    self.ns,
                    self.pod_name,
                    name,
                    code,
                    backoff,
                )
            elif now >= self.next_restart[name]:
                del self.next_restart[name]
                local.restart(name)
                self.started_at[name] = _now()
        mains = [n for n in local.long_running() if not local.specs[n].sidecar]
        if mains and all(n in self.terminated for n in mains):
            local.stop(5)  # the sidecars, once every main container has finished
            self.phase = "Succeeded" if all(self.terminated[n] == 0 for n in mains) else "Failed"
            return
        for name in local.long_running():
            if name in self.terminated or now < self.next_probe.get(name, 0):
                continue
            spec = local.specs[name]
            if name not in self.next_probe:
                self.next_probe[name] = now + min(spec.probe_delay, 5.0)
                continue
            self.ready[name] = local.container_ready(name)
            self.next_probe[name] = time.monotonic() + min(spec.probe_period, PROBE_PERIOD)

    def _stop_pod(self, grace: float | None) -> None:
        if self.local is not None:
            self.local.stop(grace)
            log.info("%s/%s: stopped", self.ns, self.pod_name)

    def _final_delete(self) -> None:
        opts = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
        )
        try:
            self.node.core.delete_namespaced_pod(
                self.pod_name, self.ns, body=opts, grace_period_seconds=0
            )
        except client.ApiException as e:
            if e.status not in (404, 409):
                raise

    # ---- status -----------------------------------------------------------------------------
    def _condition(self, kind: str, ok: bool) -> dict:
        status = "True" if ok else "False"
        if self.transitions.get(kind, ("", ""))[0] != status:
            self.transitions[kind] = (status, _now())
        return {"type": kind, "status": status, "lastTransitionTime": self.transitions[kind][1]}

    def _container_status(self, c: dict, init: bool) -> dict:
        name = c["name"]
        local = self.local
        proc = local.procs.get(name) if local else None
        st: dict = {
            "name": name,
            "image": c.get("image", ""),
            "imageID": "",
            "restartCount": local.restarts.get(name, 0) if local else 0,
            "ready": False,
            "started": False,
        }
        if name in self.terminated:
            code = self.terminated[name]
            st["state"] = {
                "terminated": {
                    "exitCode": code if code is not None else 137,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": self.started_at.get(name, self.start_time),
                    "finishedAt": self.finished_at.get(name, _now()),
                }
            }
            return st
        if proc is not None and proc.running():
            st["containerID"] = f"process://{proc.pid}"
            st["state"] = {"running": {"startedAt": self.started_at[name]}}
            st["started"] = True
            st["ready"] = (
                self.ready.get(name, False) if not init or local.specs[name].sidecar else False
            )
            return st
        reason, message = self.waiting or (
            ("CrashLoopBackOff", "") if proc else ("PodInitializing", "")
        )
        st["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        return st

    def _report(self) -> None:
        pod = self.pod
        if pod is None:
            return
        spec = pod["spec"]
        inits = [self._container_status(c, True) for c in spec.get("initContainers", [])]
        mains = [self._container_status(c, False) for c in spec["containers"]]
        sidecars = [
            s
            for s, c in zip(inits, spec.get("initContainers", []), strict=True)
            if c.get("restartPolicy") == "Always"
        ]
        all_ready = self.phase == "Running" and all(s["ready"] for s in mains + sidecars)
        initialized = self.local is not None and (self.phase != "Pending")
        status = {
            "phase": self.phase,
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", self.local is not None),
                self._condition("Initialized", initialized),
                self._condition("ContainersReady", all_ready),
                self._condition("Ready", all_ready),
            ],
            "initContainerStatuses": inits,
            "containerStatuses": mains,
        }
        if self.local is not None:
            status["podIP"] = self.address
            status["podIPs"] = [{"ip": self.address}]
        comparable = json.dumps(status, sort_keys=True)
        if comparable == self.sent:
            return
        try:
            self.node.core.patch_namespaced_pod_status(
                self.pod_name,
                self.ns,
                {"status": status},
                _content_type="application/strategic-merge-patch+json",
            )
            self.sent = comparable
        except client.ApiException as e:
            if e.status != 404:
                log.warning(
                    "%s/%s: status not written: %s %s", self.ns, self.pod_name, e.status, e.reason
                )


class ProcessNode:
    def __init__(self, api: client.ApiClient, run_dir: Path, names: list[str], hosts_file: Path):
        self.api, self.run_dir, self.names = api, run_dir, names
        self.core = client.CoreV1Api(api)
        self.server = api.configuration.host
        self.addresses = Addresses()
        self.hosts = HostsFile(hosts_file)
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # ---- nodes ----------------------------------------------------------------------------
    def register(self) -> None:
        for i, name in enumerate(self.names):
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": f"local-{i % 3}",
                        "kairn.dev/process-node": "true",
                    },
                },
            }
            try:
                self.core.create_node(body)
            except client.ApiException as e:
                if e.status != 409:
                    raise
        self.heartbeat()

    def heartbeat(self) -> None:
        now = _now()
        for name in self.names:
            status = {
                "capacity": {
                    "cpu": "32",
                    "memory": "128Gi",
                    "pods": "110",
                    "ephemeral-storage": "100Gi",
                },
                "allocatable": {
                    "cpu": "32",
                    "memory": "128Gi",
                    "pods": "110",
                    "ephemeral-storage": "100Gi",
                },
                "addresses": [
                    {"type": "InternalIP", "address": HOST_IP},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "process-backed node is running",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "v1.34.4",
                    "kubeProxyVersion": "",
                    "containerRuntimeVersion": "process://local",
                    "osImage": "local processes",
                    "kernelVersion": "",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
            }
            try:
                self.core.patch_node_status(
                    name, {"status": status}, _content_type="application/strategic-merge-patch+json"
                )
            except client.ApiException as e:
                log.warning("node %s: status not written: %s", name, e.reason)

    # ---- pods -----------------------------------------------------------------------------
    def held(self, namespace: str, name: str) -> bool:
        """Whether `<run-dir>/hold/<namespace>/<pod>` exists: tests create it to keep a pod's
        exited containers from being restarted (a node-level fault, say)."""
        return (self.run_dir / "hold" / namespace / name).exists()

    def forget(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)

    def on_pod(self, kind: str, pod: dict) -> None:
        if pod.get("spec", {}).get("nodeName") not in self.names:
            return
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker:
                    worker.update(None)
                return
            if worker is None:
                if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") and not pod[
                    "metadata"
                ].get("deletionTimestamp"):
                    return  # finished before this node process started
                worker = self.workers[uid] = PodWorker(self, pod)
                worker.start()
            else:
                worker.update(pod)

    def watch_pods(self) -> None:
        while not self.stopping.is_set():
            try:
                resp = self.core.list_pod_for_all_namespaces(
                    _preload_content=False, _request_timeout=60
                )
                listing = json.loads(resp.data)
                seen = set()
                for pod in listing["items"]:
                    seen.add(pod["metadata"]["uid"])
                    self.on_pod("ADDED", pod)
                with self.lock:
                    gone = [w for uid, w in self.workers.items() if uid not in seen]
                for w in gone:
                    w.update(None)
                for ev in watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=300,
                    _request_timeout=330,
                ):
                    self.on_pod(ev["type"], ev["raw_object"])
                    if self.stopping.is_set():
                        return
            except Exception as e:  # 410 Gone, the API server restarting: list again
                log.info("pod watch interrupted (%s); listing again", e)
                time.sleep(1)

    def keep_dns(self) -> None:
        while not self.stopping.wait(1.0):
            try:
                with self.lock:
                    pods = [w.pod for w in self.workers.values() if w.pod is not None]
                namespaces = {p["metadata"]["namespace"] for p in pods}
                services = []
                for ns in sorted(namespaces):
                    resp = self.core.list_namespaced_service(
                        ns, _preload_content=False, _request_timeout=30
                    )
                    services += json.loads(resp.data)["items"]
                entries = dns_entries(pods, services, DOMAIN)
                if self.hosts.write(entries):
                    log.info("hosts: %d names", len(entries))
            except Exception as e:
                log.warning("hosts not updated: %s", e)

    def keep_alive(self) -> None:
        while not self.stopping.wait(10.0):
            self.heartbeat()

    def run(self) -> None:
        self.register()
        for target in (self.watch_pods, self.keep_dns, self.keep_alive):
            threading.Thread(target=target, name=target.__name__, daemon=True).start()

    def shutdown(self, grace: float = 15.0) -> None:
        """Stops every pod's processes (main containers first), then drops the DNS block."""
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
        running = [w.local for w in workers if w.local is not None]
        if running:
            with ThreadPoolExecutor(len(running)) as pool:
                list(pool.map(lambda p: p.stop(min(grace, p.run.grace_seconds)), running))
        self.hosts.remove()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.kube.node")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--run-dir", required=True, help="folder for pods' files and logs")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--hosts-file", default="/etc/hosts")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
    # pods get the kubeconfig of their own ServiceAccount, never this process's
    os.environ.pop("KUBECONFIG", None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    node = ProcessNode(
        config.new_client_from_config(args.kubeconfig),
        Path(args.run_dir).resolve(),
        node_names(args.nodes),
        Path(args.hosts_file),
    )
    node.run()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    log.info("stopping every pod")
    node.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
