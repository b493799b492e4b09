"""kairn-roller's scaling parts (agents/scaling/cli.py): the environment the chart's hooks set,
exit codes, Events and the lines on stderr."""

from __future__ import annotations

import argparse

from agents.roller.cli import parser
from agents.scaling import cli
from agents.scaling.plan import replica_counts
from agents.scaling.run import MemoryRecord

from .test_scaling_run import FakeKafka, round_robin


class Platform:
    def __init__(self):
        self.events = []

    def event(self, component, reason, message, warning=False):
        self.events.append((component, reason, message, warning))


class ClosingKafka(FakeKafka):
    closed = False

    def close(self):
        self.closed = True


def args():
    return argparse.Namespace(pod_timeout=5.0)


def quiet(*_, **__):
    pass


def test_without_the_broker_count_the_guard_does_nothing(monkeypatch):
    monkeypatch.delenv("KAIRN_KAFKA_REPLICAS", raising=False)
    assert cli.scale_in(args(), Platform(), quiet, kafka=object()) == 0


def test_a_scale_in_of_brokers_with_replicas_is_refused_with_what_to_do(monkeypatch, capsys):
    monkeypatch.setenv("KAIRN_KAFKA_REPLICAS", "3")
    monkeypatch.setenv("KAIRN_SCALE_IN_DRAIN", "false")
    kafka, platform = ClosingKafka(round_robin("orders", 4, 3, 4), [0, 1, 2, 3]), Platform()
    assert cli.scale_in(args(), platform, quiet, kafka=kafka, record=MemoryRecord()) == 1
    err = capsys.readouterr().err
    assert "kairn-roller: preflight: kafka.replicas: 3 removes broker(s) 3" in err
    assert "orders-1" in err and "kafka.scaleIn.drain=true" in err
    assert platform.events[0][1:2] == ("ScaleInRefused",) and platform.events[0][3]
    assert kafka.closed and not kafka.started


def test_the_drain_value_empties_the_brokers_that_go(monkeypatch):
    monkeypatch.setenv("KAIRN_KAFKA_REPLICAS", "3")
    monkeypatch.setenv("KAIRN_SCALE_IN_DRAIN", "true")
    monkeypatch.setenv("KAIRN_REBALANCE_BATCH_SIZE", "3")
    kafka, platform = ClosingKafka(round_robin("orders", 4, 3, 4), [0, 1, 2, 3]), Platform()
    code = cli.scale_in(args(), platform, quiet, kafka=kafka, record=MemoryRecord(), sleep=quiet)
    assert code == 0
    assert replica_counts(kafka.layout, [3]) == {3: 0}
    assert [e[1] for e in platform.events] == ["BrokersDrained"]


def test_rebalance_moves_onto_the_new_brokers(monkeypatch):
    monkeypatch.setenv("KAIRN_KAFKA_REPLICAS", "4")
    monkeypatch.setenv("KAIRN_REBALANCE_BROKERS", "3")
    kafka, platform = ClosingKafka(round_robin("t", 12, 3, 3), [0, 1, 2, 3]), Platform()
    code = cli.rebalance(args(), platform, quiet, kafka=kafka, record=MemoryRecord(), sleep=quiet)
    assert code == 0
    assert replica_counts(kafka.layout, [0, 1, 2, 3]) == {0: 9, 1: 9, 2: 9, 3: 9}
    assert platform.events[0][1] == "Rebalanced" and "9 replica(s) copied" in platform.events[0][2]


def test_rebalance_fails_when_the_new_brokers_never_register(monkeypatch, capsys):
    monkeypatch.setenv("KAIRN_KAFKA_REPLICAS", "4")
    monkeypatch.setenv("KAIRN_REBALANCE_BROKERS", "3")
    kafka, platform = ClosingKafka(round_robin("t", 3, 3, 3), [0, 1, 2]), Platform()
    a = args()
    a.pod_timeout = 0.0
    assert cli.rebalance(a, platform, quiet, kafka=kafka, record=MemoryRecord(), sleep=quiet) == 1
    assert "not all registered" in capsys.readouterr().err
    assert platform.events[0][1] == "RebalanceFailed"


def test_kairn_roller_has_the_rebalance_command():
    assert parser().parse_args(["rebalance"]).command == "rebalance"
