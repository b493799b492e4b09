"""The chart's PKI hook run as a local process against the real API server, authenticated
with a token of the ServiceAccount the chart creates for it and limited by the Role the chart
gives it: what the hook needs is allowed, nothing more."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from devtools.kube import DEFAULT_BIN, ROOT

from .helpers import kubectl, token_kubeconfig

CHART = ROOT / "chart"
KAIRN_CERTS = Path(sys.executable).with_name("kairn-certs")


def _render(namespace: str, template: str) -> list[dict]:
    out = subprocess.run(
        [
            str(DEFAULT_BIN / "helm"),
            "template",
            "kairn",
            str(CHART),
            "-n",
            namespace,
            "--show-only",
            template,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _env_of(job: dict, namespace: str) -> dict[str, str]:
    env = {}
    for e in job["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[e["name"]] = namespace
        else:
            raise AssertionError(f"unhandled env source in the hook Job: {e}")
    return env


@pytest.fixture
def certs_hook(kube, core, tmp_path):
    """The certs hook's ServiceAccount, Role and RoleBinding as the chart renders them, applied
    to a fresh namespace; returns (namespace, job manifest, kubeconfig with the SA token)."""
    ns = f"hook-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    docs = _render(ns, "templates/hook-certs.yaml")
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"ServiceAccount", "Role", "RoleBinding", "Job"}
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] != "Job"]))
    kubectl(kube.kubeconfig, "apply", "--validate=strict", "-n", ns, "-f", str(rbac))
    sa = by_kind["ServiceAccount"]["metadata"]["name"]
    token = core.create_namespaced_service_account_token(
        sa,
        ns,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    ).status.token
    yield ns, by_kind["Job"], token_kubeconfig(kube, tmp_path / "certs.kubeconfig", token)
    core.delete_namespace(ns)


def _run_certs(job, ns, kubeconfig, home, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIRN_")}
    env.update(_env_of(job, ns), KUBECONFIG=str(kubeconfig), HOME=str(home))
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.run(
        [str(KAIRN_CERTS), *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_certs_hook_creates_its_secrets_with_its_own_rbac(certs_hook, core, tmp_path):
    ns, job, kubeconfig = certs_hook
    first = _run_certs(job, ns, kubeconfig, tmp_path)
    assert first.returncode == 0, first.stderr
    secrets = {s.metadata.name: s for s in core.list_namespaced_secret(ns).items}
    expected = {
        f"kairn{suffix}"
        for suffix in (
            "-cluster-ca-cert",
            "-cluster-ca",
            "-clients-ca-cert",
            "-clients-ca",
            "-kafka-brokers",
            "-zookeeper-nodes",
            "-agents-cert",
        )
    }
    assert expected <= set(secrets), sorted(secrets)
    # A second run (the pre-upgrade hook) finds everything valid and changes nothing.
    second = _run_certs(job, ns, kubeconfig, tmp_path)
    assert second.returncode == 0, second.stderr
    after = {
        s.metadata.name: s.metadata.resource_version for s in core.list_namespaced_secret(ns).items
    }
    assert {n: after[n] for n in expected} == {
        n: secrets[n].metadata.resource_version for n in expected
    }


def test_certs_hook_cannot_reach_beyond_its_secrets(certs_hook, core):
    ns, _, kubeconfig = certs_hook
    core.create_namespaced_secret(
        ns,
        client.V1Secret(metadata=client.V1ObjectMeta(name="someone-elses"), string_data={"k": "v"}),
    )

    def can(*args):
        return kubectl(kubeconfig, "auth", "can-i", *args, check=False).stdout.strip()

    assert can("create", "secrets", "-n", ns) == "yes"
    assert can("get", "secrets/kairn-cluster-ca", "-n", ns) == "yes"
    assert can("update", "secrets/kairn-kafka-brokers", "-n", ns) == "yes"
    for args in (
        ("get", "secrets/someone-elses", "-n", ns),
        ("list", "secrets", "-n", ns),
        ("delete", "secrets/kairn-cluster-ca", "-n", ns),
        ("get", "secrets", "-n", "default"),
        ("list", "configmaps", "-n", ns),
        ("list", "nodes"),
        ("delete", "statefulsets.apps", "-n", ns),
    ):
        assert can(*args) == "no", args


LEAF_KEYS = ("crt", "key", "p12", "password")
SECRET_KEYS = {
    "kairn-cluster-ca-cert": {"ca.crt", "ca.p12", "ca.password"},
    "kairn-cluster-ca": {"ca.key"},
    "kairn-clients-ca-cert": {"ca.crt", "ca.p12", "ca.password"},
    "kairn-clients-ca": {"ca.key"},
    "kairn-kafka-brokers": {f"kairn-kafka-{i}.{k}" for i in range(3) for k in LEAF_KEYS},
    "kairn-zookeeper-nodes": {f"kairn-zookeeper-{i}.{k}" for i in range(3) for k in LEAF_KEYS},
    "kairn-agents-cert": {"user.crt", "user.key", "user.p12", "user.password", "ca.crt"},
}


def _versions(core, ns) -> dict[str, str]:
    return {
        s.metadata.name: s.metadata.resource_version for s in core.list_namespaced_secret(ns).items
    }


def test_every_secret_has_the_documented_keys_and_none_reaches_the_log(certs_hook, core, tmp_path):
    ns, job, kubeconfig = certs_hook
    run = _run_certs(job, ns, kubeconfig, tmp_path)
    assert run.returncode == 0, run.stderr
    secrets = {s.metadata.name: s for s in core.list_namespaced_secret(ns).items}
    for name, keys in SECRET_KEYS.items():
        assert set(secrets[name].data) == keys, name
    log = run.stdout + run.stderr
    for name, s in secrets.items():
        for key, value in s.data.items():
            if key.endswith((".key", ".password")):
                assert value not in log, f"{name}/{key} appears in the log"
    assert all(json.loads(line) for line in run.stderr.splitlines() if line.startswith("{"))


def test_renewal_inside_the_window_renews_leaves_and_keeps_the_cas(certs_hook, core, tmp_path):
    ns, job, kubeconfig = certs_hook
    assert _run_certs(job, ns, kubeconfig, tmp_path).returncode == 0
    before = _versions(core, ns)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=340)).strftime("%Y-%m-%dT%H:%M:%SZ")

    renewed = _run_certs(job, ns, kubeconfig, tmp_path, "--now", later)
    assert renewed.returncode == 0, renewed.stderr
    after = _versions(core, ns)
    for ca in (
        "kairn-cluster-ca",
        "kairn-cluster-ca-cert",
        "kairn-clients-ca",
        "kairn-clients-ca-cert",
    ):
        assert after[ca] == before[ca], f"{ca} changed"
    for leaf in ("kairn-kafka-brokers", "kairn-zookeeper-nodes", "kairn-agents-cert"):
        assert after[leaf] != before[leaf], f"{leaf} not renewed"
    brokers = core.read_namespaced_secret("kairn-kafka-brokers", ns)
    marks = json.loads(brokers.metadata.annotations["kairn.dev/renewed-at"])
    assert set(marks) >= {"kairn-kafka-0", "kairn-kafka-1", "kairn-kafka-2"}


def test_a_malformed_ca_secret_is_named_and_nothing_is_overwritten(certs_hook, core, tmp_path):
    ns, job, kubeconfig = certs_hook
    assert _run_certs(job, ns, kubeconfig, tmp_path).returncode == 0
    core.patch_namespaced_secret("kairn-cluster-ca", ns, {"data": {"ca.key": "bm90IGEga2V5"}})
    before = _versions(core, ns)
    broken = _run_certs(job, ns, kubeconfig, tmp_path)
    assert broken.returncode != 0
    assert "kairn-cluster-ca" in broken.stderr.splitlines()[-1]
    assert _versions(core, ns) == before
