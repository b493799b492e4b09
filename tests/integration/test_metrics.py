"""Broker and ZooKeeper metrics as the chart configures them: the harness pods load the JMX
exporter java agent from the init container's copy with the chart's own rule files, and these
tests scrape them like Prometheus would."""

from __future__ import annotations

import pytest

from devtools import clients
from devtools.metrics import Scrape, scrape
from devtools.waiting import wait_until
from tests.metric_names import used_names

pytestmark = pytest.mark.kafka

BROKER_METRICS = {
    "kafka_server_replicamanager_underreplicatedpartitions",
    "kafka_server_replicamanager_underminisrpartitioncount",
    "kafka_server_replicamanager_offlinereplicacount",
    "kafka_server_replicamanager_partitioncount",
    "kafka_server_replicamanager_leadercount",
    "kafka_server_replicamanager_isrshrinks_total",
    "kafka_server_replicamanager_isrexpands_total",
    "kafka_controller_kafkacontroller_activecontrollercount",
    "kafka_controller_kafkacontroller_offlinepartitionscount",
    "kafka_controller_kafkacontroller_globalpartitioncount",
    "kafka_controller_kafkacontroller_globaltopiccount",
    "kafka_controller_uncleanleaderelections_total",
    "kafka_server_brokertopicmetrics_messagesin_total",
    "kafka_server_brokertopicmetrics_bytesin_total",
    "kafka_server_brokertopicmetrics_bytesout_total",
    "kafka_server_brokertopicmetrics_failedproducerequests_total",
    "kafka_server_brokertopicmetrics_failedfetchrequests_total",
    "kafka_network_requests_total",
    "kafka_network_request_total_time_ms",
    "kafka_server_request_handler_idle_ratio",
    "kafka_network_processor_idle_ratio",
}
ZOOKEEPER_METRICS = {
    "zookeeper_quorum_size",
    "zookeeper_quorum_role",
    "zookeeper_avgrequestlatency_ms",
    "zookeeper_maxrequestlatency_ms",
    "zookeeper_minrequestlatency_ms",
    "zookeeper_outstandingrequests",
    "zookeeper_numaliveconnections",
    "zookeeper_packetsreceived_total",
    "zookeeper_packetssent_total",
    "zookeeper_nodecount",
    "zookeeper_watchcount",
}


def brokers(cluster, alive=(0, 1, 2)) -> list[Scrape]:
    return [scrape(cluster, "kafka", i) for i in alive]


def total(scrapes: list[Scrape], name: str, **labels: str) -> float:
    return sum(s.value(name, **labels) for s in scrapes)


def tls(cluster) -> dict:
    return {"bootstrap_servers": cluster.bootstrap(), **cluster.admin.ssl_kwargs()}


def test_every_broker_serves_the_rule_set_with_sane_values(kafka_cluster):
    scrapes = brokers(kafka_cluster)
    for i, s in enumerate(scrapes):
        missing = BROKER_METRICS - set(s.samples())
        assert not missing, f"broker {i} lacks {sorted(missing)}"
        assert s.value("kafka_server_request_handler_idle_ratio") <= 1.0
        assert 0 <= s.value("kafka_network_processor_idle_ratio") <= 1.0
        assert s.value("jmx_scrape_error") == 0
    # exactly one controller, and it counts no offline partition
    _wait_one_controller(kafka_cluster)
    assert total(scrapes, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0


def test_zookeeper_nodes_report_one_leader_and_the_quorum_size(kafka_cluster):
    scrapes = [scrape(kafka_cluster, "zookeeper", i) for i in range(3)]
    for i, s in enumerate(scrapes):
        missing = ZOOKEEPER_METRICS - set(s.samples())
        assert not missing, f"ZooKeeper node {i} lacks {sorted(missing)}"
        assert s.value("zookeeper_quorum_size") == 3
        assert (
            0
            <= s.value("zookeeper_avgrequestlatency_ms")
            <= s.value("zookeeper_maxrequestlatency_ms")
        )
    roles = sorted(r.labels["role"] for s in scrapes for r in s.samples()["zookeeper_quorum_role"])
    assert roles == ["Follower", "Follower", "Leader"]
    # each broker holds a session (through its TLS sidecar)
    assert total(scrapes, "zookeeper_numaliveconnections") >= 3


def test_traffic_shows_in_counters_request_times_and_log_size(kafka_cluster):
    topic = "metrics.traffic"
    clients.create_topic(kafka_cluster, topic, partitions=3)
    before = brokers(kafka_cluster)
    messages = total(before, "kafka_server_brokertopicmetrics_messagesin_total")
    produces = total(before, "kafka_network_requests_total", request="Produce")
    clients.produce(topic, [f"m{i}".encode() * 10 for i in range(200)], **tls(kafka_cluster))

    def counted():
        now = brokers(kafka_cluster)
        return (
            total(now, "kafka_server_brokertopicmetrics_messagesin_total") >= messages + 200
            and total(now, "kafka_network_requests_total", request="Produce") > produces
            and total(now, "kafka_log_size_bytes", topic=topic) > 3 * 200 * 10
        )

    wait_until(counted, 60, "the produced messages in the broker metrics")
    after = brokers(kafka_cluster)
    # three replicas of each of the three partitions
    assert (
        len(
            [
                s
                for b in after
                for s in b.samples()["kafka_log_size_bytes"]
                if s.labels["topic"] == topic
            ]
        )
        == 9
    )
    for b in after:
        p99 = b.value("kafka_network_request_total_time_ms", request="Produce", quantile="0.99")
        p50 = b.value("kafka_network_request_total_time_ms", request="Produce", quantile="0.5")
        assert 0 <= p50 <= p99


def test_under_replicated_partitions_rise_when_a_broker_stops_and_fall_back(kafka_cluster):
    topic = "metrics.urp"
    clients.create_topic(kafka_cluster, topic, partitions=3)
    clients.wait_in_sync(kafka_cluster, topic)
    urp = "kafka_server_replicamanager_underreplicatedpartitions"
    wait_until(
        lambda: total(brokers(kafka_cluster), urp) == 0, 120, "no under-replicated partition"
    )
    expands = total(brokers(kafka_cluster), "kafka_server_replicamanager_isrexpands_total")

    broker = kafka_cluster.kafka_pods[2]
    broker.kill()
    try:
        # every partition of the topic has a replica on broker 2: at least those three
        wait_until(
            lambda: total(brokers(kafka_cluster, (0, 1)), urp) >= 3,
            120,
            "under-replicated partitions on the remaining brokers",
        )
        # (a killed broker leaves the ISR through the controller when its ZooKeeper session
        # ends, which the leaders' ISR-shrink meter does not count; the expand below is theirs)
        live = brokers(kafka_cluster, (0, 1))
        assert total(live, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0
    finally:
        broker.start()
        kafka_cluster.wait_up()
    wait_until(
        lambda: total(brokers(kafka_cluster), urp) == 0,
        180,
        "the under-replicated partitions back to 0",
    )
    assert total(brokers(kafka_cluster), "kafka_server_replicamanager_isrexpands_total") > expands
    _wait_one_controller(kafka_cluster)


def test_every_broker_and_zookeeper_metric_of_the_alerts_and_dashboard_exists(kafka_cluster):
    """kairn_* names are checked against a real agent's scrape in tests/e2e/."""
    clients.create_topic(kafka_cluster, "metrics.names")
    clients.produce("metrics.names", [b"x"], **tls(kafka_cluster))  # a log size sample
    scraped: set[str] = set()
    for s in brokers(kafka_cluster) + [scrape(kafka_cluster, "zookeeper", i) for i in range(3)]:
        scraped |= set(s.samples())
    wanted = {n: w for n, w in used_names().items() if not n.startswith("kairn_")}
    assert wanted, "no broker or ZooKeeper metric found in the alerts and dashboard"
    missing = {n: sorted(w) for n, w in wanted.items() if n not in scraped}
    assert not missing, f"used but never scraped: {missing}"


def _wait_one_controller(cluster) -> None:
    wait_until(
        lambda: (
            total(brokers(cluster), "kafka_controller_kafkacontroller_activecontrollercount") == 1
        ),
        60,
        "exactly one active controller",
    )
