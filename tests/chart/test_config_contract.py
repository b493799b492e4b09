"""How a pod's final configuration is assembled, as the local harness replicates it (see the
comments at the top of the ConfigMap templates): shared files plus per-pod stunnel files and
per-pod `--override`s, nothing else."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.chart.helpers import CHART, NAMESPACE, ROOT, ZOOKEEPER_MATRIX, find, render

# the chart's fixed ports; the templates read them from this file
PORTS = yaml.safe_load((CHART / "files" / "ports.yaml").read_text())

PER_POD_KEYS = {
    "broker.id",
    "advertised.listeners",
    "ssl.keystore.location",
    "ssl.keystore.password",
}


def properties(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not a property line: {line!r}"
            assert key not in out, f"{key} set twice"
            out[key] = value
    return out


def overrides(args: list[str]) -> dict[str, str]:
    assert args[0] == "/etc/kafka/config/server.properties"
    rest = args[1:]
    assert rest[0::2] == ["--override"] * (len(rest) // 2) and len(rest) % 2 == 0
    return dict(a.split("=", 1) for a in rest[1::2])


@pytest.mark.parametrize("case", ZOOKEEPER_MATRIX)
def test_broker_config_is_shared_file_plus_per_pod_overrides(case):
    docs = render("helm3", case)
    sts = find(docs, "StatefulSet", "kairn-kafka")
    kafka = sts["spec"]["template"]["spec"]["containers"][0]
    props = properties(find(docs, "ConfigMap", "kairn-kafka-config")["data"]["server.properties"])
    over = overrides(kafka["args"])
    assert set(over) == PER_POD_KEYS
    assert not PER_POD_KEYS & set(props)
    assert props["zookeeper.connect"] == "127.0.0.1:2181"
    assert over["broker.id"] == "$(KAFKA_BROKER_ID)"
    host = f"$(POD_NAME).kairn-kafka-brokers.{NAMESPACE}.svc.cluster.local"
    assert over["advertised.listeners"].startswith(
        f"REPLICATION://{host}:9091,TLS://{host}:9093,SCRAM://{host}:9094"
    )
    # every listener is advertised, with the protocol the map gives it
    names = [entry.split("://")[0] for entry in props["listeners"].split(",")]
    advertised = [entry.split("://")[0] for entry in over["advertised.listeners"].split(",")]
    assert names == advertised
    protocol = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    assert set(protocol) == set(names)
    # $(VAR)s in the args are Kubernetes env expansion of variables the container defines
    env = {e["name"] for e in kafka["env"]}
    for arg in kafka["args"]:
        assert set(re.findall(r"\$\((\w+)\)", arg)) <= env


@pytest.mark.parametrize("case", ZOOKEEPER_MATRIX)
def test_a_stunnel_file_per_pod(case):
    docs = render("helm3", case)
    for component, folder in (("kafka", "/etc/kafka/config"), ("zookeeper", "/etc/kairn/stunnel")):
        sts = find(docs, "StatefulSet", f"kairn-{component}")
        data = find(docs, "ConfigMap", f"kairn-{component}-config")["data"]
        files = {k for k in data if k.startswith("stunnel-")}
        pods = {f"stunnel-kairn-{component}-{i}.conf" for i in range(sts["spec"]["replicas"])}
        assert files == pods
        sidecar = sts["spec"]["template"]["spec"]["initContainers"][0]
        assert sidecar["command"] == ["stunnel"]
        assert sidecar["args"] == [f"{folder}/stunnel-$(POD_NAME).conf"]
        for name in files:
            conf = data[name]
            assert "foreground = yes" in conf
            assert "verifyChain = yes" in conf


@pytest.mark.parametrize("case", ZOOKEEPER_MATRIX)
def test_zookeeper_quorum_wiring(case):
    docs = render("helm3", case)
    n = find(docs, "StatefulSet", "kairn-zookeeper")["spec"]["replicas"]
    data = find(docs, "ConfigMap", "kairn-zookeeper-config")["data"]
    cfg = properties(data["zoo.cfg"])
    assert cfg["clientPortAddress"] == "127.0.0.1" and cfg["clientPort"] == "12181"
    servers = {k: v for k, v in cfg.items() if k.startswith("server.")}
    if n == 1:
        assert servers == {}
        return
    assert servers == {f"server.{j}": f"127.0.0.1:{28880 + j}:{38880 + j}" for j in range(1, n + 1)}
    for i in range(n):
        conf = data[f"stunnel-kairn-zookeeper-{i}.conf"]
        accepts = re.findall(r"^accept = (.+)$", conf, re.M)
        peers = [j for j in range(1, n + 1) if j != i + 1]
        assert accepts == ["2181", "2888", "3888"] + [
            a for j in peers for a in (f"127.0.0.1:{28880 + j}", f"127.0.0.1:{38880 + j}")
        ]


@pytest.mark.parametrize("case", ZOOKEEPER_MATRIX)
def test_broker_readiness_asks_its_own_tls_listener(case):
    docs = render("helm3", case)
    spec = find(docs, "StatefulSet", "kairn-kafka")["spec"]["template"]["spec"]
    data = find(docs, "ConfigMap", "kairn-kafka-config")["data"]
    assert data["kafka_ready.py"] == (CHART / "files" / "kafka_ready.py").read_text()
    tls = PORTS["kafka"]["tls"]
    probe = spec["initContainers"][0]["readinessProbe"]["exec"]["command"]
    assert probe == ["python3", "/etc/kafka/config/kafka_ready.py", str(tls)]
    ports = {p["name"]: p["containerPort"] for p in spec["containers"][0]["ports"]}
    assert ports["tcp-tls"] == tls
    assert f"TLS://:{tls}" in properties(data["server.properties"])["listeners"].split(",")


def test_the_wiring_document_gives_every_fixed_port():
    wiring = (ROOT / "docs" / "wiring.md").read_text()
    missing = [
        f"{group}.{name}"
        for group, ports in PORTS.items()
        for name, port in ports.items()
        if not re.search(rf"\b{port}\b", wiring)
    ]
    assert not missing, f"docs/wiring.md does not give the ports of {missing}"
