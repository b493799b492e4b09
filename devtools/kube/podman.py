"""One container of a pod as a `podman run`, with the pod's own security context, volumes and
environment: what a kubelet with a container runtime would ask for. Test support, not part of
kairn. Used by the image test tier (tests/image) and by the process node when it runs the
kairn image's containers with podman (KAIRN_NODE_RUNTIME, devtools/kube/node.py).

The planning is pure (``run_argv``, ``security_args``); ``materialize`` writes a Secret's or
ConfigMap's files the way a kubelet lays out the volume (owner root, group fsGroup, mode
defaultMode), since whether uid 10001 can read its Secret is what the image tier checks.

The network is the host's: the harness' pods listen on loopback addresses of their own, which
a container in a network namespace of its own could not reach; names resolve through
``--add-host`` entries (the cluster DNS names of the harness' pods).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from devtools import TOOLS

PODMAN = TOOLS / "bin" / "podman"  # the wrapper `make setup` writes (kairn's containers.conf)
IMAGE_STATE = TOOLS / "image"


def chart_image(version: str) -> str:
    return f"docker.io/kairn/kairn:{version}"


def available(image: str) -> bool:
    """Whether podman is set up here and holds ``image`` (built by `make image`)."""
    if not PODMAN.exists():
        return False
    found = subprocess.run([str(PODMAN), "image", "exists", image], capture_output=True)
    return found.returncode == 0


def security_args(pod_spec: dict, container: dict) -> list[str]:
    """The pod's and the container's securityContext as podman options (the container's
    fields win, as in Kubernetes)."""
    pod_sc = pod_spec.get("securityContext") or {}
    sc = {**pod_sc, **(container.get("securityContext") or {})}
    args: list[str] = []
    if "runAsUser" in sc:
        user = str(sc["runAsUser"])
        if "runAsGroup" in sc:
            user += f":{sc['runAsGroup']}"
        args += ["--user", user]
    # a kubelet adds fsGroup and supplementalGroups to every container's processes
    groups = ([pod_sc["fsGroup"]] if "fsGroup" in pod_sc else []) + list(
        pod_sc.get("supplementalGroups", [])
    )
    for g in groups:
        args += ["--group-add", str(g)]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
        # Kubernetes gives a read-only root no writable /tmp, /run or /var/tmp of its own
        args.append("--read-only-tmpfs=false")
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop", []):
        args += ["--cap-drop", cap.lower()]
    for cap in caps.get("add", []):
        args += ["--cap-add", cap.lower()]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if sc.get("privileged"):
        args.append("--privileged")
    return args


def run_argv(
    pod_spec: dict,
    container: dict,
    *,
    name: str,
    volumes: dict[str, Path],
    env: dict[str, str],
    hosts: dict[str, str] | None = None,
    image: str | None = None,
    hosts_file: Path | None = None,
) -> list[str]:
    """``podman run`` of one container in the foreground (signals reach the container, as a
    kubelet's would). ``volumes``: volume name -> the host folder holding its files;
    ``env``: the container's resolved environment (devtools/podspec.py resolves it)."""
    argv = [str(PODMAN), "run", "--rm", "--name", name, "--network", "host"]
    argv += ["--pull", "never", "--log-driver", "none"]
    argv += security_args(pod_spec, container)
    for m in container.get("volumeMounts", []):
        source = volumes[m["name"]] / m.get("subPath", "")
        mode = "ro" if m.get("readOnly") else "rw"
        argv += ["--volume", f"{source}:{m['mountPath']}:{mode}"]
    if hosts_file is not None:  # a live view: the process node rewrites its block in place
        argv += ["--volume", f"{hosts_file}:/etc/hosts:ro"]
    for host, address in sorted((hosts or {}).items()):
        argv += ["--add-host", f"{host}:{address}"]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    expand = _expander(env)
    command = [expand(a) for a in container.get("command", [])]
    args = [expand(a) for a in container.get("args", [])]
    if command:
        argv += ["--entrypoint", json.dumps(command)]
    argv.append(image or container["image"])
    return argv + args


def exec_argv(name: str, command: list[str]) -> list[str]:
    """An exec probe inside the running container ``name``."""
    return [str(PODMAN), "exec", name, *command]


def remove(name: str) -> None:
    """Removes a container left behind (a killed `podman run --rm` may leave it)."""
    subprocess.run([str(PODMAN), "rm", "--force", "--ignore", name], capture_output=True)


def materialize(source: Path, target: Path, mode: int = 0o644, group: int | None = None) -> Path:
    """A Secret's or ConfigMap's files as a kubelet lays them out in a volume: owned by root,
    group ``group`` (the pod's fsGroup) with group read added, mode ``mode`` (defaultMode)."""
    if group is not None:
        mode |= 0o040
    target.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        if f.is_file():
            copy = target / f.name
            shutil.copyfile(f, copy)
            os.chown(copy, 0, 0 if group is None else group)
            copy.chmod(mode)
    target.chmod(0o755)
    return target


def volume_folders(
    pod_spec: dict,
    sources,
    folder: Path,
    rewrite=lambda text: text,
    empty_root: Path | None = None,
) -> dict:
    """Every volume of a pod as a host folder for ``run_argv``: ConfigMaps written (each text
    through ``rewrite``: the pod's own address for 127.0.0.1 and "all interfaces", paths left
    as the chart wrote them), Secrets laid out from ``sources.secret_dir`` with their
    defaultMode and the pod's fsGroup, emptyDirs writable; other kinds from
    ``sources.volume`` (claims, projected). ``sources`` is a devtools.podspec.Sources.
    emptyDirs are made under ``empty_root`` when given: the folders a pod's local processes
    share with its containers (the JMX agent's jar)."""
    group = (pod_spec.get("securityContext") or {}).get("fsGroup")
    out: dict[str, Path] = {}
    for v in pod_spec.get("volumes", []):
        target = folder / v["name"]
        if "configMap" in v:
            data = sources.configmap(v["configMap"]["name"])
            items = v["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            staged = folder / ".staged" / v["name"]
            staged.mkdir(parents=True, exist_ok=True)
            for item in items:
                (staged / item["path"]).write_text(rewrite(data[item["key"]]))
            mode = v["configMap"].get("defaultMode", 0o644)
            out[v["name"]] = materialize(staged, target, mode, group)
        elif "secret" in v:
            source = sources.secret_dir(v["secret"]["secretName"])
            mode = v["secret"].get("defaultMode", 0o644)
            out[v["name"]] = materialize(source, target, mode, group)
        elif "emptyDir" in v:
            out[v["name"]] = empty_dir((empty_root or folder) / v["name"])
        else:
            own = sources.volume(v, None, folder)
            if own is None:
                raise ValueError(f"unsupported volume {v['name']}: {sorted(v)}")
            out[v["name"]] = empty_dir(own)
    return out


def empty_dir(target: Path) -> Path:
    """An emptyDir volume: a folder anyone in the pod can write (Kubernetes makes it 0777)."""
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o777)
    return target


def _expander(env: dict[str, str]):
    """Kubernetes' $(VAR) expansion in command and args (devtools/podspec.py has the same)."""
    from devtools.podspec import _expand

    return lambda text: _expand(text, env)


# ---- the process node's podman runtime ---------------------------------------------------------
RUNTIME_SETTING = "KAIRN_NODE_RUNTIME"  # process (default), podman, or auto


def node_image(setting: str | None = None) -> str | None:
    """The image whose containers the process node runs with podman, or None for local
    processes only. ``podman`` insists on it; ``auto`` uses it when `make image` built it."""
    setting = (setting or os.environ.get(RUNTIME_SETTING) or "process").strip().lower()
    if setting == "process":
        return None
    text = (TOOLS.parent / "chart" / "Chart.yaml").read_text()
    version = next(
        x.split(":", 1)[1].strip() for x in text.splitlines() if x.startswith("version:")
    )
    image = chart_image(version)
    if available(image):
        return image
    if setting == "podman":
        raise RuntimeError(f"{RUNTIME_SETTING}=podman but {image} is not built: run make image")
    return None


def containerize(run, pod: dict, identity, sources, pod_dir: Path, image: str, api: str) -> list:
    """Turns the planned containers of ``run`` (devtools/podspec.py) whose image is ``image``
    into `podman run`s with the pod's own security context, volumes and environment; the
    others stay local processes. Their exec readiness probes run inside the container.
    ``api``: the API server's URL, given to containers as a kubelet does (the Service
    environment), with the projected ServiceAccount volume the API server added to the pod.
    Returns the names of the podman containers."""
    from urllib.parse import urlsplit

    from devtools.podspec import _env, localize

    spec = pod["spec"]
    by_name = {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}
    rewrite = lambda text: localize(text, {}, {}, identity.address)  # noqa: E731
    url = urlsplit(api)
    service_env = {
        "KUBERNETES_SERVICE_HOST": url.hostname,
        "KUBERNETES_SERVICE_PORT": str(url.port),
    }
    names = []
    for planned in run.containers:
        container = by_name[planned.name]
        if container.get("image") != image:
            continue
        mounted = {m["name"] for m in container.get("volumeMounts", [])}
        wanted = [v for v in spec.get("volumes", []) if v["name"] in mounted]
        folder = pod_dir / "podman" / planned.name
        volumes = volume_folders(
            {**spec, "volumes": wanted}, sources, folder, rewrite, pod_dir / "volumes"
        )
        env = {k: rewrite(v) for k, v in _env(container, identity, sources).items()}
        name = f"kairn-{identity.namespace}-{identity.name}-{planned.name}"
        argv = run_argv(
            spec,
            container,
            name=name,
            volumes=volumes,
            env=service_env | env,
            image=image,
            hosts_file=Path("/etc/hosts"),
        )
        # a container left by a killed `podman run` would hold the name: remove it first
        planned.argv = [
            "/bin/sh",
            "-c",
            f'{PODMAN} rm -f --ignore "$0" >/dev/null; exec "$@"',
            name,
            *argv,
        ]
        planned.env = {}
        probe = (container.get("readinessProbe") or {}).get("exec")
        if probe:
            planned.readiness = exec_argv(name, probe["command"])
        names.append(name)
    return names
