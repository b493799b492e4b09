"""`make up` / `make down`: kairn installed with helm on a local Kubernetes control plane.

``up`` starts the local control plane (etcd, kube-apiserver, controllers, scheduler) with
process-backed nodes (devtools/kube/node.py) detached from the shell, and runs
``helm install`` of the chart: the PKI hook creates the certificates, and real ZooKeeper nodes
behind TLS sidecars, three Kafka brokers and the topic and user agents run as local processes.
It then declares a demo user through a ConfigMap, and a topic and a user from a tenant
namespace (``team-a``, prefix ``team-a.``), writes client property files, kubectl/helm and Kafka
tool wrappers into .run/playground/, and prints how to use them. ``down`` stops it
all. Running ``up`` twice is harmless.

``up --mode kraft`` (or KAIRN_MODE=kraft; `make up MODE=kraft`) installs the chart in KRaft mode
instead: three KRaft controllers and three brokers of Kafka 4, no ZooKeeper.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from devtools import ROOT, TOOLS
from devtools.chart import HARNESS_VALUES, deep_merge
from devtools.cluster import KAFKA_LIBS
from devtools.kube.controlplane import ControlPlane
from devtools.waiting import wait_until

HOME = ROOT / ".run" / "playground"
KUBE_DIR = HOME / "kube"
BIN = TOOLS / "bin"
RELEASE, NAMESPACE = "kairn", "kafka"
DEMO_USER = "demo"
TENANT = "team-a"  # a tenant namespace: its topics and users are named under "team-a."
TENANT_TOPIC, TENANT_USER = f"{TENANT}.events", f"{TENANT}.app"
BOOTSTRAP = f"{RELEASE}-kafka-bootstrap.{NAMESPACE}.svc.cluster.local"
MODES = ("zookeeper", "kraft")
# KRaft mode: the chart's kafka.metadata.mode, controllers as small as the harness' brokers
KRAFT_VALUES = {
    "kafka": {"metadata": {"mode": "kraft"}, "controller": {"heapOpts": "-Xms192m -Xmx192m"}}
}

# command name -> Kafka main class (Kafka 3.9's own tools, from the jars `make setup` fetched)
TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-acls": "kafka.admin.AclCommand",
    "kafka-configs": "kafka.admin.ConfigCommand",
}

DEMO_USER_SPEC = {
    "authentication": {"type": "scram-sha-512"},
    "authorization": {
        "type": "simple",
        "acls": [
            {"resource": {"type": "topic", "name": "*"}, "operations": ["All"]},
            {"resource": {"type": "group", "name": "*"}, "operations": ["All"]},
        ],
    },
}
EXAMPLE_TOPIC = f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: demo.orders
  namespace: {NAMESPACE}
  labels: {{kairn.dev/cluster: {RELEASE}, kairn.dev/type: topic}}
data:
  spec: |
    partitions: 3
    replicas: 3
    config:
      retention.ms: 86400000
"""


def _env() -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(KUBE_DIR / "kubeconfig")}


def _run(*argv: str, timeout: float = 900, input: str | None = None) -> str:
    out = subprocess.run(
        argv, env=_env(), capture_output=True, text=True, timeout=timeout, input=input
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {out.stderr.strip()[-2000:]}")
    return out.stdout


def up(mode: str = "zookeeper") -> int:
    cp = ControlPlane(KUBE_DIR, nodes=0, process_nodes=3)
    if (KUBE_DIR / "state.json").exists() and cp.load().running():
        print(_usage(json.loads((HOME / "connect.json").read_text())))
        return 0
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    started = time.monotonic()
    try:
        print("starting the local Kubernetes control plane ...", flush=True)
        cp.start()
        print(f"helm install {RELEASE} chart/ -n {NAMESPACE} ...", flush=True)
        values = HOME / "values.yaml"
        chosen = deep_merge(HARNESS_VALUES, KRAFT_VALUES) if mode == "kraft" else HARNESS_VALUES
        values.write_text(yaml.safe_dump({**chosen, "tenants": [{"namespace": TENANT}]}))
        # a tenant's namespace exists before the release that lists it
        _run(str(BIN / "kubectl"), "create", "namespace", TENANT)
        _run(
            str(BIN / "helm"), "install", RELEASE, str(ROOT / "chart"),
            "--namespace", NAMESPACE, "--create-namespace",
            "--values", str(values), "--wait", "--timeout", "10m",
        )  # fmt: skip
        installed = time.monotonic() - started
        info = _prepare_clients()
    except BaseException:
        print(
            f"kairn did not come up; logs are in {HOME}/kube/logs and {HOME}/kube/node/pods",
            file=sys.stderr,
        )
        cp.stop()
        raise
    info["mode"] = mode
    info["seconds"] = round(time.monotonic() - started, 1)
    info["install_seconds"] = round(installed, 1)
    (HOME / "connect.json").write_text(json.dumps(info, indent=2))
    print(_usage(info))
    return 0


def down() -> int:
    cp = ControlPlane(KUBE_DIR)
    if not (KUBE_DIR / "state.json").exists() or not cp.load().running():
        print("nothing is running")
        return 0
    cp.stop()
    print(f"stopped kairn and the control plane; logs stay in {HOME} until the next `make up`")
    return 0


def _secret(name: str, namespace: str = NAMESPACE) -> dict[str, bytes]:
    data = json.loads(
        _run(str(BIN / "kubectl"), "-n", namespace, "get", "secret", name, "-o", "json")
    )
    return {k: base64.b64decode(v) for k, v in data["data"].items()}


def _prepare_clients() -> dict:
    """A demo user declared as a ConfigMap, client property files and command wrappers."""
    demo = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": DEMO_USER,
            "namespace": NAMESPACE,
            "labels": {"kairn.dev/cluster": RELEASE, "kairn.dev/type": "user"},
        },
        "data": {"spec": yaml.safe_dump(DEMO_USER_SPEC)},
    }
    _run(str(BIN / "kubectl"), "apply", "-f", "-", input=json.dumps(demo))
    _declare_tenant()
    examples = HOME / "examples"
    examples.mkdir()
    (examples / "topic.yaml").write_text(EXAMPLE_TOPIC)

    client_dir = HOME / "client"
    client_dir.mkdir(mode=0o700)
    agents = _secret(f"{RELEASE}-agents-cert")
    for key in ("ca.crt", "user.crt", "user.key", "user.p12", "user.password"):
        (client_dir / key).write_bytes(agents[key])
        (client_dir / key).chmod(0o600)
    password = wait_until(
        lambda: _secret(DEMO_USER)["password"].decode(), 120, f"the Secret of user {DEMO_USER}"
    )
    mtls = HOME / "client-mtls.properties"
    mtls.write_text(
        "security.protocol=SSL\n"
        "ssl.keystore.type=PKCS12\n"
        f"ssl.keystore.location={client_dir / 'user.p12'}\n"
        f"ssl.keystore.password={(client_dir / 'user.password').read_text()}\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={client_dir / 'ca.crt'}\n"
    )
    scram = HOME / "client-scram.properties"
    scram.write_text(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{DEMO_USER}" password="{password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={client_dir / 'ca.crt'}\n"
    )
    tenant = _secret(TENANT_USER, TENANT)
    (client_dir / f"{TENANT}-ca.crt").write_bytes(tenant["ca.crt"])
    team = HOME / f"client-{TENANT}.properties"
    team.write_text(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{TENANT_USER}" password="{tenant["password"].decode()}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={client_dir / f'{TENANT}-ca.crt'}\n"
    )
    for f in (mtls, scram, team):
        f.chmod(0o600)
    _write_wrappers(HOME / "bin")
    return {
        "bootstrap_tls": f"{BOOTSTRAP}:9093",
        "bootstrap_scram": f"{BOOTSTRAP}:9094",
        "kubeconfig": str(KUBE_DIR / "kubeconfig"),
        "client_mtls": str(mtls),
        "client_scram": str(scram),
        "bin": str(HOME / "bin"),
        "logs": str(KUBE_DIR / "node" / "pods"),
        "ca": str(client_dir / "ca.crt"),
        "admin_cert": str(client_dir / "user.crt"),
        "admin_key": str(client_dir / "user.key"),
        "example_topic": str(examples / "topic.yaml"),
        "client_tenant": str(team),
    }


def _declare_tenant() -> None:
    """A topic and a user declared from the tenant's namespace, as its team would."""
    acl = {"resource": {"type": "topic", "name": f"{TENANT}.", "patternType": "prefix"},
           "operations": ["All"]}  # fmt: skip
    group = {"resource": {"type": "group", "name": f"{TENANT}.", "patternType": "prefix"},
             "operations": ["Read"]}  # fmt: skip
    specs = {
        (TENANT_TOPIC, "topic"): {"partitions": 3, "replicas": 3},
        (TENANT_USER, "user"): {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": [acl, group]},
        },
    }
    for (name, kind), spec in specs.items():
        doc = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": TENANT,
                "labels": {"kairn.dev/cluster": RELEASE, "kairn.dev/type": kind},
            },
            "data": {"spec": yaml.safe_dump(spec)},
        }
        _run(str(BIN / "kubectl"), "apply", "-f", "-", input=json.dumps(doc))
    wait_until(lambda: _secret(TENANT_USER, TENANT), 120, f"the Secret of {TENANT_USER}")


def _write_wrappers(bin_dir: Path) -> None:
    bin_dir.mkdir(exist_ok=True)
    kubeconfig = KUBE_DIR / "kubeconfig"
    for name in ("kubectl", "helm"):
        (bin_dir / name).write_text(f'#!/bin/sh\nKUBECONFIG={kubeconfig} exec {BIN / name} "$@"\n')
    for name, main in TOOLS.items():
        (bin_dir / name).write_text(
            "#!/bin/sh\n"
            f"exec java -Xmx256m -Dlog4j.configuration=file:{HOME / 'tools-log4j.properties'} "
            f"-cp '{KAFKA_LIBS}/*' {main} \"$@\"\n"
        )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    (HOME / "tools-log4j.properties").write_text(
        "log4j.rootLogger=WARN, stderr\n"
        "log4j.appender.stderr=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stderr.Target=System.err\n"
        "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stderr.layout.ConversionPattern=%p %m%n\n"
    )


def _usage(info: dict) -> str:
    b = info["bin"]
    took = f" in {info['seconds']} s" if "seconds" in info else ""
    if info.get("mode") == "kraft":
        what = """3 KRaft controllers (mutual TLS on CONTROLLER, a dynamic quorum) and 3 Kafka 4
brokers (TLS listeners, SCRAM-SHA-512, StandardAuthorizer), no ZooKeeper, the topic and user agents.
The Kafka tools below are Kafka 3.9's, which speak to Kafka 4 as well."""
    else:
        what = """3 ZooKeeper nodes (mutual TLS through stunnel), 3 Kafka 3.9 brokers
(TLS listeners, SCRAM-SHA-512, ACL authorizer on), the topic and user agents."""
    return f"""
kairn is up{took}: `helm install` of the chart on a local Kubernetes control plane whose pods
run as local processes: {what}

  kubectl / helm        : {b}/kubectl get pods -n {NAMESPACE}
                          (or export KUBECONFIG={info["kubeconfig"]})
  bootstrap, mutual TLS : {info["bootstrap_tls"]}   properties: {info["client_mtls"]}
  bootstrap, SCRAM      : {info["bootstrap_scram"]}   properties: {info["client_scram"]}
                          (user "{DEMO_USER}", a user ConfigMap: every topic and group)
  CA certificate        : {info["ca"]}
  pod logs              : {info["logs"]}

Declare a topic with a ConfigMap, then use it:
  {b}/kubectl apply -f {info["example_topic"]}
  {b}/kubectl get cm -n {NAMESPACE} -L kairn.dev/state
  echo hello | {b}/kafka-console-producer --bootstrap-server {info["bootstrap_scram"]} \\
      --producer.config {info["client_scram"]} --topic demo.orders
  {b}/kafka-console-consumer --bootstrap-server {info["bootstrap_scram"]} \\
      --consumer.config {info["client_scram"]} --topic demo.orders --from-beginning --max-messages 1
  {b}/helm test {RELEASE} -n {NAMESPACE}

A tenant: namespace {TENANT} declares topics and users named under "{TENANT}." from its own
namespace (values: tenants), and gets its users' Secrets (password and the cluster CA) there:
  {b}/kubectl get cm,secret -n {TENANT} -L kairn.dev/state
  echo hello | {b}/kafka-console-producer --bootstrap-server {info["bootstrap_scram"]} \\
      --producer.config {info.get("client_tenant")} --topic {TENANT_TOPIC}

From Python (kafka-python):
  KafkaProducer(bootstrap_servers="{info["bootstrap_tls"]}", security_protocol="SSL",
                ssl_cafile="{info["ca"]}", ssl_certfile="{info["admin_cert"]}",
                ssl_keyfile="{info["admin_key"]}")

Stop everything with: make down
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="playground", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=os.environ.get("KAIRN_MODE") or "zookeeper",
        help="kafka.metadata.mode of the install [KAIRN_MODE] (default zookeeper)",
    )
    args = parser.parse_args(argv)
    return up(args.mode) if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
