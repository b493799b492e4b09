"""e2e tier: a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) with kwok playing the kubelets, started once per session by devtools.kube."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

# The session's control plane, shared with other tiers through the plugin.
from devtools.kube.pytest_plugin import kube  # noqa: F401


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.kube)


@pytest.fixture(scope="session")
def api(kube) -> client.ApiClient:  # noqa: F811
    c = kube.api_client()
    yield c
    c.close()


@pytest.fixture(scope="session")
def core(api) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def namespace(core) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
