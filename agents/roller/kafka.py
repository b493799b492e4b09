"""Kafka adapter (kafka-python 3.0 admin client over mutual TLS): controller, registered brokers,
partitions with their ISR, effective min.insync.replicas per topic, broker configs."""

from __future__ import annotations

import contextlib

import kafka.errors as Errors

from .model import KafkaView, Partition
from .zk import TlsFiles

UNKNOWN_TOPIC = Errors.UnknownTopicOrPartitionError.errno
# Sources of a broker config that a person (or the file) set explicitly.
_SET_SOURCES = {"STATIC_BROKER_CONFIG", "DYNAMIC_BROKER_CONFIG"}


class Kafka:
    def __init__(self, bootstrap: str, tls: TlsFiles, request_timeout_ms: int = 10000):
        self.bootstrap, self.tls, self.timeout_ms = bootstrap, tls, request_timeout_ms
        self._admin = None

    def _client(self):
        if self._admin is None:
            from kafka import KafkaAdminClient

            self._admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap.split(","),
                security_protocol="SSL",
                ssl_cafile=self.tls.ca,
                ssl_certfile=self.tls.cert,
                ssl_keyfile=self.tls.key,
                ssl_check_hostname=self.tls.check_hostname,
                request_timeout_ms=self.timeout_ms,
                client_id="kairn-roller",
            )
        return self._admin

    def _call(self, fn):
        """Run ``fn(admin)``; on failure drop the client so the next call reconnects (the broker
        it talked to may be the one just restarted)."""
        try:
            return fn(self._client())
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def view(self, with_partitions: bool = True) -> KafkaView:
        def read(admin):
            cluster = admin.describe_cluster()
            brokers = frozenset(b["broker_id"] for b in cluster["brokers"])
            controller = cluster.get("controller_id")
            if not with_partitions:
                return KafkaView(controller, brokers)
            parts, topics, unreadable = [], [], {}
            for t in admin.describe_topics():
                code = t.get("error_code")
                if code == UNKNOWN_TOPIC:  # deleted meanwhile
                    continue
                if code:
                    unreadable[t["name"]] = Errors.for_code(code).__name__
                    continue
                topics.append(t["name"])
                for p in t["partitions"]:
                    parts.append(
                        Partition(
                            t["name"],
                            p["partition_index"],
                            p["leader_id"],
                            tuple(p["replica_nodes"]),
                            tuple(p["isr_nodes"]),
                        )
                    )
            min_isr = self._min_isr(admin, topics)
            for t in topics:
                if t not in min_isr:  # kafka-python leaves a refused DescribeConfigs empty
                    unreadable[t] = "its min.insync.replicas was not returned"
            return KafkaView(controller, brokers, tuple(parts), min_isr, unreadable)

        return self._call(read)

    @staticmethod
    def _min_isr(admin, topics: list[str]) -> dict[str, int]:
        from kafka.admin import ConfigResource, ConfigResourceType

        if not topics:
            return {}
        res = [
            ConfigResource(ConfigResourceType.TOPIC, t, {"min.insync.replicas": None})
            for t in topics
        ]
        described = admin.describe_configs(res, config_filter="all").get("topic", {})
        out = {}
        for t in topics:
            entry = (described.get(t) or {}).get("min.insync.replicas") or {}
            if entry.get("value") is not None:
                out[t] = int(entry["value"])
        return out

    def broker_config(self, broker: int) -> dict[str, str | None]:
        """The broker's explicitly set configs (file or dynamic); None for secret values."""
        from kafka.admin import ConfigResource, ConfigResourceType

        def read(admin):
            res = [ConfigResource(ConfigResourceType.BROKER, str(broker))]
            described = admin.describe_configs(res, config_filter="all")["broker"][str(broker)]
            return {
                k: v.get("value")
                for k, v in described.items()
                if v.get("config_source") in _SET_SOURCES
            }

        return self._call(read)

    def alter_broker_config(self, broker: int, values: dict[str, str]) -> None:
        """Incremental alter-configs on one broker; raises with Kafka's message on refusal."""
        from kafka.admin import ConfigResource, ConfigResourceType

        def alter(admin):
            res = [ConfigResource(ConfigResourceType.BROKER, str(broker), dict(values))]
            result = admin.alter_configs(res, incremental=True)
            outcome = result.get("broker", {}).get(str(broker))
            if outcome != "OK":
                raise RuntimeError(f"broker {broker} refused {sorted(values)}: {outcome}")

        self._call(alter)
