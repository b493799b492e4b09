"""pytest fixtures for tests that need the local control plane.

    pytest_plugins = ["devtools.kube.pytest_plugin"]

`kube` is one ControlPlane for the whole session (started on first use, stopped at the end;
its processes also end with the test process if that is killed); `kube_api` is an admin
`kubernetes.client.ApiClient` for it. Give the code under test a ServiceAccount's identity with
`kube.service_account_kubeconfig(path, namespace, name)`.
"""

from __future__ import annotations

import pytest

from . import ControlPlane


@pytest.fixture(scope="session")
def kube(tmp_path_factory) -> ControlPlane:
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
def kube_api(kube):
    c = kube.api_client()
    yield c
    c.close()
