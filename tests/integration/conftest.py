"""Both metadata modes for the tests whose behaviour should be the same in each: a test that
takes ``cluster`` runs once against the ZooKeeper-mode cluster (``kafka_cluster``) and once
against the KRaft one (``kraft_cluster``), each started once per session (tests/conftest.py);
``mode`` says which. pytest groups the tests by mode, so each cluster is started only when
the first test needs it. KRaft mode comes first: its brokers must register with the
controllers within a minute of starting, which a 2-core machine already busy with the
ZooKeeper-mode cluster and the control plane may not give them (the ZooKeeper harness
waits as long as it takes)."""

from __future__ import annotations

import pytest

from devtools.waiting import wait_until

MODES = ("kraft", "zookeeper")
SETTLE_SECONDS = 15.0


@pytest.fixture(scope="session", params=MODES)
def mode(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def cluster(mode, request):
    return request.getfixturevalue("kraft_cluster" if mode == "kraft" else "kafka_cluster")


def read_back(mode: str, read, expected):
    """Asserts that ``read()`` gives ``expected`` within a few seconds, in both modes: a
    broker's metadata follows the write by a moment (in KRaft mode its copy of the metadata
    log follows the controller's commit, docs/kraft.md; in ZooKeeper mode the controller's
    UpdateMetadata reaches the broker answering after the write was acknowledged)."""
    seen = []

    def same() -> bool:
        seen[:] = [read()]
        return seen[0] == expected

    try:
        wait_until(same, SETTLE_SECONDS, "the write to show in the broker's read")
    except TimeoutError:
        assert seen and seen[0] == expected
    return seen[0]
