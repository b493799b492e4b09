"""One reconcile of a batch of user ConfigMaps.

The common front (:mod:`agents.common.front`) sorts the batch: gone, being deleted, paused,
spec errors, reserved names. The users left go through the phases of :mod:`.sync` (read,
resolve, plan, apply, report).

Applying keeps "an Error changes nothing": everything that can be checked is checked before
the first write (spec, reserved names, Secret owned by someone else, referenced password,
quota values with a validate-only AlterClientQuotas). Then, per user: the SCRAM credential
(Kafka refusing it stops the user there), the Secret (written only once Kafka holds the
credential it carries, so a Secret never holds a password Kafka does not know), ACLs, quotas.

Every per-user answer decides that user alone: Kafka refusing an item makes it Error
(``KafkaRefused``, with Kafka's message); an item Kafka or the API server could not read or
write is retried with backoff, its status left as it is. Kafka or the API server being
unreachable raises, and the controller retries the batch without touching any status.

Deletion (finalizer ``kairn.dev/user``): the SCRAM credential, every ACL of the principal,
its quotas and its Secret go; then the finalizer. A user Kafka does not let go of (a refused
item, quotas that could not be described) is retried and keeps its finalizer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client

from agents.common import status as st
from agents.common.controller import Outcome
from agents.common.front import Batch, Entry, Front, oldest_claim
from agents.common.kafka_admin import KafkaAccess
from agents.common.logs import get_logger
from agents.common.settings import DEFAULT_CERT_RENEWAL_DAYS, DEFAULT_CERT_VALIDITY_DAYS
from agents.common.status import StatusReporter
from agents.common.tenancy import Tenancy, user_refusal

from . import credentials as cred
from .kafka_lanes import KafkaItemError
from .plan import Issuing, quota_removals, removal_failures
from .recent import RecentWrites, removed
from .secret_store import SecretStore
from .spec import spec_of
from .sync import FINALIZER, SMALL_BATCH, Item, Run, UserSync

log = get_logger("kairn.user-agent")


class UserReconciler:
    def __init__(
        self,
        kafka: KafkaAccess,
        reporter: StatusReporter,
        core: client.CoreV1Api,
        get: Callable[[str], dict | None],
        cluster: str,
        namespace: str,
        fullname: str | None = None,
        clients_ca_cert_secret: str | None = None,
        clients_ca_secret: str | None = None,
        cert_validity_days: int = DEFAULT_CERT_VALIDITY_DAYS,
        cert_renewal_days: int = DEFAULT_CERT_RENEWAL_DAYS,
        workers: int = 8,
        now: Callable = cred.now_utc,
        tenancy: Callable[[], Tenancy] | None = None,
        claimants: Callable[[str], list[dict]] | None = None,
        super_users: tuple[str, ...] = (),
        cluster_ca_file: str | None = None,
    ):
        """``tenancy()``: the tenants as they are now; ``claimants(user)``: the ConfigMaps of
        every watched namespace that declare ``user`` (the oldest owns it); ``super_users``:
        Kafka's super.users principals; ``cluster_ca_file``: the cluster CA every Secret
        carries as ``ca.crt``."""
        self.kafka, self.core = kafka, core
        self.cluster, self.namespace = cluster, namespace
        self.fullname = fullname or cluster
        ca_cert = clients_ca_cert_secret or f"{self.fullname}-clients-ca-cert"
        ca_key = clients_ca_secret or f"{self.fullname}-clients-ca"
        self.validity_days, self.renewal_days = cert_validity_days, cert_renewal_days
        self.now = now
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="user-api")
        self.secrets = SecretStore(core, self.pool, (namespace, ca_cert), (namespace, ca_key))
        self.recent = RecentWrites()
        self.sync = UserSync(kafka, core, self.secrets, self.pool, self._issuing, self.recent)
        self.front = Front(
            noun="user",
            finalizer=FINALIZER,
            spec_of=spec_of,
            get=get,
            reporter=reporter,
            core=core,
            keep_status=("username", "secret", "authentication"),
            home=namespace,
            log=log,
        )
        # super users by certificate: a user of that name would be one too
        self.reserved = {f"{self.fullname}-kafka", f"{self.fullname}-agents"}
        self.super_users = tuple(super_users)
        self.reserved.update(p.removeprefix("User:") for p in self.super_users)
        self.tenancy = tenancy or (lambda: Tenancy(namespace))
        self.claimants = claimants or (lambda user: [])
        self.cluster_ca_file = cluster_ca_file
        self._phases: dict[str, float] = {}
        self._last = 0.0

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def wrote(self, secret: dict) -> bool:
        """Whether ``secret`` is as this agent last wrote it (its own write coming back)."""
        return self.secrets.wrote(secret)

    def _mark(self, phase: str) -> None:
        """Adds the time since the previous mark to ``phase`` (logged once per batch)."""
        now = time.monotonic()
        self._phases[phase] = round(self._phases.get(phase, 0.0) + now - self._last, 3)
        self._last = now

    # ---- the batch ------------------------------------------------------------------------
    def reconcile(self, keys: list[str]) -> dict[str, Outcome]:
        self._phases = {}
        self._last = started = time.monotonic()
        out = self.front.reconcile(keys, refuse=self._refuse, delete=self._delete, sync=self._sync)
        self._mark("status")
        log.info(
            "batch reconciled",
            keys=len(keys),
            seconds=round(time.monotonic() - started, 3),
            phases=self._phases,
        )
        return out

    def _refuse(self, entry: Entry) -> tuple[str, str] | None:
        spec = entry.spec
        if spec.name in self.reserved:
            return (
                "ReservedUserName",
                f"{spec.name} is the identity of the brokers or the agents, or a super user; "
                "choose another user name",
            )
        tenant = self.tenancy().tenant_of(entry.namespace)
        refusal = user_refusal(tenant, spec.name, spec.acls, spec.quotas, self.super_users)
        if refusal is not None:
            return refusal
        owner = self._owned_by_other(entry)
        if owner is not None:
            return (
                "UserConflict",
                f"user {spec.name} is already declared by ConfigMap {owner} (older); a "
                "principal has one owner: remove one of the two",
            )
        return None

    def _owned_by_other(self, entry: Entry) -> str | None:
        """``namespace/name`` of the older ConfigMap of another namespace that declares the
        same user as ``entry``, if any."""
        claimants = self.claimants(entry.name)
        if not claimants:
            return None
        m = st.meta(oldest_claim(claimants))
        if (m.get("namespace") or self.namespace) == (entry.namespace or self.namespace):
            return None
        return f"{m.get('namespace')}/{m['name']}"

    def _may_remove(self, entry: Entry) -> bool:
        """Whether deleting ``entry`` may take its user out of Kafka: not paused, owning the
        principal, not a reserved name and, from a tenant, under the tenant's prefix."""
        if entry.paused or entry.name in self.reserved or self._owned_by_other(entry):
            return False
        tenant = self.tenancy().tenant_of(entry.namespace)
        return tenant is None or entry.name.startswith(tenant.prefix)

    def _issuing(self) -> Issuing:
        return Issuing(
            self.cluster, self.validity_days, self.renewal_days, self.now(), self._cluster_ca()
        )

    def _cluster_ca(self) -> bytes | None:
        if not self.cluster_ca_file:
            return None
        try:
            with open(self.cluster_ca_file, "rb") as f:
                return f.read() or None
        except OSError as e:
            log.warning("cluster CA not read", file=self.cluster_ca_file, error=repr(e))
            return None

    def _sync(self, entries: list[Entry], batch: Batch) -> None:
        self._mark("parse")
        run = Run(batch)
        items = [Item(e.key, e.namespace or self.namespace, e.obj, e.spec) for e in entries]
        for phase, step in self.sync.phases():
            items = step(items, run)
            self._mark(phase)
        self._mark("other")

    # ---- deletion -------------------------------------------------------------------------
    def _delete(self, entries: list[Entry], batch: Batch) -> None:
        active = [e for e in entries if self._may_remove(e)]
        users = [e.name for e in active]
        failed = self._remove_from_kafka(users) if users else {}
        for e in entries:
            if e.name in failed:
                log.warning("user not removed", name=e.key, error=failed[e.name])
                batch.retry(e.key)
                continue
            ref = (e.namespace or self.namespace, e.name)
            uid = st.meta(e.obj).get("uid")
            cleanup = lambda ref=ref, uid=uid: self.secrets.delete_owned(ref, uid)  # noqa: E731
            if self.front.release(batch, e, cleanup) and e in active:
                log.info("user removed", name=e.key, user=e.name)
        self._mark("other")

    def _remove_from_kafka(self, users: list[str]) -> dict[str, str]:
        """Removes the users' SCRAM credentials, ACLs and quotas; {user: why} for those Kafka
        did not let go of (retried)."""
        call = self.kafka.call
        scram = call("alter_user_scram_credentials", lambda a: a.alter_scram({}, users))
        acls = call("delete_acls", lambda a: a.delete_principal_acls([f"User:{u}" for u in users]))
        small = len(users) <= SMALL_BATCH
        described = call(
            "describe_client_quotas", lambda a: a.describe_quotas(users if small else None)
        )
        for u, left in self.recent.left(users).items():  # quotas set a moment ago go too
            if left.quotas and not isinstance(described.get(u), KafkaItemError):
                described[u] = {**left.quotas, **(described.get(u) or {})}
        removals = quota_removals(users, described)
        quotas = call("alter_client_quotas", lambda a: a.alter_quotas(removals)) if removals else {}
        failed = removal_failures(users, scram, acls, described, quotas)
        at = self.recent.now()
        for u in users:
            if u not in failed:  # a ConfigMap declaring it again at once starts from nothing
                self.recent.record(u, removed(f"User:{u}", at))
        return failed
