"""Translating a rendered pod into local processes (devtools/podspec.py), on small manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.podspec import (
    KAFKA_BIN,
    PodIdentity,
    localize,
    plan_pod,
    pod_hosts,
    statefulset_pod_spec,
)

MOUNTS = {
    "/etc/kafka/certs": Path("/run/secrets/brokers"),
    "/etc/kafka/config": Path("/run/p/config"),
}
HOSTS = {"k-0.k-brokers.ns.svc.cluster.local": "127.1.2.110", "k-0.k-brokers.ns.svc": "127.1.2.110"}


def test_mount_paths_become_local_folders_longest_first():
    text = "ssl.keystore.location=/etc/kafka/certs/k-0.p12\nx=/etc/kafka/config/server.properties"
    out = localize(text, MOUNTS, {}, "127.1.2.110")
    assert "/run/secrets/brokers/k-0.p12" in out and "/run/p/config/server.properties" in out


def test_a_mount_path_does_not_rewrite_a_longer_sibling():
    assert localize("/etc/kafka/certsx", MOUNTS, {}, "127.0.0.9") == "/etc/kafka/certsx"


def test_pod_names_resolve_to_their_address_but_service_names_stay():
    text = (
        "connect = k-0.k-brokers.ns.svc.cluster.local:2181\ncheckHost = k-zookeeper-client.ns.svc"
    )
    out = localize(text, {}, HOSTS, "127.9.9.9")
    assert "connect = 127.1.2.110:2181" in out
    assert "checkHost = k-zookeeper-client.ns.svc" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("zookeeper.connect=127.0.0.1:2181", "zookeeper.connect=127.5.5.5:2181"),
        (
            "listeners=TLS://:9093,SCRAM://:9094",
            "listeners=TLS://127.5.5.5:9093,SCRAM://127.5.5.5:9094",
        ),
        ("accept = 2181\n", "accept = 127.5.5.5:2181\n"),
        ("accept = 127.0.0.1:28881", "accept = 127.5.5.5:28881"),
        ("x=10.127.0.0.12", "x=10.127.0.0.12"),
    ],
)
def test_loopback_and_all_interfaces_mean_the_pod_address(text, expected):
    assert localize(text, {}, {}, "127.5.5.5") == expected


def _statefulset():
    return {
        "metadata": {"name": "k-kafka"},
        "spec": {
            "serviceName": "k-kafka-brokers",
            "template": {
                "spec": {
                    "initContainers": [
                        {
                            "name": "tls-sidecar",
                            "restartPolicy": "Always",
                            "command": ["stunnel"],
                            "args": ["/etc/kafka/config/stunnel-$(POD_NAME).conf"],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/kafka/config"}],
                            "readinessProbe": {
                                "exec": {"command": ["python3", "/etc/kafka/config/ready.py"]}
                            },
                        },
                        {"name": "init-once", "command": ["true"]},
                    ],
                    "containers": [
                        {
                            "name": "kafka",
                            "command": ["/opt/kafka/bin/kafka-server-start.sh"],
                            "args": [
                                "/etc/kafka/config/server.properties",
                                "--override",
                                "broker.id=$(ID)",
                                "--override",
                                "x=$$(ID)",
                            ],
                            "env": [
                                {
                                    "name": "ID",
                                    "valueFrom": {
                                        "fieldRef": {
                                            "fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"
                                        }
                                    },
                                },
                                {"name": "OPTS", "value": "-Did=$(ID)"},
                            ],
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/kafka/config"},
                                {"name": "certs", "mountPath": "/etc/kafka/certs"},
                                {"name": "data", "mountPath": "/var/lib/kafka"},
                            ],
                            "ports": [{"name": "tcp-tls", "containerPort": 9093}],
                            "readinessProbe": {"tcpSocket": {"port": "tcp-tls"}},
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "k-kafka-config"}},
                        {"name": "certs", "secret": {"secretName": "k-kafka-brokers"}},
                    ],
                }
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
        },
    }


def test_plan_pod_runs_sidecars_first_with_expanded_arguments(tmp_path):
    configmaps = {
        "k-kafka-config": {
            "server.properties": "log.dirs=/var/lib/kafka/data\nlisteners=TLS://:9093\n"
        }
    }
    pod = PodIdentity("k-kafka-1", 1, "ns", "127.3.3.111")
    run = plan_pod(
        statefulset_pod_spec(_statefulset()),
        pod,
        tmp_path / "k-kafka-1",
        _Sources(configmaps, tmp_path / "secrets"),
    )

    assert [c.name for c in run.containers] == ["tls-sidecar", "init-once", "kafka"]
    sidecar, once, kafka = run.containers
    assert (sidecar.sidecar, sidecar.init) == (True, False)
    assert (once.init, kafka.init, kafka.sidecar) == (True, False, False)
    assert sidecar.argv == [
        "stunnel",
        str(tmp_path / "k-kafka-1/volumes/config/stunnel-k-kafka-1.conf"),
    ]
    assert sidecar.readiness == ["python3", str(tmp_path / "k-kafka-1/volumes/config/ready.py")]
    assert kafka.argv[0] == str(KAFKA_BIN / "kafka-server-start.sh")
    assert "broker.id=1" in kafka.argv and "x=$(ID)" in kafka.argv
    assert kafka.env["OPTS"] == "-Did=1"
    assert kafka.ready_port == 9093
    server = run.files[tmp_path / "k-kafka-1/volumes/config/server.properties"]
    assert f"log.dirs={tmp_path}/k-kafka-1/volumes/data/data" in server
    assert "listeners=TLS://127.3.3.111:9093" in server
    assert tmp_path / "k-kafka-1/volumes/data" in run.dirs


def test_unsupported_volume_is_refused_by_name(tmp_path):
    sts = _statefulset()
    sts["spec"]["template"]["spec"]["volumes"].append({"name": "odd", "hostPath": {"path": "/"}})
    with pytest.raises(ValueError, match="unsupported volume odd"):
        plan_pod(
            statefulset_pod_spec(sts),
            PodIdentity("k-kafka-0", 0, "ns", "127.0.0.2"),
            tmp_path,
            _Sources({"k-kafka-config": {}}, tmp_path),
        )


def test_env_from_configmap_and_secret_keys_and_labels(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "password").write_text("pw")
    spec = {
        "containers": [
            {
                "name": "app",
                "command": ["run", "$(A)", "$(P)"],
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "X_"}],
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "a"}}},
                    {"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                    {
                        "name": "L",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}},
                    },
                ],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
            }
        ],
        "restartPolicy": "Never",
    }
    pod = PodIdentity("p", 0, "ns", "127.0.0.9", labels={"team": "data"})
    run = plan_pod(spec, pod, tmp_path / "p", _Sources({"cm": {"a": "1"}}, tmp_path))
    (app,) = run.containers
    assert app.argv == ["run", "1", "pw"]
    assert app.env["X_a"] == "1" and app.env["L"] == "data"
    assert app.ready_http == (8080, "/readyz")
    assert run.restart_policy == "Never"


class _Sources:
    def __init__(self, configmaps, secrets: Path):
        self.configmaps, self.secrets = configmaps, secrets

    def configmap(self, name):
        return self.configmaps[name]

    def secret_dir(self, name):
        return self.secrets / name

    def volume(self, volume, pod, pod_dir):
        if "persistentVolumeClaim" in volume:
            return pod_dir / "volumes" / volume["name"]
        return None


def test_pod_hosts_cover_every_dns_form():
    hosts = pod_hosts(_statefulset(), 2, "ns", lambda i: f"127.0.0.{i + 10}")
    assert hosts["k-kafka-1.k-kafka-brokers.ns.svc.cluster.local"] == "127.0.0.11"
    assert hosts["k-kafka-0.k-kafka-brokers"] == "127.0.0.10"


def test_a_replaced_path_is_not_rewritten_by_a_shorter_mount():
    mounts = {
        "/etc/zookeeper": Path("/tmp/run/zk-0/volumes/config"),
        "/tmp": Path("/tmp/run/zk-0/volumes/tmp"),
    }
    out = localize("cfg=/etc/zookeeper/zoo.cfg tmp=/tmp/x", mounts, {}, "127.0.0.2")
    assert out == "cfg=/tmp/run/zk-0/volumes/config/zoo.cfg tmp=/tmp/run/zk-0/volumes/tmp/x"


def test_all_interfaces_mean_the_pod_address():
    out = localize("-javaagent:/a.jar=0.0.0.0:9404:/c.yaml bind=10.0.0.0", {}, {}, "127.4.4.4")
    assert out == "-javaagent:/a.jar=127.4.4.4:9404:/c.yaml bind=10.0.0.0"
