"""The shell of an entity agent, built the same way for every kind: logging, the Kubernetes
client, metrics, Kafka access, the controller (informer, work queue, resyncs), the status
reporter, the /metrics and health server, start and stop.

A kind subclasses :class:`Agent`, names itself and builds its reconciler::

    class TopicAgent(Agent):
        kind = "topic"                       # kairn.dev/type, the metrics' agent label

        def build_reconciler(self):          # self.core, .kafka, .reporter, .controller exist
            informer = self.controller.informer
            return TopicReconciler(self.kafka, self.reporter, self.core, informer.get, ...)

    def main(argv=None):
        return run_agent("kairn-topic-agent", parser(), TopicAgent, argv)

Tenants: :attr:`Agent.tenancy` (call it) gives the tenant namespaces and their rules as they
are now; the agent's informers follow the list (:meth:`Agent.namespaced_informers`).

Optional hooks: :meth:`Agent.kafka_factory` (another admin client),
:meth:`Agent.should_enqueue` (which keys a change queues), :meth:`Agent.started_fields`
(logged at start), and ``on_start``/``on_stop`` for parts of the kind's own. ``reconciler``
must have ``reconcile(keys)``; a ``close()`` of it is called at stop.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable

from kubernetes import client

from .controller import Controller, Outcome
from .kafka_admin import KafkaAccess
from .logs import setup_logging
from .metrics import HealthServer, Metrics
from .namespaces import NamespacedInformers
from .settings import DEFAULT_BATCH_SIZE, Settings, base_parser, env, kube_client
from .status import StatusReporter
from .tenancy import Tenancy
from .tenants_source import TenantsSource


def agent_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """:func:`settings.base_parser` with the flags every entity agent has (``--batch-size``)."""
    p = base_parser(prog, description)
    p.add_argument(
        "--tenants-configmap",
        default=env("TENANTS_CONFIGMAP"),
        help="ConfigMap in the agent's namespace listing the tenant namespaces "
        "[KAIRN_TENANTS_CONFIGMAP] (default: none, the agent's namespace only)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=env("BATCH_SIZE", str(DEFAULT_BATCH_SIZE)),
        help="ConfigMaps reconciled together in one set of Kafka requests [KAIRN_BATCH_SIZE] "
        f"(default {DEFAULT_BATCH_SIZE})",
    )
    return p


def extra_int(settings: Settings, name: str, default: int) -> int:
    """An agent-specific integer flag (``settings.extra``), ``default`` when unset or 0."""
    return int(settings.extra.get(name) or default)


class Agent:
    """The agent, in-process: ``start()``, ``stop()``; ``controller``, ``reconciler``,
    ``reporter``, ``kafka``, ``metrics`` and ``server`` expose its parts (tests use them)."""

    kind: str = ""

    def __init__(self, settings: Settings, api: client.ApiClient | None = None):
        self.settings = settings
        self.program = f"kairn-{self.kind}-agent"
        self.log = setup_logging(self.program, settings.log_level)
        self.api = api or kube_client(settings)
        self.core = client.CoreV1Api(self.api)
        self.metrics = Metrics(self.kind)
        self.metrics.metadata_phase(settings.metadata_mode)
        self.kafka = KafkaAccess(settings, self.metrics, factory=self.kafka_factory())
        self.controller = Controller(
            self.kind,
            settings,
            self.core,
            self._reconcile,
            self.metrics,
            resource_type=self.kind,
            batch_size=max(1, extra_int(settings, "batch_size", DEFAULT_BATCH_SIZE)),
            should_enqueue=self.should_enqueue,
        )
        self.reporter = StatusReporter(
            self.core,
            settings.namespace,
            f"{self.kind}-agent",
            on_written=self.controller.informer.update_cached,
        )
        self.tenancy = TenantsSource(
            self.core,
            settings.cluster,
            settings.namespace,
            settings.extra.get("tenants_configmap"),
            self.metrics,
            self.reporter,
            self.tenants_changed,
            self.kind,
        )
        self.reconciler = self.build_reconciler()
        self.controller.ready_checks.append(self.kafka.reachable)
        self.server = HealthServer(
            self.metrics,
            self.controller.healthy,
            self.controller.ready,
            settings.http_host,
            settings.http_port,
        )

    # ---- hooks ----------------------------------------------------------------------------
    def build_reconciler(self):
        raise NotImplementedError

    def kafka_factory(self) -> Callable | None:
        """The admin client :class:`KafkaAccess` makes (None: kafka-python's admin client)."""
        return None

    should_enqueue: Callable[[str, dict | None, dict | None], list[str]] | None = None

    def started_fields(self) -> dict:
        return {}

    def namespaced_informers(self) -> list[NamespacedInformers]:
        """Every watch that follows the tenants (the kind's own beside its ConfigMaps')."""
        return [self.controller.informer]

    def tenants_changed(self, tenancy: Tenancy) -> dict[str, int]:
        """Watches the new tenants' namespaces, stops watching the removed ones, and
        reconciles everything again (a prefix may have changed)."""
        namespaces = [t.namespace for t in tenancy.tenants]
        left: dict[str, int] = {}
        for i, informers in enumerate(self.namespaced_informers()):
            removed = informers.set_namespaces(namespaces)
            if i == 0:
                left = removed
        for ns in left:
            self.reporter.forget_namespace(ns)
        self.metrics.set_resources(self.reporter.counts(), self.controller.informer.namespaces())
        self.controller.resync()
        return left

    def on_start(self) -> None:
        pass

    def on_stop(self) -> None:
        pass

    # ---- the loop -------------------------------------------------------------------------
    def _reconcile(self, keys: list[str]) -> dict[str, Outcome]:
        out = self.reconciler.reconcile(keys)
        self.metrics.set_resources(self.reporter.counts(), self.controller.informer.namespaces())
        return out

    def start(self):
        self.server.start()
        self._tenants_thread = threading.Thread(
            target=self.tenancy.run, name=f"{self.kind}-tenants", daemon=True
        )
        self._tenants_thread.start()
        self.controller.start()
        self.on_start()
        self.log.info(
            "started",
            cluster=self.settings.cluster,
            namespace=self.settings.namespace,
            port=self.server.port,
            **self.started_fields(),
        )
        return self

    def stop(self) -> None:
        self.on_stop()
        self.tenancy.stop()
        self.controller.stop()
        self.server.stop()
        self.reporter.close()
        close = getattr(self.reconciler, "close", None)
        if close is not None:
            close()
        self.kafka.close()
