"""One reconcile of a batch of user ConfigMaps.

parse and validate (pure) -> read the users' Secrets, referenced password Secrets and the
clients CA -> read Kafka (SCRAM credentials, ACLs, quotas: one request each per batch) ->
plan -> finalizers -> apply -> report.

Applying keeps "an Error changes nothing": everything that can be checked is checked before
the first write (spec, reserved names, Secret owned by someone else, referenced password,
quota values with a validate-only AlterClientQuotas). Then, per user: the SCRAM credential
(Kafka refusing it stops the user there), the Secret (written only once Kafka holds the
credential it carries, so a Secret never holds a password Kafka does not know), ACLs, quotas.
Kafka or the API server being unreachable raises, and the controller retries the batch with
backoff without touching any status.

Deletion (finalizer ``kairn.dev/user``): the SCRAM credential, every ACL of the principal,
its quotas and its Secret go; then the finalizer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

from kubernetes import client

from agents.common import status as st
from agents.common.controller import Outcome
from agents.common.kafka_admin import KafkaAccess
from agents.common.logs import get_logger
from agents.common.status import ERROR, PENDING, READY, StatusReporter

from . import credentials as cred
from .kafka_users import SCRAM_SHA_512, KafkaItemError, UserAdmin, acl_of
from .spec import SCRAM, TLS, SpecError, UserSpec, parse, raw_hash, spec_hash

FINALIZER = "kairn.dev/user"
FORCE_RENEW = "kairn.dev/force-renew"
# up to this many users, Secrets are read one by one; above, the namespace's are listed
GET_LIMIT = 20
PAGE = 500
ACL_CHUNK = 1000  # ACLs per CreateAcls / DeleteAcls request

log = get_logger("kairn.user-agent")


@lru_cache(maxsize=32768)
def parse_cached(text: str | None, name: str) -> UserSpec | SpecError:
    return parse(text, name)


def spec_of(obj: dict) -> UserSpec | SpecError:
    return parse_cached((obj.get("data") or {}).get("spec"), st.meta(obj)["name"])


class Refused(Exception):
    """The user's spec cannot be applied: becomes Error with ``reason`` and ``message``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass
class Item:
    key: str
    obj: dict
    spec: UserSpec
    secret: dict | None = None  # the user's current Secret (ours) or None
    password: str | None = None  # SCRAM: the password the user ends up with
    upsert: bool = False  # SCRAM credential to set
    delete_scram: bool = False
    secret_wanted: dict | None = None  # the Secret body to write
    delete_secret: bool = False
    acl_create: list = field(default_factory=list)
    acl_delete: list = field(default_factory=list)
    quota_ops: dict = field(default_factory=dict)
    renewed: str | None = None  # why the certificate was issued again
    force_renew: bool = False
    acl_count: int = 0


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
        cert_validity_days: int = 365,
        cert_renewal_days: int = 30,
        workers: int = 8,
        now: Callable = cred.now_utc,
    ):
        self.kafka, self.reporter, self.core, self.get = kafka, reporter, core, get
        self.cluster, self.namespace = cluster, namespace
        self.fullname = fullname or cluster
        self.ca_cert_secret = clients_ca_cert_secret or f"{self.fullname}-clients-ca-cert"
        self.ca_secret = clients_ca_secret or f"{self.fullname}-clients-ca"
        self.validity_days, self.renewal_days = cert_validity_days, cert_renewal_days
        self.now = now
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="user-api")
        self._ca_cache: tuple[tuple, cred.ClientsCa] | None = None
        # super users by certificate: a user of that name would be one too
        self.reserved = {f"{self.fullname}-kafka", f"{self.fullname}-agents"}
        self._phases: dict[str, float] = {}
        self._last = 0.0
        self._written: dict[str, str] = {}  # Secret name -> digest of what this agent wrote

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    @staticmethod
    def _digest(secret: dict) -> str:
        m = secret.get("metadata") or {}
        return spec_hash(
            [secret.get("data") or {}, m.get("labels") or {}, m.get("annotations") or {}]
        )

    def wrote(self, secret: dict) -> bool:
        """Whether ``secret`` is as this agent last wrote it (its own write coming back)."""
        name = (secret.get("metadata") or {}).get("name")
        return self._written.get(name) == self._digest(secret)

    def _mark(self, phase: str) -> None:
        """Adds the time since the previous mark to ``phase`` (logged once per batch)."""
        now = time.monotonic()
        self._phases[phase] = round(self._phases.get(phase, 0.0) + now - self._last, 3)
        self._last = now

    # ---- the batch ------------------------------------------------------------------------
    def reconcile(self, keys: list[str]) -> dict[str, Outcome]:
        self._phases = {}
        self._last = started = time.monotonic()
        out: dict[str, Outcome] = {}
        reports: list[tuple] = []

        def report(key, obj, state, reason, message, spec_hash, extra=None, outcome=None):
            prev = st.status_of(obj)
            keep = {k: prev[k] for k in ("username", "secret", "authentication") if k in prev}
            reports.append((obj, state, reason, message, spec_hash, {**keep, **(extra or {})}))
            out[key] = outcome or Outcome(
                {READY: "ready", ERROR: "error", PENDING: "pending"}[state]
            )

        items: list[Item] = []
        deletions: list[tuple[str, dict]] = []
        for key in keys:
            obj = self.get(key)
            if obj is None:
                self.reporter.forget(key)
                out[key] = Outcome("ready")
                continue
            m = st.meta(obj)
            raw = (obj.get("data") or {}).get("spec")
            if m.get("deletionTimestamp"):
                if st.has_finalizer(obj, FINALIZER):
                    deletions.append((key, obj))
                else:
                    out[key] = Outcome("ready")
                continue
            if st.paused(obj):
                report(
                    key,
                    obj,
                    PENDING,
                    "ReconciliationPaused",
                    'kairn.dev/managed is "false": the user is left as it is',
                    raw_hash(raw),
                )
                continue
            spec = spec_of(obj)
            if isinstance(spec, SpecError):
                report(key, obj, ERROR, spec.reason, spec.message, raw_hash(raw))
                continue
            if spec.name in self.reserved:
                report(
                    key,
                    obj,
                    ERROR,
                    "ReservedUserName",
                    f"{spec.name} is the identity of the brokers or the agents (a super user); "
                    "choose another user name",
                    spec.hash,
                )
                continue
            items.append(Item(key, obj, spec))

        if deletions:
            self._delete(deletions, out)
        if items:
            self._sync(items, out, report)
        self._mark("other")
        errors = self.reporter.report_many(reports)
        self._mark("status")
        if errors:
            for obj, *_ in reports:
                k = st.meta(obj)["name"]
                if out.get(k) and out[k].result == "ready":
                    out[k] = Outcome("retry")
        log.info(
            "batch reconciled",
            keys=len(keys),
            seconds=round(time.monotonic() - started, 3),
            phases=self._phases,
        )
        return out

    def _finalizers(self, items: list[Item], out) -> list[Item]:
        todo = [it for it in items if not st.has_finalizer(it.obj, FINALIZER)]
        futures = {
            it.key: self.pool.submit(st.add_finalizer, self.core, it.obj, FINALIZER) for it in todo
        }
        kept = []
        for it in items:
            f = futures.get(it.key)
            if f is not None:
                try:
                    it.obj = f.result() or it.obj
                except Exception as e:
                    log.warning("finalizer not added", name=it.key, error=repr(e))
                    out[it.key] = Outcome("retry")
                    continue
            kept.append(it)
        return kept

    # ---- reading --------------------------------------------------------------------------
    def _read_secret(self, name: str) -> dict | None:
        try:
            resp = self.core.read_namespaced_secret(name, self.namespace, _preload_content=False)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return json.loads(resp.data)

    def _secrets(self, names: list[str]) -> dict[str, dict | None]:
        """name -> Secret (or None), for the users' Secret names."""
        if len(names) <= GET_LIMIT:
            return dict(zip(names, self.pool.map(self._read_secret, names), strict=True))
        wanted, found, cont = set(names), {}, None
        while True:
            kw = {"limit": PAGE, "_request_timeout": (10, 60)}
            if cont:
                kw["_continue"] = cont
            resp = self.core.list_namespaced_secret(self.namespace, _preload_content=False, **kw)
            page = json.loads(resp.data)
            for s in page.get("items") or []:
                n = s["metadata"]["name"]
                if n in wanted:
                    found[n] = s
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                break
        return {n: found.get(n) for n in names}

    def _clients_ca(self) -> cred.ClientsCa:
        crt = self._read_secret(self.ca_cert_secret)
        key = self._read_secret(self.ca_secret)
        if not crt or not key:
            raise Refused(
                "ClientsCaMissing",
                f"the clients CA Secrets {self.ca_cert_secret} and {self.ca_secret} are not "
                "there yet (the kairn-certs hook creates them)",
            )
        ca_crt = cred.unb64((crt.get("data") or {}).get("ca.crt"))
        ca_key = cred.unb64((key.get("data") or {}).get("ca.key"))
        if not ca_crt or not ca_key:
            raise Refused("ClientsCaMissing", "the clients CA Secrets lack ca.crt or ca.key")
        ident = (ca_crt, ca_key)
        if self._ca_cache is None or self._ca_cache[0] != ident:
            self._ca_cache = (ident, cred.ClientsCa.load(ca_crt, ca_key))
        return self._ca_cache[1]

    def _referenced_password(self, spec: UserSpec, cache: dict) -> str:
        ref = spec.password_ref
        if ref.secret not in cache:
            cache[ref.secret] = self._read_secret(ref.secret)
        secret = cache[ref.secret]
        if secret is None:
            raise Refused(
                "PasswordSecretNotFound",
                f"the password Secret {ref.secret} does not exist in {self.namespace}",
            )
        data = secret.get("data") or {}
        if ref.key not in data:
            raise Refused(
                "PasswordSecretNotFound",
                f"the Secret {ref.secret} has no key {ref.key!r} (it has: "
                f"{', '.join(sorted(data)) or 'none'})",
            )
        raw = cred.unb64(data[ref.key])
        try:
            value = raw.decode() if raw else ""
        except UnicodeDecodeError:
            value = ""
        if not value:
            raise Refused(
                "InvalidPassword",
                f"the key {ref.key!r} of Secret {ref.secret} is empty or not UTF-8 text",
            )
        return value

    # ---- plan -----------------------------------------------------------------------------
    def _plan(
        self,
        it: Item,
        scram: dict,
        acls: dict,
        quotas: dict,
        ref_cache: dict,
        ca_of: Callable[[], cred.ClientsCa],
    ) -> None:
        spec, uid = it.spec, st.meta(it.obj).get("uid")
        current = it.secret
        if current is not None and not cred.owned_by(current, uid):
            if spec.has_secret:
                raise Refused(
                    "SecretConflict",
                    f"a Secret named {spec.name} already exists and was not written for this "
                    "ConfigMap; delete or rename it, or rename the user",
                )
            current = None  # not ours: leave it alone
        it.secret = current
        has_scram = any(m == SCRAM_SHA_512 for m, _ in scram.get(spec.name, []))
        data = None
        if spec.auth == SCRAM:
            if spec.password_ref is not None:
                password = self._referenced_password(spec, ref_cache)
            elif spec.password_inline is not None:
                password = spec.password_inline
            else:
                password = cred.secret_password(current) or cred.generate_password()
            it.password = password
            edited = cred.edited_by_others(current)
            it.upsert = not has_scram or edited or password != cred.secret_password(current)
            data = cred.scram_data(spec.name, password)
        elif spec.auth == TLS:
            ca = ca_of()
            it.force_renew = FORCE_RENEW in st.annotations(it.obj)
            reason = "renewal asked for (kairn.dev/force-renew)" if it.force_renew else None
            existing = (current or {}).get("data") if current else None
            if current is not None and "user.crt" not in (existing or {}):
                existing = None  # a SCRAM Secret before: issue
            reason = reason or cred.tls_renewal_reason(
                existing, ca, spec.name, self.now(), self.renewal_days
            )
            if reason:
                it.renewed = reason
                data = cred.tls_data(ca, spec.name, self.now(), self.validity_days)
            else:
                data = {**existing, "ca.crt": cred.b64(ca.bundle)}
        if spec.auth != SCRAM and has_scram:
            it.delete_scram = True
        if data is not None:
            body = cred.secret_body(
                spec.name,
                self.namespace,
                self.cluster,
                it.obj,
                data,
                spec.secret_labels,
                spec.secret_annotations,
                (current or {}).get("metadata", {}).get("resourceVersion"),
            )
            if cred.secret_differs(current, body) or cred.edited_by_others(current):
                it.secret_wanted = body  # (written again to own its data once more)
        elif current is not None:
            it.delete_secret = True
        wanted = {acl_of(spec.principal, r) for r in spec.acls}
        have = acls.get(spec.principal, set())
        it.acl_create = sorted(wanted - have)
        it.acl_delete = sorted(have - wanted)
        it.acl_count = len(wanted)
        it.quota_ops = UserAdmin.quota_changes(quotas.get(spec.name, {}), spec.quotas)

    # ---- sync -----------------------------------------------------------------------------
    def _sync(self, items: list[Item], out, report) -> None:
        def fail(it: Item, reason: str, message: str) -> None:
            log.warning("user not applied", name=it.key, reason=reason, detail=message)
            report(it.key, it.obj, ERROR, reason, message, it.spec.hash)

        self._mark("parse")
        names = [it.spec.name for it in items]
        secrets = self._secrets(names)
        for it in items:
            it.secret = secrets.get(it.spec.name)
        self._mark("k8s_read")
        small = len(items) <= GET_LIMIT
        scram = self.kafka.call(
            "describe_user_scram_credentials",
            lambda a: a.describe_scram(names if small else None),
        )
        if small:
            acls: dict = {}
            for it in items:
                acls.update(
                    self.kafka.call(
                        "describe_acls", lambda a, p=it.spec.principal: a.describe_acls(p)
                    )
                )
        else:
            acls = self.kafka.call("describe_acls", lambda a: a.describe_acls())
        quotas = self.kafka.call(
            "describe_client_quotas", lambda a: a.describe_quotas(names if small else None)
        )

        self._mark("read_kafka")
        ca_box: list = []

        def ca_of() -> cred.ClientsCa:
            if not ca_box:
                try:
                    ca_box.append(self._clients_ca())
                except Refused as e:
                    ca_box.append(e)
            if isinstance(ca_box[0], Refused):
                raise ca_box[0]
            return ca_box[0]

        planned: list[Item] = []
        ref_cache: dict = {}
        for it in items:
            try:
                self._plan(it, scram, acls, quotas, ref_cache, ca_of)
            except Refused as e:
                if e.reason == "ClientsCaMissing":
                    report(
                        it.key,
                        it.obj,
                        PENDING,
                        e.reason,
                        e.message,
                        it.spec.hash,
                        outcome=Outcome("pending", requeue_after=10),
                    )
                else:
                    fail(it, e.reason, e.message)
                continue
            planned.append(it)

        self._mark("plan")
        # the finalizer goes on before anything is created, so a deletion cleans up
        planned = self._finalizers(planned, out)
        self._mark("finalizers")

        # quota values Kafka would refuse: checked before anything is written
        checks = {it.spec.name: it.quota_ops for it in planned if it.quota_ops}
        if checks:
            res = self.kafka.call(
                "alter_client_quotas", lambda a: a.alter_quotas(checks, validate_only=True)
            )
            planned = self._drop_refused(planned, res, fail, "quotas")

        self._mark("validate_quotas")
        # SCRAM credentials
        ups = {it.spec.name: it.password for it in planned if it.upsert}
        dels = [it.spec.name for it in planned if it.delete_scram]
        if ups or dels:
            res = self.kafka.call(
                "alter_user_scram_credentials", lambda a: a.alter_scram(ups, dels)
            )
            planned = self._drop_refused(planned, res, fail, "the SCRAM credential")
            for it in planned:
                if it.upsert:
                    log.info("scram credential set", name=it.key, user=it.spec.name)
                if it.delete_scram:
                    log.info("scram credential removed", name=it.key, user=it.spec.name)

        self._mark("scram")
        # Secrets: written by the pool while ACLs and quotas go to Kafka
        secret_writes = self._start_secret_writes(planned)

        # ACLs
        creates = [(it, a) for it in planned for a in it.acl_create]
        deletes = [(it, a) for it in planned for a in it.acl_delete]
        refused: dict[str, str] = {}
        for i in range(0, len(creates), ACL_CHUNK):
            chunk = creates[i : i + ACL_CHUNK]
            res = self.kafka.call(
                "create_acls", lambda a, c=chunk: a.create_acls([x for _, x in c])
            )
            for (it, _acl), err in zip(chunk, res, strict=True):
                if err is not None:
                    refused.setdefault(it.key, f"Kafka refused an ACL of {it.spec.name}: {err}")
        for i in range(0, len(deletes), ACL_CHUNK):
            chunk = deletes[i : i + ACL_CHUNK]
            res = self.kafka.call(
                "delete_acls", lambda a, c=chunk: a.delete_acls([x for _, x in c])
            )
            for (it, _acl), err in zip(chunk, res, strict=True):
                if err is not None:
                    refused.setdefault(
                        it.key, f"Kafka did not delete an ACL of {it.spec.name}: {err}"
                    )
        for it in planned:
            if it.acl_create or it.acl_delete:
                log.info(
                    "acls changed",
                    name=it.key,
                    user=it.spec.name,
                    created=len(it.acl_create),
                    deleted=len(it.acl_delete),
                )
        kept = []
        for it in planned:
            if it.key in refused:
                fail(it, "KafkaRefused", refused[it.key])
            else:
                kept.append(it)
        planned = kept

        self._mark("acls")
        # quotas
        changes = {it.spec.name: it.quota_ops for it in planned if it.quota_ops}
        if changes:
            res = self.kafka.call("alter_client_quotas", lambda a: a.alter_quotas(changes))
            planned = self._drop_refused(planned, res, fail, "quotas")
            for it in planned:
                if it.quota_ops:
                    log.info(
                        "quotas changed",
                        name=it.key,
                        user=it.spec.name,
                        set={k: v for k, v in it.quota_ops.items() if v is not None},
                        removed=sorted(k for k, v in it.quota_ops.items() if v is None),
                    )

        self._mark("quotas")
        planned = self._secret_writes_done(planned, secret_writes, out)
        self._mark("k8s_write")
        for it in planned:
            if it.force_renew:
                self._clear_force_renew(it)
            report(
                it.key,
                it.obj,
                READY,
                "UserReady",
                self._ready_message(it),
                it.spec.hash,
                self._extra(it),
            )

    def _drop_refused(self, items: list[Item], res: dict, fail, what: str) -> list[Item]:
        kept = []
        for it in items:
            err: KafkaItemError | None = res.get(it.spec.name)
            if err is not None:
                fail(it, "KafkaRefused", f"Kafka refused {what} of user {it.spec.name}: {err}")
            else:
                kept.append(it)
        return kept

    def _write_one(self, it: Item) -> None:
        if it.delete_secret:
            try:
                self.core.delete_namespaced_secret(it.spec.name, self.namespace)
            except client.ApiException as e:
                if e.status != 404:
                    raise
            log.info("secret deleted", name=it.key, secret=it.spec.name)
            return
        body = it.secret_wanted
        # noted before the write: its watch event may come back before the answer does
        self._written[it.spec.name] = self._digest(body)
        if it.secret is None:
            resp = self.core.create_namespaced_secret(
                self.namespace, body, field_manager=cred.FIELD_MANAGER, _preload_content=False
            )
        else:
            resp = self.core.replace_namespaced_secret(
                it.spec.name,
                self.namespace,
                body,
                field_manager=cred.FIELD_MANAGER,
                _preload_content=False,
            )
        self._written[it.spec.name] = self._digest(json.loads(resp.data))  # as stored
        log.info(
            "secret written",
            name=it.key,
            secret=it.spec.name,
            authentication=it.spec.auth,
            **({"renewed": it.renewed} if it.renewed else {}),
        )

    def _start_secret_writes(self, items: list[Item]) -> dict:
        todo = [it for it in items if it.secret_wanted is not None or it.delete_secret]
        return {it.key: self.pool.submit(self._write_one, it) for it in todo}

    def _secret_writes_done(self, items: list[Item], futures: dict, out) -> list[Item]:
        """The items whose Secret write (if any) succeeded; the others are retried."""
        kept = []
        for it in items:
            f = futures.get(it.key)
            if f is not None:
                e = f.exception()
                if e is not None:
                    if isinstance(e, client.ApiException) and e.status == 409:
                        # written meanwhile (by someone else, or a race): judged afresh next time
                        log.warning("secret changed meanwhile", name=it.key, secret=it.spec.name)
                    else:
                        log.warning("secret not written", name=it.key, error=repr(e))
                    out[it.key] = Outcome("retry")
                    continue
            kept.append(it)
        return kept

    def _clear_force_renew(self, it: Item) -> None:
        path = "/metadata/annotations/" + FORCE_RENEW.replace("~", "~0").replace("/", "~1")
        try:
            self.core.patch_namespaced_config_map(
                it.key, self.namespace, [{"op": "remove", "path": path}], _preload_content=False
            ).drain_conn()  # (read to the end, so the connection goes back to the pool)
        except client.ApiException as e:
            if e.status not in (404, 422):
                raise

    @staticmethod
    def _extra(it: Item) -> dict:
        extra = {
            "username": it.spec.name,
            "authentication": it.spec.auth,
            "secret": it.spec.name if it.spec.has_secret else None,
        }
        if it.spec.auth == TLS:
            data = (it.secret_wanted or it.secret or {}).get("data")
            extra["certificateExpires"] = cred.cert_expiry(data or {})
        return extra

    @staticmethod
    def _ready_message(it: Item) -> str:
        spec = it.spec
        parts = [f"user {spec.name}"]
        if spec.auth == SCRAM:
            parts.append(f"SCRAM-SHA-512 credentials in Secret {spec.name}")
        elif spec.auth == TLS:
            parts.append(f"certificate CN={spec.name} in Secret {spec.name}")
        elif spec.auth is not None:
            parts.append(f"authenticated by {spec.auth}")
        parts.append(f"{it.acl_count} ACL{'s' if it.acl_count != 1 else ''}")
        parts.append(f"{len(spec.quotas)} quota{'s' if len(spec.quotas) != 1 else ''}")
        return ", ".join(parts)

    # ---- deletion -------------------------------------------------------------------------
    def _delete(self, deletions: list[tuple[str, dict]], out) -> None:
        active = [(k, o) for k, o in deletions if not st.paused(o)]
        users = [k for k, _ in active]
        failed: dict[str, str] = {}
        if users:
            res = self.kafka.call(
                "alter_user_scram_credentials", lambda a: a.alter_scram({}, users)
            )
            for u, err in res.items():
                if err is not None:
                    failed[u] = f"SCRAM credential: {err}"
            res = self.kafka.call(
                "delete_acls", lambda a: a.delete_principal_acls([f"User:{u}" for u in users])
            )
            for u in users:
                err = res.get(f"User:{u}")
                if err is not None:
                    failed.setdefault(u, f"ACLs: {err}")
            small = len(users) <= GET_LIMIT
            quotas = self.kafka.call(
                "describe_client_quotas", lambda a: a.describe_quotas(users if small else None)
            )
            removals = {u: dict.fromkeys(q) for u, q in quotas.items() if q and u in set(users)}
            if removals:
                res = self.kafka.call("alter_client_quotas", lambda a: a.alter_quotas(removals))
                for u, err in res.items():
                    if err is not None:
                        failed.setdefault(u, f"quotas: {err}")
        for key, obj in deletions:
            if key in failed:
                log.warning("user not removed", name=key, error=failed[key])
                out[key] = Outcome("retry")
                continue
            uid = st.meta(obj).get("uid")
            try:
                secret = self._read_secret(key)
                if cred.owned_by(secret, uid):
                    self.core.delete_namespaced_secret(key, self.namespace)
                st.remove_finalizer(self.core, obj, FINALIZER)
            except Exception as e:
                log.warning("user cleanup failed", name=key, error=repr(e))
                out[key] = Outcome("retry")
                continue
            self.reporter.forget(key)
            if (key, obj) in active:
                log.info("user removed", name=key, user=key)
            out[key] = Outcome("ready")
