"""Benchmark: kairn-topic-agent with N declared topics (1 partition, RF 3).

0. Baselines, each on a cluster of its own: what such a cluster can do at best, so that the
   agent's figure reads as a ratio (the machine is noisy; compare within one run).
   Kafka alone: the same number of topics created by one admin client in CreateTopics
   requests of 200, one after another.
   Kafka + Kubernetes alone: the same, and what the agent writes to the API server for each
   topic besides (the state label and status annotation on its ConfigMap, and the Event),
   made directly: after each chunk its statuses are written by the agent's StatusReporter
   (its pool of 8) from one writer thread while the next chunk is created, as the agent does.
1. Cold start: N topic ConfigMaps exist before the agent starts; time from starting the agent
   process to every ConfigMap Ready (and every topic in Kafka), and the agent's peak RSS.
2. Spec-change latency with N topics managed: config changes of randomly chosen ConfigMaps, one
   at a time; latency from the API server accepting the change to the new value being visible
   in Kafka (DescribeConfigs); p50 / p99 / max.
3. Full resync at N topics: a restarted agent, everything in place; time from start until
   /readyz answers 200 (list, describe every topic and its config, nothing to change). Then the
   same agent's periodic resync (KAIRN_RESYNC_SECONDS) is timed from its log.

Runs the real parts against each metadata mode (``--mode``, default both, one after the other:
bench/_modes.py): the harness's TLS Kafka cluster (3 ZooKeeper + 3 brokers from the chart) or
the KRaft cluster of Kafka 4 (3 controllers + 3 brokers), and the local control plane. Prints
the figures of each mode and a table of both, and writes bench/results/topic_agent.json.

Run: .venv/bin/python bench/topic_agent.py [--topics|-n 1000] [--changes 100]
[--mode zookeeper|kraft|both] [--cold-start-only] (or `make bench`)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka.admin import ConfigResource, ConfigResourceType, NewTopic  # noqa: E402
from kafka.errors import KafkaError  # noqa: E402
from kubernetes import client  # noqa: E402

from agents.common import status as st  # noqa: E402
from agents.topic_agent.reconciler import CREATE_CHUNK  # noqa: E402
from bench._modes import add_mode_flag, comparison, modes_of, new_cluster  # noqa: E402
from bench._sampling import Sampler, cpu_seconds  # noqa: E402
from devtools.kube.controlplane import ControlPlane  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NS = "bench"
CLUSTER = "kairn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(port: int, name: str, labels: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except Exception:
        return None
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def ready_resources(port: int) -> float:
    """The Ready resources the topic agent counts, summed over namespaces (and agents that
    do not label them by namespace)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except Exception:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('kairn_resources{agent="topic"') and 'state="Ready"' in line
    )


def readyz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def ready_count(core: client.CoreV1Api) -> int:
    n, cont = 0, None
    while True:
        kw = {"_continue": cont} if cont else {}
        resp = core.list_namespaced_config_map(
            NS, label_selector="kairn.dev/state=Ready", limit=2000, _preload_content=False, **kw
        )
        page = json.loads(resp.data)
        n += len(page["items"])
        cont = page["metadata"].get("continue")
        if not cont:
            return n


class Progress(threading.Thread):
    """When the Ready labels reach 1, half and all of ``n`` ConfigMaps, counted once a second
    (what a person watching `kubectl get cm -L kairn.dev/state` sees)."""

    def __init__(self, core: client.CoreV1Api, n: int, started: float):
        super().__init__(daemon=True)
        self.core, self.n, self.started = core, n, started
        self.marks: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            count, at = ready_count(self.core), time.monotonic() - self.started
            for mark, need in (("first", 1), ("half", (self.n + 1) // 2), ("all", self.n)):
                if count >= need:
                    self.marks.setdefault(mark, round(at, 1))
            if count >= self.n:
                return


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


def baseline(cluster, n: int, chunk: int = CREATE_CHUNK) -> float:
    """Seconds for one admin client to create n topics (1 partition, RF 3) in requests of
    ``chunk``; each request returns once its partitions have leaders."""
    admin = cluster.admin_client(request_timeout_ms=300_000)
    started = time.monotonic()
    try:
        for i in range(0, n, chunk):
            batch = [NewTopic(f"bench.raw.t{j:05d}", 1, 3) for j in range(i, min(n, i + chunk))]
            admin.create_topics(batch, timeout_ms=300_000)
        return time.monotonic() - started
    finally:
        admin.close()


def configmaps(core: client.CoreV1Api, namespace: str, n: int, labels: dict) -> list[dict]:
    """n topic ConfigMaps ``topic-00000``... in ``namespace``, made from 8 threads; the objects
    as the API server returned them."""

    def create(i: int) -> dict:
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"topic-{i:05d}", labels=labels),
            data={"spec": f"topicName: bench.t{i:05d}\npartitions: 1\nreplicas: 3\n"},
        )
        resp = core.create_namespaced_config_map(namespace, body, _preload_content=False)
        return json.loads(resp.data)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, range(n)))


def kafka_kube_baseline(cluster, core: client.CoreV1Api, objs: list[dict]) -> float:
    """Seconds for what a cold start writes, made directly: the topics of ``objs`` created as
    in :func:`baseline`, and after each chunk each topic's status (label, annotation, Event)
    written by a StatusReporter (the agent's, with its pool of 8 threads) from one writer
    thread while the next chunk is created; done when the last status is written."""
    reporter = st.StatusReporter(core, st.meta(objs[0])["namespace"], "baseline")
    admin = cluster.admin_client(request_timeout_ms=300_000)
    writer = ThreadPoolExecutor(1)
    started = time.monotonic()
    try:
        writes = []
        for i in range(0, len(objs), CREATE_CHUNK):
            chunk = objs[i : i + CREATE_CHUNK]
            names = [f"bench.t{st.meta(o)['name'][-5:]}" for o in chunk]
            admin.create_topics([NewTopic(t, 1, 3) for t in names], timeout_ms=300_000)
            items = [
                (o, st.READY, "TopicReady", f"topic {t} matches the spec", None, {})
                for o, t in zip(chunk, names, strict=True)
            ]
            writes.append(writer.submit(reporter.report_many, items))
        failed = sum(len(w.result()) for w in writes)
        if failed:
            raise RuntimeError(f"Kafka + Kubernetes alone: {failed} status writes failed")
        return time.monotonic() - started
    finally:
        writer.shutdown()
        reporter.close()
        admin.close()


def log_marks(path: Path, since: float) -> dict:
    """From the agent's log: seconds from ``since`` (Unix time) to its first and last "topic
    created" (Kafka's part of the work done) and how often a chunk timed out or a topic was not
    usable yet right after its creation."""
    from datetime import datetime

    created, counts = [], {"create_timeouts": 0, "not_usable_yet": 0}
    for line in path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if rec.get("msg") == "topic created":
            created.append(datetime.fromisoformat(rec["ts"]).timestamp() - since)
        elif rec.get("msg") == "create_topics timed out":
            counts["create_timeouts"] += 1
        elif rec.get("msg") == "topic not usable yet":
            counts["not_usable_yet"] += 1
    if created:
        counts.update(first_created=round(min(created), 1), last_created=round(max(created), 1))
    return counts


ROWS = [
    ("Kafka alone: create the topics (s)", "baseline_kafka_alone_seconds"),
    ("Kafka + Kubernetes alone: topics and statuses (s)", "baseline_kafka_kube_alone_seconds"),
    ("agent cold start, all Ready (s)", "cold_start_seconds"),
    ("cold start / Kafka alone", "cold_start_over_baseline"),
    ("cold start / Kafka + Kubernetes alone", "cold_start_over_kafka_kube_alone"),
    ("agent's last topic created (s)", "cold_start_log.last_created"),
    ("agent CPU in the cold start (s)", "cold_start_agent_cpu_seconds"),
    ("first Ready (s)", "cold_start_ready_seconds.first"),
    ("half Ready (s)", "cold_start_ready_seconds.half"),
    ("spec change visible, p50 (s)", "change_latency_seconds.p50"),
    ("spec change visible, p99 (s)", "change_latency_seconds.p99"),
    ("restart to /readyz (s)", "restart_full_sync_seconds"),
    ("periodic resync (s)", "periodic_resync_seconds"),
    ("agent peak RSS (MiB)", "peak_rss_mib"),
    ("load average (1 min) after the cold start", "load_average_1m_after_cold_start"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--topics", type=int, default=1000)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument(
        "--kafka-heap-mb",
        type=int,
        help="broker heap; default: the harness' 384 MiB, more for many topics (each broker "
        "holds a replica of every topic: at 384 MiB they run out of heap near 3,400 topics)",
    )
    ap.add_argument(
        "--cold-start-only",
        action="store_true",
        help="the baselines and the cold start only (no spec changes, restart or resync)",
    )
    add_mode_flag(ap)
    args = ap.parse_args()
    results = {mode: run(mode, args) for mode in modes_of(args.mode)}
    print(f"\ntopic agent, {args.topics} topics (1 partition, RF 3), by metadata mode:")
    print(comparison(results, ROWS))
    RESULTS.mkdir(parents=True, exist_ok=True)
    n = args.topics
    out = RESULTS / ("topic_agent.json" if n == 1000 else f"topic_agent_{n}.json")
    if args.mode != "both":
        out = out.with_name(f"{out.stem}_{args.mode}.json")
    out.write_text(json.dumps({"modes": results}, indent=2) + "\n")
    print(f"written to {out}")
    return 0


def run(mode: str, args) -> dict:
    """Every step against a cluster of ``mode``: the figures."""
    n = args.topics
    print(f"=== {mode} mode")
    work = ROOT / ".run" / f"bench-topic-agent-{os.getpid()}-{mode}"
    work.mkdir(parents=True)
    heap = args.kafka_heap_mb or max(384, n // 4)
    cluster = new_cluster(mode, work / "kafka", heap)
    kube = ControlPlane(work / "kube", nodes=1, die_with_parent=True)
    procs: list[subprocess.Popen] = []
    result: dict = {"mode": mode, "topics": n, "partitions": 1, "replicas": 3}
    result.update(batch_size=args.batch_size, kafka_heap_mb=heap)
    result.update(cold_start_only=args.cold_start_only)
    try:
        # the baselines on clusters of their own: the agent's cluster then holds n topics, not
        # 2n (each broker keeps a file open per partition, and at 10,000 topics two sets pass
        # the 20,000 open files a process may have here)
        alone = new_cluster(mode, work / "kafka-baseline", heap)
        alone.start()
        try:
            result["baseline_kafka_alone_seconds"] = round(baseline(alone, n), 2)
        finally:
            alone.stop()
        print(
            f"baseline: Kafka alone creates {n} topics in {result['baseline_kafka_alone_seconds']}s"
        )
        kube.start()
        api = kube.api_client()
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 16
        core = client.CoreV1Api(api)
        for ns in (NS, "baseline"):
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        # ConfigMaps the agent does not watch (another namespace, no labels)
        objs = configmaps(core, "baseline", n, {})
        alone = new_cluster(mode, work / "kafka-kube-baseline", heap)
        alone.start()
        try:
            result["baseline_kafka_kube_alone_seconds"] = round(
                kafka_kube_baseline(alone, core, objs), 2
            )
        finally:
            alone.stop()
        del objs
        print(
            f"baseline: Kafka + Kubernetes alone, {n} topics and their statuses in "
            f"{result['baseline_kafka_kube_alone_seconds']}s"
        )
        cluster.start()

        def cm_name(i: int) -> str:
            return f"topic-{i:05d}"

        t0 = time.monotonic()
        configmaps(core, NS, n, {"kairn.dev/cluster": CLUSTER, "kairn.dev/type": "topic"})
        print(f"{n} ConfigMaps created in {time.monotonic() - t0:.1f}s")

        tls = cluster.admin.ssl_kwargs()
        port = free_port()
        env = {
            **os.environ,
            "KAIRN_CLUSTER": CLUSTER,
            "KAIRN_NAMESPACE": NS,
            "KAIRN_BOOTSTRAP": cluster.bootstrap(),
            "KAIRN_TLS_CA_FILE": tls["ssl_cafile"],
            "KAIRN_TLS_CERT_FILE": tls["ssl_certfile"],
            "KAIRN_TLS_KEY_FILE": tls["ssl_keyfile"],
            "KAIRN_HTTP_PORT": str(port),
            "KAIRN_RESYNC_SECONDS": "3600",
            "KAIRN_BATCH_SIZE": str(args.batch_size),
            "KUBECONFIG": str(kube.kubeconfig),
        }
        bin_ = str(ROOT / ".venv" / "bin" / "kairn-topic-agent")

        def start(label: str, **extra) -> tuple[subprocess.Popen, Sampler, float]:
            log = open(work / f"{label}.log", "w")  # noqa: SIM115 (closed with the process)
            started = time.monotonic()
            proc = subprocess.Popen([bin_], env={**env, **extra}, stderr=log)
            procs.append(proc)
            sampler = Sampler(proc.pid)
            sampler.start()
            return proc, sampler, started

        def wait(proc, started, until, timeout, label) -> float:
            while not until():
                if time.monotonic() - started > timeout:
                    raise TimeoutError(f"{label}: not done after {timeout}s")
                if proc.poll() is not None:
                    raise RuntimeError(f"{label}: the agent exited ({proc.returncode})")
                time.sleep(0.1)
            return time.monotonic() - started

        def stop(proc, sampler) -> int:
            sampler.stop.set()
            sampler.join()
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            return sampler.peak

        # 1. cold start
        wall = time.time()
        proc, sampler, started = start("cold")
        progress = Progress(core, n, started)
        progress.start()
        wait(
            proc,
            started,
            lambda: ready_resources(port) >= n,
            1800,
            "cold start",
        )
        cold = wait(proc, started, lambda: ready_count(core) == n, 600, "cold start (labels)")
        result["cold_start_seconds"] = round(cold, 2)
        result["cold_start_agent_cpu_seconds"] = round(cpu_seconds(proc.pid), 1)
        progress.stop.set()
        progress.join()
        progress.marks.setdefault("all", round(cold, 1))  # seen by the wait above first
        result["cold_start_ready_seconds"] = progress.marks
        print(
            "cold start, Ready labels seen (counted once a second): first after "
            f"{progress.marks.get('first')}s, half after {progress.marks.get('half')}s, "
            f"all after {progress.marks.get('all')}s"
        )
        # the machine is shared: the load says how much of it this run had
        result["load_average_1m_after_cold_start"] = round(os.getloadavg()[0], 1)
        result["cpus"] = os.cpu_count()
        admin = cluster.admin_client()
        topics = set(admin.list_topics())
        assert all(f"bench.t{i:05d}" in topics for i in range(n)), "a topic is missing"
        print(
            f"cold start: {n} topics Ready in {cold:.1f}s ({n / cold:.0f} topics/s, "
            f"{result['cold_start_agent_cpu_seconds']}s of the agent's CPU; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
        result["cold_start_over_baseline"] = round(cold / result["baseline_kafka_alone_seconds"], 2)
        result["cold_start_over_kafka_kube_alone"] = round(
            cold / result["baseline_kafka_kube_alone_seconds"], 2
        )
        result["cold_start_log"] = log_marks(work / "cold.log", wall)
        print(
            f"cold start / Kafka alone: {result['cold_start_over_baseline']}; "
            f"/ Kafka + Kubernetes alone: {result['cold_start_over_kafka_kube_alone']}; "
            f"from the agent's log: {result['cold_start_log']}"
        )
        if args.cold_start_only:
            result["peak_rss_mib"] = round(stop(proc, sampler) / 2**20, 1)
            return result

        # 2. spec-change latency
        lat = []
        rng = random.Random(7)
        for k in range(args.changes):
            i = rng.randrange(n)
            value = str(3_600_000 + k)
            spec = (
                f"topicName: bench.t{i:05d}\npartitions: 1\nreplicas: 3\n"
                f"config:\n  retention.ms: {value}\n"
            )
            core.patch_namespaced_config_map(cm_name(i), NS, {"data": {"spec": spec}})
            t = time.monotonic()
            res = ConfigResource(ConfigResourceType.TOPIC, f"bench.t{i:05d}")
            while True:
                try:
                    got = admin.describe_configs([res])["topic"][f"bench.t{i:05d}"]
                except KafkaError:  # a dropped connection: the client connects again
                    got = {}
                if got.get("retention.ms", {}).get("value") == value:
                    break
                if time.monotonic() - t > 60:
                    raise TimeoutError(f"change {k} not visible after 60s")
                time.sleep(0.01)
            lat.append(time.monotonic() - t)
        admin.close()
        result["change_latency_seconds"] = {
            "count": len(lat),
            "p50": round(statistics.median(lat), 3),
            "p99": round(pct(lat, 99), 3),
            "max": round(max(lat), 3),
        }
        print(
            f"spec change -> visible in Kafka ({len(lat)} changes, {n} topics managed): "
            f"p50 {statistics.median(lat) * 1000:.0f} ms, p99 {pct(lat, 99) * 1000:.0f} ms, "
            f"max {max(lat) * 1000:.0f} ms"
        )
        result["peak_rss_mib"] = round(stop(proc, sampler) / 2**20, 1)
        print(f"peak RSS (cold start + changes): {result['peak_rss_mib']} MiB")

        # 3. full resync: a restart with everything in place, then one periodic resync
        proc, sampler, started = start("resync", KAIRN_RESYNC_SECONDS="30")
        restart = wait(proc, started, lambda: readyz(port), 600, "restart")
        result["restart_full_sync_seconds"] = round(restart, 2)
        print(f"full sync after a restart (nothing to change): {restart:.1f}s to /readyz")
        first = metric(port, "kairn_last_full_sync_timestamp_seconds", 'agent="topic"')
        wait(
            proc,
            started,
            lambda: (
                (metric(port, "kairn_last_full_sync_timestamp_seconds", 'agent="topic"') or 0)
                > (first or 0)
            ),
            600,
            "periodic resync",
        )
        log_lines = [
            json.loads(x)
            for x in (work / "resync.log").read_text().splitlines()
            if x.startswith("{")
        ]
        resync_start = [x["ts"] for x in log_lines if x["msg"] == "full resync"][-1]
        from datetime import datetime

        begun = datetime.fromisoformat(resync_start).timestamp()
        done = metric(port, "kairn_last_full_sync_timestamp_seconds", 'agent="topic"')
        result["periodic_resync_seconds"] = round(done - begun, 2)
        print(f"periodic full resync at {n} topics: {done - begun:.1f}s")
        result["peak_rss_resync_mib"] = round(stop(proc, sampler) / 2**20, 1)
        print(f"peak RSS (restart + resync): {result['peak_rss_resync_mib']} MiB")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        kube.stop()
        cluster.stop()
    return result


if __name__ == "__main__":
    sys.exit(main())
