"""A migration phase is a way from ZooKeeper to KRaft, never a way to install: `helm install`
with one is refused at render time, naming the two modes a release may start in. Between
phases, only what a phase changes restarts."""

from __future__ import annotations

import pytest

from devtools.chart import helm_template


@pytest.mark.parametrize("phase", ["migration", "kraft-brokers"])
def test_installing_in_a_migration_phase_is_refused(phase):
    with pytest.raises(RuntimeError) as failed:
        helm_template("kairn", "kafka", {"kafka": {"metadata": {"mode": phase}}})
    assert (
        f"kafka.metadata.mode={phase} is a migration phase, not a way to install: install with "
        "kafka.metadata.mode=zookeeper (then helm upgrade --set kafka.metadata.mode=migration) "
        "or kafka.metadata.mode=kraft"
    ) in str(failed.value)


def _pod_templates(phase: str) -> dict[str, dict]:
    values = {
        "kafka": {"metadata": {"mode": phase}, "controller": {"replicas": 3}},
        "metrics": {"jmx": {"enabled": True}},
    }
    docs = helm_template("kairn", "kafka", values, upgrade=True)
    return {
        d["metadata"]["name"]: d["spec"]["template"] for d in docs if d["kind"] == "StatefulSet"
    }


@pytest.mark.parametrize(
    "before, after, statefulset",
    [
        # ZooKeeper's objects carry helm.sh/resource-policy only while migrating: an annotation
        # of its ConfigMap, which must not restart the ensemble under a migration or a rollback
        ("zookeeper", "migration", "kairn-zookeeper"),
        ("migration", "kraft-brokers", "kairn-zookeeper"),
        # the dual-write phases do not restart the controllers (no DescribeQuorum to roll them)
        ("migration", "kraft-brokers", "kairn-controller"),
    ],
)
def test_a_phase_change_leaves_the_pods_it_does_not_change(before, after, statefulset):
    assert _pod_templates(before)[statefulset] == _pod_templates(after)[statefulset]
