"""Settings of an agent: flags with ``KAIRN_*`` environment fallbacks (the chart sets the
environment; see chart/README.md), and the Kubernetes API client.

Usage::

    parser = base_parser("kairn-topic-agent", "what it does")
    parser.add_argument("--delete-topics", default=env("DELETE_TOPICS", "false"), ...)
    args = parser.parse_args(argv)
    settings = Settings.from_args(args)
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

# Defaults of the agents' own flags. The flags, their help texts, the agents and their
# reconcilers all take them from here, so a default is written once.
DEFAULT_BATCH_SIZE = 500  # ConfigMaps reconciled together in one set of Kafka requests
DEFAULT_THROTTLE_BYTES = 50 * 1024 * 1024  # replication throttle (bytes/s) while replicas move
DEFAULT_CERT_VALIDITY_DAYS = 365  # the certificates kairn issues: pods', agents', TLS users'
DEFAULT_CERT_RENEWAL_DAYS = 30  # certificates expiring this close are issued again
DEFAULT_KAFKA_LANES = 4  # Kafka requests in flight at once for large batches


def env(name: str, default: str | None = None) -> str | None:
    """The value of ``KAIRN_<name>``, or ``default`` when unset or empty."""
    value = os.environ.get(f"KAIRN_{name}")
    return value if value not in (None, "") else default


def _bool_arg(value: str) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def bool_arg(value: str) -> bool:
    """argparse ``type=`` for true/false flags (rejects anything else with a clear message)."""
    return _bool_arg(value)


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the settings every agent shares. Each flag falls back to the
    environment variable named in its help."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    a = p.add_argument
    a(
        "--cluster",
        default=env("CLUSTER"),
        help="release name, the kairn.dev/cluster label value [KAIRN_CLUSTER]",
    )
    a("--fullname", default=env("FULLNAME"), help="release fullname [KAIRN_FULLNAME]")
    a("--namespace", default=env("NAMESPACE"), help="namespace watched [KAIRN_NAMESPACE]")
    a(
        "--log-level",
        default=env("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="[KAIRN_LOG_LEVEL] (default INFO)",
    )
    a(
        "--bootstrap",
        default=env("BOOTSTRAP"),
        help="Kafka bootstrap servers host:port,... [KAIRN_BOOTSTRAP]",
    )
    a(
        "--tls-ca-file",
        default=env("TLS_CA_FILE"),
        help="CA bundle that signs the brokers [KAIRN_TLS_CA_FILE]",
    )
    a(
        "--tls-cert-file",
        default=env("TLS_CERT_FILE"),
        help="client certificate [KAIRN_TLS_CERT_FILE]",
    )
    a("--tls-key-file", default=env("TLS_KEY_FILE"), help="client key [KAIRN_TLS_KEY_FILE]")
    a(
        "--tls-check-hostname",
        type=bool_arg,
        default=env("TLS_CHECK_HOSTNAME", "true"),
        help="check broker host names [KAIRN_TLS_CHECK_HOSTNAME] (default true)",
    )
    a(
        "--http-port",
        type=int,
        default=env("HTTP_PORT", "8080"),
        help="port of /metrics, /healthz, /readyz (0 = any free port) [KAIRN_HTTP_PORT]",
    )
    a(
        "--http-host",
        default=env("HTTP_HOST", "0.0.0.0"),
        help="address to serve on [KAIRN_HTTP_HOST] (default 0.0.0.0)",
    )
    a(
        "--resync-seconds",
        type=float,
        default=env("RESYNC_SECONDS", "300"),
        help="seconds between full resyncs [KAIRN_RESYNC_SECONDS] (default 300)",
    )
    a(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig file; in-cluster configuration when unset [KUBECONFIG]",
    )
    a(
        "--kafka-timeout-ms",
        type=int,
        default=env("KAFKA_TIMEOUT_MS", "30000"),
        help="Kafka request timeout [KAIRN_KAFKA_TIMEOUT_MS] (default 30000)",
    )
    a(
        "--metadata-mode",
        default=env("METADATA_MODE", ""),
        help="the release's kafka.metadata.mode (zookeeper, migration, kraft-brokers, kraft), "
        "shown as kairn_metadata_phase; the agents decide how to talk to Kafka from what the "
        "brokers report, not from this [KAIRN_METADATA_MODE]",
    )
    return p


@dataclass
class Settings:
    """What every agent needs. ``extra`` keeps the agent-specific flags (by dest name)."""

    cluster: str
    namespace: str
    bootstrap: str
    fullname: str | None = None
    log_level: str = "INFO"
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_check_hostname: bool = True
    http_port: int = 8080
    http_host: str = "0.0.0.0"
    resync_seconds: float = 300.0
    kubeconfig: str | None = None
    kafka_timeout_ms: int = 30000
    metadata_mode: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """Builds settings from parsed flags; raises ValueError naming what is missing."""
        values = vars(args).copy()
        missing = [
            f"--{n.replace('_', '-')} [KAIRN_{n.upper()}]"
            for n in ("cluster", "namespace", "bootstrap")
            if not values.get(n)
        ]
        if missing:
            raise ValueError("missing settings: " + ", ".join(missing))
        known = set(cls.__dataclass_fields__) - {"extra"}
        extra = {k: v for k, v in values.items() if k not in known}
        return cls(**{k: v for k, v in values.items() if k in known}, extra=extra)


def kube_client(settings: Settings):
    """A ``kubernetes.client.ApiClient``: from ``settings.kubeconfig`` when set, else the
    in-cluster service account."""
    from kubernetes import client, config

    if settings.kubeconfig:
        api = config.new_client_from_config(settings.kubeconfig)
    else:
        config.load_incluster_config()
        api = client.ApiClient()
    # status writes and Events run from a small thread pool, and each watched namespace holds
    # a watch: keep that many connections (beyond it, urllib3 opens and discards one per use)
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 128
    return api
