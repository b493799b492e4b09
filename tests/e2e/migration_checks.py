"""What test_migration.py watches and checks on its install while it walks the metadata phases:
clients that run from the first test to the last (a producer that times every acknowledgement,
a consumer group, an offline-partitions sampler), what each user may and may not do, what
Kafka holds for the users and topics, and the figures of each phase."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from agents.user_agent.kafka_users import UserAdmin

from .test_install import Install, restart_ended_refresh_loop
from .test_scaling import Producer

DENIED = (TopicAuthorizationFailedError, GroupAuthorizationFailedError)


class TimedProducer(Producer):
    """test_scaling's bounded acks=all idempotent producer that also keeps, for every
    acknowledged message, when it was sent and how long its acknowledgement took."""

    def __init__(self, inst: Install, topic: str):
        super().__init__(inst, topic)
        self.latencies: list[tuple[float, float]] = []  # (sent at, seconds to the ack)

    def send_until_stopped(self) -> None:
        n = 0
        while not self.stop.wait(0.05):
            self.watch_client()
            value, sent = str(n).encode(), time.monotonic()
            future = self.producer.send(self.topic, value)
            future.add_callback(lambda _, v=value, t=sent: self._acked(v, t))
            future.add_errback(lambda e: self.errors.append(repr(e)))
            n += 1

    def _acked(self, value: bytes, sent: float) -> None:
        self.latencies.append((sent, time.monotonic() - sent))
        self.acked.add(value)


class GroupConsumer(threading.Thread):
    """A consumer group reading ``topic`` the whole time (as the agents' identity). A client
    that fails is replaced and the failure counted; so is one that stalls: nothing read for
    ``STALL`` seconds while ``produced()`` grew (its state at that moment is kept), and a
    metadata refresh loop that ended is restarted (restart_ended_refresh_loop)."""

    STALL = 60.0

    def __init__(self, inst: Install, topic: str, group: str, produced=lambda: 0):
        super().__init__(daemon=True)
        self.inst, self.topic, self.group, self.produced = inst, topic, group, produced
        self.seen: set[bytes] = set()
        self.failures: list[str] = []
        self.client_faults: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                consumer = KafkaConsumer(
                    self.topic,
                    bootstrap_servers=self.inst.bootstrap,
                    group_id=self.group,
                    auto_offset_reset="earliest",
                    metadata_max_age_ms=5_000,
                    **self.inst.ssl(),
                )
            except Exception as e:
                self.failures.append(repr(e))
                self.stop.wait(1)
                continue
            try:
                self._read(consumer)
            except Exception as e:
                self.failures.append(repr(e))
            finally:
                consumer.close()

    def _read(self, consumer: KafkaConsumer) -> None:
        last_read, produced_then = time.monotonic(), self.produced()
        while not self.stop.is_set():
            if fault := restart_ended_refresh_loop(consumer._cluster):
                self.client_faults.append(fault)
            records = [r for rs in consumer.poll(timeout_ms=500).values() for r in rs]
            if records:
                self.seen.update(r.value for r in records)
                last_read, produced_then = time.monotonic(), self.produced()
            elif time.monotonic() - last_read > self.STALL and self.produced() > produced_then:
                cluster = consumer._cluster
                age = time.monotonic() - cluster._last_successful_refresh_ms / 1000
                self.client_faults.append(
                    f"stalled {self.STALL:.0f} s while messages were acked: assignment "
                    f"{sorted(tp.partition for tp in consumer.assignment())}, metadata "
                    f"{age:.0f} s old; client replaced"
                )
                return


class OfflineSampler(threading.Thread):
    """Every second, Metadata for the watched topics through the admin client: partitions
    whose leader is -1. A topic is watched once it was seen with leaders (a topic being
    created has none for a moment, which is not an offline partition)."""

    def __init__(self, inst: Install, topics: list[str]):
        super().__init__(daemon=True)
        self.inst = inst
        self.topics = list(topics)
        self.samples = 0
        self.max = 0
        self.offline: list[tuple[float, list[str]]] = []  # samples that found some
        self.errors: list[str] = []
        self.stop = threading.Event()

    def watch(self, topic: str) -> None:
        self.topics.append(topic)

    def run(self) -> None:
        admin = None
        while not self.stop.wait(1.0):
            try:
                admin = admin or self.inst.admin()
                found = [
                    f"{t['name']}-{p['partition_index']}"
                    for t in admin.describe_topics(list(self.topics))
                    for p in t["partitions"]
                    if p["leader_id"] == -1
                ]
            except Exception as e:  # the broker asked is restarting: not a sample
                self.errors.append(repr(e))
                if admin is not None:
                    admin.close()
                admin = None
                continue
            self.samples += 1
            self.max = max(self.max, len(found))
            if found:
                self.offline.append((time.monotonic(), found))
        if admin is not None:
            admin.close()


# ---- users: what each may and may not do ----------------------------------------------------
@dataclass
class User:
    name: str
    login: dict  # kafka-python connection settings of this user
    topic: str  # its own: Write, Read, Describe
    group: str  # its own: Read
    other_topic: str  # no ACL
    other_group: str = "mig-nobody"


def _produce(user: User, topic: str) -> bool:
    producer = KafkaProducer(acks="all", max_block_ms=20_000, **user.login)
    try:
        producer.send(topic, f"from {user.name}".encode()).get(timeout=20)
        return True
    except DENIED:
        return False
    finally:
        producer.close(timeout=5)


def _commit(user: User, topic: str, group: str) -> bool:
    """Reads a record of ``topic`` as a member of ``group`` and commits its offset: Read on
    the topic and on the group."""
    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False, **user.login)
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + 20
        while not consumer.poll(timeout_ms=1000) and time.monotonic() < deadline:
            pass
        consumer.commit()
        return True
    except DENIED:
        return False
    finally:
        consumer.close()


def probes(user: User) -> dict[str, callable]:
    return {
        f"{user.name} writes {user.topic}": lambda: _produce(user, user.topic),
        f"{user.name} writes {user.other_topic}": lambda: _produce(user, user.other_topic),
        f"{user.name} reads {user.topic} in group {user.group}": lambda: _commit(
            user, user.topic, user.group
        ),
        f"{user.name} reads {user.topic} in group {user.other_group}": lambda: _commit(
            user, user.topic, user.other_group
        ),
    }


def access(users: list[User], seconds: float = 60) -> dict[str, bool]:
    """{probe: allowed} for every user. An answer is an authorization error (denied) or
    success (allowed); anything else (a login refused, a broker not answering) is retried
    until ``seconds``, then recorded as an error string."""
    out: dict[str, bool | str] = {}
    for user in users:
        for what, probe in probes(user).items():
            deadline, last = time.monotonic() + seconds, None
            while time.monotonic() < deadline:
                try:
                    out[what] = probe()
                    break
                except Exception as e:
                    last = repr(e)
                    time.sleep(1)
            else:
                out[what] = f"no answer: {last}"
    return out


def kafka_view(inst: Install, users: list[str]) -> dict:
    """What Kafka holds for ``users``: SCRAM mechanisms, ACLs, quotas."""
    ua = UserAdmin({"bootstrap_servers": [inst.bootstrap], **inst.ssl()})
    try:
        acls = ua.describe_acls()
        return {
            "scram": {u: ua.describe_scram([u]).get(u, []) for u in users},
            "acls": {u: sorted(acls.get(f"User:{u}", set())) for u in users},
            "quotas": {u: ua.describe_quotas([u]).get(u, {}) for u in users},
        }
    finally:
        ua.close()


def topic_configs(inst: Install, topics: list[str]) -> dict[str, dict[str, str]]:
    """The dynamic (per-topic) configs of ``topics``."""
    admin = inst.admin()
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics], config_filter="all"
        )
    finally:
        admin.close()
    return {
        t: {
            n: e.get("value")
            for n, e in configs.items()
            if str(e.get("config_source", "")).startswith("DYNAMIC_TOPIC")
        }
        for t, configs in described.get("topic", {}).items()
    }


# ---- figures --------------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    started: float
    ended: float = 0.0
    ok: bool = False
    acked: int = 0
    consumed: int = 0
    note: str = ""


@dataclass
class Figures:
    steps: list[Step] = field(default_factory=list)

    def table(self, producer: TimedProducer) -> str:
        rows = [
            f"{'step':44} {'s':>7} {'p99 ms':>8} {'max ms':>8} {'acked':>7} {'consumed':>8}  note"
        ]
        for s in self.steps:
            lat = sorted(x for t, x in list(producer.latencies) if s.started <= t <= s.ended)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
            top = lat[-1] * 1000 if lat else float("nan")
            rows.append(
                f"{s.name:44} {s.ended - s.started:7.1f} {p99:8.0f} {top:8.0f} {s.acked:7d} "
                f"{s.consumed:8d}  {'ok' if s.ok else 'FAILED'} {s.note}"
            )
        return "\n".join(rows)
