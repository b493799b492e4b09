"""The topic agent's pure policies: internal topics, Kafka's per-topic answers, replication
factor plans."""

from __future__ import annotations

import kafka.errors as Errors
import pytest
from hypothesis import given
from hypothesis import strategies as s

from agents.common.reassignment import _config_results, moves, replicas_for_factor
from agents.topic_agent.diff import TopicState, plan
from agents.topic_agent.internal import internal_reason
from agents.topic_agent.kafka_errors import NO_ANSWER, parse_alter_result, verdict
from agents.topic_agent.spec import TopicSpec


@pytest.mark.parametrize(
    "name",
    [
        "__consumer_offsets",
        "__transaction_state",
        "__cluster_metadata",
        "__share_group_state",
        "__remote_log_metadata",
        ".hidden",
        "mm2-offsets.east.internal",
        "mm2-offsets-east-internal",
        "connect-offsets",
        "connect-configs",
        "connect-status",
    ],
)
def test_kafkas_own_topics_are_refused_whatever_the_spec(name):
    assert internal_reason(name)
    for state in (None, TopicState(name, {i: [0, 1, 2] for i in range(50)}, {})):
        p = plan(TopicSpec(name, partitions=60, replicas=3, config={"retention.ms": "1"}), state)
        assert p.error[0] == "InternalTopic"
        assert not (p.create or p.partitions or p.config_set or p.config_delete or p.replicas)
    assert "consumer offsets" in internal_reason(name)


@pytest.mark.parametrize(
    "name", ["orders", "orders_internal", "my__topic", "app-store-changelog", "connect-offsets2"]
)
def test_ordinary_names_are_managed(name):
    assert internal_reason(name) is None


def test_a_topic_kafka_reports_internal_is_refused_whatever_its_name():
    state = TopicState("odd", {0: [0]}, {}, internal=True)
    assert plan(TopicSpec("odd", partitions=2), state).error[0] == "InternalTopic"


def test_answers_become_states():
    assert verdict(0, None, "create", "t").action == "ok"
    bad = verdict(Errors.InvalidConfigurationError.errno, "retention.ms: -5", "create", "t")
    assert (bad.action, bad.reason) == ("error", "InvalidConfig")
    assert "retention.ms: -5" in bad.message
    assert verdict(Errors.PolicyViolationError.errno, "no", "create", "t").action == "error"
    assert verdict(Errors.TopicAlreadyExistsError.errno, "", "create", "t").action == "pending"
    assert verdict(Errors.NotControllerError.errno, "", "create", "t").action == "retry"
    silent = verdict(NO_ANSWER, None, "create", "t")
    assert silent.action == "retry" and "did not mention" in silent.message
    denied = verdict(Errors.TopicAuthorizationFailedError.errno, "", "create", "t")
    assert denied.action == "error" and denied.requeue_after


def test_replication_factor_beyond_the_cluster_is_an_error_brokers_down_are_pending():
    rf = Errors.InvalidReplicationFactorError.errno
    too_big = verdict(
        rf, "Replication factor: 5 larger than available brokers: 3.", "create", "t", 3, 3
    )
    assert (too_big.action, too_big.reason) == ("error", "ReplicationFactorTooLarge")
    assert "lower replicas, or add brokers" in too_big.message
    assert too_big.requeue_after == 60  # brokers may be added: looked at again
    unknown_size = verdict(rf, "", "create", "t", 3, None)
    assert unknown_size.action == "error"
    down = verdict(rf, "", "create", "t", 2, 3)
    assert (down.action, down.reason) == ("pending", "NotEnoughBrokers")
    assert "2 of the cluster's 3 brokers are up" in down.message


def test_alter_results_of_kafka_python_are_parsed():
    assert parse_alter_result("OK") == (0, "")
    err = str(Errors.InvalidConfigurationError("Invalid value -5 for retention.ms"))
    assert parse_alter_result(err) == (40, "Invalid value -5 for retention.ms")
    assert parse_alter_result("garbage")[0] == Errors.UnknownError.errno


def test_config_results_count_a_missing_answer_as_not_done():
    res = {"topic": {"a": "OK", "b": "[Error 40] InvalidConfigurationError: x"}}
    got = _config_results(res, "topic", ["a", "b", "c"])
    assert got["a"] is None
    assert "InvalidConfiguration" in got["b"]
    assert "did not mention" in got["c"]
    assert _config_results({}, "broker", ["0"])["0"]


@given(
    s.dictionaries(
        s.integers(0, 20),
        s.lists(s.integers(0, 5), min_size=1, max_size=4, unique=True),
        min_size=1,
        max_size=12,
    ),
    s.integers(1, 6),
    s.lists(s.integers(0, 5), min_size=1, max_size=6, unique=True),
)
def test_replicas_for_factor_reaches_the_factor_and_keeps_leaders(parts, rf, brokers):
    new = replicas_for_factor(parts, rf, brokers)
    if rf > len(brokers):
        assert isinstance(new, str) and f"needs {rf} brokers" in new
        return
    for pid, reps in new.items():
        assert len(reps) == rf and len(set(reps)) == rf
        live = [b for b in parts[pid] if b in brokers]
        if live:
            assert reps[0] == live[0]  # the leader stays where it is
            assert set(reps) >= set(live[:rf])
    changed = moves("t", parts, new)
    assert all(changed[tp] != parts[tp.partition] for tp in changed)
    assert {tp.partition for tp in changed} == {p for p in new if new[p] != parts[p]}


def test_a_topic_is_usable_once_every_partition_has_a_leader():
    from agents.topic_agent.kafka_topics import _not_usable

    led = {"partition_index": 0, "error_code": 0, "leader_id": 1}
    assert _not_usable({"error_code": 0, "partitions": [led]}) is None
    assert "metadata" in _not_usable(None)
    assert _not_usable({"error_code": 5, "partitions": []}) == "LeaderNotAvailableError"
    assert "no partitions" in _not_usable({"error_code": 0, "partitions": []})
    leaderless = {"partition_index": 3, "error_code": 0, "leader_id": -1}
    assert "partition 3" in _not_usable({"error_code": 0, "partitions": [led, leaderless]})
