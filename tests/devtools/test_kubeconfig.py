"""The one kubeconfig writer (devtools/kube/kubeconfig.py): what the Kubernetes client reads
from it, for each kind of credentials."""

from __future__ import annotations

import stat

import pytest
from kubernetes import client, config

from devtools.kube.kubeconfig import write_kubeconfig

SERVER = "https://127.0.0.1:6443"


def _load(path) -> client.Configuration:
    conf = client.Configuration()
    config.load_kube_config(str(path), client_configuration=conf)
    return conf


@pytest.fixture
def ca(tmp_path):
    path = tmp_path / "ca.crt"
    path.write_text("not read until a connection is made\n")
    return path


def test_a_token_kubeconfig_authenticates_with_the_token_only(tmp_path, ca):
    path = write_kubeconfig(tmp_path / "kc", SERVER, ca, {"token": "abc"})
    conf = _load(path)
    assert conf.host == SERVER and conf.ssl_ca_cert == str(ca)
    assert list(conf.api_key.values()) == ["Bearer abc"]
    assert not conf.cert_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_pod_kubeconfig_reads_its_token_file_and_namespace(tmp_path, ca):
    token = tmp_path / "token"
    token.write_text("from-the-file")
    path = write_kubeconfig(
        tmp_path / "kc", SERVER, ca, {"tokenFile": str(token)}, user="pod", namespace="kafka"
    )
    assert list(_load(path).api_key.values()) == ["Bearer from-the-file"]
    _, context = config.list_kube_config_contexts(str(path))
    assert context["context"] == {"cluster": "kairn-local", "user": "pod", "namespace": "kafka"}


def test_a_component_kubeconfig_carries_its_client_certificate(tmp_path, ca):
    crt, key = tmp_path / "c.crt", tmp_path / "c.key"
    crt.write_text("x")
    key.write_text("x")
    path = write_kubeconfig(
        tmp_path / "kc", SERVER, ca, {"client-certificate": str(crt), "client-key": str(key)}
    )
    conf = _load(path)
    assert (conf.cert_file, conf.key_file) == (str(crt), str(key))
