"""Shared pieces of the kairn agents.

Modules (each documents its public API):

- ``settings``: :class:`Settings` from flags and the ``KAIRN_*`` environment
  (``base_parser`` + ``Settings.from_args``), and the Kubernetes API client (``kube_client``).
- ``logs``: JSON-lines logging (``setup_logging``, ``get_logger``); secrets are redacted.
- ``workqueue``: :class:`WorkQueue`, client-go's work-queue semantics (dedup, no key handled
  twice at once, delayed and rate-limited re-adds, batches).
- ``informer``: :class:`Informer`, list + watch of labelled ConfigMaps into a local cache, with
  bookmarks, 410 handling, backoff, indexes and change filtering; ``namespaces``:
  :class:`NamespacedInformers`, one informer per watched namespace behind one cache.
- ``tenancy``: the tenant list and what a tenant may declare (pure); ``tenants_source``: the
  list read from its ConfigMap and followed as it changes.
- ``controller``: :class:`Controller`, wires an informer, a work queue, a batch reconcile
  function, periodic resyncs, metrics and health; :class:`Outcome` is what a reconcile returns.
- ``status``: :class:`StatusReporter` (state label, status annotation, Events on state change)
  and finalizer helpers.
- ``metrics``: the ``kairn_*`` Prometheus metrics and :class:`HealthServer` (Flask under
  waitress: /metrics, /healthz, /readyz).
- ``kafka_admin``: :func:`admin_client` factory (TLS files from settings) and :class:`KafkaAccess`,
  which counts requests in ``kairn_kafka_requests_total`` and reconnects after failures;
  ``kafka_mode``: ZooKeeper or KRaft mode, from what the brokers report (ApiVersions).
- ``agent``: :class:`Agent`, the shell of an entity agent (all of the above wired together),
  and ``agent_parser``.
- ``front``: :class:`Front`, the part of a batch reconcile every kind shares (gone, deletion
  with finalizer, paused, spec errors, refusals, status writes) and its :class:`Batch`.
- ``spec_base``: what the spec parsers share (:class:`SpecError`, hashes, the YAML document,
  cached ``spec_of``); ``keys``: work-queue keys (``name`` or ``namespace/name``).
"""
