"""Benchmark: the topic agent watching many tenant namespaces against one namespace.

The same number of topic ConfigMaps (1 partition, RF 3) declared two ways, each from a cold
start of its own agent on the same Kafka cluster and control plane:

- one namespace: ``--namespaces x --per-namespace`` topics in the release namespace;
- tenants: ``--per-namespace`` topics in each of ``--namespaces`` tenant namespaces (listed in
  the tenants ConfigMap, each with the chart's Role for the agent), the release namespace empty.

For each: seconds from starting the agent to every ConfigMap Ready, the agent's peak RSS, and
the connections it holds to the API server once settled (each watched namespace has its own
list and watch). Kafka alone creating the same number of topics is the baseline of the run.
Prints the figures and writes bench/results/tenants.json.

Run: .venv/bin/python bench/tenants.py [--namespaces 50] [--per-namespace 40]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from kubernetes import client  # noqa: E402

from bench._sampling import Sampler  # noqa: E402
from bench.topic_agent import baseline, free_port, ready_resources  # noqa: E402
from devtools.chart import helm_template  # noqa: E402
from devtools.cluster import LocalCluster  # noqa: E402
from devtools.kube.controlplane import ControlPlane  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RELEASE = "kairn"
TENANTS_CONFIGMAP = f"{RELEASE}-tenants"


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` to ``port`` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "01" and int(f[2].rsplit(":", 1)[1], 16) == port and f[9] in inodes:
                count += 1
    return count


def declare(core: client.CoreV1Api, namespace: str, names: list[str]) -> None:
    def one(name: str) -> None:
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(
                    name=name, labels={"kairn.dev/cluster": RELEASE, "kairn.dev/type": "topic"}
                ),
                data={"spec": "partitions: 1\nreplicas: 3\n"},
            ),
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, names))


def run_agent(work: Path, label: str, env: dict, expected: int, api_port: int) -> dict:
    """Starts the agent, waits for ``expected`` Ready resources (summed over namespaces)."""
    port = free_port()
    log = open(work / f"{label}.log", "w")  # noqa: SIM115 (closed with the process)
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "kairn-topic-agent")],
        env={**env, "KAIRN_HTTP_PORT": str(port)},
        stderr=log,
    )
    sampler = Sampler(proc.pid)
    sampler.start()
    try:
        while ready_resources(port) < expected:
            if proc.poll() is not None:
                raise RuntimeError(f"{label}: the agent exited ({proc.returncode})")
            if time.monotonic() - started > 1800:
                raise TimeoutError(f"{label}: not Ready after 1800 s")
            time.sleep(0.2)
        seconds = time.monotonic() - started
        return {
            "cold_start_seconds": round(seconds, 2),
            "api_server_connections": connections_to(proc.pid, api_port),
            "threads": len(list(Path(f"/proc/{proc.pid}/task").iterdir())),
            "peak_rss_mib": round(sampler.peak / 2**20, 1),
            "agent_cpu_seconds": round(sampler.cpu, 1),
        }
    finally:
        sampler.stop.set()
        sampler.join()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--per-namespace", type=int, default=40)
    args = ap.parse_args()
    total = args.namespaces * args.per_namespace
    work = ROOT / ".run" / f"bench-tenants-{os.getpid()}"
    work.mkdir(parents=True)
    heap = max(384, 3 * total // 4)  # every broker holds a replica of all 3 x total topics
    cluster = LocalCluster(
        work / "kafka", values={"kafka": {"heapOpts": f"-Xms{heap}m -Xmx{heap}m"}}
    )
    kube = ControlPlane(work / "kube", nodes=1, die_with_parent=True)
    result: dict = {"namespaces": args.namespaces, "per_namespace": args.per_namespace}
    try:
        cluster.start()
        result["baseline_kafka_alone_seconds"] = round(baseline(cluster, total), 2)
        print(
            f"baseline: Kafka alone creates {total} topics in "
            f"{result['baseline_kafka_alone_seconds']}s"
        )
        kube.start()
        api = kube.api_client()
        api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 16
        core = client.CoreV1Api(api)
        api_port = int(kube.server.rsplit(":", 1)[1])
        tls = cluster.admin.ssl_kwargs()
        env = {
            **os.environ,
            "KAIRN_CLUSTER": RELEASE,
            "KAIRN_BOOTSTRAP": cluster.bootstrap(),
            "KAIRN_TLS_CA_FILE": tls["ssl_cafile"],
            "KAIRN_TLS_CERT_FILE": tls["ssl_certfile"],
            "KAIRN_TLS_KEY_FILE": tls["ssl_keyfile"],
            "KAIRN_RESYNC_SECONDS": "3600",
            "KAIRN_BATCH_SIZE": "500",
        }

        # one namespace holding every ConfigMap
        one = "bench-one"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=one)))
        declare(core, one, [f"one.t{i:05d}" for i in range(total)])
        kc = apply_rbac(kube, core, work, one, [])
        result["one_namespace"] = run_agent(
            work, "one", {**env, "KAIRN_NAMESPACE": one, "KUBECONFIG": str(kc)}, total, api_port
        )
        print(f"one namespace, {total} topics: {result['one_namespace']}")

        # tenants: the release namespace empty, per_namespace in each tenant
        release = "bench-release"
        tenants = [f"bench-team-{i:02d}" for i in range(args.namespaces)]
        for ns in [release, *tenants]:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        for ns in tenants:
            declare(core, ns, [f"{ns}.t{i:03d}" for i in range(args.per_namespace)])
        kc = apply_rbac(kube, core, work, release, tenants)
        result["tenants"] = run_agent(
            work,
            "tenants",
            {
                **env,
                "KAIRN_NAMESPACE": release,
                "KUBECONFIG": str(kc),
                "KAIRN_TENANTS_CONFIGMAP": TENANTS_CONFIGMAP,
            },
            total,
            api_port,
        )
        print(f"{args.namespaces} tenants x {args.per_namespace} topics: {result['tenants']}")
        for key in ("cold_start_seconds", "peak_rss_mib", "api_server_connections"):
            a, b = result["tenants"][key], result["one_namespace"][key]
            result[f"tenants_over_one_namespace_{key}"] = round(b and a / b, 2)
        result["one_namespace_over_baseline"] = round(
            result["one_namespace"]["cold_start_seconds"] / result["baseline_kafka_alone_seconds"],
            2,
        )
        print(json.dumps({k: v for k, v in result.items() if "_over_" in k}, indent=2))
    finally:
        kube.stop()
        cluster.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "tenants.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    return 0


def apply_rbac(kube: ControlPlane, core, work: Path, release: str, tenants: list[str]) -> Path:
    """The chart's ServiceAccount, Roles, RoleBindings and tenants ConfigMap for ``release``
    and ``tenants``; returns a kubeconfig of the agents' ServiceAccount token."""
    docs = [
        d
        for d in helm_template(RELEASE, release, {"tenants": [{"namespace": t} for t in tenants]})
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")
        or (d["kind"] == "ConfigMap" and d["metadata"]["name"] == TENANTS_CONFIGMAP)
    ]
    for d in docs:
        d["metadata"].setdefault("namespace", release)
    path = work / f"rbac-{release}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    subprocess.run(
        [
            str(ROOT / ".tools" / "bin" / "kubectl"),
            f"--kubeconfig={kube.kubeconfig}",
            "apply",
            "-f",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return kube.service_account_kubeconfig(work / f"kc-{release}", release, f"{RELEASE}-agents")


if __name__ == "__main__":
    sys.exit(main())
