"""The chart on a real API server: `helm install --wait` with the default values and with
chart/ci/single-node.yaml, the agents' RBAC checked with their own ServiceAccount token,
`helm upgrade` through its hooks, and `helm uninstall` leaving nothing behind.

Pods run under kwok: the API objects, admission, RBAC, controllers, scheduling, volumes and
hooks are real; the containers are not started."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
import yaml
from kubernetes import client

from devtools.kube import DEFAULT_BIN, ROOT

from .helpers import gone, kubectl, token_client, token_kubeconfig, wait_for

CHART = ROOT / "chart"
VALUES = {"default": None, "single-node": CHART / "ci" / "single-node.yaml"}
INSTANCE = "app.kubernetes.io/instance"


def helm(kube, home, *args, check=True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(kube.kubeconfig),
    }
    r = subprocess.run(
        [str(DEFAULT_BIN / "helm"), *args], capture_output=True, text=True, env=env, timeout=900
    )
    if check and r.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        )
    return r


class Release:
    def __init__(self, kube, home, name, namespace, values):
        self.kube, self.home, self.name, self.namespace, self.values = (
            kube,
            home,
            name,
            namespace,
            values,
        )

    def helm(self, *args, check=True):
        return helm(self.kube, self.home, *args, "-n", self.namespace, check=check)

    def values_args(self):
        return ["-f", str(self.values)] if self.values else []


@pytest.fixture(scope="module", params=list(VALUES))
def release(request, kube, core, tmp_path_factory):
    """A release installed with `helm install --wait`; uninstalled by the last test."""
    flavour = request.param
    ns = f"chart-{flavour}-{uuid.uuid4().hex[:6]}"
    # The Pod Security admission plugin enforces the restricted profile, as a hardened
    # cluster does: every pod the chart creates (hooks included) has to pass it.
    labels = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=labels)))
    rel = Release(kube, tmp_path_factory.mktemp("helm"), "kairn", ns, VALUES[flavour])
    rel.install = rel.helm(
        "install",
        rel.name,
        str(CHART),
        *rel.values_args(),
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        "8m",
    )
    yield rel
    if rel.helm("status", rel.name, check=False).returncode == 0:
        rel.helm("uninstall", rel.name, "--wait", "--timeout", "5m", check=False)
    if not gone(lambda: core.read_namespace(ns)):
        core.delete_namespace(ns)


def _manifest_objects(rel: Release) -> list[dict]:
    out = rel.helm("get", "manifest", rel.name).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_install_is_deployed_and_every_object_exists(release, kube):
    status = json.loads(release.helm("status", release.name, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    # Server-side warnings (PodSecurity, deprecated APIs) reach helm's output.
    assert "Warning" not in release.install.stderr, release.install.stderr
    objects = _manifest_objects(release)
    assert {
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Deployment",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    } <= {o["kind"] for o in objects}
    for o in objects:
        ns = [] if o["kind"] in ("ClusterRole", "ClusterRoleBinding") else ["-n", release.namespace]
        kubectl(kube.kubeconfig, "get", o["kind"], o["metadata"]["name"], *ns)


def test_statefulsets_ready_on_fake_nodes(release, api, core, kube):
    apps = client.AppsV1Api(api)
    sets = apps.list_namespaced_stateful_set(release.namespace).items
    assert len(sets) == 2
    for sts in sets:
        assert sts.status.ready_replicas == sts.spec.replicas, sts.metadata.name
        pods = core.list_namespaced_pod(
            release.namespace,
            label_selector=",".join(f"{k}={v}" for k, v in sts.spec.selector.match_labels.items()),
        ).items
        assert len(pods) == sts.spec.replicas
        for p in pods:
            assert p.spec.node_name in kube.node_names
            assert p.status.phase == "Running"
        for tpl in sts.spec.volume_claim_templates or []:
            for i in range(sts.spec.replicas):
                pvc = core.read_namespaced_persistent_volume_claim(
                    f"{tpl.metadata.name}-{sts.metadata.name}-{i}", release.namespace
                )
                assert pvc.status.phase == "Bound"
    deployments = apps.list_namespaced_deployment(release.namespace).items
    for d in deployments:
        assert d.status.ready_replicas == d.spec.replicas, d.metadata.name


def test_hook_jobs_ran_and_were_cleaned_up(release, api):
    # Each hook Job ran to completion (helm waited for it) and was deleted on success.
    assert client.BatchV1Api(api).list_namespaced_job(release.namespace).items == []


def _agents_token(release, core) -> tuple[str, str]:
    sas = core.list_namespaced_service_account(
        release.namespace,
        label_selector=f"{INSTANCE}={release.name},app.kubernetes.io/component=agents",
    ).items
    assert len(sas) == 1
    sa = sas[0].metadata.name
    tr = core.create_namespaced_service_account_token(
        sa,
        release.namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    )
    return sa, tr.status.token


def test_agents_rbac_allows_what_they_need_and_nothing_else(release, core, kube, tmp_path):
    _, token = _agents_token(release, core)
    kc = token_kubeconfig(kube, tmp_path / "agents.kubeconfig", token)
    ns = release.namespace

    def can(*args):
        r = kubectl(kc, "auth", "can-i", *args, check=False)
        return r.stdout.strip()

    for verb in ("get", "list", "watch", "update", "patch"):
        assert can(verb, "configmaps", "-n", ns) == "yes", verb
    assert can("create", "events", "-n", ns) == "yes"
    for args in (
        ("get", "secrets", "-n", "default"),
        ("list", "configmaps", "-n", "default"),
        ("get", "configmaps", "-n", "kube-system"),
        ("delete", "statefulsets.apps", "-n", ns),
        ("delete", "configmaps", "-n", ns),
        ("list", "nodes"),
        ("list", "namespaces"),
        ("create", "clusterroles"),
        ("list", "persistentvolumes"),
        ("create", "pods", "-n", ns),
    ):
        assert can(*args) == "no", args
    # The same client the agents use in production, with that token.
    with token_client(kube, token) as c:
        agents_core = client.CoreV1Api(c)
        agents_core.list_namespaced_config_map(
            ns, label_selector=f"kairn.dev/cluster={release.name}"
        )
        with pytest.raises(client.ApiException) as e:
            agents_core.list_namespaced_config_map("default")
        assert e.value.status == 403
        with pytest.raises(client.ApiException) as e:
            agents_core.list_namespaced_secret("default")
        assert e.value.status == 403


def test_upgrade_runs_its_hooks(release, api):
    apps = client.AppsV1Api(api)
    before = {
        s.metadata.name: s.status.update_revision
        for s in apps.list_namespaced_stateful_set(release.namespace).items
    }
    release.helm(
        "upgrade",
        release.name,
        str(CHART),
        *release.values_args(),
        "--set-string",
        "kafka.config.log\\.retention\\.hours=100",
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        "8m",
    )
    status = json.loads(release.helm("status", release.name, "-o", "json").stdout)
    assert (status["info"]["status"], status["version"]) == ("deployed", 2)
    after = {s.metadata.name: s for s in apps.list_namespaced_stateful_set(release.namespace).items}
    changed = [n for n, s in after.items() if s.status.update_revision != before[n]]
    assert any("kafka" in n for n in changed), changed
    assert client.BatchV1Api(api).list_namespaced_job(release.namespace).items == []


def test_uninstall_leaves_nothing_behind(release, api, core, kube):
    ns = release.namespace
    claims = {p.metadata.name for p in core.list_namespaced_persistent_volume_claim(ns).items}
    release.helm("uninstall", release.name, "--wait", "--timeout", "5m")
    kinds = kubectl(
        kube.kubeconfig, "api-resources", "--verbs=list", "--namespaced", "-o", "name"
    ).stdout.split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]
    left = json.loads(
        kubectl(kube.kubeconfig, "get", ",".join(kinds), "-n", ns, "-o", "json").stdout
    )["items"]
    # What every namespace holds from its creation on.
    own = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}
    leftovers = sorted(
        f"{o['kind']}/{o['metadata']['name']}"
        for o in left
        if (o["kind"], o["metadata"]["name"]) not in own
    )
    # StatefulSet claims are kept on uninstall unless the chart asks otherwise, as Kubernetes
    # does by default; everything else goes.
    assert leftovers == sorted(f"PersistentVolumeClaim/{c}" for c in claims)
    stuck = [
        c.metadata.name for c in core.list_namespaced_config_map(ns).items if c.metadata.finalizers
    ]
    assert stuck == []
    # The namespace then goes away completely: no finalizer holds anything in it.
    core.delete_namespace(ns)
    wait_for(
        "release namespace deleted", lambda: gone(lambda: core.read_namespace(ns)), timeout=180
    )
    wait_for(
        "provisioned volumes reclaimed",
        lambda: (
            not [
                pv
                for pv in core.list_persistent_volume().items
                if pv.spec.claim_ref and pv.spec.claim_ref.namespace == ns
            ]
        ),
        timeout=120,
    )
