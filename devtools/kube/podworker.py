"""The process node's work for one pod (see devtools/kube/node.py): start it, supervise its
containers (restarts, readiness probes, the end of a Job's pod), report its status, and stop it
when it is deleted."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING

from kubernetes import client

from devtools.kube.apisources import ApiSources
from devtools.kube.podman import containerize
from devtools.kube.status import PodState, pod_status, timestamp
from devtools.localpod import InitContainerFailed, LocalPod
from devtools.podspec import PodIdentity, plan_pod

if TYPE_CHECKING:
    from devtools.kube.node import ProcessNode

log = logging.getLogger("process-node")

PROBE_PERIOD = 2.0  # seconds; the chart's periods are for real clusters, tests want quick answers
MAX_BACKOFF = 20.0  # seconds between restarts of a crashing container (a kubelet: 300)


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
        self.state = PodState(start_time=timestamp())
        self.next_probe: dict[str, float] = {}
        self.next_restart: dict[str, float] = {}
        self.sent: str | None = None  # the last status written, as JSON

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
            if (
                self.local is None
                and self.state.phase == "Pending"
                and time.monotonic() >= retry_at
            ):
                if not self._start(pod):
                    retry_at = time.monotonic() + 2
            elif self.local is not None and self.state.phase == "Running":
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
        sources = ApiSources(self.node.core, pod, self.dir, self.node.run_dir / "claims")
        try:
            run = plan_pod(pod["spec"], identity, self.dir, sources)
        except (client.ApiException, KeyError, ValueError, OSError) as e:
            reason = getattr(e, "reason", None) or type(e).__name__
            self.state.waiting = ("CreateContainerConfigError", f"{reason}: {str(e)[:300]}")
            log.info("%s/%s: cannot start yet: %s", self.ns, self.pod_name, self.state.waiting[1])
            return False
        if sources.kubeconfig:  # in-cluster configuration: the pod's own ServiceAccount token
            for c in run.containers:
                c.env.setdefault("KUBECONFIG", str(sources.kubeconfig))
        if self.node.image:  # the kairn image's containers with podman (KAIRN_NODE_RUNTIME)
            api = self.node.core.api_client.configuration.host
            containerize(run, pod, identity, sources, self.dir, self.node.image, api)
        self.local = LocalPod(run, self.dir)
        self.state.waiting = None
        self.state.phase = "Running"
        self._report()  # the pod IP, before the containers, as a sandbox gets it
        try:
            self.local.start()
        except InitContainerFailed as e:
            log.info("%s/%s: %s", self.ns, self.pod_name, e)
            self.state.terminated[e.container] = e.code
            self.local.kill()
            if run.restart_policy == "Never":
                self.state.phase = "Failed"
            else:
                self.local, self.state.phase = None, "Pending"
                self.state.waiting = ("Init:CrashLoopBackOff", str(e))
                return False
        now = timestamp()
        for c in run.containers:
            self.state.started_at[c.name] = now
            if c.init and c.name in self.local.init_codes:
                self.state.terminated[c.name] = self.local.init_codes[c.name]
                self.state.finished_at[c.name] = now
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
                if name not in self.state.terminated:
                    self.state.terminated[name] = code
                    self.state.finished_at[name] = timestamp()
                continue
            if self.node.held(self.ns, self.pod_name):
                self.state.ready[name] = False
                continue  # a test keeps this pod's crashed containers down
            if name not in self.next_restart:
                backoff = min(MAX_BACKOFF, 2.0 ** local.restarts[name])
                self.next_restart[name] = now + backoff
                self.state.ready[name] = False
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
                self.state.started_at[name] = timestamp()
        mains = [n for n in local.long_running() if not local.specs[n].sidecar]
        if mains and all(n in self.state.terminated for n in mains):
            local.stop(5)  # the sidecars, once every main container has finished
            self.state.phase = (
                "Succeeded" if all(self.state.terminated[n] == 0 for n in mains) else "Failed"
            )
            return
        for name in local.long_running():
            if name in self.state.terminated or now < self.next_probe.get(name, 0):
                continue
            spec = local.specs[name]
            if name not in self.next_probe:
                self.next_probe[name] = now + min(spec.probe_delay, 5.0)
                continue
            self.state.ready[name] = local.container_ready(name)
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
    def _report(self) -> None:
        pod, local, state = self.pod, self.local, self.state
        if pod is None:
            return
        state.address = self.address if local is not None else None
        state.restarts = dict(local.restarts) if local else {}
        state.pids = {n: p.pid for n, p in local.procs.items() if p.running()} if local else {}
        state.started = set(local.procs) if local else set()
        status, transitions = pod_status(pod["spec"], state, timestamp())
        state.transitions = transitions
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
