"""kairn-certs in KRaft mode: the controllers' certificates and the cluster id Secret, created
once and never changed (the storage of every node is formatted with it)."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from agents.pki import issue, kraft
from agents.pki.cli import main
from agents.pki.model import Desired, Secret
from agents.pki.plan import CreateKRaftCluster, plan
from agents.pki.run import PlanError, run
from agents.pki.store import DirSecretStore, MemorySecretStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
D = Desired("kairn", "ns1", zookeeper_replicas=0, controller_replicas=3)


def test_directory_ids_are_derived_from_the_cluster_and_node_id():
    a = kraft.directory_id("MkU3OEVBNTcwNTJENDM2Qg", 100)
    assert a == kraft.directory_id("MkU3OEVBNTcwNTJENDM2Qg", 100)
    assert a != kraft.directory_id("MkU3OEVBNTcwNTJENDM2Qg", 101)
    assert a != kraft.directory_id("AAAAAAAAAAAAAAAAAAAAAA", 100)
    assert len(a) == 22 and not a.startswith("-")
    assert set(a) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_new_cluster_ids_look_like_kafkas():
    ids = {kraft.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_initial_controllers_name_every_voter_with_its_directory_id():
    text = kraft.initial_controllers("MkU3OEVBNTcwNTJENDM2Qg", 3)
    entries = [e.split(":") for e in text.split(",")]
    assert [int(n) for n, _ in entries] == [100, 101, 102]
    assert [d for _, d in entries] == [
        kraft.directory_id("MkU3OEVBNTcwNTJENDM2Qg", n) for n in (100, 101, 102)
    ]


def test_controllers_get_the_brokers_cn_and_their_pod_names():
    (controller,) = [c for c in D.components() if c.name == "controller"]
    assert controller.secret == "kairn-kafka-controllers"
    assert controller.cn == "kairn-kafka"
    assert controller.trusts == ("cluster",)
    dns, ips = controller.pods["kairn-controller-2"]
    assert "kairn-controller-2.kairn-kafka-controllers.ns1.svc.cluster.local" in dns
    assert "localhost" in dns and ips == ("127.0.0.1",)
    assert sorted(controller.pods) == [f"kairn-controller-{i}" for i in range(3)]


def test_zookeeper_mode_has_no_controllers_and_no_cluster_id():
    store = MemorySecretStore()
    run(store, Desired("kairn", "ns1"), NOW)
    assert "kairn-kafka-controllers" not in store.secrets
    assert "kairn-kraft-cluster" not in store.secrets


def test_a_run_creates_the_cluster_id_once_and_then_leaves_it_alone():
    store = MemorySecretStore()
    run(store, D, NOW)
    created = store.secrets["kairn-kraft-cluster"]
    cid = created.data["cluster.id"].decode()
    assert created.data["initial.controllers"].decode() == kraft.initial_controllers(cid, 3)
    controllers = store.secrets["kairn-kafka-controllers"]
    ca = issue.signing_ca(
        store.secrets["kairn-cluster-ca-cert"].data["ca.crt"],
        store.secrets["kairn-cluster-ca"].data["ca.key"],
    )
    cert = issue.load_certs(controllers.data["kairn-controller-0.crt"])[0]
    assert issue.common_name(cert) == "kairn-kafka" and issue.signed_by(cert, ca.cert)
    # more controllers later: new certificates, the same cluster id and initial voters
    p, written = run(store, replace(D, controller_replicas=5), NOW)
    assert "kairn-kraft-cluster" not in written
    assert store.secrets["kairn-kraft-cluster"] == created
    assert "kairn-controller-4.crt" in store.secrets["kairn-kafka-controllers"].data
    assert not any(isinstance(a, CreateKRaftCluster) for a in p.actions)


@pytest.mark.parametrize("key", ["cluster.id", "initial.controllers"])
def test_a_damaged_cluster_id_secret_is_an_error_not_a_new_cluster(key):
    store = MemorySecretStore()
    run(store, D, NOW)
    data = dict(store.secrets["kairn-kraft-cluster"].data)
    del data[key]
    store.secrets["kairn-kraft-cluster"] = Secret(data, resource_version="9")
    with pytest.raises(PlanError, match=f"kairn-kraft-cluster: key {key} is missing"):
        run(store, D, NOW)
    assert store.secrets["kairn-kraft-cluster"].data == data


def test_the_plan_asks_for_the_cluster_only_when_missing():
    p = plan(D, {}, NOW)
    assert [a for a in p.actions if isinstance(a, CreateKRaftCluster)] == [
        CreateKRaftCluster("kairn-kraft-cluster", 3, "missing")
    ]


def test_the_command_takes_the_controller_count(tmp_path, monkeypatch):
    monkeypatch.setenv("KAIRN_CONTROLLER_REPLICAS", "3")
    argv = ["--fullname", "kairn", "--zookeeper-replicas", "0", "--out-dir", str(tmp_path)]
    assert main(argv) == 0
    folder = tmp_path / "kairn-kraft-cluster"
    cid = (folder / "cluster.id").read_text()
    assert (folder / "initial.controllers").read_text() == kraft.initial_controllers(cid, 3)
    assert (tmp_path / "kairn-kafka-controllers" / "kairn-controller-2.p12").is_file()
    assert main(argv) == 0
    assert (folder / "cluster.id").read_text() == cid
    assert DirSecretStore(tmp_path).get("kairn-kraft-cluster") is not None
