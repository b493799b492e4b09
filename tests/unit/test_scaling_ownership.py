"""The topic agent's replication-factor change and the rebalancer side by side: a rebalance of
other topics does not hold an RF change back; one of the same topic does (a new reassignment
would replace the running one)."""

from __future__ import annotations

from types import SimpleNamespace

from agents.topic_agent.resize import ReplicationFactorChanges


class Reassignments:
    def __init__(self, ongoing: set[str]):
        self.busy, self.started = ongoing, {}

    def ongoing(self) -> set[str]:
        return set(self.busy)

    def brokers(self) -> list[int]:
        return [0, 1, 2, 3]

    def start(self, targets, brokers, throttle):
        self.started.update(targets)
        return {tp.topic: None for tp in targets}

    def finish(self, topics, brokers):
        return {t: None for t in topics}


class Batch:
    def __init__(self):
        self.reports = []

    def report(self, it, state, reason, message, extra=None, outcome=None):
        self.reports.append((it.spec.name, state, reason))

    def flush(self):
        return set()

    def retry(self, key):
        pass


def item(name: str) -> SimpleNamespace:
    spec = SimpleNamespace(name=name, replicas=3, config={})
    state = SimpleNamespace(partitions={0: [0, 1], 1: [1, 2]})
    return SimpleNamespace(key=f"ns/{name}", spec=spec, state=state)


def test_a_rebalance_of_other_topics_does_not_hold_an_rf_change_back():
    reassignments, batch = Reassignments({"being.rebalanced"}), Batch()
    ReplicationFactorChanges(reassignments, 1000).start([item("orders")], batch)
    assert ("orders", "Pending", "ReassigningReplicas") in batch.reports
    assert {tp.topic for tp in reassignments.started} == {"orders"}


def test_a_reassignment_of_the_same_topic_makes_it_wait():
    reassignments, batch = Reassignments({"orders"}), Batch()
    ReplicationFactorChanges(reassignments, 1000).start([item("orders"), item("users")], batch)
    assert ("orders", "Pending", "WaitingForReassignment") in batch.reports
    assert {tp.topic for tp in reassignments.started} == {"users"}
