"""A volume provisioner for the local control plane, in the role a cluster's default storage
(kind's local-path provisioner, a cloud disk driver) plays: for every claim of the
`standard` StorageClass it creates a PersistentVolume reserved for that claim; the real
PersistentVolume controller then binds the two. Nothing is written to disk: pods run under
kwok and never mount anything. Released volumes are deleted (reclaim policy Delete).

    python -m devtools.kube.provisioner --kubeconfig FILE --run-dir DIR
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from kubernetes import client, config, watch

PROVISIONER = "kairn.dev/local-volume"
STORAGE_CLASS = "standard"
log = logging.getLogger("provisioner")


def ensure_storage_class(storage: client.StorageV1Api) -> None:
    sc = client.V1StorageClass(
        metadata=client.V1ObjectMeta(
            name=STORAGE_CLASS, annotations={"storageclass.kubernetes.io/is-default-class": "true"}
        ),
        provisioner=PROVISIONER,
        reclaim_policy="Delete",
        volume_binding_mode="Immediate",
        allow_volume_expansion=True,
    )
    try:
        storage.create_storage_class(sc)
    except client.ApiException as e:
        if e.status != 409:
            raise


def _wants_volume(pvc: client.V1PersistentVolumeClaim) -> bool:
    ann = pvc.metadata.annotations or {}
    return (
        pvc.metadata.deletion_timestamp is None
        and pvc.status.phase == "Pending"
        and not pvc.spec.volume_name
        and ann.get(
            "volume.kubernetes.io/storage-provisioner",
            ann.get("volume.beta.kubernetes.io/storage-provisioner"),
        )
        == PROVISIONER
    )


def provision(core: client.CoreV1Api, pvc: client.V1PersistentVolumeClaim) -> None:
    name = f"pvc-{pvc.metadata.uid}"
    pv = client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(
            name=name, annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER}
        ),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": pvc.spec.resources.requests["storage"]},
            access_modes=pvc.spec.access_modes,
            persistent_volume_reclaim_policy="Delete",
            storage_class_name=pvc.spec.storage_class_name,
            volume_mode=pvc.spec.volume_mode,
            host_path=client.V1HostPathVolumeSource(path=f"/kairn-volumes/{name}"),
            claim_ref=client.V1ObjectReference(
                api_version="v1",
                kind="PersistentVolumeClaim",
                namespace=pvc.metadata.namespace,
                name=pvc.metadata.name,
                uid=pvc.metadata.uid,
            ),
        ),
    )
    try:
        core.create_persistent_volume(pv)
        log.info("provisioned %s for %s/%s", name, pvc.metadata.namespace, pvc.metadata.name)
    except client.ApiException as e:
        if e.status != 409:
            raise


def delete_released(core: client.CoreV1Api, pv: client.V1PersistentVolume) -> None:
    ann = pv.metadata.annotations or {}
    if (
        pv.status.phase == "Released"
        and ann.get("pv.kubernetes.io/provisioned-by") == PROVISIONER
        and pv.spec.persistent_volume_reclaim_policy == "Delete"
    ):
        try:
            core.delete_persistent_volume(pv.metadata.name)
            log.info("deleted released %s", pv.metadata.name)
        except client.ApiException as e:
            if e.status != 404:
                raise


def run(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    ensure_storage_class(client.StorageV1Api(api))

    def loop(list_fn, handle):
        while True:
            try:
                items = list_fn(_request_timeout=30)
                for obj in items.items:
                    handle(core, obj)
                for ev in watch.Watch().stream(
                    list_fn,
                    resource_version=items.metadata.resource_version,
                    timeout_seconds=300,
                    _request_timeout=330,
                ):
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        handle(core, ev["object"])
            except Exception as e:  # 410, or the API server restarting: list again
                log.info("watch interrupted (%s); listing again", e)
                time.sleep(1)

    def on_pvc(core, pvc):
        if _wants_volume(pvc):
            provision(core, pvc)

    threads = [
        threading.Thread(
            target=loop,
            args=(core.list_persistent_volume_claim_for_all_namespaces, on_pvc),
            daemon=True,
        ),
        threading.Thread(
            target=loop, args=(core.list_persistent_volume, delete_released), daemon=True
        ),
    ]
    for t in threads:
        t.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devtools.kube.provisioner")
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--run-dir", help="the control plane's run folder (identifies the process)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    run(config.new_client_from_config(args.kubeconfig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
