"""kairn-user-agent: ConfigMaps labelled ``kairn.dev/cluster=<release>`` and
``kairn.dev/type=user`` become Kafka users (SCRAM-SHA-512 or TLS credentials in a Secret named
after the user), their ACLs and their quotas."""

from __future__ import annotations

import logging
import sys
import threading

from kubernetes import client

from agents.common.agent import Agent, agent_parser, extra_int
from agents.common.cli import run_agent
from agents.common.informer import Informer
from agents.common.kafka_admin import client_kwargs
from agents.common.namespaces import NamespacedInformers
from agents.common.settings import (
    DEFAULT_CERT_RENEWAL_DAYS,
    DEFAULT_CERT_VALIDITY_DAYS,
    DEFAULT_KAFKA_LANES,
    Settings,
    env,
)

from .credentials import USER_LABEL
from .kafka_users import UserAdmin
from .reconciler import UserReconciler


def parser():
    p = agent_parser(
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
        "--super-users",
        default=env("SUPER_USERS", ""),
        help="the brokers' super.users (User:a;User:b) [KAIRN_SUPER_USERS]: no ConfigMap may "
        "declare one of them",
    )
    a(
        "--cert-validity-days",
        type=int,
        default=env("CERT_VALIDITY_DAYS", str(DEFAULT_CERT_VALIDITY_DAYS)),
        help="validity of TLS users' certificates [KAIRN_CERT_VALIDITY_DAYS] "
        f"(default {DEFAULT_CERT_VALIDITY_DAYS})",
    )
    a(
        "--cert-renewal-days",
        type=int,
        default=env("CERT_RENEWAL_DAYS", str(DEFAULT_CERT_RENEWAL_DAYS)),
        help="TLS users' certificates expiring within this many days are issued again "
        f"[KAIRN_CERT_RENEWAL_DAYS] (default {DEFAULT_CERT_RENEWAL_DAYS})",
    )
    a(
        "--kafka-lanes",
        type=int,
        default=env("KAFKA_LANES", str(DEFAULT_KAFKA_LANES)),
        help="Kafka requests in flight at once for large batches [KAIRN_KAFKA_LANES] "
        f"(default {DEFAULT_KAFKA_LANES})",
    )
    return p


class UserAgent(Agent):
    """Beside the common parts, a watch of the users' Secrets: one deleted or changed by hand
    is set right at once."""

    kind = "user"

    def __init__(self, settings: Settings, api: client.ApiClient | None = None):
        self.validity_days = extra_int(settings, "cert_validity_days", DEFAULT_CERT_VALIDITY_DAYS)
        self.renewal_days = extra_int(settings, "cert_renewal_days", DEFAULT_CERT_RENEWAL_DAYS)
        if self.validity_days <= self.renewal_days:
            raise ValueError("--cert-validity-days must be larger than --cert-renewal-days")
        super().__init__(settings, api)
        # the network client runs on the reconcile thread: a busy machine makes it warn about
        # slow event-loop tasks, which says nothing about Kafka
        logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
        self.secret_informer = NamespacedInformers(
            settings.namespace,
            lambda namespace: Informer(
                self.core,
                namespace,
                f"kairn.dev/cluster={settings.cluster},{USER_LABEL}",
                self._on_secret,
                metrics=self.metrics,
                name="user-secret-informer",
                list_fn=self.core.list_namespaced_secret,
                home=settings.namespace,
            ),
            name="user-secret-informer",
        )
        self._secret_thread: threading.Thread | None = None

    def kafka_factory(self):
        settings = self.settings
        lanes = max(1, extra_int(settings, "kafka_lanes", DEFAULT_KAFKA_LANES))
        return lambda: UserAdmin(client_kwargs(settings), settings.kafka_timeout_ms, lanes=lanes)

    def build_reconciler(self) -> UserReconciler:
        ex = self.settings.extra
        informer = self.controller.informer
        informer.add_index("user", lambda obj: [obj["metadata"]["name"]])
        super_users = tuple(p.strip() for p in (ex.get("super_users") or "").split(";"))
        return UserReconciler(
            self.kafka,
            self.reporter,
            self.core,
            self.controller.informer.get,
            cluster=self.settings.cluster,
            namespace=self.settings.namespace,
            fullname=self.settings.fullname,
            clients_ca_cert_secret=ex.get("clients_ca_cert_secret"),
            clients_ca_secret=ex.get("clients_ca_secret"),
            cert_validity_days=self.validity_days,
            cert_renewal_days=self.renewal_days,
            tenancy=self.tenancy,
            claimants=lambda user: informer.by_index("user", user),
            super_users=tuple(p for p in super_users if p),
            cluster_ca_file=self.settings.tls_ca_file,
        )

    def should_enqueue(self, key, old, new) -> list[str]:
        if not Informer.changed(old, new):
            return []
        informer = self.controller.informer
        # a change of one claimant of a user name may decide a conflict for the others
        name = (old or new or {})["metadata"]["name"]
        return sorted({key, *(informer.key_of(o) for o in informer.by_index("user", name))})

    def namespaced_informers(self) -> list[NamespacedInformers]:
        return [self.controller.informer, self.secret_informer]

    def _on_secret(self, key: str, old: dict | None, new: dict | None) -> None:
        if not self.secret_informer.synced.is_set():
            return  # the first list: the ConfigMaps' own first sync covers every user
        if new is not None and not Informer.changed(old, new):
            return
        if new is not None and self.reconciler.wrote(new):
            return  # the agent's own write
        if self.controller.informer.get(key) is not None:
            self.controller.queue.add(key)

    def on_start(self) -> None:
        self._secret_thread = threading.Thread(
            target=self.secret_informer.run, name="user-secret-informer", daemon=True
        )
        self._secret_thread.start()

    def on_stop(self) -> None:
        self.secret_informer.stop()
        if self._secret_thread is not None:
            self._secret_thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    return run_agent("kairn-user-agent", parser(), UserAgent, argv)


if __name__ == "__main__":
    sys.exit(main())
