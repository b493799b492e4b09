"""The phases that apply a batch of users, each a small step handing on the users still going.

read the users' Secrets -> read Kafka (SCRAM credentials, ACLs, quotas: one request each per
batch, or per user for small batches) -> resolve (referenced passwords, the clients CA) ->
plan (pure, :mod:`.plan`) -> finalizers -> validate quotas -> SCRAM credentials -> Secrets
(written by a pool while ACLs and quotas go to Kafka) -> ACLs -> quotas -> Ready.

Reads may lag writes Kafka accepted (a KRaft broker's copy of the metadata log, a ZooKeeper-mode
broker's ACL cache): what the writes of a user left is remembered for a few seconds and stands
in for what the next read says about that user (:mod:`.recent`), so a pass right after another
neither writes the same again nor reports from a stale view.

A user leaves the phases with its outcome on the :class:`~agents.common.front.Batch`: Error
when its spec cannot be applied (Kafka's refusal of an item is ``KafkaRefused`` with Kafka's
message), Pending while the clients CA is missing, a retry when an answer about it could not
be had (a describe, a Secret read or write, a finalizer, the force-renew annotation).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from kubernetes import client

from agents.common import status as st
from agents.common.controller import Outcome
from agents.common.front import Batch
from agents.common.kafka_admin import KafkaAccess
from agents.common.logs import get_logger
from agents.common.status import ERROR, PENDING, READY

from . import credentials as cred
from .plan import (
    FORCE_RENEW,
    Issuing,
    KafkaView,
    Refused,
    UserPlan,
    plan_user,
    ready_message,
    referenced_password,
    status_extra,
)
from .recent import RecentWrites
from .secret_store import Ref, SecretStore
from .spec import SCRAM, TLS, UserSpec

FINALIZER = "kairn.dev/user"
SMALL_BATCH = 20  # up to this many users, Kafka is asked about each user; above, about all
ACL_CHUNK = 1000  # ACLs per CreateAcls / DeleteAcls request
CA_WAIT = 10  # seconds before a user waiting for the clients CA is looked at again

log = get_logger("kairn.user-agent")


@dataclass
class Item:
    """A user of the batch on its way through the phases."""

    key: str
    namespace: str
    obj: dict
    spec: UserSpec
    secret: dict | None = None  # the Secret named after the user, as read (anyone's)
    plan: UserPlan | None = None

    @property
    def ref(self) -> Ref:
        return (self.namespace, self.spec.name)


@dataclass
class Run:
    """What the phases of one batch hand on beside the users."""

    batch: Batch
    kafka: KafkaView = field(default_factory=KafkaView)
    passwords: dict[str, str | Refused] = field(default_factory=dict)  # key -> resolved
    ca: cred.ClientsCa | Refused | None = None
    writes: dict[str, Future] = field(default_factory=dict)  # key -> Secret write


class UserSync:
    def __init__(
        self,
        kafka: KafkaAccess,
        core: client.CoreV1Api,
        secrets: SecretStore,
        pool: ThreadPoolExecutor,
        issuing: Callable[[], Issuing],
        recent: RecentWrites | None = None,
    ):
        """``issuing()``: how certificates are issued, asked once per batch (its ``now``);
        ``recent``: what this agent's writes left in Kafka lately."""
        self.kafka, self.core, self.secrets, self.pool = kafka, core, secrets, pool
        self.issuing = issuing
        self.recent = recent or RecentWrites()

    def phases(self) -> list[tuple[str, Callable[[list[Item], Run], list[Item]]]]:
        """(name, step) in order; each step takes the users still going and hands on those
        that go on."""
        return [
            ("k8s_read", self.read_secrets),
            ("read_kafka", self.read_kafka),
            ("resolve", self.resolve),
            ("plan", self.plan),
            ("finalizers", self.add_finalizers),
            ("validate_quotas", self.validate_quotas),
            ("scram", self.set_scram),
            ("secrets", self.start_secret_writes),
            ("acls", self.apply_acls),
            ("quotas", self.apply_quotas),
            ("k8s_write", self.finish_secret_writes),
            ("report", self.report_ready),
        ]

    def _retry(self, run: Run, it: Item, why: str) -> None:
        log.warning("user retried", name=it.key, user=it.spec.name, reason=why)
        run.batch.retry(it.key)

    def _fail(self, run: Run, it: Item, reason: str, message: str) -> None:
        log.warning("user not applied", name=it.key, reason=reason, detail=message)
        run.batch.report(it, ERROR, reason, message)

    def _drop_refused(self, items: list[Item], res: dict, run: Run, what: str) -> list[Item]:
        kept = []
        for it in items:
            err = res.get(it.spec.name)
            if err is not None:
                message = f"Kafka refused {what} of user {it.spec.name}: {err}"
                self._fail(run, it, "KafkaRefused", message)
            else:
                kept.append(it)
        return kept

    # ---- reading --------------------------------------------------------------------------
    def read_secrets(self, items: list[Item], run: Run) -> list[Item]:
        found, failed = self.secrets.read_many(it.ref for it in items)
        kept = []
        for it in items:
            if it.ref in failed:
                self._retry(run, it, failed[it.ref])
                continue
            it.secret = found.get(it.ref)
            kept.append(it)
        return kept

    def read_kafka(self, items: list[Item], run: Run) -> list[Item]:
        if not items:
            return items
        names = [it.spec.name for it in items]
        small = len(items) <= SMALL_BATCH
        call = self.kafka.call
        scram = call(
            "describe_user_scram_credentials",
            lambda a: a.describe_scram(names if small else None),
        )
        acls: dict = {}
        if small:
            for p in [it.spec.principal for it in items]:
                acls.update(call("describe_acls", lambda a, p=p: a.describe_acls_of([p])))
        else:
            acls = call("describe_acls", lambda a: a.describe_acls())
        quotas = call(
            "describe_client_quotas", lambda a: a.describe_quotas(names if small else None)
        )
        run.kafka = KafkaView.of(scram, acls, quotas, lambda p: p.removeprefix("User:"))
        behind = self.recent.overlay(run.kafka, names)
        if behind:
            log.info("kafka's reads behind its accepted writes; the writes stand", users=behind)
        kept = []
        for it in items:
            why = run.kafka.unreadable.get(it.spec.name)
            if why:
                self._retry(run, it, why)
            else:
                kept.append(it)
        return kept

    def resolve(self, items: list[Item], run: Run) -> list[Item]:
        """The referenced passwords and the clients CA, read for the users that need them."""
        refs = {
            it.key: (it.namespace, it.spec.password_ref.secret)
            for it in items
            if it.spec.auth == SCRAM and it.spec.password_ref is not None
        }
        found, failed = self.secrets.read_many(refs.values()) if refs else ({}, {})
        ca_failure = None
        if any(it.spec.auth == TLS for it in items):
            try:
                run.ca = self.secrets.clients_ca()
            except Exception as e:
                ca_failure = f"clients CA not read: {e!r}"
        kept = []
        for it in items:
            ref = refs.get(it.key)
            if ref in failed:
                self._retry(run, it, failed[ref])
                continue
            if ref is not None:
                run.passwords[it.key] = referenced_password(
                    it.spec.password_ref, found.get(ref), it.namespace
                )
            if it.spec.auth == TLS and ca_failure:
                self._retry(run, it, ca_failure)
                continue
            kept.append(it)
        return kept

    # ---- plan -----------------------------------------------------------------------------
    def plan(self, items: list[Item], run: Run) -> list[Item]:
        issuing = self.issuing()
        kept = []
        for it in items:
            try:
                it.plan = plan_user(
                    it.spec,
                    it.obj,
                    it.secret,
                    run.kafka,
                    issuing,
                    run.passwords.get(it.key),
                    run.ca,
                )
            except Refused as e:
                if e.waits:
                    wait = Outcome("pending", requeue_after=CA_WAIT)
                    run.batch.report(it, PENDING, e.reason, e.message, outcome=wait)
                else:
                    self._fail(run, it, e.reason, e.message)
                continue
            except Exception as e:  # one user's surprise must not hold up the others
                self._retry(run, it, f"plan failed: {e!r}")
                continue
            kept.append(it)
        return kept

    # ---- apply ----------------------------------------------------------------------------
    def add_finalizers(self, items: list[Item], run: Run) -> list[Item]:
        """The finalizer goes on before anything is created, so a deletion cleans up."""
        futures = {
            it.key: self.pool.submit(st.add_finalizer, self.core, it.obj, FINALIZER)
            for it in items
            if not st.has_finalizer(it.obj, FINALIZER)
        }
        kept = []
        for it in items:
            f = futures.get(it.key)
            if f is not None:
                try:
                    it.obj = f.result() or it.obj
                except Exception as e:
                    self._retry(run, it, f"finalizer not added: {e!r}")
                    continue
            kept.append(it)
        return kept

    def validate_quotas(self, items: list[Item], run: Run) -> list[Item]:
        """Quota values Kafka would refuse, checked before anything is written."""
        checks = {it.spec.name: it.plan.quota_ops for it in items if it.plan.quota_ops}
        if not checks:
            return items
        res = self.kafka.call(
            "alter_client_quotas", lambda a: a.alter_quotas(checks, validate_only=True)
        )
        return self._drop_refused(items, res, run, "quotas")

    def set_scram(self, items: list[Item], run: Run) -> list[Item]:
        ups = {it.spec.name: it.plan.password for it in items if it.plan.upsert}
        dels = [it.spec.name for it in items if it.plan.delete_scram]
        if not ups and not dels:
            return items
        res = self.kafka.call("alter_user_scram_credentials", lambda a: a.alter_scram(ups, dels))
        items = self._drop_refused(items, res, run, "the SCRAM credential")
        for it in items:
            if it.plan.upsert:
                log.info("scram credential set", name=it.key, user=it.spec.name)
            if it.plan.delete_scram:
                log.info("scram credential removed", name=it.key, user=it.spec.name)
        return items

    def start_secret_writes(self, items: list[Item], run: Run) -> list[Item]:
        """The Secrets, written by the pool while ACLs and quotas go to Kafka (once Kafka
        holds the credential a Secret carries)."""
        todo = [it for it in items if it.plan.secret_wanted is not None or it.plan.delete_secret]
        run.writes = {it.key: self.pool.submit(self._write_secret, it) for it in todo}
        return items

    def apply_acls(self, items: list[Item], run: Run) -> list[Item]:
        refused: dict[str, str] = {}
        for what, verb, method in (
            ("create_acls", "refused", "acl_create"),
            ("delete_acls", "did not delete", "acl_delete"),
        ):
            todo = [(it, a) for it in items for a in getattr(it.plan, method)]
            for i in range(0, len(todo), ACL_CHUNK):
                chunk = todo[i : i + ACL_CHUNK]
                res = self.kafka.call(
                    what, lambda a, w=what, c=chunk: getattr(a, w)([x for _, x in c])
                )
                for (it, _acl), err in zip(chunk, res, strict=True):
                    if err is not None:
                        refused.setdefault(it.key, f"Kafka {verb} an ACL of {it.spec.name}: {err}")
        kept = []
        for it in items:
            if it.plan.acl_create or it.plan.acl_delete:
                log.info(
                    "acls changed",
                    name=it.key,
                    user=it.spec.name,
                    created=len(it.plan.acl_create),
                    deleted=len(it.plan.acl_delete),
                )
            if it.key in refused:
                self._fail(run, it, "KafkaRefused", refused[it.key])
            else:
                kept.append(it)
        return kept

    def apply_quotas(self, items: list[Item], run: Run) -> list[Item]:
        changes = {it.spec.name: it.plan.quota_ops for it in items if it.plan.quota_ops}
        if not changes:
            self._remember(items, run)
            return items
        res = self.kafka.call("alter_client_quotas", lambda a: a.alter_quotas(changes))
        items = self._drop_refused(items, res, run, "quotas")
        self._remember(items, run)
        for it in items:
            ops = it.plan.quota_ops
            if ops:
                log.info(
                    "quotas changed",
                    name=it.key,
                    user=it.spec.name,
                    set={k: v for k, v in ops.items() if v is not None},
                    removed=sorted(k for k, v in ops.items() if v is None),
                )
        return items

    def _remember(self, items: list[Item], run: Run) -> None:
        """What the writes of ``items`` (every one of them accepted by Kafka) left."""
        self.recent.record_plans(
            [(it.spec.name, it.spec.principal, it.plan) for it in items], run.kafka
        )

    def _write_secret(self, it: Item) -> None:
        if it.plan.delete_secret:
            self.secrets.delete(it.ref)
            log.info("secret deleted", name=it.key, secret=it.spec.name)
            return
        self.secrets.write(it.plan.secret_wanted, replace=it.plan.secret is not None)
        renewed = {"renewed": it.plan.renewed} if it.plan.renewed else {}
        log.info(
            "secret written",
            name=it.key,
            secret=it.spec.name,
            authentication=it.spec.auth,
            **renewed,
        )

    def finish_secret_writes(self, items: list[Item], run: Run) -> list[Item]:
        """The users whose Secret write (if any) succeeded; the others are retried."""
        kept = []
        for it in items:
            f = run.writes.get(it.key)
            e = f.exception() if f is not None else None
            if isinstance(e, client.ApiException) and e.status == 409:
                # written meanwhile (by someone else, or a race): judged afresh next time
                self._retry(run, it, "the Secret changed meanwhile")
            elif e is not None:
                self._retry(run, it, f"Secret not written: {e!r}")
            else:
                kept.append(it)
        return kept

    def report_ready(self, items: list[Item], run: Run) -> list[Item]:
        for it in items:
            if it.plan.force_renew:
                try:
                    self._clear_force_renew(it)
                except Exception as e:  # left on, it would renew again: retried instead
                    self._retry(run, it, f"{FORCE_RENEW} not removed: {e!r}")
                    continue
            message = ready_message(it.spec, it.plan)
            run.batch.report(it, READY, "UserReady", message, status_extra(it.spec, it.plan))
        return items

    def _clear_force_renew(self, it: Item) -> None:
        path = "/metadata/annotations/" + FORCE_RENEW.replace("~", "~0").replace("/", "~1")
        name = st.meta(it.obj)["name"]
        try:
            self.core.patch_namespaced_config_map(
                name, it.namespace, [{"op": "remove", "path": path}], _preload_content=False
            ).drain_conn()  # (read to the end, so the connection goes back to the pool)
        except client.ApiException as e:
            if e.status not in (404, 422):
                raise
