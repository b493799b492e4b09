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

Reads may lag writes Kafka accepted (a KRaft broker's copy of the metadata log): for a few
seconds after a write, a read that does not show it yet makes the topic wait a moment with
its status as it is, and config values Kafka accepted stand over the read (:mod:`.recent`).
So a pass right after another neither writes again nor reports a stale state.

Statuses are written as the work goes: after each chunk of created topics, so a person
watching ``kubectl get cm -L kairn.dev/state`` sees topics turn Ready as Kafka creates them;
a chunk's statuses are written while the next chunk is created.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import kafka.errors as Errors
from kafka.admin import AlterConfigOp

from agents.common import status as st
from agents.common.controller import Outcome
from agents.common.front import Batch, Entry, Front, oldest_claim
from agents.common.kafka_admin import KafkaAccess
from agents.common.logs import get_logger
from agents.common.reassignment import Reassignments
from agents.common.settings import DEFAULT_THROTTLE_BYTES
from agents.common.spec_base import spec_reader
from agents.common.status import ERROR, PENDING, READY, StatusReporter
from agents.common.tenancy import Tenancy, topic_refusal

from .diff import Plan, TopicState, applied, plan
from .internal import internal_reason
from .kafka_errors import verdict
from .kafka_topics import Answer, TopicAdmin
from .recent import RecentWrites
from .resize import ReplicationFactorChanges
from .spec import TopicSpec, parse

FINALIZER = "kairn.dev/topic"
DELETION_POLICY = "kairn.dev/deletion-policy"
CREATE_CHUNK = 200  # topics per CreateTopics request, at most
MIN_CREATE_CHUNK = 10
READ_BEHIND_WAIT = 0.5  # seconds before a topic whose read lags a write is looked at again
# status keys every report carries on: what was applied, and the reassignment record
KEEP_STATUS = ("topicName", "configKeys", "reassigning")

log = get_logger("kairn.topic-agent")
spec_of = spec_reader(parse)


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
        throttle_bytes: int = DEFAULT_THROTTLE_BYTES,
        kafka_timeout_ms: int = 30000,
        expected_brokers: int | None = None,
        namespace: str | None = None,
        tenancy: Callable[[], Tenancy] | None = None,
    ):
        """``tenancy()``: the tenants as they are now (None: the agent's namespace only)."""
        self.reporter, self.core = reporter, core
        self.tenancy = tenancy or (lambda: Tenancy(namespace or ""))
        self.by_topic = by_topic
        self.delete_topics, self.default_replicas = delete_topics, default_replicas
        self.expected_brokers = expected_brokers
        self.admin = TopicAdmin(kafka, kafka_timeout_ms)
        self.resize = ReplicationFactorChanges(
            Reassignments(kafka, kafka_timeout_ms), throttle_bytes
        )
        self.front = Front(
            noun="topic",
            finalizer=FINALIZER,
            spec_of=spec_of,
            get=get,
            reporter=reporter,
            core=core,
            keep_status=KEEP_STATUS,
            home=namespace,
            log=log,
        )
        self.create_chunk = CREATE_CHUNK  # halved after a timeout, grown back after a success
        # writes the statuses of created topics while the next chunk is created (_create)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="topic-status")
        self.recent = RecentWrites()

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def deletion_enabled(self, obj: dict) -> bool:
        policy = str(st.annotations(obj).get(DELETION_POLICY, "")).strip().lower()
        if policy == "delete":
            return True
        if policy == "keep":
            return False
        return self.delete_topics

    def owner_of(self, topic: str) -> dict | None:
        claimants = self.by_topic(topic)
        return oldest_claim(claimants) if claimants else None

    def _owned_by_other(self, topic: str, e: Entry) -> str | None:
        """``namespace/name`` of the older ConfigMap that owns ``topic``, if not ``e``."""
        owner = self.owner_of(topic)
        if owner is None:
            return None
        m = st.meta(owner)
        if (m.get("namespace") or self.front.home, m["name"]) == (e.namespace, e.name):
            return None
        return f"{m.get('namespace')}/{m['name']}"

    def reconcile(self, keys: list[str]) -> dict[str, Outcome]:
        return self.front.reconcile(keys, refuse=self._refuse, delete=self._delete, sync=self._sync)

    def _refuse(self, e: Entry) -> tuple[str, str] | None:
        refusal = topic_refusal(self.tenancy().tenant_of(e.namespace), e.spec.name)
        if refusal is not None:
            return refusal
        owner = self._owned_by_other(e.spec.name, e)
        if owner is not None:
            return (
                "TopicConflict",
                f"topic {e.spec.name} is already declared by ConfigMap {owner} (older); "
                "remove one of the two",
            )
        created = e.prev.get("topicName")
        if created and created != e.spec.name:
            return (
                "TopicNameChanged",
                f"topicName cannot change after the topic was created (it is {created}, "
                f"the spec says {e.spec.name}); set it back or declare a new ConfigMap",
            )
        return None

    # ---- deletion -------------------------------------------------------------------------
    def _topic_to_delete(self, e: Entry) -> str | None:
        """The topic a deleted ConfigMap takes with it: none unless deletion is enabled, the
        ConfigMap owns the topic, it is not one of Kafka's own and, from a tenant, it is under
        the tenant's prefix."""
        topic = e.prev.get("topicName") or (e.spec.name if isinstance(e.spec, TopicSpec) else None)
        if not topic or e.paused or not self.deletion_enabled(e.obj) or internal_reason(topic):
            return None
        if topic_refusal(self.tenancy().tenant_of(e.namespace), topic) is not None:
            return None
        return topic if self._owned_by_other(topic, e) is None else None

    def _delete(self, entries: list[Entry], batch: Batch) -> None:
        topics = {e.key: self._topic_to_delete(e) for e in entries}
        answers = self.admin.delete(sorted({t for t in topics.values() if t}))
        for e in entries:
            topic = topics[e.key]
            answer = answers.get(topic) if topic else None
            if answer is not None and not answer.ok:
                why = verdict(answer.code, answer.message, "delete", topic).message
                log.warning("topic deletion failed", name=e.key, topic=topic, error=why)
                batch.retry(e.key)
                continue
            if answer is not None:
                log.info("topic deleted", name=e.key, topic=topic)
            self.front.release(batch, e)

    def _finalizers(self, entries: list[Entry], batch: Batch) -> list[Item]:
        """The finalizer on or off as deletion is enabled or not; the entries it could be
        set for, as items."""
        items = []
        for e in entries:
            try:
                wanted = self.deletion_enabled(e.obj)
                if wanted and not st.has_finalizer(e.obj, FINALIZER):
                    e.obj = st.add_finalizer(self.core, e.obj, FINALIZER) or e.obj
                elif not wanted and st.has_finalizer(e.obj, FINALIZER):
                    e.obj = st.remove_finalizer(self.core, e.obj, FINALIZER) or e.obj
            except Exception as exc:
                log.warning("finalizer update failed", name=e.key, error=repr(exc))
                batch.retry(e.key)
                continue
            items.append(Item(e.key, e.obj, e.spec, e.prev))
        return items

    # ---- describe, plan, apply ------------------------------------------------------------
    def _sync(self, entries: list[Entry], batch: Batch) -> None:
        items = self._finalizers(entries, batch)
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
            behind = self.recent.behind(it.spec.name, it.state)
            if behind:  # looked at again shortly; its status stays as the last pass left it
                log.info("topic read behind its accepted writes", name=it.key, why=behind)
                batch.out[it.key] = Outcome("pending", requeue_after=READ_BEHIND_WAIT)
                continue
            if it.state is not None and self.recent.overlay(it.spec.name, it.state):
                log.info("topic config read behind its accepted writes", name=it.key)
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
            applied(it.spec),
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
            batch.retry(it.key)
        else:
            state = ERROR if v.action == "error" else PENDING
            outcome = Outcome("error" if state == ERROR else "pending", v.requeue_after)
            batch.report(it, state, v.reason, v.message, outcome=outcome)
        return False

    def _create(self, creates: list[Item], batch: Batch) -> None:
        """CreateTopics chunk by chunk. Each chunk's statuses go on a batch of their own,
        written by the writer thread while the next chunk is created: the API server's writes
        (a status and an Event per topic) overlap Kafka's work instead of following it. All
        are written before this returns, so the batch's outcomes (a failed write is retried)
        are whole, and a reconcile never overlaps the writes of the one before."""
        if not creates:
            return
        # what is decided so far first (errors, topics already in place); ``batch`` is left
        # to the writer until the waits below
        writing: list[tuple[Batch, Future]] = [(batch, self._writer.submit(batch.flush))]
        try:
            i = 0
            while i < len(creates):
                chunk = creates[i : i + self.create_chunk]
                i += len(chunk)
                part = Batch(self.reporter, KEEP_STATUS)
                self._create_chunk(chunk, part)
                writing.append((part, self._writer.submit(part.flush)))
        finally:
            for part, written in writing:
                written.result()
                if part is not batch:
                    batch.out.update(part.out)

    def _create_chunk(self, chunk: list[Item], batch: Batch) -> None:
        # a request the client gave up on makes the next ones smaller (a slow or busy
        # controller); the topics of this one are looked at again shortly
        try:
            answers = self.admin.create({it.spec.name: it.plan.create for it in chunk})
        except Errors.RequestTimedOutError:
            self.create_chunk = max(MIN_CREATE_CHUNK, self.create_chunk // 2)
            log.warning("create_topics timed out", topics=len(chunk), next_chunk=self.create_chunk)
            for it in chunk:
                batch.out[it.key] = Outcome("pending", requeue_after=1.0)
            return
        self.create_chunk = min(CREATE_CHUNK, self.create_chunk + self.create_chunk // 2 + 1)
        created = self._accepted(
            chunk,
            answers,
            "create",
            batch,
            "topic created",
            lambda it: {
                "partitions": it.plan.create["num_partitions"],
                "replicas": it.plan.create["replication_factor"],
            },
        )
        for it in created:
            create = it.plan.create
            self.recent.created(it.spec.name, create["num_partitions"], create["configs"])
        # Ready means usable: every partition has a leader in the brokers' metadata
        waiting = self.admin.not_usable([it.spec.name for it in created]) if created else {}
        for it in created:
            if it.spec.name in waiting:
                log.info("topic not usable yet", name=it.key, why=waiting[it.spec.name])
                batch.out[it.key] = Outcome("pending", requeue_after=1.0)
            else:
                self._ready(it, batch)

    def _alter(self, alters: list[Item], batch: Batch) -> list[Item]:
        ops = {}
        for it in alters:
            o = {k: (AlterConfigOp.SET, v) for k, v in it.plan.config_set.items()}
            o.update({k: (AlterConfigOp.DELETE, None) for k in it.plan.config_delete})
            ops[it.spec.name] = o
        altered = self._accepted(
            alters,
            self.admin.alter(ops) if ops else {},
            "change the config of",
            batch,
            "topic config changed",
            lambda it: {"set": sorted(it.plan.config_set), "deleted": it.plan.config_delete},
        )
        for it in altered:
            config = {**dict.fromkeys(it.plan.config_delete), **it.plan.config_set}
            self.recent.altered(it.spec.name, config)
        return altered

    def _grow(self, grows: list[Item], batch: Batch) -> list[Item]:
        grown = self._accepted(
            grows,
            self.admin.grow({it.spec.name: it.plan.partitions for it in grows}),
            "add partitions to",
            batch,
            "partitions added",
            lambda it: {"partitions": it.plan.partitions},
        )
        for it in grown:
            self.recent.grown(it.spec.name, it.plan.partitions)
        return grown

    def _accepted(self, items, answers, what, batch, event, fields) -> list[Item]:
        """The items whose answer in ``answers`` is a success, each logged as ``event`` with
        ``fields(item)``; the others get the state Kafka's answer calls for."""
        ok = []
        for it in items:
            if self._kafka_answer(it, answers[it.spec.name], what, batch):
                log.info(event, name=it.key, topic=it.spec.name, **fields(it))
                ok.append(it)
        return ok
