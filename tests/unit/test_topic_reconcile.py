"""The topic agent's passes against a Kafka whose reads lag its accepted writes (a KRaft
broker's copy of the metadata log behind the controller's commit, docs/kraft.md): a fake of
the agent's topic adapter, so the reconciler's decisions are seen alone. (The real parts run
in tests/e2e.)"""

from __future__ import annotations

import copy
import json
import threading

import yaml

from agents.common import status as st
from agents.topic_agent.diff import TopicState
from agents.topic_agent.kafka_errors import TOPIC_EXISTS
from agents.topic_agent.kafka_topics import Answer
from agents.topic_agent.reconciler import TopicReconciler

NS = "kafka"
INVALID_PARTITIONS = 37


class LaggingTopics:
    """Kafka's topics; reads show them as they were at the last ``catch_up()``. Counts
    writes; answers as Kafka does a topic that exists or partitions it already has."""

    def __init__(self):
        self.topics: dict[str, TopicState] = {}
        self.seen: dict[str, TopicState] = {}
        self.writes: list[str] = []

    def catch_up(self):
        self.seen = copy.deepcopy(self.topics)

    def describe(self, names, keys):
        return {n: copy.deepcopy(self.seen[n]) for n in names if n in self.seen}, {}

    def create(self, request):
        out = {}
        for name, opts in request.items():
            self.writes.append(f"create {name}")
            if name in self.topics:
                out[name] = Answer(TOPIC_EXISTS, "Topic already exists.")
                continue
            parts = {p: [0, 1, 2] for p in range(opts["num_partitions"])}
            self.topics[name] = TopicState(name, parts, dict(opts["configs"]))
            out[name] = Answer()
        return out

    def not_usable(self, names):
        return {}

    def alter(self, ops):
        for name, changes in ops.items():
            self.writes.append(f"alter {name}")
            for key, (_op, value) in changes.items():
                if value is None:
                    self.topics[name].config.pop(key, None)
                else:
                    self.topics[name].config[key] = value
        return {n: Answer() for n in ops}

    def grow(self, counts):
        out = {}
        for name, count in counts.items():
            self.writes.append(f"grow {name}")
            parts = self.topics[name].partitions
            if count <= len(parts):
                out[name] = Answer(
                    INVALID_PARTITIONS, f"Topic already has {len(parts)} partitions."
                )
                continue
            parts.update({p: [0, 1, 2] for p in range(len(parts), count)})
            out[name] = Answer()
        return out


class Reporter:
    def __init__(self, cms):
        self.cms, self.written = cms, {}

    def report_each(self, items):
        for obj, state, reason, _message, spec_hash, extra in items:
            self.written[obj["metadata"]["name"]] = (state, reason)
            status = {"reason": reason, "specHash": spec_hash, **(extra or {})}
            obj["metadata"].setdefault("annotations", {})[st.STATUS_ANNOTATION] = json.dumps(status)
        return [None] * len(items)

    def forget(self, name):
        self.written.pop(name, None)


def cm(name: str, spec: dict) -> dict:
    return {
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": "1"},
        "data": {"spec": yaml.safe_dump(spec)},
    }


def world(clock):
    cms: dict[str, dict] = {}
    reporter = Reporter(cms)
    rec = TopicReconciler(None, reporter, None, cms.get, lambda t: [], namespace=NS)
    rec.admin = LaggingTopics()
    rec.recent.clock = clock
    return cms, reporter, rec


def results(rec, keys):
    return {k: o.result for k, o in rec.reconcile(keys).items()}


def test_passes_right_after_writes_the_reads_do_not_show_write_nothing_again():
    now = [100.0]
    cms, reporter, rec = world(lambda: now[0])
    kafka = rec.admin
    cms["t"] = cm("t", {"partitions": 2, "replicas": 3, "config": {"retention.ms": "1000"}})
    assert results(rec, ["t"]) == {"t": "ready"}
    assert kafka.writes == ["create t"]

    # the metadata does not show the topic yet: no second CreateTopics (TOPIC_ALREADY_EXISTS
    # would be a Pending that is not true), the status stays Ready
    kafka.writes.clear()
    now[0] += 0.5
    assert results(rec, ["t"]) == {"t": "pending"}
    assert kafka.writes == [] and reporter.written["t"] == (st.READY, "TopicReady")

    # more partitions and another config value; the reads still show the topic as created
    kafka.catch_up()
    cms["t"] = cm("t", {"partitions": 4, "replicas": 3, "config": {"retention.ms": "2000"}})
    assert results(rec, ["t"]) == {"t": "ready"}
    assert kafka.writes == ["alter t", "grow t"]
    kafka.writes.clear()
    now[0] += 0.5
    # two partitions short in the read: no CreatePartitions (INVALID_PARTITIONS would be an
    # Error that is not true)
    assert results(rec, ["t"]) == {"t": "pending"}
    assert kafka.writes == [] and reporter.written["t"] == (st.READY, "TopicReady")

    # the partitions show, the config value not yet: it stands, nothing is written
    kafka.seen["t"].partitions = copy.deepcopy(kafka.topics["t"].partitions)
    assert results(rec, ["t"]) == {"t": "ready"}
    assert kafka.writes == []

    # after the window the read decides again: a value changed in Kafka is set back
    kafka.catch_up()
    kafka.topics["t"].config["retention.ms"] = "5"
    kafka.catch_up()
    now[0] += rec.recent.window
    assert results(rec, ["t"]) == {"t": "ready"}
    assert kafka.writes == ["alter t"] and kafka.topics["t"].config["retention.ms"] == "2000"


def test_a_topic_gone_for_longer_than_the_window_is_created_again():
    now = [100.0]
    cms, _, rec = world(lambda: now[0])
    cms["t"] = cm("t", {"partitions": 1})
    assert results(rec, ["t"]) == {"t": "ready"}
    rec.admin.topics.clear()  # deleted in Kafka by hand
    rec.admin.catch_up()
    now[0] += rec.recent.window
    assert results(rec, ["t"]) == {"t": "ready"}
    assert rec.admin.writes == ["create t", "create t"]


def test_a_chunks_statuses_are_written_while_the_next_chunk_is_created():
    cms, reporter, rec = world(lambda: 100.0)
    kafka, rec.create_chunk = rec.admin, 2
    for i in range(5):
        cms[f"t{i}"] = cm(f"t{i}", {"partitions": 1, "replicas": 3})
    next_chunk = threading.Event()
    create, write = kafka.create, reporter.report_each

    def create_and_tell(request):
        if kafka.writes:  # a chunk after the first
            next_chunk.set()
        return create(request)

    overlapped = []

    def writes_then_one_failure(items):
        if not overlapped:  # the first chunk's statuses: written while the next is created
            overlapped.append(next_chunk.wait(5))
        errors = write(items)
        return [
            RuntimeError("the API server failed") if obj["metadata"]["name"] == "t3" else e
            for (obj, *_), e in zip(items, errors, strict=True)
        ]

    kafka.create, reporter.report_each = create_and_tell, writes_then_one_failure
    out = results(rec, [f"t{i}" for i in range(5)])
    assert overlapped == [True]
    # every chunk's outcome comes back; a status that could not be written is retried
    assert out == {"t0": "ready", "t1": "ready", "t2": "ready", "t3": "retry", "t4": "ready"}
    assert sorted(kafka.topics) == [f"t{i}" for i in range(5)]
