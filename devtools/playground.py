"""`make up` / `make down`: the local playground cluster, in the background.

``up`` starts the harness cluster (3 ZooKeeper nodes behind TLS sidecars, 3 TLS/SCRAM brokers,
ACL authorizer on) detached from the shell, writes ready-made client property files and small
command wrappers into .run/playground/, and prints how to use them. ``down`` stops every process
it started, found through their pid files. Running ``up`` twice is harmless.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

from kafka.admin import ACLOperation, ResourceType

from devtools import clients
from devtools.cluster import KAFKA_LIBS, ROOT, LocalCluster
from devtools.procs import kill_pidfiles

HOME = ROOT / ".run" / "playground"
DEMO_USER = "demo"

# command name -> Kafka main class (Kafka 3.9's own tools, from the jars `make setup` fetched)
TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-acls": "kafka.admin.AclCommand",
    "kafka-configs": "kafka.admin.ConfigCommand",
}


def _alive_pids(folder: Path) -> list[int]:
    pids = []
    for pidfile in folder.rglob("*.pid"):
        try:
            pid = int(pidfile.read_text())
            os.kill(pid, 0)
            pids.append(pid)
        except (ValueError, ProcessLookupError):
            pass
    return pids


def up() -> int:
    if HOME.exists() and _alive_pids(HOME):
        print(_usage(json.loads((HOME / "connect.json").read_text())))
        return 0
    if HOME.exists():
        kill_pidfiles(HOME)
        shutil.rmtree(HOME)
    started = time.monotonic()
    print("starting 3 ZooKeeper nodes and 3 Kafka brokers (TLS, ACLs on) ...", flush=True)
    cluster = LocalCluster(HOME, tie_to_parent=False)
    try:
        cluster.start()
        info = _prepare_clients(cluster)
    except BaseException:
        kill_pidfiles(HOME)
        print(f"the cluster did not start; logs are in {HOME}", file=sys.stderr)
        raise
    info["seconds"] = round(time.monotonic() - started, 1)
    (HOME / "connect.json").write_text(json.dumps(info, indent=2))
    print(_usage(info))
    return 0


def down() -> int:
    if not HOME.exists():
        print("nothing is running")
        return 0
    killed = kill_pidfiles(HOME)
    print(f"stopped {len(killed)} processes; data and logs stay in {HOME} until the next `make up`")
    return 0


def _prepare_clients(cluster: LocalCluster) -> dict:
    """Client property files (mTLS as the admin identity, SCRAM as a demo user) and wrappers."""
    password = secrets.token_urlsafe(24)
    clients.set_scram_password(cluster, DEMO_USER, password)
    for rtype in (ResourceType.TOPIC, ResourceType.GROUP):
        clients.grant(cluster, f"User:{DEMO_USER}", rtype, "*", [ACLOperation.ALL])

    mtls = HOME / "client-mtls.properties"
    shutil.copy(cluster.admin_properties, mtls)
    scram = HOME / "client-scram.properties"
    scram.write_text(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{DEMO_USER}" password="{password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={cluster.cluster_ca_file}\n"
    )
    for f in (mtls, scram):
        f.chmod(0o600)
    bin_dir = HOME / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, main in TOOLS.items():
        wrapper = bin_dir / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f"exec java -Xmx256m -Dlog4j.configuration=file:{HOME / 'tools-log4j.properties'} "
            f"-cp '{KAFKA_LIBS}/*' {main} \"$@\"\n"
        )
        wrapper.chmod(0o755)
    (HOME / "tools-log4j.properties").write_text(
        "log4j.rootLogger=WARN, stderr\n"
        "log4j.appender.stderr=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stderr.Target=System.err\n"
        "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stderr.layout.ConversionPattern=%p %m%n\n"
    )
    return {
        "bootstrap_tls": cluster.bootstrap(9093),
        "bootstrap_scram": cluster.bootstrap(9094),
        "zookeeper_tls": ",".join(f"{cluster.addr.pod('zookeeper', i)}:2181" for i in range(3)),
        "client_mtls": str(mtls),
        "client_scram": str(scram),
        "bin": str(bin_dir),
        "logs": str(HOME),
        "ca": str(cluster.cluster_ca_file),
        "admin_cert": str(cluster.admin.crt),
        "admin_key": str(cluster.admin.key),
    }


def _usage(info: dict) -> str:
    b = info["bin"]
    scram = info["bootstrap_scram"].split(",")[0]
    took = f" (started in {info['seconds']} s)" if "seconds" in info else ""
    return f"""
kairn playground is up{took}: 3 ZooKeeper nodes (mutual TLS through stunnel) and 3 Kafka 3.9
brokers (TLS listeners, SCRAM-SHA-512, ACL authorizer on).

  bootstrap, mutual TLS : {info["bootstrap_tls"]}   properties: {info["client_mtls"]}
  bootstrap, SCRAM      : {info["bootstrap_scram"]}   properties: {info["client_scram"]}
                          (user "{DEMO_USER}", may use every topic and group)
  CA certificate        : {info["ca"]}
  logs and data         : {info["logs"]}

Try a topic:
  {b}/kafka-topics --bootstrap-server {info["bootstrap_tls"].split(",")[0]} \\
      --command-config {info["client_mtls"]} --create --topic demo.orders --partitions 3
  echo hello | {b}/kafka-console-producer --bootstrap-server {scram} \\
      --producer.config {info["client_scram"]} --topic demo.orders
  {b}/kafka-console-consumer --bootstrap-server {scram} \\
      --consumer.config {info["client_scram"]} --topic demo.orders --from-beginning --max-messages 1

From Python (kafka-python):
  KafkaProducer(bootstrap_servers="{info["bootstrap_tls"]}", security_protocol="SSL",
                ssl_cafile="{info["ca"]}", ssl_certfile="{info["admin_cert"]}",
                ssl_keyfile="{info["admin_key"]}")

Stop everything with: make down
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="playground", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    return up() if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
