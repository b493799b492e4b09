"""One reconcile of a batch of topic ConfigMaps.

parse and validate (pure) -> read the topics from Kafka (one metadata request and one
DescribeConfigs request per chunk) -> diff (pure) -> apply (CreateTopics,
IncrementalAlterConfigs, CreatePartitions, AlterPartitionReassignments, each batched) ->
report (state label, status annotation, Event).

A spec that cannot be applied gets ``Error`` and nothing in Kafka changes for it: spec errors
are found before any request; an invalid config fails its CreateTopics or
IncrementalAlterConfigs entry atomically, and partitions are only added once the config
change went through. Kafka being unreachable raises, and the controller retries the batch
with backoff without touching any status.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import kafka.errors as Errors
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
from kafka.structs import TopicPartition

from agents.common import status as st
from agents.common.controller import Outcome
from agents.common.kafka_admin import KafkaAccess
from agents.common.logs import get_logger
from agents.common.status import ERROR, PENDING, READY, StatusReporter

from .diff import Plan, TopicState, plan, reassign
from .spec import SpecError, TopicSpec, parse, raw_hash

FINALIZER = "kairn.dev/topic"
DELETION_POLICY = "kairn.dev/deletion-policy"
THROTTLE_KEYS = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")
BROKER_THROTTLE_KEYS = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
# Kafka error codes that say the request (so the spec) is wrong, not that Kafka is unwell
SPEC_ERROR_CODES = {17, 37, 39, 40, 42, 44, 87}
UNKNOWN_TOPIC, INVALID_RF = 3, 38
CHUNK = 500
CREATE_CHUNK = 200  # topics per CreateTopics request, at most
MIN_CREATE_CHUNK = 10

log = get_logger("kairn.topic-agent")


@lru_cache(maxsize=32768)
def parse_cached(text: str | None, default_name: str) -> TopicSpec | SpecError:
    return parse(text, default_name)


def spec_of(obj: dict) -> TopicSpec | SpecError:
    return parse_cached((obj.get("data") or {}).get("spec"), st.meta(obj)["name"])


def claimed_topics(obj: dict) -> list[str]:
    """The topic names a ConfigMap claims: its spec's and the one it created (status)."""
    names = set()
    spec = spec_of(obj)
    if isinstance(spec, TopicSpec):
        names.add(spec.name)
    previous = st.status_of(obj).get("topicName")
    if isinstance(previous, str):
        names.add(previous)
    return sorted(names)


def _age(obj: dict) -> tuple[str, str]:
    m = st.meta(obj)
    return (m.get("creationTimestamp") or "", m["name"])


def _code_of(result: str) -> int | None:
    m = re.match(r"\[Error (\d+)\]", result or "")
    return int(m.group(1)) if m else None


@dataclass
class Item:
    key: str
    obj: dict
    spec: TopicSpec
    prev: dict  # the status annotation
    state: TopicState | None = None
    plan: Plan | None = None


class TopicReconciler:
    def __init__(
        self,
        kafka: KafkaAccess,
        reporter: StatusReporter,
        core,
        get: Callable[[str], dict | None],
        by_topic: Callable[[str], list[dict]],
        delete_topics: bool = False,
        default_replicas: int | None = None,
        throttle_bytes: int = 50 * 1024 * 1024,
        kafka_timeout_ms: int = 30000,
    ):
        self.kafka, self.reporter, self.core = kafka, reporter, core
        self.get, self.by_topic = get, by_topic
        self.delete_topics, self.default_replicas = delete_topics, default_replicas
        self.throttle_bytes, self.timeout_ms = throttle_bytes, kafka_timeout_ms
        self.create_chunk = 50

    # ---- helpers --------------------------------------------------------------------------
    def deletion_enabled(self, obj: dict) -> bool:
        policy = str(st.annotations(obj).get(DELETION_POLICY, "")).strip().lower()
        if policy == "delete":
            return True
        if policy == "keep":
            return False
        return self.delete_topics

    def owner_of(self, topic: str) -> dict | None:
        claimants = self.by_topic(topic)
        return min(claimants, key=_age) if claimants else None

    # ---- the batch ------------------------------------------------------------------------
    def reconcile(self, keys: list[str]) -> dict[str, Outcome]:
        out: dict[str, Outcome] = {}
        reports: list[tuple] = []
        items: list[Item] = []
        deletions: list[tuple[str, dict, str | None]] = []

        def report(key, obj, state, reason, message, spec_hash, extra=None, outcome=None):
            prev = st.status_of(obj)
            keep = {k: prev[k] for k in ("topicName", "configKeys") if k in prev}
            reports.append((obj, state, reason, message, spec_hash, {**keep, **(extra or {})}))
            out[key] = outcome or Outcome(
                {READY: "ready", ERROR: "error", PENDING: "pending"}[state]
            )

        for key in keys:
            obj = self.get(key)
            if obj is None:
                self.reporter.forget(key)
                out[key] = Outcome("ready")
                continue
            m = st.meta(obj)
            raw = (obj.get("data") or {}).get("spec")
            spec = spec_of(obj)
            prev = st.status_of(obj)
            if m.get("deletionTimestamp"):
                if st.has_finalizer(obj, FINALIZER):
                    topic = prev.get("topicName") or (
                        spec.name if isinstance(spec, TopicSpec) else None
                    )
                    wanted = not st.paused(obj) and self.deletion_enabled(obj) and topic
                    owner = self.owner_of(topic) if topic else None
                    mine = owner is None or st.meta(owner)["name"] == key
                    deletions.append((key, obj, topic if wanted and mine else None))
                else:
                    out[key] = Outcome("ready")
                continue
            if st.paused(obj):
                report(
                    key,
                    obj,
                    PENDING,
                    "ReconciliationPaused",
                    'kairn.dev/managed is "false": the topic is left as it is',
                    raw_hash(raw),
                )
                continue
            if isinstance(spec, SpecError):
                report(key, obj, ERROR, spec.reason, spec.message, raw_hash(raw))
                continue
            owner = self.owner_of(spec.name)
            if owner is not None and st.meta(owner)["name"] != key:
                report(
                    key,
                    obj,
                    ERROR,
                    "TopicConflict",
                    f"topic {spec.name} is already declared by ConfigMap "
                    f"{st.meta(owner)['name']} (older); remove one of the two",
                    spec.hash,
                )
                continue
            created = prev.get("topicName")
            if created and created != spec.name:
                report(
                    key,
                    obj,
                    ERROR,
                    "TopicNameChanged",
                    f"topicName cannot change after the topic was created (it is {created}, "
                    f"the spec says {spec.name}); set it back or declare a new ConfigMap",
                    spec.hash,
                )
                continue
            try:
                if self.deletion_enabled(obj) and not st.has_finalizer(obj, FINALIZER):
                    obj = st.add_finalizer(self.core, obj, FINALIZER) or obj
                elif not self.deletion_enabled(obj) and st.has_finalizer(obj, FINALIZER):
                    obj = st.remove_finalizer(self.core, obj, FINALIZER) or obj
            except Exception as e:
                log.warning("finalizer update failed", name=key, error=repr(e))
                out[key] = Outcome("retry")
                continue
            items.append(Item(key, obj, spec, prev))

        if deletions:
            self._delete(deletions, out)
        if items:
            self._sync(items, out, report)
        errors = self.reporter.report_many(reports)
        if errors:
            for obj, *_ in reports:
                k = st.meta(obj)["name"]
                if out.get(k) and out[k].result == "ready":
                    out[k] = Outcome("retry")
        return out

    # ---- deletion -------------------------------------------------------------------------
    def _delete(self, deletions, out) -> None:
        names = sorted({t for _, _, t in deletions if t})
        failed: dict[str, str] = {}
        for i in range(0, len(names), CHUNK):
            chunk = names[i : i + CHUNK]
            res = self.kafka.call(
                "delete_topics",
                lambda a, c=chunk: a.delete_topics(
                    c, timeout_ms=self.timeout_ms // 2, raise_errors=False
                ),
            )
            for t in res.get("topics", []):
                code = t.get("error_code", 0)
                if code not in (0, UNKNOWN_TOPIC):
                    failed[t["name"]] = (
                        f"{Errors.for_code(code).__name__}: {t.get('error_message')}"
                    )
        for key, obj, topic in deletions:
            if topic in failed:
                log.warning("topic deletion failed", name=key, topic=topic, error=failed[topic])
                out[key] = Outcome("retry")
                continue
            if topic:
                log.info("topic deleted", name=key, topic=topic)
            try:
                st.remove_finalizer(self.core, obj, FINALIZER)
                self.reporter.forget(key)
                out[key] = Outcome("ready")
            except Exception as e:
                log.warning("finalizer removal failed", name=key, error=repr(e))
                out[key] = Outcome("retry")

    # ---- describe, diff, apply ------------------------------------------------------------
    def _describe(
        self, names: list[str], keys: dict[str, set[str]]
    ) -> tuple[dict[str, TopicState], dict[str, str]]:
        """Partitions of every topic (one metadata request per chunk) and, per topic, the
        config keys in ``keys`` only (the spec's and those an earlier spec set): the others
        are never changed, so they need not be read; topics without such keys cost nothing."""
        states: dict[str, TopicState] = {}
        invalid: dict[str, str] = {}
        for i in range(0, len(names), CHUNK * 2):
            chunk = names[i : i + CHUNK * 2]
            topics = self.kafka.call("metadata", lambda a, c=chunk: a.describe_topics(c))
            for t in topics:
                code = t.get("error_code", 0)
                if code == UNKNOWN_TOPIC:
                    continue
                if code in SPEC_ERROR_CODES:
                    invalid[t["name"]] = (
                        f"Kafka refuses the topic name: {Errors.for_code(code).__name__}"
                    )
                    continue
                if code != 0:
                    raise Errors.for_code(code)(f"describing topic {t['name']}")
                parts = {p["partition_index"]: list(p["replica_nodes"]) for p in t["partitions"]}
                states[t["name"]] = TopicState(t["name"], parts, {})
        existing = sorted(n for n in states if keys.get(n))
        for i in range(0, len(existing), CHUNK):
            chunk = existing[i : i + CHUNK]
            res = self.kafka.call(
                "describe_configs",
                lambda a, c=chunk: a.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, n, sorted(keys[n])) for n in c]
                ),
            )
            for name, configs in (res.get("topic") or {}).items():
                if name in states:
                    states[name].config = {
                        k: v.get("value") for k, v in configs.items() if v.get("value") is not None
                    }
        return states, invalid

    def _sync(self, items: list[Item], out, report) -> None:
        keys: dict[str, set[str]] = {}
        for it in items:
            wanted = keys.setdefault(it.spec.name, set())
            wanted.update(it.spec.config)
            wanted.update(k for k in it.prev.get("configKeys") or [] if isinstance(k, str))
        states, invalid = self._describe(sorted(keys), keys)
        creates, alters, grows, reassigning, resizing = [], [], [], [], []
        for it in items:
            if it.spec.name in invalid:
                report(
                    it.key, it.obj, ERROR, "InvalidTopicName", invalid[it.spec.name], it.spec.hash
                )
                continue
            it.state = states.get(it.spec.name)
            if it.prev.get("reassigning") and it.state is not None:
                reassigning.append(it)
                continue
            prev_keys = set(it.prev.get("configKeys") or [])
            it.plan = plan(it.spec, it.state, prev_keys, self.default_replicas)
            if it.plan.error:
                report(it.key, it.obj, ERROR, *it.plan.error, it.spec.hash)
                continue
            if it.plan.create:
                creates.append(it)
                continue
            if it.plan.config_set or it.plan.config_delete:
                alters.append(it)
            elif it.plan.partitions:
                grows.append(it)
            if it.plan.replicas and not (
                it.plan.config_set or it.plan.config_delete or it.plan.partitions
            ):
                resizing.append(it)
            if it.plan.empty:
                self._ready(it, report)

        done: set[str] = set()
        self._create(creates, report, out, done)
        for it in self._alter(alters, report, out):
            if it.plan.partitions:
                grows.append(it)
            elif it.plan.replicas:
                resizing.append(it)
            else:
                self._ready(it, report)
        for it in self._grow(grows, report, out):
            if it.plan.replicas:
                resizing.append(it)
            else:
                self._ready(it, report)
        if resizing:
            self._start_reassignments(resizing, report, out)
        if reassigning:
            self._check_reassignments(reassigning, report, out)

    def _ready(self, it: Item, report, message: str | None = None) -> None:
        report(
            it.key,
            it.obj,
            READY,
            "TopicReady",
            message or f"topic {it.spec.name} matches the spec",
            it.spec.hash,
            {"topicName": it.spec.name, "configKeys": sorted(it.spec.config)},
        )

    def _kafka_error(self, it: Item, code: int, message: str | None, what: str, report, out):
        name = Errors.for_code(code).__name__
        text = f"Kafka refused to {what} topic {it.spec.name}: {name}: {message or ''}".strip()
        if code in SPEC_ERROR_CODES:
            reason = "InvalidConfig" if code == 40 else "KafkaRefused"
            report(it.key, it.obj, ERROR, reason, text, it.spec.hash)
        elif code == INVALID_RF:
            # too few brokers: wrong spec, or brokers down; say so and try again later
            report(
                it.key,
                it.obj,
                PENDING,
                "NotEnoughBrokers",
                text,
                it.spec.hash,
                outcome=Outcome("retry"),
            )
        else:
            log.warning("Kafka request failed", name=it.key, topic=it.spec.name, error=text)
            out[it.key] = Outcome("retry")

    def _create(self, creates: list[Item], report, out, done) -> None:
        i = 0
        while i < len(creates):
            chunk = creates[i : i + self.create_chunk]
            i += len(chunk)
            request = {it.spec.name: it.plan.create for it in chunk}
            # the broker answers within half the client's timeout: topics it has not finished
            # by then come back as REQUEST_TIMED_OUT and are looked at again shortly. A request
            # the client gave up on makes the next ones smaller (a slow or busy controller).
            try:
                res = self.kafka.call(
                    "create_topics",
                    lambda a, r=request: a.create_topics(
                        r, timeout_ms=self.timeout_ms // 2, raise_errors=False
                    ),
                )
            except Errors.RequestTimedOutError:
                self.create_chunk = max(MIN_CREATE_CHUNK, self.create_chunk // 2)
                log.warning(
                    "create_topics timed out", topics=len(chunk), next_chunk=self.create_chunk
                )
                for it in chunk:
                    out[it.key] = Outcome("pending", requeue_after=1.0)
                continue
            self.create_chunk = min(CREATE_CHUNK, self.create_chunk + self.create_chunk // 2 + 1)
            results = {t["name"]: t for t in res.get("topics", [])}
            created = []
            for it in chunk:
                t = results.get(it.spec.name, {})
                code = t.get("error_code", 0)
                if code == 0:
                    log.info(
                        "topic created",
                        name=it.key,
                        topic=it.spec.name,
                        partitions=it.plan.create["num_partitions"],
                        replicas=it.plan.create["replication_factor"],
                    )
                    created.append(it)
                elif code in (36, 7):  # exists already, or still being created
                    out[it.key] = Outcome("pending", requeue_after=1.0)
                else:
                    self._kafka_error(it, code, t.get("error_message"), "create", report, out)
            if not created:
                continue
            # Ready means usable: every partition has a leader in the brokers' metadata
            try:
                names = [it.spec.name for it in created]
                self.kafka.call(
                    "metadata", lambda a, n=names: a.wait_for_topics(n, timeout_ms=15000)
                )
            except Errors.KafkaTimeoutError:
                for it in created:
                    out[it.key] = Outcome("pending", requeue_after=1.0)
                continue
            for it in created:
                self._ready(it, report)
                done.add(it.key)

    def _alter(self, alters: list[Item], report, out) -> list[Item]:
        ok = []
        for i in range(0, len(alters), CHUNK):
            chunk = alters[i : i + CHUNK]
            resources = []
            for it in chunk:
                ops = {k: (AlterConfigOp.SET, v) for k, v in it.plan.config_set.items()}
                ops.update({k: (AlterConfigOp.DELETE, None) for k in it.plan.config_delete})
                resources.append(ConfigResource(ConfigResourceType.TOPIC, it.spec.name, ops))
            res = self.kafka.call(
                "incremental_alter_configs",
                lambda a, r=resources: a.alter_configs(r, raise_on_unknown=False, incremental=True),
            )
            results = res.get("topic") or {}
            for it in chunk:
                result = results.get(it.spec.name, "OK")
                if result == "OK":
                    log.info(
                        "topic config changed",
                        name=it.key,
                        topic=it.spec.name,
                        set=sorted(it.plan.config_set),
                        deleted=it.plan.config_delete,
                    )
                    ok.append(it)
                else:
                    code = _code_of(result) or -1
                    msg = re.sub(r"^\[Error \d+\] \w+: ?", "", result)
                    self._kafka_error(it, code, msg, "change the config of", report, out)
        return ok

    def _grow(self, grows: list[Item], report, out) -> list[Item]:
        ok = []
        for i in range(0, len(grows), CHUNK):
            chunk = grows[i : i + CHUNK]
            request = {it.spec.name: it.plan.partitions for it in chunk}
            res = self.kafka.call(
                "create_partitions",
                lambda a, r=request: a.create_partitions(
                    r, timeout_ms=self.timeout_ms // 2, raise_errors=False
                ),
            )
            results = {r.name: r for r in res.results}
            for it in chunk:
                r = results.get(it.spec.name)
                code = r.error_code if r is not None else 0
                if code == 0:
                    log.info(
                        "partitions added",
                        name=it.key,
                        topic=it.spec.name,
                        partitions=it.plan.partitions,
                    )
                    ok.append(it)
                else:
                    self._kafka_error(it, code, r.error_message, "add partitions to", report, out)
        return ok

    # ---- replication factor changes -------------------------------------------------------
    def _start_reassignments(self, items: list[Item], report, out) -> None:
        ongoing = self.kafka.call(
            "list_partition_reassignments", lambda a: a.list_partition_reassignments()
        )
        if ongoing:
            for it in items:
                report(
                    it.key,
                    it.obj,
                    PENDING,
                    "WaitingForReassignment",
                    "another partition reassignment is in progress; the replication factor "
                    f"of {it.spec.name} changes after it",
                    it.spec.hash,
                    outcome=Outcome("pending", requeue_after=10),
                )
            return
        brokers = sorted(
            b["broker_id"]
            for b in self.kafka.call("describe_cluster", lambda a: a.describe_cluster())["brokers"]
        )
        targets: dict = {}
        started: list[Item] = []
        for it in items:
            new = reassign(it.state.partitions, it.spec.replicas, brokers)
            if isinstance(new, str):
                report(it.key, it.obj, ERROR, "ReplicationFactorChange", new, it.spec.hash)
                continue
            for pid, reps in new.items():
                if reps != it.state.partitions[pid]:
                    targets[TopicPartition(it.spec.name, pid)] = reps
            started.append(it)
        if not started:
            return
        topics = [
            ConfigResource(
                ConfigResourceType.TOPIC,
                it.spec.name,
                {k: (AlterConfigOp.SET, "*") for k in THROTTLE_KEYS},
            )
            for it in started
        ]
        rate = str(self.throttle_bytes)
        bkr = [
            ConfigResource(
                ConfigResourceType.BROKER,
                str(b),
                {k: (AlterConfigOp.SET, rate) for k in BROKER_THROTTLE_KEYS},
            )
            for b in brokers
        ]
        self.kafka.call(
            "incremental_alter_configs",
            lambda a: a.alter_configs(topics + bkr, raise_on_unknown=False, incremental=True),
        )
        res = self.kafka.call(
            "alter_partition_reassignments",
            lambda a: a.alter_partition_reassignments(targets, timeout_ms=self.timeout_ms),
        )
        failed = {tp.topic: err for tp, err in res.items() if err is not None}
        for it in started:
            if it.spec.name in failed:
                err = failed[it.spec.name]
                report(
                    it.key,
                    it.obj,
                    ERROR,
                    "ReplicationFactorChange",
                    f"Kafka refused the reassignment of {it.spec.name}: {err.__name__}",
                    it.spec.hash,
                )
                continue
            log.info(
                "reassignment started", name=it.key, topic=it.spec.name, replicas=it.spec.replicas
            )
            report(
                it.key,
                it.obj,
                PENDING,
                "ReassigningReplicas",
                f"changing the replication factor of {it.spec.name} to {it.spec.replicas} "
                f"(replication throttled to {self.throttle_bytes} B/s)",
                it.spec.hash,
                {
                    "reassigning": True,
                    "topicName": it.spec.name,
                    "configKeys": sorted(it.spec.config),
                },
                outcome=Outcome("pending", requeue_after=2),
            )

    def _check_reassignments(self, items: list[Item], report, out) -> None:
        ongoing = self.kafka.call(
            "list_partition_reassignments", lambda a: a.list_partition_reassignments()
        )
        busy = {tp.topic for tp in ongoing}
        finished = [it for it in items if it.spec.name not in busy]
        for it in items:
            if it.spec.name in busy:
                report(
                    it.key,
                    it.obj,
                    PENDING,
                    "ReassigningReplicas",
                    f"the replication factor of {it.spec.name} is being changed",
                    it.spec.hash,
                    {"reassigning": True},
                    outcome=Outcome("pending", 2),
                )
        if not finished:
            return
        resources = [
            ConfigResource(
                ConfigResourceType.TOPIC,
                it.spec.name,
                {k: (AlterConfigOp.DELETE, None) for k in THROTTLE_KEYS},
            )
            for it in finished
        ]
        if not ongoing:
            brokers = [
                b["broker_id"]
                for b in self.kafka.call("describe_cluster", lambda a: a.describe_cluster())[
                    "brokers"
                ]
            ]
            resources += [
                ConfigResource(
                    ConfigResourceType.BROKER,
                    str(b),
                    {k: (AlterConfigOp.DELETE, None) for k in BROKER_THROTTLE_KEYS},
                )
                for b in brokers
            ]
        self.kafka.call(
            "incremental_alter_configs",
            lambda a: a.alter_configs(resources, raise_on_unknown=False, incremental=True),
        )
        for it in finished:
            log.info("reassignment finished", name=it.key, topic=it.spec.name)
            # reconcile again at once: the rest of the spec is compared with a fresh state
            report(
                it.key,
                it.obj,
                PENDING,
                "ReassignmentFinished",
                f"replicas of {it.spec.name} moved; throttle removed",
                it.spec.hash,
                {"reassigning": False},
                outcome=Outcome("pending", requeue_after=0.1),
            )
