"""kairn-topic-agent: ConfigMaps labelled ``kairn.dev/cluster=<release>`` and
``kairn.dev/type=topic`` become Kafka topics, and stay them."""

from __future__ import annotations

import sys

from agents.common.agent import Agent, agent_parser, extra_int
from agents.common.cli import run_agent
from agents.common.informer import Informer
from agents.common.settings import DEFAULT_THROTTLE_BYTES, bool_arg, env

from .reconciler import TopicReconciler, claimed_topics


def parser():
    p = agent_parser(
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
        "--brokers",
        type=int,
        default=env("BROKERS"),
        help="how many brokers the cluster is deployed with (the chart's kafka.replicas) "
        "[KAIRN_BROKERS]: a replication factor above it is an Error, one that only the brokers "
        "that are down would allow waits (Pending)",
    )
    a(
        "--throttle-bytes",
        type=int,
        default=env("THROTTLE_BYTES", str(DEFAULT_THROTTLE_BYTES)),
        help="replication throttle (bytes/s) while replicas move for a replication factor change "
        f"[KAIRN_THROTTLE_BYTES] (default {DEFAULT_THROTTLE_BYTES})",
    )
    return p


class TopicAgent(Agent):
    kind = "topic"

    def build_reconciler(self) -> TopicReconciler:
        informer = self.controller.informer
        informer.add_index("topic", claimed_topics)
        ex = self.settings.extra
        return TopicReconciler(
            self.kafka,
            self.reporter,
            self.core,
            informer.get,
            lambda t: informer.by_index("topic", t),
            delete_topics=bool(ex.get("delete_topics")),
            default_replicas=ex.get("default_replicas"),
            throttle_bytes=extra_int(self.settings, "throttle_bytes", DEFAULT_THROTTLE_BYTES),
            kafka_timeout_ms=self.settings.kafka_timeout_ms,
            expected_brokers=ex.get("brokers"),
            namespace=self.settings.namespace,
            tenancy=self.tenancy,
        )

    def should_enqueue(self, key, old, new) -> list[str]:
        if not Informer.changed(old, new):
            return []
        keys = {key}
        informer = self.controller.informer
        # a change of one claimant of a topic may decide a conflict for the others
        for obj in (old, new):
            if obj is not None:
                for topic in claimed_topics(obj):
                    keys.update(informer.key_of(o) for o in informer.by_index("topic", topic))
        return sorted(keys)

    def started_fields(self) -> dict:
        return {"delete_topics": self.reconciler.delete_topics}


def main(argv: list[str] | None = None) -> int:
    return run_agent("kairn-topic-agent", parser(), TopicAgent, argv)


if __name__ == "__main__":
    sys.exit(main())
