"""Kafka admin connections for the agents (kafka-python 3.0).

- :func:`admin_client(settings)`: a ``KafkaAdminClient`` over mutual TLS with the files of
  ``settings.tls_*`` (or plaintext when no CA file is set).
- :class:`KafkaAccess`: holds one admin client, created lazily and re-created after a
  connection failure; ``call(api, fn)`` runs ``fn(admin)``, counts it in
  ``kairn_kafka_requests_total{api,result}`` and remembers whether Kafka answered (for
  /readyz). Errors are re-raised; :func:`is_transient` tells a Kafka or network outage from
  an error of the request itself.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import kafka.errors as Errors
from kafka import KafkaAdminClient

from .metrics import Metrics
from .settings import Settings

T = TypeVar("T")


def client_kwargs(settings: Settings) -> dict:
    """kafka-python connection settings (bootstrap, TLS) from the agent's settings."""
    kw: dict = {
        "bootstrap_servers": settings.bootstrap.split(","),
        "request_timeout_ms": settings.kafka_timeout_ms,
        "client_id": f"kairn-{settings.cluster}",
    }
    if settings.tls_ca_file:
        kw.update(
            security_protocol="SSL",
            ssl_cafile=settings.tls_ca_file,
            ssl_certfile=settings.tls_cert_file,
            ssl_keyfile=settings.tls_key_file,
            ssl_check_hostname=settings.tls_check_hostname,
        )
    return kw


def admin_client(settings: Settings, **extra) -> KafkaAdminClient:
    return KafkaAdminClient(**client_kwargs(settings), **extra)


_TRANSIENT = (
    Errors.KafkaConnectionError,
    Errors.KafkaTimeoutError,
    Errors.NotControllerError,
    Errors.LeaderNotAvailableError,
    Errors.NotLeaderForPartitionError,
    Errors.RequestTimedOutError,
    Errors.NodeNotReadyError,
    Errors.BrokerNotAvailableError,
    Errors.CoordinatorNotAvailableError,
    # the client's own view names a broker it no longer knows (seen after a roll in KRaft
    # mode, where the "controller" it sends admin requests to is a broker it picked): only a
    # new client forgets it
    Errors.UnknownBrokerIdError,
    Errors.UnknownError,
    ConnectionError,
    TimeoutError,
    OSError,
)


def is_transient(exc: BaseException) -> bool:
    """True for errors that say Kafka is (partly) unreachable, not that a request is wrong."""
    if isinstance(exc, _TRANSIENT):
        return True
    return bool(getattr(exc, "retriable", False))


class KafkaAccess:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        factory: Callable[[], KafkaAdminClient] | None = None,
    ):
        self.settings, self.metrics = settings, metrics
        if metrics is not None:  # the identity this agent presents to Kafka, and the CA it trusts
            metrics.watch_certificates(
                {"agents": settings.tls_cert_file, "cluster-ca": settings.tls_ca_file}
            )
        self._factory = factory or (lambda: admin_client(settings))
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.RLock()
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self._probe: threading.Thread | None = None

    def admin(self) -> KafkaAdminClient:
        with self._lock:
            if self._admin is None:
                self._admin = self._factory()
            return self._admin

    def reset(self) -> None:
        """Drops the client (a new one is made on the next call)."""
        with self._lock:
            if self._admin is not None:
                with contextlib.suppress(Exception):
                    self._admin.close()
            self._admin = None

    def call(self, api: str, fn: Callable[[KafkaAdminClient], T]) -> T:
        try:
            result = fn(self.admin())
        except Exception as e:
            if self.metrics:
                self.metrics.kafka_request(api, False)
            if is_transient(e) or not isinstance(e, Errors.KafkaError):
                self.last_error = f"{api}: {e!r}"
                self.last_ok = None
                self.reset()
            raise
        if self.metrics:
            self.metrics.kafka_request(api, True)
        self.last_ok, self.last_error = time.monotonic(), None
        return result

    def reachable(self, max_age: float = 60.0) -> tuple[bool, str]:
        """Whether Kafka answered recently, without waiting for Kafka (a probe's HTTP handler
        must answer within its timeout). When the last answer is older than ``max_age``
        seconds a describe_cluster runs in the background; until it fails, an answer up to
        three times ``max_age`` old still counts."""
        age = None if self.last_ok is None else time.monotonic() - self.last_ok
        if age is not None and age < max_age:
            return True, "kafka reachable"
        self._probe_in_background()
        if age is not None and age < 3 * max_age:
            return True, "kafka reachable (being checked again)"
        return False, f"kafka unreachable: {self.last_error or 'not reached yet'}"

    def _probe_in_background(self) -> None:
        with self._lock:
            if self._probe is not None and self._probe.is_alive():
                return

            def probe() -> None:
                with contextlib.suppress(Exception):
                    self.call("describe_cluster", lambda a: a.describe_cluster())

            self._probe = threading.Thread(target=probe, name="kafka-probe", daemon=True)
            self._probe.start()

    def close(self) -> None:
        self.reset()
