"""The chart's rendered configuration runs for real, and a template that renders a broken
configuration fails here (the session cluster of the other tests runs the default values)."""

from __future__ import annotations

import pytest
import yaml

from devtools import clients
from devtools.chart import CHART
from devtools.cluster import LocalCluster
from devtools.metrics import scrape
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
