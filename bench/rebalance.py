"""Benchmark: the rebalancer draining a broker of a real 4-broker cluster under produce load.

A data topic (6 partitions, replication factor 2, DATA_MB MiB a partition) is spread over the
brokers; the rebalancer (agents/scaling, the code the hooks run) empties broker 3 at a
replication throttle of THROTTLE bytes/s, one batch at a time, while an idempotent acks=all
producer writes to another topic (RF 3, min ISR 2). Reported:

- bytes copied against the minimum any plan needs (every replica on broker 3 must be copied
  once, so the minimum is the size of those replicas);
- the time against what the throttle allows: Kafka throttles each broker's replication in and
  out, so the busiest broker (most bytes received, or sent as leader) sets the floor;
  the measured rate of that broker against the throttle;
- produce latency p99 while replicas move against idle.

Run: .venv/bin/python bench/rebalance.py   (or `make bench`)
"""

from __future__ import annotations

import json
import os
import platform as host
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaProducer  # noqa: E402

from agents.scaling.kafka import ScalingKafka  # noqa: E402
from agents.scaling.plan import rebalance  # noqa: E402
from agents.scaling.run import MemoryRecord, Rebalancer, Settings  # noqa: E402
from bench.roll_load import Load, lost  # noqa: E402
from devtools.cluster import LocalCluster  # noqa: E402
from devtools.waiting import wait_until  # noqa: E402

DATA, LATENCY = "bench.rebalance.data", "bench.rebalance.latency"
PARTITIONS, DATA_MB = 6, 8
THROTTLE = 1024 * 1024  # bytes/s
RATE = 50.0  # latency messages a second
IDLE_SECONDS = 15
REMOVED = 3
BROKERS = 4
RESULTS = ROOT / "bench" / "results"


def client(c) -> dict:
    return {"bootstrap_servers": c.bootstrap(), **c.admin.ssl_kwargs()}


def all_in_sync(c) -> bool:
    admin = c.admin_client(request_timeout_ms=5000)
    try:
        return all(
            set(p["isr_nodes"]) == set(p["replica_nodes"])
            for t in admin.describe_topics()
            for p in t["partitions"]
        )
    finally:
        admin.close()


def fill(c) -> None:
    producer = KafkaProducer(acks=1, linger_ms=20, batch_size=1 << 20, **client(c))
    chunk = os.urandom(100 * 1024)  # random: nothing for a compression to shrink
    for p in range(PARTITIONS):
        for _ in range(DATA_MB * 10):
            producer.send(DATA, chunk, partition=p)
    producer.flush(300)
    producer.close()


def latency(c, tag: str, seconds: float | None = None, during=None) -> tuple[dict, object]:
    with Load(client(c), [LATENCY], rate=RATE, tag=tag) as load:
        wait_until(lambda: load.acked_count() >= RATE, 60, "the load to run")
        out = during() if during else time.sleep(seconds)
        result = load.stop()
    missing = lost(client(c), result)
    return {
        "latency_p99_ms": round(result.percentile(0.99) * 1000, 1),
        "latency_max_ms": round(max(result.latencies, default=0) * 1000, 1),
        "messages_acked": sum(len(v) for v in result.acked.values()),
        "messages_lost": sum(missing.values()),
        "produce_errors": len(result.errors),
    }, out


def throttle_floor(plan, sizes, leaders) -> tuple[float, int, str]:
    """Seconds the throttle allows at best, the bytes of the busiest broker, and which."""
    received: dict[int, int] = {}
    sent: dict[int, int] = {}
    for m in plan.moves:
        for b in m.copies:
            received[b] = received.get(b, 0) + sizes.get(m.key, 0)
            leader = leaders[m.key]
            sent[leader] = sent.get(leader, 0) + sizes.get(m.key, 0)
    busiest = max(
        [(v, f"broker {b} receives") for b, v in received.items()]
        + [(v, f"broker {b} sends") for b, v in sent.items()]
    )
    return busiest[0] / THROTTLE, busiest[0], busiest[1]


def main() -> int:
    run_dir = ROOT / ".run" / "bench" / f"rebalance-{time.strftime('%Y%m%d-%H%M%S')}"
    c = LocalCluster(run_dir, brokers=BROKERS)
    try:
        c.start()
        admin = c.admin_client()
        try:
            admin.create_topics(
                {
                    DATA: {"num_partitions": PARTITIONS, "replication_factor": 2},
                    LATENCY: {
                        "num_partitions": 3,
                        "replication_factor": 3,
                        "configs": {"min.insync.replicas": 2},
                    },
                },
                wait_for_metadata=True,
            )
        finally:
            admin.close()
        fill(c)
        wait_until(lambda: all_in_sync(c), 300, "every partition in sync")
        kafka = ScalingKafka(lambda: c.admin_client(request_timeout_ms=30000))
        snap = kafka.snapshot()
        plan = rebalance(snap.layout, snap.brokers, [REMOVED], sizes=snap.sizes, into=())
        if isinstance(plan, str):
            raise RuntimeError(plan)
        minimum = sum(s for k, s in snap.sizes.items() if REMOVED in snap.layout[k])
        floor, busiest_bytes, busiest = throttle_floor(plan, snap.sizes, snap.leaders)
        idle, _ = latency(c, "idle", IDLE_SECONDS)
        rebalancer = Rebalancer(
            kafka,
            MemoryRecord(),
            Settings(throttle_bytes=THROTTLE, batch_size=10, poll=0.5),
            lambda *a, **k: None,
        )
        started = time.monotonic()
        moving, summary = latency(
            c, "moving", during=lambda: rebalancer.run(remove=[REMOVED], into=())
        )
        seconds = time.monotonic() - started
        after = kafka.snapshot()
        kafka.close()
    finally:
        c.stop()
    assert all(REMOVED not in r for r in after.layout.values()), "broker 3 still holds replicas"
    rate = busiest_bytes / seconds
    row = {
        "data_topic": {"partitions": PARTITIONS, "rf": 2, "mib_per_partition": DATA_MB},
        "throttle_bytes_per_second": THROTTLE,
        "bytes_copied": plan.bytes_to_copy(),
        "bytes_minimum": minimum,
        "replicas_copied": summary["replicas_copied"],
        "batches": summary["batches"],
        "seconds": round(seconds, 1),
        "seconds_the_throttle_allows": round(floor, 1),
        "busiest_broker": busiest,
        "busiest_broker_rate_over_throttle": round(rate / THROTTLE, 3),
        "idle": idle,
        "moving": moving,
    }
    print(f"bytes copied {row['bytes_copied']} / minimum {minimum}")
    print(f"time {row['seconds']} s / throttle floor {row['seconds_the_throttle_allows']} s "
          f"({busiest}: {rate / 1e6:.2f} MB/s, {row['busiest_broker_rate_over_throttle']:.3f}"
          " of the throttle)")  # fmt: skip
    lost_total = idle["messages_lost"] + moving["messages_lost"]
    print(f"produce p99 idle {idle['latency_p99_ms']} ms, while moving "
          f"{moving['latency_p99_ms']} ms; acknowledged messages lost: {lost_total}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": "rebalance",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "python": host.python_version()},
        "results": row,
    }
    (RESULTS / "rebalance.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {RESULTS / 'rebalance.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
