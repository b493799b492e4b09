"""The chart's rendered configuration runs for real, and a template that renders a broken
configuration fails here (the session cluster of the other tests runs the default values; the
session KRaft cluster, tests/conftest.py, the default values in KRaft mode)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from devtools import clients
from devtools.chart import CHART
from devtools.cluster import LocalCluster
from devtools.kraft import KRaftCluster
from devtools.localpod import InitContainerFailed
from devtools.metrics import scrape
from devtools.waiting import wait_until
from tests.conftest import new_run_dir

pytestmark = pytest.mark.kafka


def test_single_node_values_run_and_serve_over_tls():
    values = yaml.safe_load((CHART / "ci" / "single-node.yaml").read_text())
    cluster = LocalCluster(new_run_dir("single-node"), zookeepers=1, brokers=1, values=values)
    try:
        cluster.start()
        assert cluster.zookeeper_mode(0) == "standalone"
        # the JMX exporter's rules know a standalone node too
        assert (
            scrape(cluster, "zookeeper", 0).value("zookeeper_quorum_role", role="Standalone") == 1
        )
        clients.create_topic(cluster, "single.node", rf=1)
        tls = {"bootstrap_servers": cluster.bootstrap(), **cluster.admin.ssl_kwargs()}
        clients.produce("single.node", [b"one"], **tls)
        assert clients.consume("single.node", 1, **tls) == [b"one"]
    finally:
        cluster.stop()


class _MisrenderedZooKeeper(LocalCluster):
    """As if the ZooKeeper ConfigMap template rendered a client port that its sidecar does not
    forward to: the kind of slip a template edit makes."""

    def rendering(self) -> dict:
        manifests = super().rendering()
        cm = manifests[("ConfigMap", f"{self.fullname}-zookeeper-config")]
        cm["data"]["zoo.cfg"] = cm["data"]["zoo.cfg"].replace(
            "clientPort=12181", "clientPort=12182"
        )
        return manifests


def test_a_broken_rendering_fails_the_harness_with_the_reason():
    cluster = _MisrenderedZooKeeper(new_run_dir("broken"), zookeepers=1, brokers=1)
    try:
        with pytest.raises(TimeoutError, match="ZooKeeper quorum"):
            cluster.start(timeout=30)
    finally:
        cluster.stop()
    sidecar_log = (cluster.zk_pods[0].folder / "tls-sidecar.log").read_text()
    assert "Connection refused" in sidecar_log


# ---- KRaft mode: the chart's controllers and brokers (devtools/kraft.py) ----------------------


def test_kraft_rendering_runs_serves_and_reports_its_quorum():
    """One controller and one broker of the chart's KRaft rendering: storage formatted by the
    pods' own init containers, the CONTROLLER listener's mutual TLS, the brokers' listeners and
    the JMX exporter rules of controllers and brokers that the alerts read."""
    cluster = KRaftCluster(new_run_dir("kraft-single"), controllers=1, brokers=1)
    try:
        cluster.start()
        assert cluster.registered_brokers() == {0}
        clients.create_topic(cluster, "kraft.single", rf=1)
        tls = {"bootstrap_servers": cluster.bootstrap(), **cluster.admin.ssl_kwargs()}
        clients.produce("kraft.single", [b"one"], **tls)
        assert clients.consume("kraft.single", 1, **tls) == [b"one"]
        # the topic defaults the controllers apply: the chart's num.partitions (3)
        admin = cluster.admin_client()
        try:
            admin.create_topics({"kraft.defaults": {}})  # partitions and RF: the defaults
            wait_until(
                lambda: len(admin.describe_topics(["kraft.defaults"])[0]["partitions"]) == 3,
                30,
                "kraft.defaults with the controllers' num.partitions",
            )
        finally:
            admin.close()
        controller = scrape(cluster, "controller", 0)
        assert controller.value("kafka_controller_kafkacontroller_activecontrollercount") == 1
        assert controller.value("kafka_controller_kafkacontroller_fencedbrokercount") == 0
        assert controller.value("kafka_controller_kafkacontroller_metadataerrorcount") == 0
        assert controller.value("kafka_server_raft_high_watermark") > 0
        for name in ("log_end_offset", "commit_latency_avg_ms", "current_leader"):
            controller.value(f"kafka_server_raft_{name}")
        broker = scrape(cluster, "kafka", 0)
        assert broker.value("kafka_server_broker_metadata_apply_errors") == 0
        assert broker.value("kafka_server_broker_metadata_load_errors") == 0
    finally:
        cluster.stop()


def test_kraft_storage_is_formatted_once_and_a_foreign_volume_is_refused():
    """A restarted pod keeps its formatted storage (same cluster, node and directory id); a pod
    whose volume belongs to another cluster (the cluster id Secret lost and created again) stops
    in its format-storage init container, and the volume is left as it was."""
    cluster = KRaftCluster(new_run_dir("kraft-format"), controllers=1, brokers=1)
    controller = cluster.controller_nodes[0]
    try:
        cluster.start()
        meta = controller.data / "meta.properties"
        before = meta.read_text()
        cluster.stop()
        cluster.start()
        assert meta.read_text() == before
        assert "already formatted" in (controller.folder / "format-storage.log").read_text()
        cluster.stop()
        shutil.rmtree(cluster.secret_dir("kairn-kraft-cluster"))
        cluster.make_certs()  # kairn-certs creates a new cluster id
        with pytest.raises(InitContainerFailed, match="format-storage"):
            controller.start()
        log = (controller.folder / "format-storage.log").read_text()
        assert f"this pod is cluster {cluster.cluster_id} node 100; refusing to start" in log
        assert meta.read_text() == before
    finally:
        cluster.stop()
