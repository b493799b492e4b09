"""Cluster DNS of the process-backed node as a block of /etc/hosts (devtools/kube/hosts.py)."""

from __future__ import annotations

from devtools.kube.hosts import HostsFile, dns_entries, render_block, replace_block


def _pod(name, ip, labels, ready=True, subdomain="k-brokers", ns="ns"):
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"hostname": name, "subdomain": subdomain},
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _svc(name, selector, ns="ns"):
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector}}


def test_pods_get_their_stateful_names_and_services_a_ready_pod():
    pods = [
        _pod("k-0", "127.9.9.2", {"app": "kafka"}, ready=False),
        _pod("k-1", "127.9.9.3", {"app": "kafka"}),
    ]
    entries = dns_entries(pods, [_svc("k-bootstrap", {"app": "kafka"})], "cluster.local")
    assert entries["k-0.k-brokers.ns.svc.cluster.local"] == "127.9.9.2"
    assert entries["k-1.k-brokers.ns.svc"] == "127.9.9.3"
    assert entries["k-bootstrap.ns.svc.cluster.local"] == "127.9.9.3"  # the Ready one


def test_a_service_resolves_before_any_pod_is_ready_and_not_without_pods():
    pods = [_pod("k-0", "127.9.9.2", {"app": "kafka"}, ready=False)]
    services = [_svc("k-bootstrap", {"app": "kafka"}), _svc("other", {"app": "none"})]
    entries = dns_entries(pods, services, "cluster.local")
    assert entries["k-bootstrap.ns.svc"] == "127.9.9.2"
    assert not any(name.startswith("other.") for name in entries)


def test_pods_without_an_address_or_of_another_namespace_are_left_out():
    pods = [_pod("k-0", None, {"app": "kafka"}), _pod("x-0", "127.9.9.4", {"app": "kafka"}, ns="b")]
    entries = dns_entries(pods, [_svc("k-bootstrap", {"app": "kafka"})], "cluster.local")
    assert "k-0.k-brokers.ns.svc" not in entries
    assert "k-bootstrap.ns.svc" not in entries
    assert entries["x-0.k-brokers.b.svc"] == "127.9.9.4"


def test_blocks_are_replaced_and_dead_owners_dropped_leaving_other_lines_alone():
    base = "127.0.0.1 localhost\n"
    text = (
        base + render_block({"a.ns.svc": "127.1.1.1"}, 111) + render_block({"b": "127.2.2.2"}, 222)
    )
    out = replace_block(text, render_block({"c": "127.3.3.3"}, 111), 111, alive=lambda p: p == 111)
    assert out.startswith(base)
    assert "127.1.1.1" not in out and "127.2.2.2" not in out  # replaced; owner 222 is gone
    assert out.count("# BEGIN kairn process node") == 1 and "127.3.3.3 c" in out
    assert replace_block(out, "", 111) == base


def test_hosts_file_writes_in_place_only_on_change(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost")
    hosts = HostsFile(path)
    assert hosts.write({"k-0.k.ns.svc": "127.5.5.5"})
    assert not hosts.write({"k-0.k.ns.svc": "127.5.5.5"})
    assert "127.5.5.5 k-0.k.ns.svc" in path.read_text()
    hosts.remove()
    assert path.read_text() == "127.0.0.1 localhost\n"
