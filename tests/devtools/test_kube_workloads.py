"""Controllers, the scheduler and kwok together: StatefulSets get Ready pods on the fake
nodes, Jobs complete, deleting a StatefulSet removes its pods."""

from __future__ import annotations

from kubernetes import client

from tests.e2e.helpers import gone, wait_for


def _pod_template(app: str) -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": app}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name=app,
                    image="registry.invalid/kairn/test:1",
                    resources=client.V1ResourceRequirements(
                        requests={"cpu": "100m", "memory": "64Mi"}
                    ),
                )
            ]
        ),
    )


def test_statefulset_pods_become_ready(api, core, kube, namespace):
    apps = client.AppsV1Api(api)
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1ServiceSpec(
                cluster_ip="None", selector={"app": "db"}, ports=[client.V1ServicePort(port=5432)]
            ),
        ),
    )
    template = _pod_template("db")
    template.spec.affinity = client.V1Affinity(
        pod_anti_affinity=client.V1PodAntiAffinity(
            required_during_scheduling_ignored_during_execution=[
                client.V1PodAffinityTerm(
                    label_selector=client.V1LabelSelector(match_labels={"app": "db"}),
                    topology_key="kubernetes.io/hostname",
                )
            ]
        )
    )
    apps.create_namespaced_stateful_set(
        namespace,
        client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1StatefulSetSpec(
                replicas=3,
                service_name="db",
                selector=client.V1LabelSelector(match_labels={"app": "db"}),
                template=template,
            ),
        ),
    )
    sts = wait_for(
        "3 ready replicas",
        lambda: (
            (s := apps.read_namespaced_stateful_set("db", namespace)).status.ready_replicas == 3
            and s
        ),
        timeout=120,
    )
    assert sts.status.current_replicas == 3
    pods = core.list_namespaced_pod(namespace, label_selector="app=db").items
    assert sorted(p.metadata.name for p in pods) == ["db-0", "db-1", "db-2"]
    # The scheduler honoured the anti-affinity: one pod on each fake node.
    assert sorted(p.spec.node_name for p in pods) == sorted(kube.node_names)
    for p in pods:
        assert p.status.phase == "Running"
        assert {c.type: c.status for c in p.status.conditions}["Ready"] == "True"
        assert p.status.pod_ip
    # The endpoints controllers publish the Ready pods behind the headless Service.
    wait_for(
        "3 ready endpoints",
        lambda: (
            sum(
                len([e for e in s.endpoints or [] if e.conditions.ready])
                for s in client.DiscoveryV1Api(api)
                .list_namespaced_endpoint_slice(
                    namespace, label_selector="kubernetes.io/service-name=db"
                )
                .items
            )
            == 3
        ),
    )

    apps.delete_namespaced_stateful_set("db", namespace)
    wait_for(
        "pods of the deleted StatefulSet gone",
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=db").items,
        timeout=120,
    )


def test_job_pod_succeeds(api, core, namespace):
    batch = client.BatchV1Api(api)
    template = _pod_template("once")
    template.spec.restart_policy = "Never"
    batch.create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name="once"),
            spec=client.V1JobSpec(backoff_limit=0, template=template),
        ),
    )
    job = wait_for(
        "job complete",
        lambda: (j := batch.read_namespaced_job("once", namespace)).status.succeeded == 1 and j,
        timeout=120,
    )
    conditions = {c.type: c.status for c in job.status.conditions}
    assert conditions.get("Complete") == "True"
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=once").items
    assert [p.status.phase for p in pods] == ["Succeeded"]
    # Deleting the Job with background propagation lets the garbage collector take its pod.
    batch.delete_namespaced_job("once", namespace, propagation_policy="Background")
    wait_for(
        "job pod collected",
        lambda: not core.list_namespaced_pod(namespace, label_selector="job-name=once").items,
    )
    assert gone(lambda: batch.read_namespaced_job("once", namespace))


def test_namespace_deletion_removes_its_objects(core):
    name = "doomed"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
    )
    core.delete_namespace(name)
    # The namespace controller empties the namespace, then removes its finalizer.
    wait_for("namespace gone", lambda: gone(lambda: core.read_namespace(name)), timeout=120)
