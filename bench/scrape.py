"""Benchmark: what Prometheus gets from the brokers' and ZooKeeper nodes' JMX exporter (the
chart's rule files, loaded the way the chart loads the java agent): the exported metric
families, and per pod the scrape size in bytes, the sample count and the scrape time (median
and slowest of several scrapes, from the request to the last byte).

The cluster holds TOPICS topics of 3 partitions with some data, so the per-partition log size
series are there as they would be in use. Prints the figures and writes them to
bench/results/scrape.json.

Run: .venv/bin/python bench/scrape.py   (or `make bench`)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools import clients  # noqa: E402
from devtools.cluster import LocalCluster  # noqa: E402
from devtools.metrics import scrape  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TOPICS = 10
SCRAPES = 20


def measure(cluster: LocalCluster, kind: str, i: int) -> dict:
    scrape(cluster, kind, i)  # the first scrape after start builds the exporter's caches
    runs = [scrape(cluster, kind, i) for _ in range(SCRAPES)]
    last = runs[-1]
    times = sorted(r.seconds for r in runs)
    return {
        "bytes": last.size,
        "samples": sum(len(v) for v in last.samples().values()),
        "families": len(last.families()),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(times[-1] * 1000, 1),
        "_families": last.families(),
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kairn-bench-") as tmp:
        cluster = LocalCluster(Path(tmp))
        try:
            cluster.start()
            tls = {"bootstrap_servers": cluster.bootstrap(), **cluster.admin.ssl_kwargs()}
            for t in range(TOPICS):
                clients.create_topic(cluster, f"bench.scrape.{t}", partitions=3)
                clients.produce(f"bench.scrape.{t}", [b"x" * 512] * 200, **tls)
            pods = {f"kafka-{i}": measure(cluster, "kafka", i) for i in range(cluster.brokers)} | {
                f"zookeeper-{i}": measure(cluster, "zookeeper", i) for i in range(3)
            }
        finally:
            cluster.stop()
    kafka_families = pods["kafka-0"].pop("_families")
    zk_families = pods["zookeeper-0"].pop("_families")
    for p in pods.values():
        p.pop("_families", None)
    figures = {
        "topics": f"{TOPICS} x 3 partitions, RF 3, plus __consumer_offsets (6 partitions)",
        "scrapes_per_pod": SCRAPES,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "pods": pods,
        "broker_families": kafka_families,
        "zookeeper_families": zk_families,
    }
    print("scrape: the JMX exporter of 3 brokers and 3 ZooKeeper nodes (chart rule files)")
    print(
        f"  {'pod':12} {'bytes':>7} {'samples':>8} {'families':>9} {'median ms':>10} {'max ms':>7}"
    )
    for name, p in pods.items():
        print(
            f"  {name:12} {p['bytes']:>7} {p['samples']:>8} {p['families']:>9}"
            f" {p['median_ms']:>10} {p['max_ms']:>7}"
        )
    own = [f for f in kafka_families if f.startswith("kafka_")]
    print(f"  broker families from the rule file ({len(own)}): {', '.join(own)}")
    print(
        f"  ZooKeeper families: {', '.join(f for f in zk_families if f.startswith('zookeeper_'))}"
    )
    print(f"  machine load (1 min): {figures['load_average_1m']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scrape.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
