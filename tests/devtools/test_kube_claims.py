"""A claim's folder on the process-backed node: kept across pod restarts, emptied when the
claim itself was deleted and made again under the same name (the storage class reclaims with
Delete, as a cluster's dynamic provisioner does)."""

from __future__ import annotations

from functools import partial

from kubernetes import client

from devtools.kube.apisources import ApiSources
from tests.e2e.helpers import gone, wait_for


def _claim(core, namespace: str, name: str) -> str:
    pvc = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
        ),
    )
    return core.create_namespaced_persistent_volume_claim(namespace, pvc).metadata.uid


def test_a_claim_made_again_gets_an_empty_volume(core, namespace, tmp_path):
    pod = {"metadata": {"namespace": namespace, "name": "db-0"}}
    sources = ApiSources(core, pod, tmp_path / "pod", tmp_path / "claims")
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}
    _claim(core, namespace, "data-db-0")

    folder = sources.volume(volume, None, tmp_path / "pod")
    (folder / "meta.properties").write_text("cluster.id=old\n")
    # the same claim again (a pod restart): the data stays
    assert sources.volume(volume, None, tmp_path / "pod") == folder
    assert (folder / "meta.properties").read_text() == "cluster.id=old\n"

    core.delete_namespaced_persistent_volume_claim("data-db-0", namespace)
    read = partial(core.read_namespaced_persistent_volume_claim, "data-db-0", namespace)
    wait_for("the claim deleted", lambda: gone(read), timeout=60)
    _claim(core, namespace, "data-db-0")
    assert sources.volume(volume, None, tmp_path / "pod") == folder
    assert list(folder.iterdir()) == []
