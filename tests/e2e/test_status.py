"""StatusReporter against the real API server: status writes and Events reuse the client's
connections (a response left unread keeps its connection, and every later request would pay
for a new TLS handshake on both sides)."""

from __future__ import annotations

import json

from kubernetes import client

from agents.common import status as st

WORKERS = 4


def connections_made(api: client.ApiClient) -> int:
    pools = api.rest_client.pool_manager.pools
    # (RecentlyUsedContainer refuses plain iteration)
    return sum(pools[k].num_connections for k in pools.keys())  # noqa: SIM118


def test_status_writes_and_events_reuse_connections(kube, namespace):
    api = kube.api_client()
    try:
        core = client.CoreV1Api(api)
        names = [f"cm-{i:02d}" for i in range(40)]
        objs = []
        for name in names:
            cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
            resp = core.create_namespaced_config_map(namespace, cm, _preload_content=False)
            objs.append(json.loads(resp.data))
        reporter = st.StatusReporter(core, namespace, "test-agent", workers=WORKERS)
        try:
            before = connections_made(api)
            errors = reporter.report_many([(obj, st.READY, "Ready", "fine", "h1") for obj in objs])
            assert errors == []
        finally:
            reporter.close()
        made = connections_made(api) - before

        ready = core.list_namespaced_config_map(
            namespace, label_selector=f"{st.STATE_LABEL}={st.READY}"
        ).items
        assert sorted(c.metadata.name for c in ready) == names
        events = core.list_namespaced_event(namespace).items
        assert sorted(e.involved_object.name for e in events) == names
        # 80 requests (a status patch and an Event each) from WORKERS threads
        assert made <= WORKERS, f"{made} new connections for 80 requests"
    finally:
        api.close()
