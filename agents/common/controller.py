"""The loop of an agent: informer -> work queue -> batch reconcile, with resyncs, metrics
and health.

Usage (see agents/topic_agent/main.py)::

    ctl = Controller("topic", settings, core, reconcile_batch, metrics=metrics,
                     resource_type="topic", batch_size=200)
    ctl.ready_checks.append(kafka.reachable)
    ctl.run(stop_event)        # blocks until stop_event is set

``reconcile_batch(keys) -> {key: Outcome}`` gets up to ``batch_size`` distinct keys (none of
them being reconciled elsewhere); it reads objects with ``ctl.informer.get(key)`` (None: the
ConfigMap is gone). Keys missing from its answer count as ``Outcome("ready")``; an exception
retries every key of the batch with backoff.

``Outcome.result``: ``ready``, ``error`` (the resource is wrong: no retry until it changes or
the next resync), ``pending`` (re-check after ``requeue_after`` seconds) or ``retry``
(Kafka or the API server failed: retried with per-key exponential backoff).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client

from .informer import Informer
from .logs import get_logger
from .metrics import Metrics
from .namespaces import NamespacedInformers
from .settings import Settings
from .workqueue import WorkQueue


@dataclass
class Outcome:
    result: str = "ready"  # ready | error | pending | retry
    requeue_after: float | None = None


ReconcileBatch = Callable[[list[str]], dict[str, Outcome]]


class Controller:
    def __init__(
        self,
        agent: str,
        settings: Settings,
        core: client.CoreV1Api,
        reconcile_batch: ReconcileBatch,
        metrics: Metrics,
        resource_type: str,
        batch_size: int = 100,
        linger: float = 0.05,
        should_enqueue: Callable[[str, dict | None, dict | None], list[str]] | None = None,
        watch_timeout: int = 240,
    ):
        self.agent, self.settings, self.metrics = agent, settings, metrics
        self.reconcile_batch = reconcile_batch
        self.batch_size, self.linger = batch_size, linger
        self.queue = WorkQueue()
        self.should_enqueue = should_enqueue
        self.log = get_logger(f"kairn.{agent}-agent")
        selector = f"kairn.dev/cluster={settings.cluster},kairn.dev/type={resource_type}"
        # the agent's namespace, and the tenants' as they are set (set_namespaces)
        self.informer = NamespacedInformers(
            settings.namespace,
            lambda namespace: Informer(
                core,
                namespace,
                selector,
                self._on_change,
                metrics=metrics,
                watch_timeout=watch_timeout,
                name=f"{agent}-informer",
                home=settings.namespace,
            ),
            name=f"{agent}-informer",
        )
        self.ready_checks: list[Callable[[], tuple[bool, str]]] = []
        self.first_sync_done = threading.Event()
        self._sync_pending = False
        self.worker_heartbeat = time.monotonic()
        self._threads: list[threading.Thread] = []
        self.stop_event = threading.Event()

    # ---- events -> queue ------------------------------------------------------------------
    def _on_change(self, key: str, old: dict | None, new: dict | None) -> None:
        if self.should_enqueue is not None:
            keys = self.should_enqueue(key, old, new)
        else:
            keys = [key] if Informer.changed(old, new) else []
        if keys:
            self.queue.add_many(keys)
        self.metrics.set_queue_depth(len(self.queue))

    def resync(self) -> None:
        """Queues every cached key (the periodic full resync)."""
        keys = self.informer.keys()
        self._sync_pending = True
        self.queue.add_many(keys)
        self.log.info("full resync", keys=len(keys))

    # ---- worker ---------------------------------------------------------------------------
    def _process(self, keys: list[str]) -> None:
        started = time.monotonic()
        try:
            outcomes = self.reconcile_batch(keys)
        except Exception as e:
            self.log.exception("reconcile failed", keys=len(keys), error=repr(e))
            outcomes = {k: Outcome("retry") for k in keys}
        self.metrics.observe_duration(time.monotonic() - started)
        counts: dict[str, int] = {}
        for k in keys:
            o = outcomes.get(k) or Outcome()
            counts[o.result] = counts.get(o.result, 0) + 1
            if o.result == "retry":
                self.queue.add_rate_limited(k)
            else:
                self.queue.forget(k)
                if o.requeue_after is not None:
                    self.queue.add_after(k, o.requeue_after)
            self.queue.done(k)
        for result, n in counts.items():
            self.metrics.reconciled(result, n)

    def _work(self) -> None:
        while not self.stop_event.is_set():
            self.worker_heartbeat = time.monotonic()
            keys = self.queue.get_batch(self.batch_size, self.linger, timeout=1.0)
            self.metrics.set_queue_depth(len(self.queue))
            if keys:
                self._process(keys)
            if (
                self.queue.idle()
                and self.informer.synced.is_set()
                and (not self.first_sync_done.is_set() or self._sync_pending)
            ):
                self._sync_pending = False
                self.first_sync_done.set()
                self.metrics.full_sync_done(time.time())

    def _resync_loop(self) -> None:
        period = self.settings.resync_seconds
        while not self.stop_event.wait(period):
            self.resync()

    # ---- health ---------------------------------------------------------------------------
    def healthy(self) -> tuple[bool, str]:
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead:
            return False, f"threads stopped: {', '.join(dead)}"
        stale = time.monotonic() - self.worker_heartbeat
        if stale > 300:
            return False, f"worker stuck for {stale:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self.first_sync_done.is_set():
            return False, "first sync not done"
        for check in self.ready_checks:
            ok, why = check()
            if not ok:
                return False, why
        return True, "ready"

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> Controller:
        for name, target in (
            ("informer", self.informer.run),
            ("worker", self._work),
            ("resync", self._resync_loop),
        ):
            t = threading.Thread(target=target, name=f"{self.agent}-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def run(self, stop: threading.Event) -> None:
        self.start()
        stop.wait()
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        self.informer.stop()
        self.queue.shut_down()
        for t in self._threads:
            t.join(timeout=10)
