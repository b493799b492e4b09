"""kairn-roller's Kubernetes adapter against a real API server and StatefulSet controller (kwok
makes the pods Ready): revisions, OnDelete recreation on the updateRevision, Events, renewal
marks, controller revisions, the Kafka configuration file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from kubernetes import client

from agents.roller import plan
from agents.roller.kube import KubePlatform
from agents.roller.model import KAFKA, ZOOKEEPER

from .helpers import wait_for

LABELS = {"app.kubernetes.io/instance": "kairn", "app.kubernetes.io/component": "kafka"}


def _statefulset(checksum: str, image: str = "registry.invalid/kafka:3.9.1"):
    return client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="kairn-kafka"),
        spec=client.V1StatefulSetSpec(
            replicas=3,
            service_name="kairn-kafka-brokers",
            pod_management_policy="Parallel",
            update_strategy=client.V1StatefulSetUpdateStrategy(type="OnDelete"),
            selector=client.V1LabelSelector(match_labels=LABELS),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(
                    labels=LABELS, annotations={"checksum/config": checksum}
                ),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="kafka",
                            image=image,
                            resources=client.V1ResourceRequirements(
                                requests={"cpu": "100m", "memory": "64Mi"}
                            ),
                        )
                    ]
                ),
            ),
        ),
    )


def _ready(kp: KubePlatform, n: int = 3):
    return lambda: (pods := kp.pods(KAFKA)) and len(pods) == n and all(p.ready for p in pods)


def test_kube_adapter_revisions_delete_and_events(api, core, namespace):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_stateful_set(namespace, _statefulset("a"))
    logs = []
    kp = KubePlatform(
        namespace,
        {KAFKA: "kairn-kafka", ZOOKEEPER: "kairn-zookeeper"},
        "kairn",
        api_client=api,
        log=lambda *a, **k: logs.append((a, k)),
    )
    wait_for("3 Ready pods", _ready(kp), timeout=120)
    first = kp.update_revision(KAFKA)
    pods = kp.pods(KAFKA)
    assert [p.name for p in pods] == ["kairn-kafka-0", "kairn-kafka-1", "kairn-kafka-2"]
    assert {p.revision for p in pods} == {first} and kp.replicas(KAFKA) == 3
    assert all(p.running and p.started_at is not None for p in pods)
    assert plan.restarts(pods, first) == []

    # a configuration-only change: only the checksum annotation of the template differs
    apps.patch_namespaced_stateful_set(
        "kairn-kafka",
        namespace,
        {"spec": {"template": {"metadata": {"annotations": {"checksum/config": "b"}}}}},
    )
    second = wait_for(
        "a new updateRevision", lambda: (r := kp.update_revision(KAFKA)) != first and r
    )
    assert kp.config_only(KAFKA, first, second)
    assert [r.pod.name for r in plan.restarts(kp.pods(KAFKA), second)] == [p.name for p in pods]

    # an image change is not configuration-only
    apps.patch_namespaced_stateful_set(
        "kairn-kafka",
        namespace,
        {"spec": {"template": {"spec": {"containers": [
            {"name": "kafka", "image": "registry.invalid/kafka:3.9.2"}]}}}},
    )  # fmt: skip
    third = wait_for("a third revision", lambda: (r := kp.update_revision(KAFKA)) != second and r)
    assert not kp.config_only(KAFKA, second, third)
    assert not kp.config_only(KAFKA, "kairn-kafka-doesnotexist", third)

    # OnDelete: nothing happens until the roller deletes a pod; then the StatefulSet controller
    # recreates it on the updateRevision, with a new UID, and kwok makes it Ready
    assert {p.revision for p in kp.pods(KAFKA)} == {first}
    old = kp.pods(KAFKA)[1]
    kp.delete_pod(KAFKA, old)
    kp.delete_pod(KAFKA, old)  # a second delete of the same pod (by UID) is harmless

    def replaced():
        p = next((p for p in kp.pods(KAFKA) if p.name == old.name), None)
        return p is not None and p.uid != old.uid and p.ready and p.revision == third and p

    new = wait_for("kairn-kafka-1 recreated on the update revision", replaced, timeout=120)
    kp.delete_pod(KAFKA, old)  # the precondition on the old UID protects the new pod
    assert next(p for p in kp.pods(KAFKA) if p.name == old.name).uid == new.uid
    assert [p.revision == third for p in kp.pods(KAFKA)] == [False, True, False]

    kp.event(KAFKA, "Restarting", "kairn-roller restarts kairn-kafka-1: test")
    events = core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=kairn-kafka"
    ).items
    ours = [e for e in events if e.reason == "Restarting"]
    assert len(ours) == 1 and ours[0].involved_object.kind == "StatefulSet"
    assert ours[0].source.component == "kairn-roller" and "kairn-kafka-1" in ours[0].message


def test_kube_adapter_renewal_marks_and_config(api, core, namespace):
    kp = KubePlatform(
        namespace, {KAFKA: "kairn-kafka", ZOOKEEPER: "kairn-zookeeper"}, "kairn", api_client=api
    )
    client.AppsV1Api(api).create_namespaced_stateful_set(namespace, _statefulset("a"))
    wait_for("3 Ready pods", _ready(kp), timeout=120)
    pods = kp.pods(KAFKA)
    assert kp.cert_renewed(KAFKA, pods) == set()  # no Secret yet
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="kairn-kafka-brokers",
                annotations={"kairn.dev/renewed-at": json.dumps({"kairn-kafka-2": later})},
            )
        ),
    )
    assert kp.cert_renewed(KAFKA, pods) == {"kairn-kafka-2"}
    assert [r.pod.name for r in plan.restarts(pods, pods[0].revision, {"kairn-kafka-2"})] == [
        "kairn-kafka-2"
    ]

    assert kp.desired_broker_config(0) is None  # no ConfigMap yet
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="kairn-kafka-config"),
            data={"server.properties": "# kairn\nlog.retention.ms=1000\nnum.io.threads=8\n"},
        ),
    )
    assert kp.desired_broker_config(0) == {"log.retention.ms": "1000", "num.io.threads": "8"}
