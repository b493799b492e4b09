"""The topic agent's Kafka requests, every per-topic answer read (adapter).

Each write takes a batch and returns ``{topic: Answer}`` with one entry per topic asked
about: Kafka's error code and message for it, or :data:`~.kafka_errors.NO_ANSWER` when the
answer left the topic out (that is never taken for success). Request-level failures (Kafka
unreachable, a timeout) raise, through :class:`KafkaAccess`, which counts every request.

Why DescribeConfigs is sent by hand: kafka-python 3.0.12's ``describe_configs`` drops the
per-resource error code, so a topic it could not describe would look like one without
overrides, and a key an earlier spec set would never be removed. The request and the parsing
of the configs are kafka-python's own; only the error codes are read here as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka.admin import ConfigResource, ConfigResourceType

from agents.common.kafka_admin import KafkaAccess

from .diff import TopicState
from .kafka_errors import NO_ANSWER, UNKNOWN_TOPIC, error_name, parse_alter_result

CHUNK = 500  # topics per request


@dataclass(frozen=True)
class Answer:
    code: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0


def _answers(names, answered: dict[str, Answer]) -> dict[str, Answer]:
    return {n: answered.get(n, Answer(NO_ANSWER)) for n in names}


def _not_usable(topic: dict | None) -> str | None:
    """Why a topic of a metadata answer cannot be used yet (None: every partition has a
    leader)."""
    if topic is None:
        return "not in the brokers' metadata yet"
    if topic.get("error_code"):
        return error_name(topic["error_code"])
    if not topic.get("partitions"):
        return "no partitions yet"
    for p in topic["partitions"]:
        if p.get("error_code") or p.get("leader_id", -1) < 0:
            return f"partition {p['partition_index']} has no leader yet"
    return None


def _chunks(items: list, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


class TopicAdmin:
    def __init__(self, kafka: KafkaAccess, timeout_ms: int = 30000):
        self.kafka, self.timeout_ms = kafka, timeout_ms

    # ---- reads ----------------------------------------------------------------------------
    def describe(
        self, names: list[str], keys: dict[str, set[str]]
    ) -> tuple[dict[str, TopicState], dict[str, Answer]]:
        """Partitions of every topic in ``names`` (one metadata request per chunk) and the
        config overrides of the keys in ``keys[name]`` only (the spec's and those an earlier
        spec set: the others are never changed, so they need not be read).

        Returns (states of the topics that exist, answers of the topics Kafka refused to
        describe). A topic that does not exist is in neither."""
        states: dict[str, TopicState] = {}
        refused: dict[str, Answer] = {}
        for chunk in _chunks(names, CHUNK * 2):
            topics = self.kafka.call("metadata", lambda a, c=chunk: a.describe_topics(c))
            for t in topics:
                code = t.get("error_code", 0)
                if code == UNKNOWN_TOPIC:
                    continue
                if code:
                    refused[t["name"]] = Answer(code, t.get("error_message") or "")
                    continue
                parts = {p["partition_index"]: list(p["replica_nodes"]) for p in t["partitions"]}
                states[t["name"]] = TopicState(
                    t["name"], parts, {}, internal=bool(t.get("is_internal"))
                )
            answered = {t.get("name") for t in topics}
            refused.update({n: Answer(NO_ANSWER) for n in chunk if n not in answered})
        existing = sorted(n for n in states if keys.get(n))
        for chunk in _chunks(existing):
            configs, errors = self._describe_configs(chunk, keys)
            for name in chunk:
                if name in errors:
                    refused[name] = errors[name]
                    del states[name]
                else:
                    states[name].config = configs.get(name, {})
        return states, refused

    def _describe_configs(self, names: list[str], keys: dict[str, set[str]]):
        resources = [ConfigResource(ConfigResourceType.TOPIC, n, sorted(keys[n])) for n in names]

        def send(admin):
            request = admin._describe_configs_request(resources)

            async def call():
                return await admin._manager.send(request)

            response = admin._manager.run(call)
            errors = {
                r.resource_name: Answer(r.error_code, r.error_message or "")
                for r in response.results
                if r.error_code
            }
            parsed = admin._describe_configs_process_responses([response]).get("topic") or {}
            return parsed, errors

        parsed, errors = self.kafka.call("describe_configs", send)
        configs = {
            name: {k: v.get("value") for k, v in entries.items() if v.get("value") is not None}
            for name, entries in parsed.items()
        }
        for n in names:
            if n not in parsed and n not in errors:
                errors[n] = Answer(NO_ANSWER)
        return configs, errors

    def broker_count(self) -> int:
        return len(self.kafka.call("describe_cluster", lambda a: a.describe_cluster())["brokers"])

    def not_usable(self, names: list[str], timeout_ms: int = 15000) -> dict[str, str]:
        """Waits, at most ``timeout_ms``, until every partition of ``names`` has a leader in the
        brokers' metadata; returns the topics that still have none, each with why."""
        deadline = time.monotonic() + timeout_ms / 1000
        pending, reasons, delay = list(names), {}, 0.05
        while pending:
            topics = self.kafka.call("metadata", lambda a, p=pending: a.describe_topics(p))
            by_name = {t.get("name"): t for t in topics}
            reasons = {n: why for n in pending if (why := _not_usable(by_name.get(n)))}
            pending = sorted(reasons)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(delay)  # metadata propagates to the brokers on its own
            delay = min(delay * 2, 1.0)
        return reasons

    # ---- writes ---------------------------------------------------------------------------
    def create(self, request: dict[str, dict]) -> dict[str, Answer]:
        """CreateTopics with {topic: create_topics options}; the broker answers within half
        the client's timeout (topics it has not finished by then are REQUEST_TIMED_OUT)."""
        res = self.kafka.call(
            "create_topics",
            lambda a: a.create_topics(request, timeout_ms=self.timeout_ms // 2, raise_errors=False),
        )
        answered = {
            t["name"]: Answer(t.get("error_code", 0), t.get("error_message") or "")
            for t in res.get("topics", [])
        }
        return _answers(request, answered)

    def alter(self, ops: dict[str, dict]) -> dict[str, Answer]:
        """IncrementalAlterConfigs with {topic: {key: (AlterConfigOp, value)}}."""
        out: dict[str, Answer] = {}
        for chunk in _chunks(sorted(ops)):
            resources = [ConfigResource(ConfigResourceType.TOPIC, n, ops[n]) for n in chunk]
            res = self.kafka.call(
                "incremental_alter_configs",
                lambda a, r=resources: a.alter_configs(r, raise_on_unknown=False, incremental=True),
            )
            answered = {
                n: Answer(*parse_alter_result(result))
                for n, result in (res.get("topic") or {}).items()
            }
            out.update(_answers(chunk, answered))
        return out

    def grow(self, counts: dict[str, int]) -> dict[str, Answer]:
        """CreatePartitions with {topic: new partition count}."""
        out: dict[str, Answer] = {}
        for chunk in _chunks(sorted(counts)):
            request = {n: counts[n] for n in chunk}
            res = self.kafka.call(
                "create_partitions",
                lambda a, r=request: a.create_partitions(
                    r, timeout_ms=self.timeout_ms // 2, raise_errors=False
                ),
            )
            answered = {r.name: Answer(r.error_code, r.error_message or "") for r in res.results}
            out.update(_answers(chunk, answered))
        return out

    def delete(self, names: list[str]) -> dict[str, Answer]:
        """DeleteTopics; a topic that is already gone counts as deleted."""
        out: dict[str, Answer] = {}
        for chunk in _chunks(sorted(names)):
            res = self.kafka.call(
                "delete_topics",
                lambda a, c=chunk: a.delete_topics(
                    c, timeout_ms=self.timeout_ms // 2, raise_errors=False
                ),
            )
            answered = {}
            for t in res.get("topics", []):
                code = t.get("error_code", 0)
                answered[t["name"]] = Answer(
                    0 if code == UNKNOWN_TOPIC else code, t.get("error_message") or ""
                )
            out.update(_answers(chunk, answered))
        return out
