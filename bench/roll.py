"""Benchmark: kairn's controller-aware roll vs a naive roll of the brokers, on one real cluster
under one steady produce load (idempotent, acks=all, RF 3 / min ISR 2).

- kairn: `kairn-roller roll` (brokers that are not the controller first, the controller last;
  each restart only when no partition would fall below min ISR, the next one only when the
  restarted broker is registered and back in every ISR).
- naive: what a StatefulSet RollingUpdate does without Kafka knowledge, pushed to "as soon as
  the process is up": ordinal order, the next broker as soon as the previous one's process runs.

Reports for each: wall time, controller elections (/controller_epoch), produce errors,
acknowledged messages lost, max and p99 produce latency during the roll. Prints the figures
and writes them to bench/results/roll.json.

With ``--mode kraft`` the same on the local KRaft cluster (devtools/kraft.py, Kafka 4): kairn
rolls the 3 controllers (followers, the quorum leader last) then the 3 brokers; the naive roll
takes controllers then brokers in ordinal order, each as soon as the previous process runs.
Elections are the metadata quorum's leader epoch; results in bench/results/roll-kraft.json.

Run: .venv/bin/python bench/roll.py [--mode kraft]   (or `make bench`)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform as host
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.roller import cli  # noqa: E402
from agents.roller.kafka import Kafka  # noqa: E402
from agents.roller.local import LocalPlatform  # noqa: E402
from agents.roller.local_kraft import LocalKRaftPlatform  # noqa: E402
from agents.roller.model import CONTROLLER, KAFKA  # noqa: E402
from agents.roller.zk import TlsFiles, ZooKeeper  # noqa: E402
from bench.roll_load import Load, lost  # noqa: E402
from devtools.cluster import LocalCluster  # noqa: E402
from devtools.kraft import KRaftCluster  # noqa: E402
from devtools.waiting import wait_until  # noqa: E402

TOPICS = ["bench.roll.a", "bench.roll.b"]
RATE = 50.0  # messages a second
RESULTS = ROOT / "bench" / "results"


def tls(c) -> TlsFiles:
    return TlsFiles(str(c.cluster_ca_file), str(c.admin.crt), str(c.admin.key), False)


def zookeeper(c) -> ZooKeeper:
    return ZooKeeper([(c.address("zookeeper", i), 2181) for i in range(c.zookeepers)], tls(c))


def client(c) -> dict:
    return {"bootstrap_servers": c.bootstrap(), **c.admin.ssl_kwargs()}


def kraft(c) -> bool:
    return isinstance(c, KRaftCluster)


def all_in_sync(c) -> bool:
    admin = c.admin_client(request_timeout_ms=5000)
    try:
        brokers = admin.describe_cluster()["brokers"]
        if {b["broker_id"] for b in brokers if not b.get("is_fenced")} != set(range(c.brokers)):
            return False
        return all(
            set(p["isr_nodes"]) == set(p["replica_nodes"])
            for t in admin.describe_topics()
            for p in t["partitions"]
        )
    finally:
        admin.close()


def elections(c) -> int:
    """Controller elections so far: /controller_epoch, or the KRaft quorum's leader epoch."""
    if not kraft(c):
        return zookeeper(c).controller_epoch()
    k = Kafka(c.bootstrap(), tls(c))
    try:
        return k.quorum().epoch
    finally:
        k.close()


def kairn_roll(c) -> dict:
    t = tls(c)
    argv = [
        "--bootstrap", c.bootstrap(),
        "--tls-ca-file", t.ca, "--tls-cert-file", t.cert, "--tls-key-file", t.key,
        "--tls-check-hostname", "false", "--log-level", "info", "roll",
    ]  # fmt: skip
    if kraft(c):
        platform = LocalKRaftPlatform(c)
        platform.upgrade(CONTROLLER)
    else:
        platform = LocalPlatform(c)
        argv = ["--zookeeper-nodes", ",".join(f"{h}:{p}" for h, p in zookeeper(c).nodes), *argv]
    platform.upgrade(KAFKA)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(argv, platform=platform)
    if rc != 0:
        raise RuntimeError(f"kairn roll failed: {err.getvalue().strip().splitlines()[-1]}")
    steps = [json.loads(line) for line in err.getvalue().splitlines() if line.startswith("{")]
    return {s["pod"]: s["seconds"] for s in steps if s.get("step") == "back"}


def naive_roll(c) -> None:
    for pod in c.nodes if kraft(c) else c.kafka_pods:  # KRaft: controllers, then brokers
        pod.stop()
        pod.start()
        wait_until(pod.running, 60, f"{pod.name} processes up")
    return None


def measure(c, name: str, roll) -> dict:
    wait_until(lambda: all_in_sync(c), 300, "every partition in sync before the roll")
    epoch_before = elections(c)
    with Load(client(c), TOPICS, rate=RATE, tag=name) as load:
        wait_until(lambda: load.acked_count() >= RATE, 60, "the load to run")
        started = time.monotonic()
        per_pod = roll(c)
        wall = time.monotonic() - started
        wait_until(lambda: all_in_sync(c), 300, "every partition in sync after the roll")
        whole = time.monotonic() - started
        result = load.stop()
    missing = lost(client(c), result)
    return {
        "roll": name,
        "wall_seconds": round(wall, 1),
        "until_in_sync_seconds": round(whole, 1),
        "controller_elections": elections(c) - epoch_before,
        "produce_errors": len(result.errors),
        "messages_sent": result.sent,
        "messages_acked": sum(len(v) for v in result.acked.values()),
        "messages_lost": sum(missing.values()),
        "latency_max_ms": round(max(result.latencies, default=0) * 1000, 1),
        "latency_p99_ms": round(result.percentile(0.99) * 1000, 1),
        "first_errors": result.errors[:3],
        "seconds_until_each_pod_back_in_sync": per_pod,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="kairn's roll against a naive roll, under load")
    p.add_argument("--mode", choices=["zookeeper", "kraft"], default="zookeeper")
    mode = p.parse_args(argv).mode
    run_dir = ROOT / ".run" / "bench" / f"roll-{mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    c = KRaftCluster(run_dir) if mode == "kraft" else LocalCluster(run_dir)
    try:
        c.start()
        admin = c.admin_client()
        try:
            admin.create_topics(
                {
                    t: {
                        "num_partitions": 6,
                        "replication_factor": 3,
                        "configs": {"min.insync.replicas": 2},
                    }
                    for t in TOPICS
                },
                wait_for_metadata=True,
            )
        finally:
            admin.close()
        rows = [measure(c, "kairn", kairn_roll), measure(c, "naive", naive_roll)]
    finally:
        c.stop()
    kairn, naive = rows
    ratio = kairn["wall_seconds"] / naive["wall_seconds"] if naive["wall_seconds"] else None
    ratio_sync = kairn["until_in_sync_seconds"] / naive["until_in_sync_seconds"]
    cols = [
        "wall_seconds",
        "until_in_sync_seconds",
        "controller_elections",
        "produce_errors",
        "messages_lost",
        "messages_acked",
        "latency_max_ms",
        "latency_p99_ms",
    ]
    what = "3 controllers + 3 brokers" if mode == "kraft" else "3 brokers"
    print(f"{'roll of ' + what + ' under load':40}" + "".join(f"{r['roll']:>12}" for r in rows))
    for col in cols:
        print(f"{col:40}" + "".join(f"{r[col]:>12}" for r in rows))
    print(f"kairn wall time / naive wall time: {ratio:.2f}" if ratio else "")
    print(f"kairn / naive, until every partition is in sync again: {ratio_sync:.2f}")
    for r in rows:
        for e in r["first_errors"]:
            print(f"  {r['roll']} error: {e}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": "roll",
        "mode": mode,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpus": __import__("os").cpu_count(), "python": host.python_version()},
        "load": {"rate_per_second": RATE, "topics": TOPICS, "partitions": 6, "rf": 3, "min_isr": 2},
        "results": rows,
        "kairn_over_naive_wall_time": round(ratio, 2) if ratio else None,
        "kairn_over_naive_until_in_sync": round(ratio_sync, 2),
    }
    name = "roll-kraft.json" if mode == "kraft" else "roll.json"
    (RESULTS / name).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {RESULTS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
