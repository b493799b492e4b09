"""The KRaft cluster's identity, which kairn-certs creates once with the certificates: the
cluster id and the initial voters of the controller quorum (KIP-853), in the Secret
``<fullname>-kraft-cluster``. Pure functions; the Secret is written by run.py like the others.

Keys of the Secret (never changed once written, so storage is formatted for one cluster only):
- ``cluster.id``: a random id in Kafka's Uuid form;
- ``initial.controllers``: ``<node id>:<directory id>,...`` for the controllers of the first
  install (node id 100 + ordinal). The chart's format-storage init container turns it into
  ``kafka-storage format --initial-controllers <id>@<host>:9090:<directory id>,...``.

A directory id is derived from the cluster id and the node id (SHA-256, the first 16 bytes in
Kafka's URL-safe base64 without padding), so anyone holding the cluster id can tell which
directory id a voter has, and no second source of randomness has to be kept in step.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

CONTROLLER_ID_BASE = 100  # node.id of controller 0; brokers keep their ordinal
CLUSTER_ID = "cluster.id"
INITIAL_CONTROLLERS = "initial.controllers"


def _uuid_text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _usable(raw: bytes) -> bool:
    """Kafka reserves the ids whose first 8 bytes are zero (ZERO_UUID, and the directory ids
    UNASSIGNED, LOST, MIGRATING...); an id starting with '-' reads like a command-line option."""
    return any(raw[:8]) and not _uuid_text(raw).startswith("-")


def new_cluster_id() -> str:
    """A random cluster id, as Kafka's Uuid.randomUuid() makes one."""
    while True:
        raw = secrets.token_bytes(16)
        if _usable(raw):
            return _uuid_text(raw)


def directory_id(cluster_id: str, node_id: int) -> str:
    """The metadata log directory id of controller ``node_id`` in cluster ``cluster_id``."""
    attempt = 0
    while True:
        seed = f"kairn-kraft-directory:{cluster_id}:{node_id}:{attempt}".encode()
        raw = hashlib.sha256(seed).digest()[:16]
        if _usable(raw):
            return _uuid_text(raw)
        attempt += 1


def controller_ids(replicas: int) -> list[int]:
    return [CONTROLLER_ID_BASE + i for i in range(replicas)]


def initial_controllers(cluster_id: str, replicas: int) -> str:
    """``initial.controllers`` for a quorum of ``replicas`` controllers."""
    return ",".join(f"{n}:{directory_id(cluster_id, n)}" for n in controller_ids(replicas))


def cluster_data(replicas: int, cluster_id: str | None = None) -> dict[str, bytes]:
    """The Secret's data for a new cluster."""
    cid = cluster_id or new_cluster_id()
    return {
        CLUSTER_ID: cid.encode(),
        INITIAL_CONTROLLERS: initial_controllers(cid, replicas).encode(),
    }
