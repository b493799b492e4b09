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
- Liveness and startup probes are not run; readiness probes run at most every
  PROBE_PERIOD (devtools/kube/podworker.py).
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
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config, watch

from devtools.addresses import PodAddresses
from devtools.kube import process_node_names
from devtools.kube.hosts import HostsFile, dns_entries
from devtools.kube.podman import node_image
from devtools.kube.podworker import PodWorker
from devtools.kube.status import HOST_IP, node_object, node_status, timestamp

log = logging.getLogger("process-node")

DOMAIN = "cluster.local"
NODE_INFO = {
    "kubeletVersion": "v1.34.4",
    "kubeProxyVersion": "",
    "containerRuntimeVersion": "process://local",
    "osImage": "local processes",
    "kernelVersion": "",
    "machineID": "",
    "systemUUID": "",
    "bootID": "",
}


class ProcessNode:
    def __init__(self, api: client.ApiClient, run_dir: Path, names: list[str], hosts_file: Path):
        self.run_dir, self.names = run_dir, names
        self.core = client.CoreV1Api(api)
        self.addresses = PodAddresses.pick()
        self.hosts = HostsFile(hosts_file)
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.image = node_image()  # run this image's containers with podman, or None
        if self.image:
            log.info("containers of %s run with podman", self.image)

    # ---- nodes ----------------------------------------------------------------------------
    def register(self) -> None:
        for i, name in enumerate(self.names):
            labels = {
                "topology.kubernetes.io/zone": f"local-{i % 3}",
                "kairn.dev/process-node": "true",
            }
            try:
                self.core.create_node(node_object(name, labels, self._status(name)))
            except client.ApiException as e:
                if e.status != 409:
                    raise
        self.heartbeat()

    def heartbeat(self) -> None:
        for name in self.names:
            try:
                self.core.patch_node_status(
                    name,
                    {"status": self._status(name)},
                    _content_type="application/strategic-merge-patch+json",
                )
            except client.ApiException as e:
                log.warning("node %s: status not written: %s", name, e.reason)

    @staticmethod
    def _status(name: str) -> dict:
        addresses = [
            {"type": "InternalIP", "address": HOST_IP},
            {"type": "Hostname", "address": name},
        ]
        return node_status(NODE_INFO, addresses, ready_at=timestamp())

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
        process_node_names(args.nodes),
        Path(args.hosts_file),
    )
    node.run()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    log.info("stopping every pod")
    node.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
