"""The rebalancer's loop (agents/scaling/run.py) over an in-memory Kafka: batches, the record
that makes a killed run resumable, other owners' reassignments, the scale-in guard."""

from __future__ import annotations

import pytest

from agents.scaling.kafka import Snapshot
from agents.scaling.plan import leader_counts, replica_counts
from agents.scaling.run import MemoryRecord, Rebalancer, ScalingError, Settings


class FakeKafka:
    """Partitions move ``polls`` ongoing() calls after start(); leaders follow elections."""

    def __init__(self, layout, brokers, polls=2):
        self.layout = dict(layout)
        self.leaders = {k: r[0] for k, r in layout.items()}
        self.brokers = tuple(brokers)
        self.polls = polls
        self.moving: dict = {}  # key -> [target, polls left, owner]
        self.started: list = []
        self.finished: list = []
        self.elected: list = []
        self.throttled: set = set()
        self.rates = False

    def snapshot(self):
        return Snapshot(self.brokers, dict(self.layout), dict(self.leaders))

    def ongoing(self):
        for k, m in list(self.moving.items()):
            m[1] -= 1
            if m[1] < 0 and m[2] == "mine":
                self.layout[k] = m[0]
                del self.moving[k]
        return set(self.moving)

    def start(self, targets, brokers, throttle):
        self.rates = True
        for k, reps in targets.items():
            assert k not in self.moving, "a partition moved twice at once"
            self.moving[k] = [tuple(reps), self.polls, "mine"]
            self.throttled.add(k[0])
            self.started.append(k)
        return {k[0]: None for k in targets}

    def finish(self, topics, brokers):
        self.finished.append((tuple(topics), brokers is not None))
        self.throttled -= set(topics)
        if brokers is not None:
            self.rates = False
        return {t: None for t in topics}

    def elect_preferred(self, keys):
        self.elected += list(keys)
        for k in keys:
            self.leaders[k] = self.layout[k][0]


def round_robin(topic, partitions, rf, brokers):
    return {(topic, p): tuple((p + i) % brokers for i in range(rf)) for p in range(partitions)}


def rebalancer(kafka, record=None, **kw):
    settings = Settings(throttle_bytes=1000, batch_size=4, timeout=600, poll=0)
    for k, v in kw.items():
        setattr(settings, k, v)
    return Rebalancer(kafka, record or MemoryRecord(), settings, lambda *a, **k: None)


def test_a_scale_out_is_moved_in_batches_and_levels_everything():
    kafka = FakeKafka(round_robin("t", 12, 3, 3), [0, 1, 2, 3])
    summary = rebalancer(kafka).run(into=[3])
    assert replica_counts(kafka.layout, [0, 1, 2, 3]) == {0: 9, 1: 9, 2: 9, 3: 9}
    assert leader_counts(kafka.layout, [0, 1, 2, 3]) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert kafka.leaders == {k: r[0] for k, r in kafka.layout.items()}
    assert summary["replicas_copied"] == 9 and summary["batches"] == 3  # 9 partitions, 4 a batch
    assert len(kafka.started) == len(set(kafka.started)) == 9  # each partition moved once
    assert not kafka.throttled and not kafka.rates


def test_a_killed_run_resumes_without_repeating_a_finished_move():
    kafka = FakeKafka(round_robin("t", 12, 3, 3), [0, 1, 2, 3], polls=3)
    record = MemoryRecord()
    calls = {"n": 0}

    def killed(_):
        calls["n"] += 1
        if calls["n"] == 5:  # in the middle of the second batch
            raise KeyboardInterrupt

    first = rebalancer(kafka, record)
    first.sleep = killed
    with pytest.raises(KeyboardInterrupt):
        first.run(into=[3])
    assert record.read() and kafka.moving, "killed with a batch in flight"
    in_flight = set(record.read())
    started_before = list(kafka.started)
    rebalancer(kafka, record).run(into=[3])
    assert not record.read() and not kafka.throttled and not kafka.rates
    assert replica_counts(kafka.layout, [0, 1, 2, 3]) == {0: 9, 1: 9, 2: 9, 3: 9}
    again = set(kafka.started[len(started_before) :]) & in_flight
    assert not again, f"moved again after the restart: {again}"


def test_other_owners_reassignments_are_neither_touched_nor_waited_for():
    kafka = FakeKafka({**round_robin("t", 12, 3, 3), ("theirs", 0): (0, 1, 2)}, [0, 1, 2, 3])
    kafka.moving[("theirs", 0)] = [(0, 1, 3), 10**9, "topic-agent"]  # never finishes
    rebalancer(kafka).run(into=[3])
    assert ("theirs", 0) not in kafka.started
    assert all("theirs" not in topics for topics, _ in kafka.finished)
    assert kafka.moving[("theirs", 0)][2] == "topic-agent"  # still there, not cancelled
    assert kafka.rates, "the brokers' rate stays while the other reassignment runs"


def test_scale_in_without_drain_is_refused_and_nothing_moves():
    kafka = FakeKafka(round_robin("t", 8, 3, 4), [0, 1, 2, 3])
    problems = rebalancer(kafka).scale_in(3, drain=False)
    assert len(problems) == 1 and "broker(s) 3" in problems[0]
    assert not kafka.started


def test_scale_in_with_drain_empties_the_brokers_that_go():
    kafka = FakeKafka(round_robin("t", 8, 3, 4), [0, 1, 2, 3])
    assert rebalancer(kafka).scale_in(3, drain=True) == []
    assert replica_counts(kafka.layout, [3]) == {3: 0}
    assert all(len(r) == 3 for r in kafka.layout.values())
    assert not kafka.throttled and not kafka.rates


def test_scale_in_below_a_replication_factor_is_refused_even_with_drain():
    kafka = FakeKafka(round_robin("t", 4, 3, 3), [0, 1, 2])
    problems = rebalancer(kafka).scale_in(2, drain=True)
    assert "replication factor 3" in problems[0] and not kafka.started


def test_a_batch_that_never_finishes_times_out_with_the_record_kept():
    kafka = FakeKafka(round_robin("t", 6, 1, 1), [0, 1], polls=10**9)
    record = MemoryRecord()
    reb = rebalancer(kafka, record, timeout=0)
    with pytest.raises(ScalingError, match="timed out"):
        reb.run()
    assert record.read()


def test_a_topic_another_owner_started_moving_after_the_batch_keeps_its_throttles():
    # the batch of t ended; before its clean-up the topic agent started moving t-5: t's
    # throttles are the topic agent's now (its finish removes them), the record is cleared
    kafka = FakeKafka(round_robin("t", 6, 3, 4), [0, 1, 2, 3])
    kafka.throttled, kafka.rates = {"t", "u"}, True
    kafka.moving[("t", 5)] = [(0, 1, 3), 99, "other"]
    record = MemoryRecord()
    record.write([("t", 1), ("u", 0)])
    rebalancer(kafka, record)._clean_up(record.read())
    assert kafka.finished == [(("u",), False)]  # u only, and not the brokers' rates
    assert kafka.throttled == {"t"} and kafka.rates
    assert record.read() == []
