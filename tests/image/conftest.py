"""Image tier: the kairn image (`make image`) run the way the chart runs it. Each container's
command, arguments, environment, volumes and security context come from the chart's rendering
(devtools/chart.py), never from this folder; devtools/kube/podman.py turns them into
`podman run` options. The harness' real Kafka (`kafka_cluster`) and the local API server
(`kube`, `core`) are what the commands talk to."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from devtools import TOOLS
from devtools.chart import HARNESS_VALUES, helm_template
from devtools.kube import podman
from devtools.podspec import PodIdentity, _env, localize, pod_hosts, statefulset_pod_spec
from devtools.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "kafka"  # the harness' namespace: certificates and DNS names are made for it
RELEASE = "kairn"


def chart_version() -> str:
    text = (ROOT / "chart" / "Chart.yaml").read_text()
    return next(
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("version:")
    )


@pytest.fixture(scope="session")
def image() -> str:
    ref = podman.chart_image(chart_version())
    if not podman.available(ref):
        pytest.fail(f"{ref} is not built: run `make image` (scripts/run-tests.sh does)")
    return ref


@pytest.fixture(scope="session")
def rendering() -> dict:
    """(kind, name) -> manifest: the chart as the harness renders it."""
    docs = helm_template(RELEASE, NAMESPACE, HARNESS_VALUES)
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def pod_spec(rendering: dict, kind: str, name: str) -> dict:
    doc = rendering[(kind, name)]
    if kind == "StatefulSet":
        return statefulset_pod_spec(doc)
    return doc["spec"]["template"]["spec"]


def container_of(spec: dict, name: str) -> dict:
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


@dataclass
class Sources:
    """ConfigMaps from the rendering, Secrets as the harness' folders (kairn-certs wrote them)."""

    rendering: dict
    secrets: Path

    def configmap(self, name: str) -> dict[str, str]:
        return self.rendering[("ConfigMap", name)].get("data", {})

    def secret_dir(self, name: str) -> Path:
        return self.secrets / name

    def volume(self, volume: dict, pod, pod_dir: Path) -> Path | None:
        return pod_dir / "claims" / volume["name"] if "persistentVolumeClaim" in volume else None


@dataclass
class Container:
    """One container of a rendered pod, run from the image in the background."""

    argv: list[str]
    name: str
    log: Path
    proc: subprocess.Popen | None = None
    volumes: dict[str, Path] = field(default_factory=dict)

    def start(self) -> Container:
        podman.remove(self.name)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        return self

    def run(self, timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs to completion (a Job's or an init container's command)."""
        podman.remove(self.name)
        done = subprocess.run(self.argv, capture_output=True, text=True, timeout=timeout)
        self.log.write_text(done.stdout + done.stderr)
        return done

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exec(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            podman.exec_argv(self.name, list(command)),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, grace: int = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(
                [str(podman.PODMAN), "stop", "--time", str(grace), self.name], capture_output=True
            )
            try:
                self.proc.wait(grace + 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        podman.remove(self.name)


@dataclass
class Pods:
    """Makes Containers from the rendering for one test."""

    image: str
    rendering: dict
    folder: Path
    secrets: Path | None = None
    hosts: dict[str, str] = field(default_factory=dict)
    made: list[Container] = field(default_factory=list)

    def container(
        self,
        kind: str,
        workload: str,
        name: str,
        *,
        pod: str | None = None,
        namespace: str = NAMESPACE,
        address: str = "127.0.0.1",
        extra_volumes: dict[str, Path] | None = None,
        extra_env: dict[str, str] | None = None,
        replace: dict | None = None,
        service_account: ServiceAccount | None = None,
    ) -> Container:
        """Container ``name`` of the pod of ``kind``/``workload``, as pod ``pod`` in
        ``namespace`` on loopback ``address``."""
        spec = pod_spec(self.rendering, kind, workload)
        c = {**container_of(spec, name), **(replace or {})}
        extra_volumes = dict(extra_volumes or {})
        extra_env = dict(extra_env or {})
        if service_account is not None:  # what a kubelet mounts for automountServiceAccountToken
            group = (spec.get("securityContext") or {}).get("fsGroup")
            extra_volumes[SA_VOLUME] = podman.materialize(
                service_account.folder, self.folder / f"sa-{uuid.uuid4().hex[:6]}", 0o644, group
            )
            mount = {"name": SA_VOLUME, "mountPath": SA_PATH, "readOnly": True}
            c["volumeMounts"] = [*c.get("volumeMounts", []), mount]
            extra_env |= service_account.env
        pod = pod or f"{workload}-0"
        ordinal = int(pod.rsplit("-", 1)[-1]) if pod.rsplit("-", 1)[-1].isdigit() else 0
        identity = PodIdentity(pod, ordinal, namespace, address)
        sources = Sources(self.rendering, self.secrets or self.folder / "no-secrets")
        cid = f"kairn-image-{uuid.uuid4().hex[:8]}"
        folder = self.folder / cid
        rewrite = lambda text: localize(text, {}, {}, address)  # noqa: E731
        # the volumes this container mounts (a kubelet prepares all; a jar copy needs no certs)
        used = {m["name"] for m in c.get("volumeMounts", [])} - set(extra_volumes or {})
        wanted = [v for v in spec.get("volumes", []) if v["name"] in used]
        volumes = podman.volume_folders({**spec, "volumes": wanted}, sources, folder, rewrite)
        volumes |= extra_volumes or {}
        env = {k: rewrite(v) for k, v in _env(c, identity, sources).items()} | (extra_env or {})
        argv = podman.run_argv(
            spec, c, name=cid, volumes=volumes, env=env, hosts=self.hosts, image=self.image
        )
        made = Container(argv, cid, self.folder / f"{cid}.log", volumes=volumes)
        self.made.append(made)
        return made

    def stop_all(self) -> None:
        for c in self.made:
            c.stop(grace=5)


SA_VOLUME = "kube-api-access"
SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass
class ServiceAccount:
    """A pod's in-cluster API access: the folder a kubelet projects (token, ca.crt,
    namespace) and the Service environment that points at the API server."""

    folder: Path
    env: dict[str, str]


def service_account(kube, core, namespace: str, name: str, folder: Path) -> ServiceAccount:
    from kubernetes import client

    token = core.create_namespaced_service_account_token(
        name,
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    ).status.token
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "token").write_text(token)
    (folder / "namespace").write_text(namespace)
    (folder / "ca.crt").write_bytes((kube.pki_dir / "ca.crt").read_bytes())
    url = urlsplit(kube.server)
    env = {"KUBERNETES_SERVICE_HOST": url.hostname, "KUBERNETES_SERVICE_PORT": str(url.port)}
    return ServiceAccount(folder, env)


def apply_rbac(kube, core, rendering: dict, namespace: str, folder: Path) -> None:
    """The chart's ServiceAccounts, Roles and RoleBindings, in ``namespace`` (created here)."""
    from kubernetes import client

    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    except client.ApiException as e:
        if e.status != 409:
            raise
    docs = []
    for (kind, _), doc in rendering.items():
        if kind in ("ServiceAccount", "Role", "RoleBinding"):
            doc = json.loads(json.dumps(doc))
            doc["metadata"]["namespace"] = namespace
            for subject in doc.get("subjects", []):
                subject["namespace"] = namespace
            docs.append(doc)
    path = folder / f"rbac-{namespace}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run(
        [
            str(TOOLS / "bin" / "kubectl"),
            f"--kubeconfig={kube.kubeconfig}",
            "apply",
            "-n",
            namespace,
            "-f",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def pods(image, rendering, tmp_path):
    made = Pods(image, rendering, tmp_path)
    yield made
    made.stop_all()


def cluster_hosts(rendering: dict, cluster) -> dict[str, str]:
    """Cluster DNS names of the harness' pods and the bootstrap Service -> loopback addresses."""
    hosts: dict[str, str] = {}
    for kind, count in (("zookeeper", cluster.zookeepers), ("kafka", cluster.brokers)):
        sts = rendering[("StatefulSet", f"{RELEASE}-{kind}")]
        hosts |= pod_hosts(sts, count, NAMESPACE, lambda i, k=kind: cluster.address(k, i))
    bootstrap = f"{RELEASE}-kafka-bootstrap.{NAMESPACE}.svc"
    for name in (bootstrap, f"{bootstrap}.cluster.local"):
        hosts[name] = cluster.address("kafka", 0)
    return hosts


@pytest.fixture
def cluster_pods(pods, kafka_cluster):
    """``pods`` wired to the harness cluster: its Secrets and its pods' names."""
    pods.secrets = kafka_cluster.secrets
    pods.hosts = cluster_hosts(pods.rendering, kafka_cluster)
    return pods


def wait_for(what: str, check, timeout: float = 90.0) -> None:
    wait_until(check, timeout, what, interval=0.5)


def elapsed(since: float) -> str:
    return f"{time.monotonic() - since:.1f}s"
