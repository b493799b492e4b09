"""Watch semantics of the real API server: events in order, bookmarks when asked for, and
410 Gone for a resourceVersion whose history is gone (etcd compacted, watch cache rebuilt)."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, watch

from devtools.kube import ControlPlaneError
from tests.e2e.helpers import wait_for


def _watch_events(core, namespace, resource_version, out, stop_after, ready):
    w = watch.Watch()
    for ev in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=resource_version,
        allow_watch_bookmarks=True,
        field_selector="metadata.name=w",
        timeout_seconds=60,
        _request_timeout=90,
    ):
        out.append(ev)
        ready.set()
        if sum(1 for e in out if e["type"] != "BOOKMARK") >= stop_after:
            w.stop()


def test_watch_delivers_added_modified_deleted(core, namespace):
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    events: list = []
    ready = threading.Event()
    t = threading.Thread(
        target=_watch_events, args=(core, namespace, rv, events, 3, ready), daemon=True
    )
    t.start()
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="w", labels={"kairn.dev/type": "topic"}),
            data={"spec": "partitions: 1"},
        ),
    )
    core.patch_namespaced_config_map("w", namespace, {"data": {"spec": "partitions: 2"}})
    core.delete_namespaced_config_map("w", namespace)
    t.join(timeout=70)
    assert not t.is_alive()
    seen = [(e["type"], e["object"].metadata.name) for e in events if e["type"] != "BOOKMARK"]
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    versions = [
        int(e["object"].metadata.resource_version) for e in events if e["type"] != "BOOKMARK"
    ]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_label_selector_watch_sees_only_matching(core, namespace):
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other"))
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="mine", labels={"kairn.dev/cluster": "c1"})
        ),
    )
    w = watch.Watch()
    names = []
    for ev in w.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        label_selector="kairn.dev/cluster=c1",
        timeout_seconds=30,
        _request_timeout=60,
    ):
        names.append(ev["object"].metadata.name)
        w.stop()
    assert names == ["mine"]


def test_watch_from_compacted_revision_is_gone(kube, core, namespace):
    """After etcd compacts its history and the API server's watch cache is rebuilt (as on a
    restart or an upgrade), resuming a watch from the old resourceVersion answers 410 Gone;
    a client has to list again."""
    cm = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="before"))
    )
    old_rv = cm.metadata.resource_version
    for i in range(5):
        core.patch_namespaced_config_map("before", namespace, {"data": {"i": str(i)}})
    compacted = kube.compact_etcd()
    assert compacted > int(old_rv)
    # Reading an old revision straight from etcd is refused now.
    with pytest.raises(ControlPlaneError, match="required revision has been compacted"):
        kube.admin_api.etcd("/v3/kv/range", {"key": "AA==", "revision": str(int(old_rv))})
    kube.restart_apiserver()

    with pytest.raises(client.ApiException) as e:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=old_rv,
            timeout_seconds=10,
            _request_timeout=30,
        ):
            pass
    assert e.value.status == 410
    # A list at the exact old revision is gone too; a fresh list works and a watch from
    # its resourceVersion carries on.
    with pytest.raises(client.ApiException) as e:
        core.list_namespaced_config_map(
            namespace, resource_version=old_rv, resource_version_match="Exact"
        )
    assert e.value.status == 410
    fresh = core.list_namespaced_config_map(namespace)
    assert [c.metadata.name for c in fresh.items if c.metadata.name == "before"] == ["before"]
    got = []
    w = watch.Watch()
    t = threading.Thread(
        target=lambda: [
            (got.append(ev), w.stop())
            for ev in w.stream(
                core.list_namespaced_config_map,
                namespace,
                resource_version=fresh.metadata.resource_version,
                timeout_seconds=30,
                _request_timeout=60,
            )
        ],
        daemon=True,
    )
    t.start()
    core.patch_namespaced_config_map("before", namespace, {"data": {"i": "after"}})
    t.join(timeout=40)
    assert [(e["type"], e["object"].data) for e in got] == [("MODIFIED", {"i": "after"})]
    # The controllers, the scheduler and kwok reconnect by themselves.
    wait_for("nodes Ready again", kube.nodes_ready, timeout=120)
