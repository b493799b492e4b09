"""e2e tier: kairn on a real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) with kwok playing the kubelets, started once per session: the fixtures `kube`,
`api`, `core` and `namespace` come from devtools/kube/pytest_plugin.py (see tests/conftest.py).
test_install.py starts a control plane of its own whose nodes run the pods as processes."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.kube)
