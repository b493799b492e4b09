"""RBAC and ServiceAccount tokens, checked with the Python client and with
`kubectl auth can-i` against the real authorizers."""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes import client

from .helpers import kubectl, token_client, token_kubeconfig


@pytest.fixture
def two_namespaces(core):
    names = [f"rbac-{uuid.uuid4().hex[:6]}-{x}" for x in ("own", "other")]
    for n in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=n)))
        core.create_namespaced_config_map(
            n, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"k": "v"})
        )
    yield names
    for n in names:
        core.delete_namespace(n)


@pytest.fixture
def reader_token(api, core, two_namespaces) -> str:
    """A ServiceAccount in the first namespace with a Role that may read ConfigMaps there,
    and a bound token for it from the TokenRequest API."""
    own, _ = two_namespaces
    rbac = client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(
        own, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        own,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="configmap-reader"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["configmaps"], verbs=["get", "list", "watch"]
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        own,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=own)],
        ),
    )
    tr = core.create_namespaced_service_account_token(
        "reader",
        own,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    )
    return tr.status.token


def test_token_authenticates_as_the_service_account(kube, reader_token, two_namespaces):
    own, _ = two_namespaces
    with token_client(kube, reader_token) as c:
        review = client.AuthenticationV1Api(c).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
    assert review.status.user_info.username == f"system:serviceaccount:{own}:reader"
    assert f"system:serviceaccounts:{own}" in review.status.user_info.groups


def test_role_allows_own_namespace_only(kube, reader_token, two_namespaces):
    own, other = two_namespaces
    with token_client(kube, reader_token) as c:
        core = client.CoreV1Api(c)
        names = [cm.metadata.name for cm in core.list_namespaced_config_map(own).items]
        assert "settings" in names
        assert core.read_namespaced_config_map("settings", own).data == {"k": "v"}
        for call in (
            lambda: core.list_namespaced_config_map(other),
            lambda: core.read_namespaced_config_map("settings", other),
            lambda: core.list_config_map_for_all_namespaces(),
            lambda: core.list_namespaced_secret(own),
            lambda: core.delete_namespaced_config_map("settings", own),
            lambda: core.list_node(),
        ):
            with pytest.raises(client.ApiException) as e:
                call()
            assert e.value.status == 403


def test_bad_token_is_unauthorized(kube):
    with token_client(kube, "not-a-token") as c, pytest.raises(client.ApiException) as e:
        client.CoreV1Api(c).list_namespaced_config_map("default")
    assert e.value.status == 401


@pytest.mark.parametrize(
    ("verb", "resource", "where", "expected"),
    [
        ("list", "configmaps", "own", "yes"),
        ("watch", "configmaps", "own", "yes"),
        ("get", "configmaps", "own", "yes"),
        ("list", "configmaps", "other", "no"),
        ("create", "configmaps", "own", "no"),
        ("get", "secrets", "own", "no"),
        ("delete", "statefulsets.apps", "own", "no"),
        ("list", "nodes", None, "no"),
        ("list", "namespaces", None, "no"),
    ],
)
def test_kubectl_auth_can_i(
    kube, reader_token, two_namespaces, tmp_path, verb, resource, where, expected
):
    own, other = two_namespaces
    kc = token_kubeconfig(kube, tmp_path / "reader.kubeconfig", reader_token)
    args = ["auth", "can-i", verb, resource]
    if where:
        args += ["-n", {"own": own, "other": other}[where]]
    r = kubectl(kc, *args, check=False)
    assert r.stdout.strip() == expected, r.stderr
    assert r.returncode == (0 if expected == "yes" else 1)


def test_kubectl_auth_can_i_as_admin_impersonating(kube, reader_token, two_namespaces):
    own, other = two_namespaces
    sa = f"system:serviceaccount:{own}:reader"
    yes = kubectl(
        kube.kubeconfig, "auth", "can-i", "list", "configmaps", "-n", own, "--as", sa, check=False
    )
    no = kubectl(
        kube.kubeconfig, "auth", "can-i", "list", "configmaps", "-n", other, "--as", sa, check=False
    )
    assert (yes.stdout.strip(), no.stdout.strip()) == ("yes", "no")


def test_service_account_kubeconfig(kube, reader_token, two_namespaces, tmp_path):
    own, other = two_namespaces
    kc = kube.service_account_kubeconfig(tmp_path / "sa.kubeconfig", own, "reader")
    who = json.loads(kubectl(kc, "auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{own}:reader"
    assert "configmap/settings" in kubectl(kc, "get", "configmaps", "-n", own, "-o", "name").stdout
    denied = kubectl(kc, "get", "configmaps", "-n", other, check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
