"""devtools/kube/podman.py's planning, pure: a rendered pod's security context and volumes as
podman options (what every other test of this tier relies on)."""

from __future__ import annotations

from pathlib import Path

from devtools.kube import podman

from .conftest import container_of, pod_spec


def test_the_agents_security_context_becomes_podman_options(rendering):
    spec = pod_spec(rendering, "Deployment", "kairn-agents")
    args = podman.security_args(spec, container_of(spec, "topic-agent"))
    joined = " ".join(args)
    assert "--user 10001:10001" in joined
    assert "--group-add 10001" in joined  # fsGroup: the Secret's group
    assert "--read-only --read-only-tmpfs=false" in joined
    assert "--cap-drop all" in joined and "--cap-add" not in joined
    assert "--security-opt no-new-privileges" in joined
    assert "--privileged" not in joined


def test_mounts_env_and_command(rendering):
    spec = pod_spec(rendering, "StatefulSet", "kairn-zookeeper")
    sidecar = container_of(spec, "tls-sidecar")
    volumes = {m["name"]: Path(f"/v/{m['name']}") for m in sidecar["volumeMounts"]}
    argv = podman.run_argv(
        spec,
        sidecar,
        name="zk",
        volumes=volumes,
        env={"POD_NAME": "kairn-zookeeper-2"},
        hosts={"a.example": "127.0.0.9"},
        image="img",
    )
    assert argv[argv.index("--entrypoint") + 1] == '["stunnel"]'
    # $(POD_NAME) expanded as Kubernetes does; the arguments follow the image
    assert argv[-2:] == ["img", "/etc/kairn/stunnel/stunnel-kairn-zookeeper-2.conf"]
    assert "/v/config:/etc/kairn/stunnel:ro" in argv
    assert "a.example:127.0.0.9" in argv and "POD_NAME=kairn-zookeeper-2" in argv
    assert argv[argv.index("--network") + 1] == "host"


def test_a_container_field_wins_over_the_pods():
    spec = {"securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000}}
    container = {"securityContext": {"runAsUser": 10001}}
    args = podman.security_args(spec, container)
    assert args[:2] == ["--user", "10001:1000"]
    assert args[2:4] == ["--group-add", "2000"]
