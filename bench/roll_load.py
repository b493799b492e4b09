"""Steady produce load during a roll: an idempotent acks=all producer, every acknowledgement and
send error recorded with its latency, and a check that every acknowledged message can be read
back. Used by the roller's integration tests and by bench/roll.py."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


@dataclass
class LoadResult:
    sent: int = 0
    acked: dict[str, set[bytes]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, acknowledged sends

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))]


class Load:
    """``rate`` messages a second spread over ``topics`` until ``stop()``."""

    def __init__(self, client: dict, topics: list[str], rate: float = 50.0, tag: str = "m"):
        self.client, self.topics, self.rate, self.tag = client, topics, rate, tag
        self.result = LoadResult(acked={t: set() for t in topics})
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="roll-load", daemon=True)
        self.producer = KafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=30000,
            delivery_timeout_ms=180000,
            max_block_ms=60000,
            **client,
        )

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        i = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            topic = self.topics[i % len(self.topics)]
            value = f"{self.tag}-{i}".encode()
            started = time.monotonic()
            try:
                fut = self.producer.send(topic, value)
                fut.add_callback(self._acked, topic, value, started)
                fut.add_errback(self._failed, value)
            except Exception as e:
                with self._lock:
                    self.result.errors.append(f"{value.decode()}: {type(e).__name__}: {e}")
            with self._lock:
                self.result.sent += 1
            i += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()

    def _acked(self, topic, value, started, _metadata) -> None:
        with self._lock:
            self.result.acked[topic].add(value)
            self.result.latencies.append(time.monotonic() - started)

    def _failed(self, value, exc) -> None:
        with self._lock:
            self.result.errors.append(f"{value.decode()}: {type(exc).__name__}: {exc}")

    def stop(self) -> LoadResult:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(30)
            self.producer.flush(120)
            self.producer.close(timeout=30)
        return self.result

    def acked_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self.result.acked.values())


def read_all(client: dict, topic: str, timeout: float = 120.0) -> set[bytes]:
    """Every value in ``topic``, from the beginning to the end offsets of now."""
    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **client)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        got: set[bytes] = set()
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: not at the end offsets after {timeout}s")
            for records in consumer.poll(timeout_ms=1000).values():
                got.update(r.value for r in records)
        return got
    finally:
        consumer.close()


def lost(client: dict, result: LoadResult) -> dict[str, int]:
    """Acknowledged messages that cannot be read back, per topic."""
    return {t: len(acked - read_all(client, t)) for t, acked in result.acked.items()}
