"""The migration's znode adapter against the real ZooKeeper ensemble (mutual TLS through the
sidecars): what the revert reads, writes and deletes. A scratch znode stands in for
/controller_epoch, whose version the live ZooKeeper controller of the shared cluster checks."""

from __future__ import annotations

import uuid

import pytest

from agents.migration import signals
from agents.migration.observe import Znodes
from tests.integration.test_roller import tls

pytestmark = pytest.mark.kafka


def test_znodes_write_creates_then_sets_and_delete_removes(kafka_cluster):
    c = kafka_cluster
    z = Znodes([(c.address("zookeeper", i), 2181) for i in range(c.zookeepers)], tls(c))
    path = f"/kairn-test-{uuid.uuid4().hex[:8]}"
    assert z.read(path) is None
    z.write(path, b"4")  # absent: created
    assert z.read(path) == b"4"
    z.write(path, b"7")  # present: set
    assert z.read_many(path, "/controller")[path] == b"7"
    assert z.delete(path) is True
    assert z.delete(path) is False


def test_the_live_controller_epoch_reads_as_an_integer(kafka_cluster):
    c = kafka_cluster
    z = Znodes([(c.address("zookeeper", i), 2181) for i in range(c.zookeepers)], tls(c))
    read = z.read_many("/controller_epoch", "/controller", "/migration")
    assert int(read["/controller_epoch"]) >= 1
    assert signals.parse_controller(read["/controller"]).names_broker
    # a ZooKeeper-mode cluster with no migration: nothing to raise
    assert (
        signals.controller_epoch_to_write(
            read["/controller_epoch"], read["/migration"], read["/controller"]
        )
        is None
    )
