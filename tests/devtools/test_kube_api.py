"""The API server behaves as a real one: versions, server-side validation, finalizers and
the garbage collector."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from tests.e2e.helpers import gone, kubectl, wait_for


def test_versions_and_nodes(kube):
    out = json.loads(kubectl(kube.kubeconfig, "version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"].startswith("v1.")
    assert out["serverVersion"]["gitVersion"] == out["clientVersion"]["gitVersion"]
    nodes = kubectl(kube.kubeconfig, "get", "nodes", "-o", "name").stdout.split()
    assert nodes == [f"node/{n}" for n in kube.node_names]


def test_invalid_object_is_rejected(core, namespace):
    bad = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_A_DNS_Name"))
    with pytest.raises(client.ApiException) as e:
        core.create_namespaced_config_map(namespace, bad)
    assert e.value.status == 422
    assert "RFC 1123" in json.loads(e.value.body)["message"]


def test_deployment_without_selector_is_rejected(api, namespace):
    apps = client.AppsV1Api(api)
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }
    with pytest.raises(client.ApiException) as e:
        apps.create_namespaced_deployment(namespace, body)
    assert e.value.status == 422
    assert "spec.selector" in json.loads(e.value.body)["message"]


def test_unknown_field_rejected_by_strict_server_side_validation(kube, namespace, tmp_path):
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n"
        "data:\n  a: b\nspecc:\n  oops: true\n"
    )
    r = kubectl(
        kube.kubeconfig,
        "apply",
        "-n",
        namespace,
        "--validate=strict",
        "--dry-run=server",
        "-f",
        str(manifest),
        check=False,
    )
    assert r.returncode != 0
    assert 'unknown field "specc"' in r.stderr
    # The same manifest without the typo passes the same check.
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndata:\n  a: b\n")
    kubectl(
        kube.kubeconfig,
        "apply",
        "-n",
        namespace,
        "--validate=strict",
        "--dry-run=server",
        "-f",
        str(manifest),
    )


def test_finalizer_blocks_deletion_until_removed(core, namespace):
    cm = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="guarded", finalizers=["kairn.dev/test-finalizer"])
    )
    core.create_namespaced_config_map(namespace, cm)
    core.delete_namespaced_config_map("guarded", namespace)
    held = core.read_namespaced_config_map("guarded", namespace)
    assert held.metadata.deletion_timestamp is not None
    # Terminating objects can still be updated, but not given new finalizers.
    with pytest.raises(client.ApiException) as e:
        core.patch_namespaced_config_map(
            "guarded",
            namespace,
            {"metadata": {"finalizers": ["kairn.dev/test-finalizer", "kairn.dev/another"]}},
        )
    assert e.value.status == 422
    core.patch_namespaced_config_map("guarded", namespace, {"metadata": {"finalizers": None}})
    assert gone(lambda: core.read_namespaced_config_map("guarded", namespace))


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_garbage_collector_deletes_owned_objects(core, namespace, policy):
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1",
        kind="ConfigMap",
        name="owner",
        uid=owner.metadata.uid,
        block_owner_deletion=True,
    )
    for i in range(3):
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=f"owned-{i}", owner_references=[ref])
            ),
        )
    core.delete_namespaced_config_map(
        "owner", namespace, body=client.V1DeleteOptions(propagation_policy=policy)
    )
    if policy == "Foreground":
        # The owner stays, marked with the foregroundDeletion finalizer, until the
        # garbage collector has deleted its dependents.
        wait_for(
            "owner gone after its dependents",
            lambda: gone(lambda: core.read_namespaced_config_map("owner", namespace)),
        )
    wait_for(
        "owned ConfigMaps collected",
        lambda: (
            not [
                c
                for c in core.list_namespaced_config_map(namespace).items
                if c.metadata.name.startswith("owned-")
            ]
        ),
    )
    assert gone(lambda: core.read_namespaced_config_map("owner", namespace))


def test_orphan_policy_keeps_dependents(core, namespace):
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kept", owner_references=[ref])),
    )
    core.delete_namespaced_config_map(
        "owner", namespace, body=client.V1DeleteOptions(propagation_policy="Orphan")
    )
    wait_for(
        "owner reference removed from the orphan",
        lambda: not (core.read_namespaced_config_map("kept", namespace).metadata.owner_references),
    )
    # The owner goes once the garbage collector has lifted its orphan finalizer.
    wait_for(
        "owner gone", lambda: gone(lambda: core.read_namespaced_config_map("owner", namespace))
    )
    assert core.read_namespaced_config_map("kept", namespace).metadata.deletion_timestamp is None


def test_pod_security_admission_enforces_restricted(core, namespace):
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="root"),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="c",
                    image="registry.invalid/x:1",
                    security_context=client.V1SecurityContext(privileged=True),
                )
            ]
        ),
    )
    with pytest.raises(client.ApiException) as e:
        core.create_namespaced_pod(namespace, pod)
    assert e.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in json.loads(e.value.body)["message"]


def test_resource_quota_admission(core, namespace):
    # kube-root-ca.crt (published into each new namespace by the controller manager) counts
    # too: created before the quota, so that the quota controller's first count sees it
    wait_for(
        "kube-root-ca.crt published into the namespace",
        lambda: core.read_namespaced_config_map("kube-root-ca.crt", namespace),
    )
    core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="cm"),
            spec=client.V1ResourceQuotaSpec(hard={"configmaps": "2"}),
        ),
    )
    # admission charges against the usage the quota controller recorded: wait for it, then
    # exactly the rest of the quota fits
    used = wait_for(
        "the quota's first usage",
        lambda: (core.read_namespaced_resource_quota("cm", namespace).status.used or {}).get(
            "configmaps"
        ),
    )
    assert used in ("0", "1"), used
    created = 0
    with pytest.raises(client.ApiException) as e:
        for i in range(3):
            core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"q{i}"))
            )
            created += 1
    assert e.value.status == 403
    assert "exceeded quota" in json.loads(e.value.body)["message"]
    assert created == 2 - int(used)
