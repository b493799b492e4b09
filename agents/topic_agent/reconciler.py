"""One reconcile of a batch of topic ConfigMaps.

parse and validate (pure) -> read the topics from Kafka (metadata and DescribeConfigs, per
chunk) -> plan (pure, :mod:`.diff`) -> apply (CreateTopics, IncrementalAlterConfigs,
CreatePartitions, reassignments; each batched, each topic's answer read) -> report (state
label, status annotation, Event).

A spec that cannot be applied gets ``Error`` and nothing in Kafka changes for it: spec errors
and Kafka's internal topics are found before any request; an invalid config fails its
CreateTopics or IncrementalAlterConfigs entry atomically, and partitions are only added once
the config change went through. What Kafka answers for each topic decides its state
(:mod:`.kafka_errors`); a topic the answer leaves out is retried, never taken as done. Kafka
being unreachable raises, and the controller retries the batch with backoff without touching
any status.

Statuses are written as the work goes: after each chunk of created topics, so a person
watching ``kubectl get cm -L kairn.dev/state`` sees topics turn Ready as Kafka creates them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import kafka.errors as Errors
from kafka.admin import AlterConfigOp

from agents.common import status as st
from agents.common.controller import Outcome
from agents.common.kafka_admin import KafkaAccess
from agents.common.logs import get_logger
from agents.common.reassignment import DEFAULT_THROTTLE_BYTES, Reassignments
from agents.common.status import ERROR, PENDING, READY, StatusReporter

from .diff import Plan, TopicState, plan
from .internal import internal_reason
from .kafka_errors import verdict
from .kafka_topics import Answer, TopicAdmin
from .resize import ReplicationFactorChanges
from .spec import SpecError, TopicSpec, parse, raw_hash

FINALIZER = "kairn.dev/topic"
DELETION_POLICY = "kairn.dev/deletion-policy"
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


@dataclass
class Item:
    key: str
    obj: dict
    spec: TopicSpec
    prev: dict  # the status annotation
    state: TopicState | None = None
    plan: Plan | None = None


class Batch:
    """The outcomes and statuses of one batch: statuses are collected and written together
    (``flush``); a key whose status write failed is retried."""

    def __init__(self, reporter: StatusReporter):
        self.reporter = reporter
        self.out: dict[str, Outcome] = {}
        self._pending: list[tuple[str, tuple]] = []

    def report_obj(self, key, obj, state, reason, message, spec_hash, extra=None, outcome=None):
        prev = st.status_of(obj)
        keep = {k: prev[k] for k in ("topicName", "configKeys", "reassigning") if k in prev}
        self._pending.append(
            (key, (obj, state, reason, message, spec_hash, {**keep, **(extra or {})}))
        )
        self.out[key] = outcome or Outcome(
            {READY: "ready", ERROR: "error", PENDING: "pending"}[state]
        )

    def report(self, it: Item, state, reason, message, extra=None, outcome=None) -> None:
        self.report_obj(it.key, it.obj, state, reason, message, it.spec.hash, extra, outcome)

    @staticmethod
    def applied(it: Item) -> dict:
        """What the status records of a topic the spec was applied to."""
        return {"topicName": it.spec.name, "configKeys": sorted(it.spec.config)}

    def retry(self, it: Item) -> None:
        self.out[it.key] = Outcome("retry")

    def flush(self) -> set[str]:
        """Writes the collected statuses; returns the keys whose write failed (retried)."""
        pending, self._pending = self._pending, []
        errors = self.reporter.report_each([item for _, item in pending])
        failed = {key for (key, _), e in zip(pending, errors, strict=True) if e is not None}
        for key in failed:
            self.out[key] = Outcome("retry")
        return failed


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
        throttle_bytes: int = DEFAULT_THROTTLE_BYTES,
        kafka_timeout_ms: int = 30000,
        expected_brokers: int | None = None,
    ):
        self.reporter, self.core = reporter, core
        self.get, self.by_topic = get, by_topic
        self.delete_topics, self.default_replicas = delete_topics, default_replicas
        self.expected_brokers = expected_brokers
        self.admin = TopicAdmin(kafka, kafka_timeout_ms)
        self.resize = ReplicationFactorChanges(
            Reassignments(kafka, kafka_timeout_ms), throttle_bytes
        )
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
        batch = Batch(self.reporter)
        out = batch.out
        items: list[Item] = []
        deletions: list[tuple[str, dict, str | None]] = []
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
                batch.report_obj(
                    key,
                    obj,
                    PENDING,
                    "ReconciliationPaused",
                    'kairn.dev/managed is "false": the topic is left as it is',
                    raw_hash(raw),
                )
                continue
            if isinstance(spec, SpecError):
                batch.report_obj(key, obj, ERROR, spec.reason, spec.message, raw_hash(raw))
                continue
            owner = self.owner_of(spec.name)
            if owner is not None and st.meta(owner)["name"] != key:
                batch.report_obj(
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
                batch.report_obj(
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
            self._sync(items, batch)
        batch.flush()
        return out

    # ---- deletion -------------------------------------------------------------------------
    def _delete(self, deletions, out) -> None:
        names = sorted({t for _, _, t in deletions if t and not internal_reason(t)})
        answers = self.admin.delete(names) if names else {}
        for key, obj, topic in deletions:
            answer = answers.get(topic)
            if answer is not None and not answer.ok:
                log.warning(
                    "topic deletion failed",
                    name=key,
                    topic=topic,
                    error=verdict(answer.code, answer.message, "delete", topic).message,
                )
                out[key] = Outcome("retry")
                continue
            if answer is not None:
                log.info("topic deleted", name=key, topic=topic)
            try:
                st.remove_finalizer(self.core, obj, FINALIZER)
                self.reporter.forget(key)
                out[key] = Outcome("ready")
            except Exception as e:
                log.warning("finalizer removal failed", name=key, error=repr(e))
                out[key] = Outcome("retry")

    # ---- describe, plan, apply ------------------------------------------------------------
    def _sync(self, items: list[Item], batch: Batch) -> None:
        keys: dict[str, set[str]] = {}
        for it in items:
            wanted = keys.setdefault(it.spec.name, set())
            wanted.update(it.spec.config)
            wanted.update(k for k in it.prev.get("configKeys") or [] if isinstance(k, str))
        names = sorted(n for n in keys if not internal_reason(n))
        states, refused = self.admin.describe(names, keys)
        creates, alters, grows, resizing, reassigning = [], [], [], [], []
        for it in items:
            if it.spec.name in refused:
                self._kafka_answer(it, refused[it.spec.name], "describe", batch)
                continue
            it.state = states.get(it.spec.name)
            if it.prev.get("reassigning") and it.state is not None:
                reassigning.append(it)
                continue
            prev_keys = set(it.prev.get("configKeys") or [])
            it.plan = plan(it.spec, it.state, prev_keys, self.default_replicas)
            if it.plan.error:
                batch.report(it, ERROR, *it.plan.error)
            elif it.plan.create:
                creates.append(it)
            elif it.plan.config_set or it.plan.config_delete:
                alters.append(it)
            elif it.plan.partitions:
                grows.append(it)
            elif it.plan.replicas:
                resizing.append(it)
            else:
                self._ready(it, batch)

        self._create(creates, batch)
        for it in self._alter(alters, batch):
            if it.plan.partitions:
                grows.append(it)
            elif it.plan.replicas:
                resizing.append(it)
            else:
                self._ready(it, batch)
        for it in self._grow(grows, batch):
            if it.plan.replicas:
                resizing.append(it)
            else:
                self._ready(it, batch)
        if resizing:
            self.resize.start(resizing, batch)
        if reassigning:
            self.resize.check(reassigning, batch)

    def _ready(self, it: Item, batch: Batch) -> None:
        batch.report(
            it,
            READY,
            "TopicReady",
            f"topic {it.spec.name} matches the spec",
            batch.applied(it),
        )

    def _kafka_answer(self, it: Item, answer: Answer, what: str, batch: Batch) -> bool:
        """Applies Kafka's ``answer`` about ``it``: True when it was a success."""
        if answer.ok:
            return True
        brokers = None
        if answer.code == Errors.InvalidReplicationFactorError.errno:
            brokers = self.admin.broker_count()
        v = verdict(answer.code, answer.message, what, it.spec.name, brokers, self.expected_brokers)
        if v.action == "retry":
            log.warning("Kafka request failed", name=it.key, topic=it.spec.name, error=v.message)
            batch.retry(it)
        else:
            state = ERROR if v.action == "error" else PENDING
            outcome = Outcome("error" if state == ERROR else "pending", v.requeue_after)
            batch.report(it, state, v.reason, v.message, outcome=outcome)
        return False

    def _create(self, creates: list[Item], batch: Batch) -> None:
        i = 0
        while i < len(creates):
            chunk = creates[i : i + self.create_chunk]
            i += len(chunk)
            # a request the client gave up on makes the next ones smaller (a slow or busy
            # controller); the topics of this one are looked at again shortly
            try:
                answers = self.admin.create({it.spec.name: it.plan.create for it in chunk})
            except Errors.RequestTimedOutError:
                self.create_chunk = max(MIN_CREATE_CHUNK, self.create_chunk // 2)
                log.warning(
                    "create_topics timed out", topics=len(chunk), next_chunk=self.create_chunk
                )
                for it in chunk:
                    batch.out[it.key] = Outcome("pending", requeue_after=1.0)
                continue
            self.create_chunk = min(CREATE_CHUNK, self.create_chunk + self.create_chunk // 2 + 1)
            created = []
            for it in chunk:
                if self._kafka_answer(it, answers[it.spec.name], "create", batch):
                    log.info(
                        "topic created",
                        name=it.key,
                        topic=it.spec.name,
                        partitions=it.plan.create["num_partitions"],
                        replicas=it.plan.create["replication_factor"],
                    )
                    created.append(it)
            if created:
                # Ready means usable: every partition has a leader in the brokers' metadata
                try:
                    self.admin.wait_usable([it.spec.name for it in created])
                except Errors.KafkaTimeoutError:
                    for it in created:
                        batch.out[it.key] = Outcome("pending", requeue_after=1.0)
                    created = []
            for it in created:
                self._ready(it, batch)
            batch.flush()

    def _alter(self, alters: list[Item], batch: Batch) -> list[Item]:
        ops = {}
        for it in alters:
            o = {k: (AlterConfigOp.SET, v) for k, v in it.plan.config_set.items()}
            o.update({k: (AlterConfigOp.DELETE, None) for k in it.plan.config_delete})
            ops[it.spec.name] = o
        answers = self.admin.alter(ops) if ops else {}
        ok = []
        for it in alters:
            if self._kafka_answer(it, answers[it.spec.name], "change the config of", batch):
                log.info(
                    "topic config changed",
                    name=it.key,
                    topic=it.spec.name,
                    set=sorted(it.plan.config_set),
                    deleted=it.plan.config_delete,
                )
                ok.append(it)
        return ok

    def _grow(self, grows: list[Item], batch: Batch) -> list[Item]:
        answers = self.admin.grow({it.spec.name: it.plan.partitions for it in grows})
        ok = []
        for it in grows:
            if self._kafka_answer(it, answers[it.spec.name], "add partitions to", batch):
                log.info(
                    "partitions added",
                    name=it.key,
                    topic=it.spec.name,
                    partitions=it.plan.partitions,
                )
                ok.append(it)
        return ok
