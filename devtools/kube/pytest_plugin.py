"""pytest fixtures for tests that need the local control plane; tests/conftest.py registers
them for every tier, so a session that runs several tiers still starts one control plane.

`kube` is one ControlPlane for the whole session (started on first use, stopped at the end;
its processes also end with the test process if that is killed); `api` is an admin
`kubernetes.client.ApiClient` for it, `core` its CoreV1Api, and `namespace` a fresh namespace
per test. Give the code under test a ServiceAccount's identity with
`kube.service_account_kubeconfig(path, namespace, name)`. Tests that use `kube` are marked
`kube`.
"""

from __future__ import annotations

import uuid

import pytest

from devtools.kube.controlplane import ControlPlane


def pytest_collection_modifyitems(items):
    for item in items:
        if "kube" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kube)


@pytest.fixture(scope="session")
def kube(tmp_path_factory) -> ControlPlane:
    """The session's control plane: three kwok nodes."""
    cp = ControlPlane(tmp_path_factory.mktemp("kube"), nodes=3, die_with_parent=True)
    cp.start()
    print(
        f"control plane usable after {cp.timings['usable']:.1f}s "
        f"(API server ready after {cp.timings['api_ready']:.1f}s)"
    )
    yield cp
    cp.stop()
    assert not cp.running()


@pytest.fixture(scope="session")
def api(kube):
    """An administrator's kubernetes.client.ApiClient."""
    c = kube.api_client()
    yield c
    c.close()


@pytest.fixture(scope="session")
def core(api):
    """CoreV1Api as the administrator."""
    from kubernetes import client

    return client.CoreV1Api(api)


@pytest.fixture
def namespace(core) -> str:
    """A namespace of this test's own, deleted after it."""
    from kubernetes import client

    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
