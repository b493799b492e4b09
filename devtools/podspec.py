"""Turn a pod of a rendered StatefulSet into local processes: files, command lines, probes.

The chart's own output is the source of truth; this module only translates what a kubelet and
a container runtime would provide, so that a broken template breaks a local run:

- volumes: a configMap becomes a folder with its rendered files, a Secret the folder holding
  that Secret's keys (as ``kairn-certs --out-dir`` writes them), emptyDir and claims folders
  of the pod; every mountPath in files, commands and arguments is rewritten to its folder;
- network: every pod has one loopback address of its own, so ``127.0.0.1`` and "all
  interfaces" (``://:9093``, stunnel's bare ``accept = 2181``) mean that address, and pod DNS
  names resolve to their pod's address;
- images: ``/opt/kafka/bin`` of the apache/kafka image is devtools/kafka-bin (the same main
  classes on the jars `make setup` fetched); the kairn image's programs are on PATH;
- environment: ``value``, the downward API fields the chart uses, and ``$(VAR)`` expansion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

KAFKA_BIN = Path(__file__).resolve().parent / "kafka-bin"


@dataclass(frozen=True)
class PodIdentity:
    name: str
    ordinal: int
    namespace: str
    address: str  # the pod's loopback address


@dataclass
class ContainerRun:
    name: str
    argv: list[str]
    env: dict[str, str]
    readiness: list[str] | None = None  # an exec probe's argv, or None
    ready_port: int | None = None  # a tcpSocket probe's port


@dataclass
class PodRun:
    """Everything needed to run one pod locally."""

    identity: PodIdentity
    files: dict[Path, str] = field(default_factory=dict)  # rendered config files to write
    dirs: list[Path] = field(default_factory=list)  # emptyDir and claim folders to create
    containers: list[ContainerRun] = field(default_factory=list)


def localize(text: str, mounts: dict[str, Path], hosts: dict[str, str], address: str) -> str:
    """Rewrite one pod's text (a config file, an argument) for the local machine."""
    # one pass each, longest first, so that a replacement is never rewritten again (a run folder
    # under /tmp must survive a pod that mounts something at /tmp)
    if mounts:
        paths = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
        text = re.sub(f"({paths})(?=/|\\b|$)", lambda m: str(mounts[m.group(1)]), text)
    if hosts:
        names = "|".join(re.escape(h) for h in sorted(hosts, key=len, reverse=True))
        text = re.sub(f"(?<![\\w.-])({names})(?![\\w-])", lambda m: hosts[m.group(1)], text)
    text = re.sub(r"(?<![\d.])127\.0\.0\.1(?![\d])", address, text)
    text = re.sub(r"://:(\d+)", rf"://{address}:\1", text)  # Kafka listeners on all interfaces
    return re.sub(
        r"(?m)^([ \t]*accept[ \t]*=[ \t]*)(\d+)[ \t]*$", rf"\g<1>{address}:\2", text
    )  # stunnel


def pod_hosts(statefulset: dict, replicas: int, namespace: str, address_of) -> dict[str, str]:
    """DNS names of a StatefulSet's pods (all the forms a resolver accepts) -> addresses."""
    name = statefulset["metadata"]["name"]
    service = statefulset["spec"]["serviceName"]
    hosts = {}
    for i in range(replicas):
        pod = f"{name}-{i}"
        for suffix in ("", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local"):
            hosts[f"{pod}.{service}{suffix}"] = address_of(i)
    return hosts


def _env(container: dict, pod: PodIdentity, secret_dir) -> dict[str, str]:
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = _expand(str(e["value"]), env)
            continue
        source = e.get("valueFrom", {})
        if "fieldRef" in source:
            env[e["name"]] = _field(source["fieldRef"]["fieldPath"], pod)
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[e["name"]] = (secret_dir(ref["name"]) / ref["key"]).read_text()
        else:
            raise ValueError(
                f"{container['name']}: unsupported env source for {e['name']}: {source}"
            )
    return env


def _field(path: str, pod: PodIdentity) -> str:
    fields = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.labels['apps.kubernetes.io/pod-index']": str(pod.ordinal),
        "metadata.labels['statefulset.kubernetes.io/pod-name']": pod.name,
        "status.podIP": pod.address,
        "status.hostIP": pod.address,
    }
    if path not in fields:
        raise ValueError(f"unsupported downward API field {path!r}")
    return fields[path]


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known variables are replaced, $$ escapes, others stay."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


def plan_pod(
    statefulset: dict,
    configmaps: dict[str, dict[str, str]],
    pod: PodIdentity,
    pod_dir: Path,
    secret_dir,
    hosts: dict[str, str],
) -> PodRun:
    """What running ``pod`` of ``statefulset`` locally takes. ``secret_dir(name)`` is the folder
    holding a Secret's keys."""
    spec = statefulset["spec"]["template"]["spec"]
    volumes: dict[str, Path] = {}
    run = PodRun(pod)
    for v in spec.get("volumes", []):
        folder = pod_dir / "volumes" / v["name"]
        if "configMap" in v:
            volumes[v["name"]] = folder
        elif "secret" in v:
            volumes[v["name"]] = secret_dir(v["secret"]["secretName"])
        elif "emptyDir" in v:
            volumes[v["name"]] = folder
            run.dirs.append(folder)
        else:
            raise ValueError(f"{pod.name}: unsupported volume {v['name']}: {sorted(v)}")
    for claim in statefulset["spec"].get("volumeClaimTemplates", []):
        folder = pod_dir / "volumes" / claim["metadata"]["name"]
        volumes[claim["metadata"]["name"]] = folder
        run.dirs.append(folder)

    containers = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    containers += spec["containers"]
    mounts: dict[str, Path] = {"/opt/kafka/bin": KAFKA_BIN}
    for c in containers:
        for m in c.get("volumeMounts", []):
            target = volumes[m["name"]] / m.get("subPath", "")
            if mounts.get(m["mountPath"], target) != target:
                raise ValueError(f"{pod.name}: two volumes mounted at {m['mountPath']}")
            mounts[m["mountPath"]] = target

    for v in spec.get("volumes", []):
        if "configMap" in v:
            data = configmaps[v["configMap"]["name"]]
            for key, text in data.items():
                run.files[volumes[v["name"]] / key] = localize(text, mounts, hosts, pod.address)

    for c in containers:
        env = _env(c, pod, secret_dir)
        local = lambda s, env=env: localize(_expand(s, env), mounts, hosts, pod.address)  # noqa: E731
        argv = [local(a) for a in c.get("command", []) + c.get("args", [])]
        probe = c.get("readinessProbe", {})
        readiness = [local(a) for a in probe["exec"]["command"]] if "exec" in probe else None
        port = probe.get("tcpSocket", {}).get("port")
        if isinstance(port, str):
            port = next(p["containerPort"] for p in c.get("ports", []) if p["name"] == port)
        env = {k: local(v) for k, v in env.items()}
        run.containers.append(ContainerRun(c["name"], argv, env, readiness, port))
    return run
