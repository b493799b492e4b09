"""kairn-user-agent: ConfigMaps labelled ``kairn.dev/cluster=<release>`` and
``kairn.dev/type=user`` become Kafka users (SCRAM-SHA-512 or TLS credentials in a Secret named
after the user), their ACLs and their quotas."""

from __future__ import annotations

import logging
import sys
import threading

from kubernetes import client

from agents.common import status as st
from agents.common.cli import run_agent
from agents.common.controller import Controller
from agents.common.informer import Informer
from agents.common.kafka_admin import KafkaAccess, client_kwargs
from agents.common.logs import setup_logging
from agents.common.metrics import HealthServer, Metrics
from agents.common.settings import Settings, base_parser, env, kube_client

from .credentials import USER_LABEL
from .kafka_users import UserAdmin
from .reconciler import UserReconciler

AGENT = "user"


def parser():
    p = base_parser(
        "kairn-user-agent",
        "Reconcile ConfigMaps labelled kairn.dev/cluster=<release>, kairn.dev/type=user into "
        "Kafka users (Strimzi KafkaUser v1beta2 spec: authentication scram-sha-512, tls or "
        "tls-external; authorization simple; quotas). Every option falls back to the "
        "environment variable shown.",
    )
    a = p.add_argument
    a(
        "--clients-ca-cert-secret",
        default=env("CLIENTS_CA_CERT_SECRET"),
        help="Secret holding the clients CA certificate (ca.crt) [KAIRN_CLIENTS_CA_CERT_SECRET] "
        "(default <fullname>-clients-ca-cert)",
    )
    a(
        "--clients-ca-secret",
        default=env("CLIENTS_CA_SECRET"),
        help="Secret holding the clients CA key (ca.key) [KAIRN_CLIENTS_CA_SECRET] "
        "(default <fullname>-clients-ca)",
    )
    a(
        "--cert-validity-days",
        type=int,
        default=env("CERT_VALIDITY_DAYS", "365"),
        help="validity of TLS users' certificates [KAIRN_CERT_VALIDITY_DAYS] (default 365)",
    )
    a(
        "--cert-renewal-days",
        type=int,
        default=env("CERT_RENEWAL_DAYS", "30"),
        help="TLS users' certificates expiring within this many days are issued again "
        "[KAIRN_CERT_RENEWAL_DAYS] (default 30)",
    )
    a(
        "--kafka-lanes",
        type=int,
        default=env("KAFKA_LANES", "4"),
        help="Kafka requests in flight at once for large batches [KAIRN_KAFKA_LANES] (default 4)",
    )
    a(
        "--batch-size",
        type=int,
        default=env("BATCH_SIZE", "500"),
        help="ConfigMaps reconciled together in one set of Kafka requests [KAIRN_BATCH_SIZE] "
        "(default 500)",
    )
    return p


class UserAgent:
    """The agent, in-process: ``start()``, ``stop()``; ``controller``, ``reconciler`` and
    ``server`` expose its parts (tests use them)."""

    def __init__(self, settings: Settings, api: client.ApiClient | None = None):
        self.settings = settings
        self.log = setup_logging("kairn-user-agent", settings.log_level)
        # the network client runs on the reconcile thread: a busy machine makes it warn about
        # slow event-loop tasks, which says nothing about Kafka
        logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
        ex = settings.extra
        if int(ex.get("cert_validity_days") or 365) <= int(ex.get("cert_renewal_days") or 30):
            raise ValueError("--cert-validity-days must be larger than --cert-renewal-days")
        self.api = api or kube_client(settings)
        self.core = client.CoreV1Api(self.api)
        self.metrics = Metrics(AGENT)
        self.kafka = KafkaAccess(
            settings,
            self.metrics,
            factory=lambda: UserAdmin(
                client_kwargs(settings),
                settings.kafka_timeout_ms,
                lanes=max(1, int(ex.get("kafka_lanes") or 4)),
            ),
        )
        self.controller = Controller(
            AGENT,
            settings,
            self.core,
            self._reconcile,
            self.metrics,
            resource_type="user",
            batch_size=max(1, int(ex.get("batch_size") or 500)),
        )
        informer = self.controller.informer
        self.reporter = st.StatusReporter(
            self.core, settings.namespace, "user-agent", on_written=informer.update_cached
        )
        self.reconciler = UserReconciler(
            self.kafka,
            self.reporter,
            self.core,
            informer.get,
            cluster=settings.cluster,
            namespace=settings.namespace,
            fullname=settings.fullname,
            clients_ca_cert_secret=ex.get("clients_ca_cert_secret"),
            clients_ca_secret=ex.get("clients_ca_secret"),
            cert_validity_days=int(ex.get("cert_validity_days") or 365),
            cert_renewal_days=int(ex.get("cert_renewal_days") or 30),
        )
        # the users' Secrets: one deleted or changed by hand is set right at once
        self.secret_informer = Informer(
            self.core,
            settings.namespace,
            f"kairn.dev/cluster={settings.cluster},{USER_LABEL}",
            self._on_secret,
            metrics=self.metrics,
            name="user-secret-informer",
            list_fn=self.core.list_namespaced_secret,
        )
        self._secret_thread: threading.Thread | None = None
        self.controller.ready_checks.append(self.kafka.reachable)
        self.server = HealthServer(
            self.metrics,
            self.controller.healthy,
            self.controller.ready,
            settings.http_host,
            settings.http_port,
        )

    def _on_secret(self, key: str, old: dict | None, new: dict | None) -> None:
        if not self.secret_informer.synced.is_set():
            return  # the first list: the ConfigMaps' own first sync covers every user
        if new is not None and not Informer.changed(old, new):
            return
        if new is not None and self.reconciler.wrote(new):
            return  # the agent's own write
        if self.controller.informer.get(key) is not None:
            self.controller.queue.add(key)

    def _reconcile(self, keys):
        out = self.reconciler.reconcile(keys)
        self.metrics.set_resources(self.reporter.counts())
        return out

    def start(self) -> UserAgent:
        self.server.start()
        self.controller.start()
        self._secret_thread = threading.Thread(
            target=self.secret_informer.run, name="user-secret-informer", daemon=True
        )
        self._secret_thread.start()
        self.log.info(
            "started",
            cluster=self.settings.cluster,
            namespace=self.settings.namespace,
            port=self.server.port,
        )
        return self

    def stop(self) -> None:
        self.secret_informer.stop()
        self.controller.stop()
        if self._secret_thread is not None:
            self._secret_thread.join(timeout=10)
        self.server.stop()
        self.reporter.close()
        self.reconciler.close()
        self.kafka.close()


def main(argv: list[str] | None = None) -> int:
    return run_agent("kairn-user-agent", parser(), UserAgent, argv)


if __name__ == "__main__":
    sys.exit(main())
