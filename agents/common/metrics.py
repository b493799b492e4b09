"""The ``kairn_*`` metrics and the HTTP server of an agent. The chart's alerts and Grafana
dashboard query these metrics by name (tests/metric_names.py collects the names they use).

Metrics live in a :class:`Metrics` object with its own registry, labelled by ``agent``:

- ``reconciliations_total{agent,result}`` (Counter; result: ready, error, pending, retry)
- ``reconcile_duration_seconds{agent}`` (Histogram; one observation per reconcile call, which
  may cover a batch of keys)
- ``resources{agent,namespace,state}`` (Gauge; Ready, Error, Pending; per namespace watched)
- ``tenants{agent}`` (Gauge; tenant namespaces watched) and
  ``tenant_resources_left{agent,namespace}`` (Gauge; resources of a namespace removed from the
  tenants, left in Kafka as they are)
- ``kafka_requests_total{agent,api,result}`` (Counter; result: ok, error)
- ``watch_restarts_total{agent}`` (Counter), ``queue_depth{agent}`` (Gauge),
  ``last_full_sync_timestamp_seconds{agent}`` (Gauge)
- ``metadata_phase{agent,phase}`` (Gauge; 1 for the release's kafka.metadata.mode: zookeeper,
  migration, kraft-brokers or kraft)
- ``certificate_expiry_timestamp_seconds{agent,certificate}`` (Gauge; the TLS files the agent
  uses, read at every scrape: see :meth:`Metrics.watch_certificates`)

:class:`HealthServer` serves /metrics, /healthz and /readyz with Flask under waitress in a
daemon thread. ``healthy`` and ``ready`` are callables returning ``(ok, reason)``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from cryptography import x509
from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STATES = ("Ready", "Error", "Pending")


class Metrics:
    def __init__(self, agent: str, registry: CollectorRegistry | None = None):
        self.agent = agent
        self._shown_resources: set[tuple[str, str]] = set()
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._reconciliations = Counter(
            "kairn_reconciliations_total",
            "Reconciliations by result",
            ["agent", "result"],
            registry=r,
        )
        self._duration = Histogram(
            "kairn_reconcile_duration_seconds",
            "Duration of a reconcile call (a batch of keys)",
            ["agent"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self._resources = Gauge(
            "kairn_resources", "Resources by state", ["agent", "namespace", "state"], registry=r
        )
        self._tenants = Gauge("kairn_tenants", "Tenant namespaces watched", ["agent"], registry=r)
        self._left = Gauge(
            "kairn_tenant_resources_left",
            "Resources of a namespace removed from the tenants, left in Kafka as they are",
            ["agent", "namespace"],
            registry=r,
        )
        self._kafka = Counter(
            "kairn_kafka_requests_total",
            "Kafka admin requests",
            ["agent", "api", "result"],
            registry=r,
        )
        self._watch_restarts = Counter(
            "kairn_watch_restarts_total",
            "Watch restarts (timeouts, errors, 410 Gone)",
            ["agent"],
            registry=r,
        )
        self._queue_depth = Gauge(
            "kairn_queue_depth", "Keys waiting in the work queue", ["agent"], registry=r
        )
        self._last_sync = Gauge(
            "kairn_last_full_sync_timestamp_seconds",
            "Unix time when the last full (re)sync was fully reconciled",
            ["agent"],
            registry=r,
        )
        self._phase = Gauge(
            "kairn_metadata_phase",
            "1 for the release's metadata phase (kafka.metadata.mode)",
            ["agent", "phase"],
            registry=r,
        )
        self._tenants.labels(agent).set(0)
        self._watch_restarts.labels(agent)
        self._queue_depth.labels(agent).set(0)
        self._last_sync.labels(agent).set(0)

    def reconciled(self, result: str, count: int = 1) -> None:
        self._reconciliations.labels(self.agent, result).inc(count)

    def observe_duration(self, seconds: float) -> None:
        self._duration.labels(self.agent).observe(seconds)

    def set_resources(self, counts: dict[tuple[str, str], int], namespaces: list[str]) -> None:
        """``counts``: (namespace, state) -> resources; every state of every namespace in
        ``namespaces`` is shown (0 when none), and namespaces no longer watched vanish."""
        wanted = {(ns, s) for ns in namespaces for s in STATES} | set(counts)
        for labels in list(self._shown_resources - wanted):
            self._resources.remove(self.agent, *labels)
        for ns, s in sorted(wanted):
            self._resources.labels(self.agent, ns, s).set(counts.get((ns, s), 0))
        self._shown_resources = wanted

    def set_tenants(self, count: int) -> None:
        self._tenants.labels(self.agent).set(count)

    def tenant_left(self, namespace: str, resources: int) -> None:
        self._left.labels(self.agent, namespace).set(resources)

    def tenant_back(self, namespace: str) -> None:
        with contextlib.suppress(KeyError):
            self._left.remove(self.agent, namespace)

    def kafka_request(self, api: str, ok: bool) -> None:
        self._kafka.labels(self.agent, api, "ok" if ok else "error").inc()

    def watch_restarted(self) -> None:
        self._watch_restarts.labels(self.agent).inc()

    def metadata_phase(self, phase: str) -> None:
        """Shown only when the chart says it (an agent run by hand has no phase)."""
        if phase:
            self._phase.labels(self.agent, phase).set(1)

    def set_queue_depth(self, n: int) -> None:
        self._queue_depth.labels(self.agent).set(n)

    def full_sync_done(self, unix_time: float) -> None:
        self._last_sync.labels(self.agent).set(unix_time)

    def watch_certificates(self, files: dict[str, str | None]) -> None:
        """Export the expiry of the certificates in ``files`` (label -> PEM file). The agents
        get their certificate from the same PKI hook run as the brokers and ZooKeeper nodes,
        so its expiry is theirs too, and the alert on it says when to renew."""
        self.registry.register(_CertificateExpiry(self.agent, files))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CertificateExpiry(Collector):
    """Read at every scrape: a renewed Secret reaches the mounted files without a restart. A
    bundle (a CA file during a CA replacement holds the old and the new CA) counts by its
    latest expiry; an unreadable file is left out rather than failing the scrape."""

    def __init__(self, agent: str, files: dict[str, str | None]):
        self.agent, self.files = agent, {k: v for k, v in files.items() if v}

    def collect(self):
        family = GaugeMetricFamily(
            "kairn_certificate_expiry_timestamp_seconds",
            "Unix time when a certificate the agent uses expires",
            labels=["agent", "certificate"],
        )
        for name, path in self.files.items():
            try:
                with open(path, "rb") as f:
                    certs = x509.load_pem_x509_certificates(f.read())
            except (OSError, ValueError):
                continue
            latest = max(c.not_valid_after_utc.timestamp() for c in certs)
            family.add_metric([self.agent, name], latest)
        yield family


Check = Callable[[], tuple[bool, str]]


def make_app(metrics: Metrics, healthy: Check, ready: Check) -> Flask:
    app = Flask("kairn-agent")

    @app.get("/metrics")
    def _metrics():
        return Response(metrics.render(), mimetype=CONTENT_TYPE_LATEST)

    def _answer(check: Check):
        ok, reason = check()
        return Response(reason + "\n", status=200 if ok else 503, mimetype="text/plain")

    @app.get("/healthz")
    def _healthz():
        return _answer(healthy)

    @app.get("/readyz")
    def _readyz():
        return _answer(ready)

    return app


class HealthServer:
    """waitress serving the Flask app in a daemon thread. ``port`` 0 picks a free port
    (``self.port`` tells which)."""

    def __init__(
        self,
        metrics: Metrics,
        healthy: Check,
        ready: Check,
        host: str = "0.0.0.0",
        port: int = 8080,
    ):
        from waitress.server import create_server

        self.app = make_app(metrics, healthy, ready)
        self._server = create_server(self.app, host=host, port=port, threads=2, ident="kairn")
        self.port = self._server.effective_port
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # closed
            self._server.run()

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.close()
