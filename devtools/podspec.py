"""Turn a pod into local processes: files, command lines, probes.

The chart's own output is the source of truth; this module only translates what a kubelet and
a container runtime would provide, so that a broken template breaks a local run:

- volumes: a configMap becomes a folder with its files, a Secret the folder holding that
  Secret's keys, emptyDir and claims folders of the pod (the caller decides where Secrets,
  claims and projected volumes live); every mountPath in files, commands and arguments is
  rewritten to its folder;
- network: every pod has one loopback address of its own, so ``127.0.0.1`` and "all
  interfaces" (``0.0.0.0``, ``://:9093``, stunnel's bare ``accept = 2181``) mean that
  address; DNS names in ``hosts`` are rewritten to addresses (the harness has no resolver;
  the process-backed node resolves names through /etc/hosts instead);
- images: image paths in IMAGE_PATHS are local folders (``/opt/kafka/bin`` of the apache/kafka
  image is devtools/kafka-bin, the same main classes on the jars `make setup` fetched: Kafka
  3.9's, or Kafka 4's in devtools/kafka-bin4 for an apache/kafka:4.x image, see image_paths);
  the kairn image's programs are on PATH;
- environment: ``value``, the downward API fields, Secret and ConfigMap keys, ``$(VAR)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from devtools import TOOLS

KAFKA_BIN = Path(__file__).resolve().parent / "kafka-bin"
KAFKA4_BIN = Path(__file__).resolve().parent / "kafka-bin4"
# Paths inside the images that are files of this checkout here.
IMAGE_PATHS = {
    "/opt/kafka/bin": KAFKA_BIN,
    "/opt/kairn/jmx": TOOLS / "jmx",
}


def image_paths(image: str) -> dict[str, Path]:
    """IMAGE_PATHS for one container's image: the apache/kafka image of a 4.x tag runs
    Kafka 4's jars (KRaft mode), every other Kafka image Kafka 3.9's."""
    repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    if repository.endswith("apache/kafka") and tag.startswith("4."):
        return {**IMAGE_PATHS, "/opt/kafka/bin": KAFKA4_BIN}
    return dict(IMAGE_PATHS)


@dataclass(frozen=True)
class PodIdentity:
    name: str
    ordinal: int
    namespace: str
    address: str  # the pod's loopback address
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    node: str = "localhost"


@dataclass
class ContainerRun:
    name: str
    argv: list[str]
    env: dict[str, str]
    readiness: list[str] | None = None  # an exec probe's argv, or None
    ready_port: int | None = None  # a tcpSocket probe's port
    ready_http: tuple[int, str] | None = None  # an httpGet probe's (port, path)
    init: bool = False  # a run-to-completion init container
    sidecar: bool = False  # a native sidecar (init container with restartPolicy Always)
    probe_period: float = 10.0
    probe_delay: float = 0.0


@dataclass
class PodRun:
    """Everything needed to run one pod locally."""

    identity: PodIdentity
    files: dict[Path, str] = field(default_factory=dict)  # rendered config files to write
    dirs: list[Path] = field(default_factory=list)  # emptyDir and claim folders to create
    containers: list[ContainerRun] = field(default_factory=list)  # in start order
    restart_policy: str = "Always"
    grace_seconds: float = 30.0


class Sources(Protocol):
    """Where a pod's ConfigMaps, Secrets and other volumes come from."""

    def configmap(self, name: str) -> dict[str, str]: ...

    def secret_dir(self, name: str) -> Path: ...

    def volume(self, volume: dict, pod: PodIdentity, pod_dir: Path) -> Path | None:
        """The folder of a volume kind this source handles itself (claims, projected), or
        None."""


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
    text = re.sub(r"(?<![\d.])(127\.0\.0\.1|0\.0\.0\.0)(?![\d])", address, text)
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


def _env(container: dict, pod: PodIdentity, sources: Sources) -> dict[str, str]:
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            data = sources.configmap(src["configMapRef"]["name"])
        elif "secretRef" in src:
            folder = sources.secret_dir(src["secretRef"]["name"])
            data = {f.name: f.read_text() for f in folder.iterdir() if f.is_file()}
        else:
            raise ValueError(f"{container['name']}: unsupported envFrom source {sorted(src)}")
        env |= {prefix + k: v for k, v in data.items()}
    for e in container.get("env", []):
        if "value" in e or "valueFrom" not in e:  # the API drops an empty value: ""
            env[e["name"]] = _expand(str(e.get("value", "")), env)
            continue
        source = e.get("valueFrom", {})
        if "fieldRef" in source:
            env[e["name"]] = _field(source["fieldRef"]["fieldPath"], pod)
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[e["name"]] = (sources.secret_dir(ref["name"]) / ref["key"]).read_text()
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[e["name"]] = sources.configmap(ref["name"])[ref["key"]]
        else:
            raise ValueError(
                f"{container['name']}: unsupported env source for {e['name']}: {source}"
            )
    return env


def _field(path: str, pod: PodIdentity) -> str:
    fields = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "spec.nodeName": pod.node,
        "status.podIP": pod.address,
        "status.hostIP": pod.address,
    }
    labels = {
        "apps.kubernetes.io/pod-index": str(pod.ordinal),
        "statefulset.kubernetes.io/pod-name": pod.name,
        **pod.labels,
    }
    if m := re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path):
        found = (labels if m.group(1) == "labels" else pod.annotations).get(m.group(2))
        if found is not None:
            return found
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


def statefulset_pod_spec(statefulset: dict) -> dict:
    """The pod spec the StatefulSet controller creates: the template's, with a claim volume
    for each volumeClaimTemplate."""
    spec = dict(statefulset["spec"]["template"]["spec"])
    claims = [
        {
            "name": c["metadata"]["name"],
            "persistentVolumeClaim": {"claimName": c["metadata"]["name"]},
        }
        for c in statefulset["spec"].get("volumeClaimTemplates", [])
    ]
    spec["volumes"] = list(spec.get("volumes", [])) + claims
    return spec


def _probe(run: ContainerRun, probe: dict, container: dict, local) -> None:
    port = (probe.get("tcpSocket") or probe.get("httpGet") or {}).get("port")
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container.get("ports", []) if p["name"] == port)
    if "exec" in probe:
        run.readiness = [local(a) for a in probe["exec"]["command"]]
    elif "httpGet" in probe:
        run.ready_http = (port, probe["httpGet"].get("path", "/"))
    elif "tcpSocket" in probe:
        run.ready_port = port
    run.probe_period = float(probe.get("periodSeconds", 10))
    run.probe_delay = float(probe.get("initialDelaySeconds", 0))


def plan_pod(
    spec: dict,
    pod: PodIdentity,
    pod_dir: Path,
    sources: Sources,
    hosts: dict[str, str] | None = None,
) -> PodRun:
    """What running ``pod`` (with pod spec ``spec``) locally takes."""
    hosts = hosts or {}
    volumes: dict[str, Path] = {}
    run = PodRun(
        pod,
        restart_policy=spec.get("restartPolicy", "Always"),
        grace_seconds=float(spec.get("terminationGracePeriodSeconds", 30)),
    )
    for v in spec.get("volumes", []):
        folder = pod_dir / "volumes" / v["name"]
        if "configMap" in v:
            volumes[v["name"]] = folder
        elif "secret" in v:
            volumes[v["name"]] = sources.secret_dir(v["secret"]["secretName"])
        elif "emptyDir" in v:
            volumes[v["name"]] = folder
            run.dirs.append(folder)
        elif (own := sources.volume(v, pod, pod_dir)) is not None:
            volumes[v["name"]] = own
            run.dirs.append(own)
        else:
            raise ValueError(f"{pod.name}: unsupported volume {v['name']}: {sorted(v)}")

    inits = spec.get("initContainers", [])
    containers = [(c, c.get("restartPolicy") != "Always") for c in inits]
    containers += [(c, False) for c in spec["containers"]]
    mounts: dict[str, Path] = dict(IMAGE_PATHS)
    for c, _ in containers:
        for m in c.get("volumeMounts", []):
            target = volumes[m["name"]] / m.get("subPath", "")
            if mounts.get(m["mountPath"], target) != target:
                raise ValueError(f"{pod.name}: two volumes mounted at {m['mountPath']}")
            mounts[m["mountPath"]] = target

    for v in spec.get("volumes", []):
        if "configMap" in v:
            data = sources.configmap(v["configMap"]["name"])
            items = v["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                text = data[item["key"]]
                run.files[volumes[v["name"]] / item["path"]] = localize(
                    text, mounts, hosts, pod.address
                )

    for c, init in containers:
        env = _env(c, pod, sources)
        own = {**mounts, **image_paths(c.get("image", ""))}
        local = lambda s, env=env, own=own: localize(_expand(s, env), own, hosts, pod.address)  # noqa: E731
        argv = [local(a) for a in c.get("command", []) + c.get("args", [])]
        env = {k: local(v) for k, v in env.items()}
        container = ContainerRun(
            c["name"], argv, env, init=init, sidecar=c.get("restartPolicy") == "Always"
        )
        if "readinessProbe" in c:
            _probe(container, c["readinessProbe"], c, local)
        run.containers.append(container)
    return run
