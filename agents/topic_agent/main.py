"""kairn-topic-agent: ConfigMaps labelled ``kairn.dev/cluster=<release>`` and
``kairn.dev/type=topic`` become Kafka topics, and stay them."""

from __future__ import annotations

import sys

from kubernetes import client

from agents.common import status as st
from agents.common.cli import run_agent
from agents.common.controller import Controller
from agents.common.informer import Informer, key_of
from agents.common.kafka_admin import KafkaAccess
from agents.common.logs import setup_logging
from agents.common.metrics import HealthServer, Metrics
from agents.common.settings import Settings, base_parser, bool_arg, env, kube_client

from .reconciler import TopicReconciler, claimed_topics

AGENT = "topic"


def parser():
    p = base_parser(
        "kairn-topic-agent",
        "Reconcile ConfigMaps labelled kairn.dev/cluster=<release>, kairn.dev/type=topic into "
        "Kafka topics (Strimzi KafkaTopic v1beta2 spec: topicName, partitions, replicas, "
        "config). Every option falls back to the environment variable shown.",
    )
    a = p.add_argument
    a(
        "--delete-topics",
        type=bool_arg,
        default=env("DELETE_TOPICS", "false"),
        help="delete the Kafka topic when its ConfigMap is deleted (a finalizer is used) "
        "[KAIRN_DELETE_TOPICS] (default false)",
    )
    a(
        "--default-replicas",
        type=int,
        default=env("DEFAULT_REPLICAS"),
        help="replication factor of topics whose spec has no replicas [KAIRN_DEFAULT_REPLICAS] "
        "(default: the broker's default.replication.factor)",
    )
    a(
        "--batch-size",
        type=int,
        default=env("BATCH_SIZE", "500"),
        help="ConfigMaps reconciled together in one set of Kafka requests [KAIRN_BATCH_SIZE] "
        "(default 500)",
    )
    a(
        "--throttle-bytes",
        type=int,
        default=env("THROTTLE_BYTES", str(50 * 1024 * 1024)),
        help="replication throttle (bytes/s) while replicas move for a replication factor change "
        "[KAIRN_THROTTLE_BYTES] (default 52428800)",
    )
    return p


class TopicAgent:
    """The agent, in-process: ``start()``, ``stop()``; ``controller`` and ``server`` expose
    its parts (tests use them)."""

    def __init__(self, settings: Settings, api: client.ApiClient | None = None):
        self.settings = settings
        self.log = setup_logging("kairn-topic-agent", settings.log_level)
        self.api = api or kube_client(settings)
        self.core = client.CoreV1Api(self.api)
        self.metrics = Metrics(AGENT)
        self.kafka = KafkaAccess(settings, self.metrics)
        ex = settings.extra
        self.controller = Controller(
            AGENT,
            settings,
            self.core,
            self._reconcile,
            self.metrics,
            resource_type="topic",
            batch_size=max(1, int(ex.get("batch_size") or 500)),
            should_enqueue=self._should_enqueue,
        )
        informer = self.controller.informer
        informer.add_index("topic", claimed_topics)
        self.reporter = st.StatusReporter(
            self.core, settings.namespace, "topic-agent", on_written=informer.update_cached
        )
        self.reconciler = TopicReconciler(
            self.kafka,
            self.reporter,
            self.core,
            informer.get,
            lambda t: informer.by_index("topic", t),
            delete_topics=bool(ex.get("delete_topics")),
            default_replicas=ex.get("default_replicas"),
            throttle_bytes=int(ex.get("throttle_bytes") or 50 * 1024 * 1024),
            kafka_timeout_ms=settings.kafka_timeout_ms,
        )
        self.controller.ready_checks.append(self.kafka.reachable)
        self.server = HealthServer(
            self.metrics,
            self.controller.healthy,
            self.controller.ready,
            settings.http_host,
            settings.http_port,
        )

    def _should_enqueue(self, key, old, new) -> list[str]:
        if not Informer.changed(old, new):
            return []
        keys = {key}
        # a change of one claimant of a topic may decide a conflict for the others
        for obj in (old, new):
            if obj is not None:
                for topic in claimed_topics(obj):
                    keys.update(
                        key_of(o) for o in self.controller.informer.by_index("topic", topic)
                    )
        return sorted(keys)

    def _reconcile(self, keys):
        out = self.reconciler.reconcile(keys)
        self.metrics.set_resources(self.reporter.counts())
        return out

    def start(self) -> TopicAgent:
        self.server.start()
        self.controller.start()
        self.log.info(
            "started",
            cluster=self.settings.cluster,
            namespace=self.settings.namespace,
            port=self.server.port,
            delete_topics=self.reconciler.delete_topics,
        )
        return self

    def stop(self) -> None:
        self.controller.stop()
        self.server.stop()
        self.reporter.close()
        self.kafka.close()


def main(argv: list[str] | None = None) -> int:
    return run_agent("kairn-topic-agent", parser(), TopicAgent, argv)


if __name__ == "__main__":
    sys.exit(main())
