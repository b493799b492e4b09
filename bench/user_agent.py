"""Benchmark: kairn-user-agent from a cold start. 1,000 user ConfigMaps (SCRAM-SHA-512, 5 ACLs
each) exist before the agent starts; the figure is the time from starting the agent process to
every ConfigMap Ready, and the agent's peak resident memory meanwhile. Then a restart with
everything in place: time until /readyz answers 200 (first full sync done, nothing to change).

Runs the real parts against each metadata mode (``--mode``, default both, one after the other:
bench/_modes.py): the harness's TLS Kafka cluster (3 ZooKeeper + 3 brokers from the chart) or
the KRaft cluster of Kafka 4 (3 controllers + 3 brokers), and the local control plane. Prints
the figures of each mode and a table of both, and writes bench/results/user_agent.json.

Run: .venv/bin/python bench/user_agent.py [--users 1000] [--auth scram-sha-512|tls]
[--mode zookeeper|kraft|both] (or `make bench`)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes import client  # noqa: E402

from agents.common import status as st  # noqa: E402
from agents.user_agent.acls import acl_of  # noqa: E402
from agents.user_agent.kafka_users import UserAdmin  # noqa: E402
from agents.user_agent.spec import parse  # noqa: E402
from bench._modes import add_mode_flag, comparison, modes_of, new_cluster  # noqa: E402
from bench._sampling import Sampler  # noqa: E402
from devtools.kube.controlplane import ControlPlane  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NS = "bench"
CLUSTER = FULLNAME = "kairn"


def spec(i: int, auth: str = "scram-sha-512") -> str:
    user = f"user-{i:05d}"
    return yaml.safe_dump(
        {
            "authentication": {"type": auth},
            "authorization": {
                "type": "simple",
                "acls": [
                    {
                        "resource": {
                            "type": "topic",
                            "name": f"bench.{user}.",
                            "patternType": "prefix",
                        },
                        "operations": ["Read", "Write", "Describe"],
                    },
                    {"resource": {"type": "group", "name": user}, "operations": ["Read"]},
                    {
                        "resource": {
                            "type": "transactionalId",
                            "name": user,
                            "patternType": "prefix",
                        },
                        "operations": ["Write"],
                    },
                ],
            },
            "quotas": {"producerByteRate": 1048576},
        }
    )


def kafka_baseline(mode: str, work: Path, n: int, lanes: int = 4) -> dict[str, float]:
    """Kafka alone: the writes a cold start needs (n SCRAM credentials, then n x 5 ACLs, then
    n quotas), sent by one UserAdmin with the agent's default lanes (routed for the mode as
    the agent's are), to a cluster of its own (ZooKeeper-mode brokers keep every change
    notification for 15 minutes and re-read them all on each change, so a cluster that has
    just taken these writes is slower)."""
    cluster = new_cluster(mode, work)
    cluster.start()
    ua = UserAdmin(
        {"bootstrap_servers": cluster.bootstrap().split(","), **cluster.admin.ssl_kwargs()},
        lanes=lanes,
    )
    specs = [parse(spec(i), f"user-{i:05d}") for i in range(n)]
    acls = [acl_of(s.principal, r) for s in specs for r in s.acls]
    steps = {
        "scram": lambda: ua.alter_scram({s.name: f"pw-{s.name}" for s in specs}).values(),
        "acls": lambda: ua.create_acls(acls),
        "quotas": lambda: ua.alter_quotas({s.name: s.quotas for s in specs}).values(),
    }
    out: dict[str, float] = {}
    try:
        for name, step in steps.items():
            t = time.monotonic()
            refused = [r for r in step() if r is not None]
            out[name] = round(time.monotonic() - t, 2)
            if refused:
                raise RuntimeError(f"baseline: Kafka refused {len(refused)}: {refused[0]}")
    finally:
        ua.close()
        cluster.stop()
    out["total"] = round(sum(out.values()), 2)
    return out


def kubernetes_baseline(core: client.CoreV1Api, n: int, threads: int = 8) -> float:
    """Kubernetes alone: per user what a cold start writes to the API server (the finalizer,
    a Secret, the status and its Event, with the agents' own helpers), from ``threads``
    threads, for ConfigMaps made beforehand in namespace ``baseline``. Seconds."""
    ns = "baseline"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    reporter = st.StatusReporter(core, ns, "baseline", workers=1)

    def make(i: int) -> dict:
        cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"base-{i:05d}"))
        return json.loads(core.create_namespaced_config_map(ns, cm, _preload_content=False).data)

    def writes(obj: dict) -> None:
        obj = st.add_finalizer(core, obj, "kairn.dev/user")
        secret = client.V1Secret(metadata=client.V1ObjectMeta(name=st.meta(obj)["name"]))
        core.create_namespaced_secret(ns, secret, _preload_content=False).drain_conn()
        reporter.report(obj, st.READY, "UserReady", "ready")

    try:
        with ThreadPoolExecutor(threads) as pool:
            objs = list(pool.map(make, range(n)))
            t = time.monotonic()
            list(pool.map(writes, objs))
            return round(time.monotonic() - t, 2)
    finally:
        reporter.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready_count(core: client.CoreV1Api) -> int:
    resp = core.list_namespaced_config_map(
        NS, label_selector="kairn.dev/state=Ready", _preload_content=False
    )
    return len(json.loads(resp.data)["items"])


def readyz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


ROWS = [
    ("Kafka alone: SCRAM + ACLs + quotas (s)", "baseline_kafka_alone_seconds.total"),
    ("Kafka alone: SCRAM (s)", "baseline_kafka_alone_seconds.scram"),
    ("Kafka alone: ACLs (s)", "baseline_kafka_alone_seconds.acls"),
    ("Kafka alone: quotas (s)", "baseline_kafka_alone_seconds.quotas"),
    ("Kubernetes alone (s)", "baseline_kubernetes_alone_seconds"),
    ("agent cold start, all Ready (s)", "cold_start_to_all_ready_seconds"),
    ("cold start / Kafka alone", "cold_start_over_kafka_alone"),
    ("cold start / (Kafka alone + Kubernetes alone)", "cold_start_over_baselines"),
    ("agent CPU in the cold start (s)", "cold_start_agent_cpu_seconds"),
    ("restart to /readyz (s)", "restart_to_ready_seconds"),
    ("agent peak RSS (MiB)", "cold_start_peak_rss_mib"),
    ("load average (1 min) at the end", "load_average_1m_at_end"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--auth", default="scram-sha-512", choices=["scram-sha-512", "tls"])
    add_mode_flag(ap)
    args = ap.parse_args()
    results = {mode: run(mode, args) for mode in modes_of(args.mode)}
    print(f"\nuser agent, {args.users} users x 5 ACLs + quotas ({args.auth}), by metadata mode:")
    print(comparison(results, ROWS))
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = (
        "" if args.auth == "scram-sha-512" and args.users == 1000 else f"-{args.auth}-{args.users}"
    )
    if args.mode != "both":
        suffix += f"-{args.mode}"
    (RESULTS / f"user_agent{suffix}.json").write_text(
        json.dumps({"modes": results}, indent=2) + "\n"
    )
    return 0


def run(mode: str, args) -> dict:
    """Every step against clusters of ``mode``: the figures."""
    print(f"=== {mode} mode")
    work = ROOT / ".run" / f"bench-user-agent-{os.getpid()}-{mode}"
    work.mkdir(parents=True)
    cluster = new_cluster(mode, work / "kafka")
    kube = ControlPlane(work / "kube", nodes=1, die_with_parent=True)
    procs: list[subprocess.Popen] = []
    try:
        kafka_alone = kafka_baseline(mode, work / "kafka-baseline", args.users)
        print(f"baseline: Kafka alone, seconds: {kafka_alone}")
        cluster.start()
        kube.start()
        api = kube.api_client()
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 16
        core = client.CoreV1Api(api)
        kube_alone = kubernetes_baseline(core, args.users)
        print(f"baseline: Kubernetes alone {kube_alone}s")
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        for name, keys in (
            (f"{FULLNAME}-clients-ca-cert", ("ca.crt",)),
            (f"{FULLNAME}-clients-ca", ("ca.key",)),
        ):
            folder = cluster.secret_dir(name)
            data = {k: base64.b64encode((folder / k).read_bytes()).decode() for k in keys}
            core.create_namespaced_secret(
                NS, client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=data)
            )

        def create(i: int) -> None:
            core.create_namespaced_config_map(
                NS,
                client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(
                        name=f"user-{i:05d}",
                        labels={"kairn.dev/cluster": CLUSTER, "kairn.dev/type": "user"},
                    ),
                    data={"spec": spec(i, args.auth)},
                ),
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.users)))

        tls = cluster.admin.ssl_kwargs()
        port = free_port()
        env = {
            **os.environ,
            "KAIRN_CLUSTER": CLUSTER,
            "KAIRN_FULLNAME": FULLNAME,
            "KAIRN_NAMESPACE": NS,
            "KAIRN_BOOTSTRAP": cluster.bootstrap(),
            "KAIRN_TLS_CA_FILE": tls["ssl_cafile"],
            "KAIRN_TLS_CERT_FILE": tls["ssl_certfile"],
            "KAIRN_TLS_KEY_FILE": tls["ssl_keyfile"],
            "KAIRN_HTTP_PORT": str(port),
            "KAIRN_RESYNC_SECONDS": "300",
            "KAIRN_CLIENTS_CA_CERT_SECRET": f"{FULLNAME}-clients-ca-cert",
            "KAIRN_CLIENTS_CA_SECRET": f"{FULLNAME}-clients-ca",
            "KUBECONFIG": str(kube.kubeconfig),
        }
        bin_ = str(ROOT / ".venv" / "bin" / "kairn-user-agent")

        def run_agent(label: str, until, timeout: float) -> tuple[float, int, float]:
            with open(work / f"{label}.log", "w") as log:
                started = time.monotonic()
                proc = subprocess.Popen([bin_], env=env, stderr=log)
                procs.append(proc)
                sampler = Sampler(proc.pid)
                sampler.start()
                try:
                    while not until():
                        if time.monotonic() - started > timeout:
                            raise TimeoutError(f"{label}: not done after {timeout}s")
                        if proc.poll() is not None:
                            raise RuntimeError(f"{label}: the agent exited ({proc.returncode})")
                        time.sleep(0.2)
                    elapsed = time.monotonic() - started
                finally:
                    sampler.stop.set()
                    sampler.join()
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(60)
            return elapsed, sampler.peak, sampler.cpu

        cold, cold_rss, cold_cpu = run_agent("cold", lambda: ready_count(core) == args.users, 1800)
        restart, restart_rss, _ = run_agent("restart", lambda: readyz(port), 300)
        load = os.getloadavg()[0]

        ua = UserAdmin({"bootstrap_servers": cluster.bootstrap().split(","), **tls})
        try:
            names = {f"user-{i:05d}" for i in range(args.users)}
            scram = set(ua.describe_scram()) & names
            acls = sum(len(v) for p, v in ua.describe_acls().items() if p[5:] in names)
            quotas = set(ua.describe_quotas()) & names
        finally:
            ua.close()
        cold_log = (work / "cold.log").read_text().splitlines()
        errors = sum(1 for line in cold_log if '"level": "error"' in line)
        batches = [json.loads(x) for x in cold_log if '"batch reconciled"' in x]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        kube.stop()
        cluster.stop()
    figures = {
        "mode": mode,
        "users": args.users,
        "acls_per_user": 5,
        "authentication": args.auth,
        "cold_start_to_all_ready_seconds": round(cold, 1),
        "cold_start_peak_rss_mib": round(cold_rss / 2**20, 1),
        "users_per_second": round(args.users / cold, 1),
        "baseline_kafka_alone_seconds": kafka_alone,
        "baseline_kubernetes_alone_seconds": kube_alone,
        # a cold start done with no overhead would take the Kafka writes one kind after the
        # other plus the Kubernetes writes: the agent's time as a multiple of that
        "cold_start_over_baselines": round(cold / (kafka_alone["total"] + kube_alone), 2),
        "cold_start_over_kafka_alone": round(cold / kafka_alone["total"], 2),
        "cold_start_agent_cpu_seconds": round(cold_cpu, 1),
        "restart_to_ready_seconds": round(restart, 1),
        "restart_peak_rss_mib": round(restart_rss / 2**20, 1),
        "kafka_scram_users": len(scram) if args.auth == "scram-sha-512" else None,
        "kafka_acls": acls,
        "kafka_quota_entities": len(quotas),
        "agent_error_log_lines": errors,
        "batches": [{"keys": b["keys"], "seconds": b["seconds"], **b["phases"]} for b in batches],
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(load, 1),
        "logs": str(work),
    }
    print(f"user agent ({mode}): {args.users} users x 5 ACLs ({args.auth}) from a cold start")
    for k, v in figures.items():
        if k != "batches":
            print(f"  {k:34} {v}")
    for b in figures["batches"]:
        print(f"  batch {json.dumps(b)}")
    # keep the agent's logs of this run, drop the data of the clusters and control plane
    for sub in ("kafka", "kafka-baseline", "kube"):
        shutil.rmtree(work / sub, ignore_errors=True)
    return figures


if __name__ == "__main__":
    sys.exit(main())
