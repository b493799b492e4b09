"""UnregisterBroker v0 (KRaft), encoded and decoded by hand, and which removed brokers to
unregister: agents/scaling/unregister.py; the roll hook's step that sends it:
agents/roller/kraft_roll.py."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.roller.kraft_roll import KRaftRoller
from agents.roller.model import KAFKA, KafkaView, PodInfo
from agents.roller.run import RollError, Settings
from agents.scaling import unregister


def test_the_request_is_header_v2_then_the_broker_id():
    frame = unregister.request(3, correlation_id=7, client_id="kr")
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    body = frame[4:]
    # api key 64, version 0, correlation id, client id (INT16 length: header strings are not
    # compact), no tagged fields; BrokerId INT32, no tagged fields
    assert body == (
        struct.pack(">hhih", 64, 0, 7, 2) + b"kr" + b"\x00" + struct.pack(">i", 3) + b"\x00"
    )


def test_a_large_broker_id_and_correlation_id_fit():
    body = unregister.request(2**31 - 1, correlation_id=2**31 - 1, client_id="")[4:]
    assert body[-5:-1] == struct.pack(">i", 2**31 - 1)
    assert body[4:8] == struct.pack(">i", 2**31 - 1)


def test_an_answer_without_error():
    frame = struct.pack(">i", 7) + b"\x00" + struct.pack(">ih", 0, 0) + b"\x00" + b"\x00"
    assert unregister.answer(frame) == unregister.Answer(7, 0, 0, None)


def test_an_answer_with_kafkas_message_and_a_tagged_field_in_the_header():
    message = "Broker 3 not found."
    frame = (
        struct.pack(">i", 9)
        + b"\x01\x05\x02ab"  # one tagged field: tag 5, two bytes
        + struct.pack(">ih", 25, 102)  # BROKER_ID_NOT_REGISTERED
        + bytes([len(message) + 1])
        + message.encode()
        + b"\x00"
    )
    assert unregister.answer(frame) == unregister.Answer(9, 25, 102, message)


def test_varints_round_trip():
    for n in (0, 1, 127, 128, 300, 2**21, 2**31 - 1):
        encoded = unregister._uvarint(n)
        assert unregister._read_uvarint(encoded + b"\xff", 0) == (n, len(encoded))


# ---- which brokers are unregistered (pure) ----------------------------------------------------
def test_only_removed_fenced_brokers_without_a_pod_are_unregistered():
    # replicas 2: brokers 2 and 3 were removed; 3 is down and fenced, 2 still has its pod
    got = unregister.removed(2, {0: False, 1: True, 2: True, 3: True}, pods={0, 1, 2})
    assert got.unregister == (3,)
    assert got.waiting == {2: "the pod of broker 2 still exists"}


def test_a_removed_broker_still_live_is_never_unregistered():
    got = unregister.removed(2, {0: False, 1: False, 2: False}, pods={0, 1})
    assert got.unregister == ()
    assert got.waiting == {2: "broker 2 is not fenced yet"}


def test_a_fenced_broker_the_statefulset_keeps_is_left_alone():
    # broker 1 is down (fenced, no pod) but below replicas: a crash, not a scale-in
    assert unregister.removed(3, {0: False, 1: True, 2: False}, pods={0, 2}) == (
        unregister.Removed()
    )


def test_nothing_removed_nothing_to_do_and_ids_in_order():
    assert unregister.removed(3, {0: False, 1: False, 2: False}, {0, 1, 2}) == unregister.Removed()
    got = unregister.removed(1, {5: True, 2: True, 0: False, 3: True}, {0})
    assert got.unregister == (2, 3, 5) and got.waiting == {}


@given(
    st.integers(0, 6),
    st.dictionaries(st.integers(0, 8), st.booleans(), max_size=9),
    st.sets(st.integers(0, 8)),
)
def test_never_a_broker_the_statefulset_keeps_nor_a_live_one_nor_one_with_a_pod(
    replicas, registered, pods
):
    got = unregister.removed(replicas, registered, pods)
    for b in got.unregister:
        assert b >= replicas and registered[b] and b not in pods
    # every removed broker is either unregistered or waited for, never forgotten
    removed = {b for b in registered if b >= replicas}
    assert set(got.unregister) | set(got.waiting) == removed
    assert not set(got.unregister) & set(got.waiting)


def test_an_unknown_id_counts_as_done_other_errors_do_not():
    assert unregister.done(unregister.Answer(1, 0, 0, None))
    assert unregister.done(unregister.Answer(1, 0, 102, "Broker ID 2 is not registered"))
    assert not unregister.done(unregister.Answer(1, 0, 31, "Cluster authorization failed."))


# ---- the roll hook's last step in KRaft mode, with in-memory stand-ins ------------------------
class Platform:
    def __init__(self, replicas, pods):
        self._replicas, self.existing, self.events = replicas, set(pods), []

    def replicas(self, component):
        return self._replicas

    def pods(self, component):
        return [PodInfo(f"kairn-kafka-{i}", i, f"u{i}", "r", True) for i in sorted(self.existing)]

    def event(self, component, reason, message, warning=False):
        self.events.append((component, reason, warning))


class Kafka:
    def __init__(self, registered):
        self.registered = dict(registered)  # id -> fenced

    def view(self, with_partitions=True):
        fenced = frozenset(b for b, f in self.registered.items() if f)
        return KafkaView(None, frozenset(self.registered), fenced=fenced)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def roller(platform, kafka, answers, timeout=30.0, on_sleep=None):
    clock, lines, sent = Clock(), [], []

    def sleep(s):
        clock.sleep(s)
        if on_sleep:
            on_sleep(clock.now)

    def send(broker):
        sent.append(broker)
        code = answers.get(broker, 0)
        if code in (0, 102):
            kafka.registered.pop(broker, None)
        return unregister.Answer(1, 0, code, None)

    r = KRaftRoller(
        platform,
        kafka,
        None,
        Settings(pod_timeout=timeout),
        lambda msg, **kw: lines.append((msg, kw)),
        sleep=sleep,
        clock=clock,
    )
    r.unregister_broker = send
    return r, sent, lines


def test_the_step_unregisters_the_removed_broker_once_its_pod_is_gone():
    platform = Platform(2, {0, 1, 2})  # pod 2 still terminating
    kafka = Kafka({0: False, 1: False, 2: False})

    def pod_goes(now):
        if now >= 3:
            platform.existing.discard(2)
            kafka.registered[2] = True  # its controlled shutdown ended: fenced

    r, sent, lines = roller(platform, kafka, {}, on_sleep=pod_goes)
    r._unregister_removed()
    assert sent == [2]
    assert kafka.registered == {0: False, 1: False}
    assert platform.events == [(KAFKA, "BrokerUnregistered", False)]
    done = [kw for msg, kw in lines if msg == "removed broker unregistered"]
    assert done == [{"step": "unregister", "broker": 2, "already": False}]
    # run again: nothing left to do, nothing sent
    r._unregister_removed()
    assert sent == [2] and len(platform.events) == 1


def test_a_broker_that_stays_live_is_waited_for_then_left_with_a_warning():
    platform = Platform(2, {0, 1})
    kafka = Kafka({0: False, 1: False, 2: False})  # no pod, yet the controllers count it live
    r, sent, lines = roller(platform, kafka, {}, timeout=10)
    r._unregister_removed()
    assert sent == []
    assert platform.events == [(KAFKA, "BrokerUnregisterSkipped", True)]
    assert lines[-1][1]["why"] == ["broker 2 is not fenced yet"]


def test_an_id_kafka_no_longer_knows_counts_as_done_a_refusal_stops_the_roll():
    platform = Platform(1, {0})
    r, sent, lines = roller(platform, Kafka({0: False, 1: True}), {1: 102})
    r._unregister_removed()
    assert sent == [1] and platform.events == [(KAFKA, "BrokerUnregistered", False)]
    assert lines[-1][1]["already"] is True
    r, sent, _ = roller(platform, Kafka({0: False, 1: True}), {1: 31})
    with pytest.raises(RollError, match="UnregisterBroker 1: error 31"):
        r._unregister_removed()
