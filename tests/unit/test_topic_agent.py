"""Pure parts of the topic agent: spec parsing and validation, the diff, reassignment plans."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as hs

from agents.common.reassignment import replicas_for_factor as reassign
from agents.topic_agent.diff import TopicState, plan
from agents.topic_agent.reconciler import claimed_topics
from agents.topic_agent.spec import SpecError, TopicSpec, parse, validate_topic_name


# ---- parse ----------------------------------------------------------------------------------
def test_strimzi_spec_pastes_across():
    spec = parse(
        """
        topicName: orders.v1
        partitions: 12
        replicas: 3
        config:
          retention.ms: 604800000
          cleanup.policy: delete
          min.cleanable.dirty.ratio: 0.5
          preallocate: true
          compression.type: producer
        """.replace("\n        ", "\n"),
        "cm-name",
    )
    assert spec == TopicSpec(
        "orders.v1",
        12,
        3,
        {
            "cleanup.policy": "delete",
            "compression.type": "producer",
            "min.cleanable.dirty.ratio": "0.5",
            "preallocate": "true",
            "retention.ms": "604800000",
        },
    )


def test_defaults_name_from_configmap_and_leaves_counts_to_kafka():
    assert parse("", "orders") == TopicSpec("orders")
    assert parse("partitions: 3", "orders") == TopicSpec("orders", 3)
    assert parse("config: {cleanup.policy: [compact, delete]}", "t").config == {
        "cleanup.policy": "compact,delete"
    }


@pytest.mark.parametrize(
    ("text", "reason", "words"),
    [
        (None, "InvalidSpec", "data.spec is missing"),
        ("partitions: [1", "InvalidYAML", "not valid YAML"),
        ("- a\n- b", "InvalidSpec", "must be a mapping"),
        ("partition: 3", "UnknownField", "partition"),
        ("partitions: 3\nreplicas: 3\nfoo: 1\nbar: 2", "UnknownField", "bar, foo"),
        ("partitions: three", "InvalidSpec", "partitions must be an integer"),
        ("partitions: 1.5", "InvalidSpec", "partitions must be an integer"),
        ("partitions: true", "InvalidSpec", "partitions must be an integer"),
        ("partitions: 0", "InvalidSpec", "between 1 and"),
        ("replicas: -1", "InvalidSpec", "between 1 and"),
        ("topicName: 12", "InvalidSpec", "topicName must be a string"),
        ("topicName: 'a b'", "InvalidTopicName", "characters Kafka refuses"),
        ("topicName: '..'", "InvalidTopicName", "not a valid topic name"),
        (f"topicName: {'x' * 250}", "InvalidTopicName", "at most 249"),
        ("config: [a]", "InvalidSpec", "config must be a mapping"),
        ("config: {retention.ms: null}", "InvalidConfig", "has no value"),
        ("config: {retention.ms: {a: 1}}", "InvalidConfig", "not a valid value"),
        ("config: {'Bad Key': 1}", "InvalidConfig", "not a Kafka config name"),
        ("config: {retention.ms: .nan}", "InvalidConfig", "not a number"),
    ],
)
def test_bad_specs_give_actionable_errors(text, reason, words):
    got = parse(text, "cm")
    assert isinstance(got, SpecError), got
    assert got.reason == reason and words in got.message, got


def test_topic_name_rules():
    assert validate_topic_name("orders.v1_x-y") is None
    assert validate_topic_name("") is not None
    assert validate_topic_name("ä") is not None


def test_spec_hash_is_stable_and_sensitive():
    a = parse("partitions: 3\nconfig: {a.b: 1, c.d: 2}", "t")
    b = parse("config: {c.d: 2, a.b: 1}\npartitions: 3", "t")
    c = parse("partitions: 4\nconfig: {a.b: 1, c.d: 2}", "t")
    assert a.hash == b.hash != c.hash


yaml_values = hs.recursive(
    hs.none() | hs.booleans() | hs.integers() | hs.floats() | hs.text(max_size=20),
    lambda children: (
        hs.lists(children, max_size=4) | hs.dictionaries(hs.text(max_size=15), children, max_size=4)
    ),
    max_leaves=20,
)
spec_docs = hs.dictionaries(
    hs.sampled_from(["topicName", "partitions", "replicas", "config", "other"])
    | hs.text(max_size=10),
    yaml_values,
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(hs.one_of(hs.text(max_size=200), spec_docs.map(lambda d: yaml.safe_dump(d))))
def test_any_spec_gives_a_spec_or_an_error(text):
    got = parse(text, "fallback")
    assert isinstance(got, TopicSpec | SpecError)
    # the parser's last-resort handler (an unexpected exception) is never what answers
    assert not (isinstance(got, SpecError) and got.message.startswith("spec could not be read"))
    if isinstance(got, TopicSpec):
        assert validate_topic_name(got.name) is None
        assert all(isinstance(v, str) for v in got.config.values())
        assert got.partitions is None or got.partitions >= 1
        assert isinstance(got.hash, str)


# ---- diff -----------------------------------------------------------------------------------
def state(partitions=3, rf=3, **config):
    return TopicState("t", {p: list(range(rf)) for p in range(partitions)}, dict(config))


def test_create_when_missing():
    p = plan(TopicSpec("t", 3, None, {"a": "1"}), None, default_replicas=2)
    assert p.create == {"num_partitions": 3, "replication_factor": 2, "configs": {"a": "1"}}
    p = plan(TopicSpec("t"), None)
    assert p.create == {"num_partitions": -1, "replication_factor": -1, "configs": {}}


def test_nothing_to_do():
    assert plan(TopicSpec("t", 3, 3, {"a": "1"}), state(a="1")).empty
    assert plan(TopicSpec("t"), state(a="1")).empty  # counts unset: left as they are


def test_grow_partitions_and_refuse_shrinking():
    assert plan(TopicSpec("t", 6), state()).partitions == 6
    p = plan(TopicSpec("t", 2), state())
    assert p.error[0] == "PartitionsDecreased" and "3 partitions" in p.error[1]


def test_config_set_delete_and_undeclared_keys():
    current = state(a="1", b="2", c="3", x="9")  # x: set by someone, never declared
    p = plan(TopicSpec("t", config={"a": "1", "b": "20", "d": "4"}), current, {"a", "b", "c"})
    assert p.config_set == {"b": "20", "d": "4"}
    assert p.config_delete == ["c"]
    # a previously declared key already gone from Kafka needs no DELETE
    assert plan(TopicSpec("t"), state(), {"c"}).config_delete == []


def test_replication_factor_change_is_planned():
    assert plan(TopicSpec("t", replicas=2), state(rf=3)).replicas == 2
    assert plan(TopicSpec("t", replicas=3), state(rf=3)).replicas is None


def test_reassign_grows_keeping_leaders_and_spreading_load():
    parts = {0: [0], 1: [1], 2: [2], 3: [0]}
    new = reassign(parts, 2, [0, 1, 2])
    assert all(new[p][0] == parts[p][0] and len(set(new[p])) == 2 for p in parts)
    load = [sum(b in r for r in new.values()) for b in (0, 1, 2)]
    assert max(load) - min(load) <= 1


def test_reassign_shrinks_from_the_end_and_needs_brokers():
    assert reassign({0: [2, 0, 1]}, 1, [0, 1, 2]) == {0: [2]}
    assert "needs 4 brokers" in reassign({0: [0]}, 4, [0, 1, 2])


def test_claims_by_spec_and_by_created_topic():
    cm = {
        "metadata": {
            "name": "cm",
            "annotations": {"kairn.dev/status": '{"topicName": "old"}'},
        },
        "data": {"spec": "topicName: new"},
    }
    assert claimed_topics(cm) == ["new", "old"]
    cm["data"]["spec"] = "partitions: ["
    assert claimed_topics(cm) == ["old"]
