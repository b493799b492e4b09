"""Kafka adapter (kafka-python 3.0 admin client over mutual TLS): controller, registered brokers,
partitions with their ISR, effective min.insync.replicas per topic, broker configs; in KRaft mode
the metadata quorum and metadata.version.

The quorum is read with DescribeQuorum sent to a broker, which forwards it to the active
controller (Kafka 4.4 accepts that). kafka-python 3.0.12 cannot bootstrap from the controllers'
CONTROLLER listener (tried against the local KRaft cluster: "Unable to bootstrap"), and a
broker is reachable on the agents' listener anyway, so the hooks need no controller address.
"""

from __future__ import annotations

import contextlib
import re

import kafka.errors as Errors

from .model import Features, KafkaView, Partition, QuorumView, Voter
from .zk import TlsFiles

UNKNOWN_TOPIC = Errors.UnknownTopicOrPartitionError.errno
DESCRIBE_QUORUM_API = 55  # served by KRaft brokers and controllers only, never in ZooKeeper mode
METADATA_VERSION = "metadata.version"
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
            fenced = frozenset(b["broker_id"] for b in cluster["brokers"] if b.get("is_fenced"))
            controller = cluster.get("controller_id")
            if not with_partitions:
                return KafkaView(controller, brokers, fenced=fenced)
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
            return KafkaView(controller, brokers, tuple(parts), min_isr, unreadable, fenced)

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

    # ---- KRaft ------------------------------------------------------------------------------
    def kraft(self) -> bool:
        """The broker we talk to is in KRaft mode: its ApiVersions lists DescribeQuorum."""

        def read(admin):
            admin.describe_cluster()  # connected and negotiated
            return DESCRIBE_QUORUM_API in admin._manager.broker_version_data.api_versions

        return self._call(read)

    def quorum(self) -> QuorumView:
        def read(admin):
            (topic,) = admin.describe_metadata_quorum()["topics"]
            (p,) = topic["partitions"]
            if p.get("error"):
                raise RuntimeError(f"DescribeQuorum: {p['error']}")

            def replicas(key):
                return tuple(
                    Voter(
                        r["replica_id"],
                        r["log_end_offset"],
                        r.get("last_fetch_timestamp", -1),
                        r.get("last_caught_up_timestamp", -1),
                    )
                    for r in p[key]
                )

            return QuorumView(
                p["leader_id"],
                p["leader_epoch"],
                p["high_watermark"],
                replicas("current_voters"),
                replicas("observers"),
            )

        return self._call(read)

    def features(self) -> Features:
        """metadata.version finalized, and each registered broker's supported range from its
        own ApiVersions answer (a broker on an older Kafka supports a lower maximum)."""
        from kafka.protocol.metadata import ApiVersionsRequest

        async def ask_each(admin, nodes):
            # the client's own metadata must know every broker (it lags a restart), or it
            # cannot open the connection
            await admin._manager.cluster.refresh_metadata()
            out = {}
            for node in nodes:
                # kafka-python has no per-node describe_features; its connection manager sends
                # to one node as its own describe_log_dirs does
                request = ApiVersionsRequest(
                    client_software_name="kairn-roller",
                    client_software_version="1",
                    min_version=3,
                )
                response = await admin._manager.send(request, node_id=node)
                for f in response.supported_features or []:
                    if f.name == METADATA_VERSION:
                        out[node] = (f.min_version, f.max_version)
            return out

        def read(admin):
            described = admin.describe_features().get(METADATA_VERSION, {})
            finalized = described.get("finalized")
            nodes = sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"])
            supported = admin._manager.run(ask_each, admin, nodes)
            return Features(finalized[1] if finalized else None, supported)

        return self._call(read)

    def controllers_named(self, samples: int = 3) -> dict[int, set[int]]:
        """The controller id each registered broker gives in Metadata, asked ``samples`` times.

        A ZooKeeper-mode broker that knows a ZooKeeper controller names it every time; one that
        still follows a KRaft controller names a random live broker (KafkaApis), which several
        answers give away."""
        from kafka.protocol.metadata import MetadataRequest

        async def ask_each(admin, nodes):
            await admin._manager.cluster.refresh_metadata()
            out: dict[int, set[int]] = {}
            for node in nodes:
                for _ in range(samples):
                    response = await admin._manager.send(MetadataRequest(topics=[]), node_id=node)
                    out.setdefault(node, set()).add(response.controller_id)
            return out

        def read(admin):
            nodes = sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"])
            return admin._manager.run(ask_each, admin, nodes)

        return self._call(read)

    def update_metadata_version(self, level: int, downgrade: bool, validate_only: bool) -> None:
        """UpdateFeatures on metadata.version (an upgrade, or a safe downgrade); raises with
        Kafka's own message when the controller refuses."""
        from kafka.admin import UpdateFeatureType

        kind = UpdateFeatureType.SAFE_DOWNGRADE if downgrade else UpdateFeatureType.UPGRADE

        def update(admin):
            result = admin.update_features(
                {METADATA_VERSION: (kind, level)}, validate_only=validate_only
            )
            outcome = result.get(METADATA_VERSION)
            if outcome != "OK":
                raise RuntimeError(str(outcome))

        try:
            self._call(update)
        except Errors.KafkaError as e:
            raise RuntimeError(kafka_message(e)) from e


def kafka_message(e: Exception) -> str:
    """The controller's own error_message out of kafka-python's long exception text."""
    found = re.search(r"error_message=([\"'])(.*?)\1\)", str(e))
    return f"{type(e).__name__}: {found.group(2) if found else str(e)}"
