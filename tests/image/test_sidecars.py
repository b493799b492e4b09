"""The image's containers in the broker and ZooKeeper pods, against the harness' real cluster:
the JMX agent copy init container, the brokers' readiness script (it runs in the broker's TLS
sidecar), and the ZooKeeper TLS sidecar carrying the quorum's traffic in place of the
harness' own stunnel process."""

from __future__ import annotations

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("workload", ["kairn-kafka", "kairn-zookeeper"])
def test_jmx_agent_copy_leaves_a_jar_the_server_user_can_read(pods, workload):
    c = pods.container("StatefulSet", workload, "jmx-agent")
    done = c.run()
    assert done.returncode == 0, done.stdout + done.stderr
    jar = c.volumes["jmx-agent"] / "jmx_prometheus_javaagent.jar"
    assert jar.stat().st_size > 100_000
    assert jar.stat().st_mode & 0o004, "Kafka and ZooKeeper run as another uid: others must read"


def test_broker_readiness_script_in_the_kafka_tls_sidecar(cluster_pods, kafka_cluster):
    broker = kafka_cluster.kafka_pods[1]
    sidecar = cluster_pods.container(
        "StatefulSet",
        "kairn-kafka",
        "tls-sidecar",
        pod=broker.name,
        address=kafka_cluster.address("kafka", 1),
        # the probe alone: the harness' own sidecar process already holds the ports
        replace={"command": ["sleep", "infinity"], "args": []},
    ).start()
    probe = cluster_pods.rendering[("StatefulSet", "kairn-kafka")]["spec"]["template"]["spec"]
    command = next(c for c in probe["initContainers"] if c["name"] == "tls-sidecar")[
        "readinessProbe"
    ]["exec"]["command"]
    wait_for("the sidecar container", sidecar.running, 30)
    answer = None

    def ready():
        nonlocal answer
        answer = sidecar.exec(*command)
        return answer.returncode == 0

    wait_for(f"the readiness script to pass ({answer})", ready, 60)
    assert broker.ready()  # the harness' own probe agrees


def test_zookeeper_tls_sidecar_from_the_image_carries_the_quorum(cluster_pods, kafka_cluster):
    """ZooKeeper 0's stunnel process is replaced by the image's sidecar container, then
    ZooKeeper 0 is restarted: it can only rejoin the ensemble, and serve the brokers, through
    the container's TLS tunnels (quorum, election and client ports)."""
    zk = kafka_cluster.zk_pods[0]
    local = zk.local
    assert local is not None
    local.procs["tls-sidecar"].stop(10)
    sidecar = cluster_pods.container(
        "StatefulSet",
        "kairn-zookeeper",
        "tls-sidecar",
        pod=zk.name,
        address=kafka_cluster.address("zookeeper", 0),
    ).start()
    try:
        local.procs["zookeeper"].stop(10)
        local.restart("zookeeper")
        wait_for(
            "ZooKeeper 0 back in the ensemble through the image's sidecar",
            lambda: kafka_cluster.zookeeper_mode(0) in ("leader", "follower"),
            120,
        )
        assert sidecar.running(), sidecar.output()
        log = sidecar.output()
        # a follower's quorum link goes out to the leader ([quorum-to-N]); election links go
        # both ways; clients come in ([client])
        for service in ("quorum", "election", "client]"):
            assert f"Service [{service}" in log and "accepted connection" in log, log[-3000:]
        kafka_cluster.wait_zookeeper_quorum(60)
        # a client over TLS through the container (the four-letter word goes to port 2181)
        assert "Zookeeper version" in kafka_cluster.four_letter_word(0, "srvr")
    finally:
        sidecar.stop()
        local.restart("tls-sidecar")
        kafka_cluster.wait_zookeeper_quorum(120)
