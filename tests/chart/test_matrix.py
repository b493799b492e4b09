"""The values matrix (defaults + chart/ci/*.yaml) lints cleanly and renders valid manifests with
Helm 3 and Helm 4, checked offline against the Kubernetes 1.29 and 1.34 schemas (strict: unknown
fields fail). Prometheus-operator kinds, which have no Kubernetes schema, are checked against the
subset of their CRD schema that the chart uses (monitoring_schemas.py)."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest

from tests.chart.helpers import (
    CHART,
    HELMS,
    KUBE_VERSIONS,
    MATRIX,
    NAMESPACE,
    find,
    render,
    run,
    values_args,
)
from tests.chart.monitoring_schemas import SCHEMAS


@pytest.mark.parametrize("case", MATRIX)
@pytest.mark.parametrize("helm", sorted(HELMS))
def test_lint_strict_is_clean(helm, case):
    proc = run([HELMS[helm], "lint", "--strict", CHART, *values_args(case)])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


@pytest.mark.parametrize("case", MATRIX)
@pytest.mark.parametrize("helm", sorted(HELMS))
def test_manifests_are_valid(helm, case):
    docs = render(helm, case)
    assert len(docs) > 20
    for doc in docs:
        group = doc["apiVersion"].split("/")[0]
        if group == "monitoring.coreos.com":
            jsonschema.validate(doc, SCHEMAS[doc["kind"]])
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("case", MATRIX)
def test_helm3_and_helm4_render_the_same(case):
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(render("helm3", case), key=key) == sorted(render("helm4", case), key=key)


def test_strict_validation_catches_unknown_fields():
    sts = copy.deepcopy(find(render("helm3", "default"), "StatefulSet", "kairn-kafka"))
    sts["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, KUBE_VERSIONS[0], strict=True)
    rule = copy.deepcopy(find(render("helm3", "metrics"), "PrometheusRule", "kairn"))
    rule["spec"]["groups"][0]["rules"][0]["fo"] = "5m"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, SCHEMAS["PrometheusRule"])


@pytest.mark.parametrize(
    ("case", "kafka", "zookeeper", "rf", "min_isr"),
    [
        ("default", 3, 3, 3, 2),
        ("single-node", 1, 1, 1, 1),
        ("five-brokers", 5, 5, 3, 2),
    ],
)
def test_matrix_shapes(case, kafka, zookeeper, rf, min_isr):
    docs = render("helm3", case)
    assert find(docs, "StatefulSet", "kairn-kafka")["spec"]["replicas"] == kafka
    assert find(docs, "StatefulSet", "kairn-zookeeper")["spec"]["replicas"] == zookeeper
    props = find(docs, "ConfigMap", "kairn-kafka-config")["data"]["server.properties"]
    assert f"\ndefault.replication.factor={rf}\n" in props
    assert f"\nmin.insync.replicas={min_isr}\n" in props


def test_single_node_is_ephemeral():
    docs = render("helm3", "single-node")
    for name in ("kairn-kafka", "kairn-zookeeper"):
        sts = find(docs, "StatefulSet", name)
        assert "volumeClaimTemplates" not in sts["spec"]
        volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
        assert "emptyDir" in volumes["data"]


def test_optional_parts_follow_their_flags():
    kinds = lambda case: {d["kind"] for d in render("helm3", case)}  # noqa: E731
    assert "NetworkPolicy" in kinds("default")
    assert "NetworkPolicy" not in kinds("no-netpol")
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds("metrics")
    assert not {"ServiceMonitor", "PrometheusRule"} & kinds("default")
    external = [
        d for d in render("helm3", "external") if d["metadata"]["name"].endswith("-external")
    ]
    assert [d["spec"]["ports"][0]["nodePort"] for d in external] == [32090, 32091, 32092]
    images = {
        c["image"]
        for d in render("helm3", "no-netpol")
        if d["kind"] in {"StatefulSet", "Deployment", "Job"}
        for c in d["spec"]["template"]["spec"].get("containers", [])
    }
    assert images and all(i.startswith("registry.example.com/") for i in images)


def test_the_tenants_case_reaches_the_tenant_namespaces():
    """chart/ci/tenants.yaml: the agents' Role and RoleBinding in each tenant namespace, and
    nothing else outside the release namespace."""
    outside = sorted(
        (d["metadata"]["namespace"], d["kind"], d["metadata"]["name"])
        for d in render("helm3", "tenants")
        if d["metadata"].get("namespace", NAMESPACE) != NAMESPACE
    )
    assert outside == [
        (ns, kind, "kairn-agents")
        for ns in ("payments", "team-a")
        for kind in ("Role", "RoleBinding")
    ]
