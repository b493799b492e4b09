"""Benchmark: the local cluster harness. Time from start to a cluster that accepts an mTLS
produce (acks=all, RF 3), the cluster's peak memory (sum of the resident sets of every ZooKeeper,
Kafka and stunnel process, sampled while it starts and serves), and the time to stop it.
Prints the figures and writes them to bench/results/harness.json.

Run: .venv/bin/python bench/harness.py   (or `make bench`)
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools import clients  # noqa: E402
from devtools.cluster import LocalCluster, rss_bytes  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _sample_peak(cluster: LocalCluster, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        pids = [
            c.pid for p in cluster.zk_pods + cluster.kafka_pods for c in p.containers if c.running()
        ]
        peak[0] = max(peak[0], rss_bytes(pids))
        stop.wait(0.5)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kairn-bench-") as tmp:
        cluster = LocalCluster(Path(tmp))
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=_sample_peak, args=(cluster, stop, peak), daemon=True)
        sampler.start()
        started = time.monotonic()
        try:
            cluster.start()
            ready = time.monotonic() - started
            clients.create_topic(cluster, "bench.first", partitions=3)
            tls = {"bootstrap_servers": cluster.bootstrap(), **cluster.admin.ssl_kwargs()}
            clients.produce("bench.first", [b"first"], **tls)
            first_produce = time.monotonic() - started
            clients.produce(
                "bench.first", [b"x" * 1024] * 5000, **tls
            )  # some load for the memory figure
        finally:
            stop_started = time.monotonic()
            cluster.stop()
            stopped = time.monotonic() - stop_started
            stop.set()
            sampler.join()
    figures = {
        "pods_ready_seconds": round(ready, 1),
        "first_mtls_produce_seconds": round(first_produce, 1),
        "peak_rss_mib": round(peak[0] / 2**20),
        "stop_seconds": round(stopped, 1),
        "heaps": "ZooKeeper -Xmx96m x3, Kafka -Xmx384m x3 (devtools/cluster.py HARNESS_VALUES)",
    }
    print("harness: 3 ZooKeeper + 3 Kafka pods from the chart, TLS everywhere")
    for k, v in figures.items():
        print(f"  {k:28} {v}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "harness.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
