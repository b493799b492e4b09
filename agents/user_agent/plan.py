"""What to change for one user, from what Kubernetes and Kafka hold (pure; no I/O).

:func:`plan_user` takes resolved inputs: the parsed spec, the ConfigMap, the Secret named after
the user (whoever wrote it), what Kafka holds (:class:`KafkaView`), the referenced password and
the clients CA (each already read, or the :class:`Refused` that says why it cannot be used).
It returns a :class:`UserPlan`, or raises :class:`Refused` (an Error, or ``Pending`` for
:data:`WAIT_REASONS`) before anything is written. Generating a password or a key is the only
thing it does beside deciding.

Also pure: :func:`quota_changes`, :func:`referenced_password`, :func:`clients_ca_material`,
the status of a Ready user (:func:`ready_message`, :func:`status_extra`) and
:func:`removal_failures` (which deleted users Kafka did not let go of).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agents.common import status as st

from . import credentials as cred
from .acls import acl_of
from .kafka_lanes import KafkaItemError
from .kafka_users import SCRAM_SHA_512
from .spec import QUOTA_KEYS, SCRAM, TLS, PasswordRef, UserSpec

FORCE_RENEW = "kairn.dev/force-renew"
# refusals that clear up by themselves (the kairn-certs hook writes the clients CA): Pending
WAIT_REASONS = ("ClientsCaMissing", "ClientsCaInvalid")


class Refused(Exception):
    """The user's spec cannot be applied: becomes Error (or Pending, for :data:`WAIT_REASONS`)
    with ``reason`` and ``message``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message

    @property
    def waits(self) -> bool:
        return self.reason in WAIT_REASONS


@dataclass(frozen=True)
class KafkaView:
    """What Kafka holds for the users of a batch; a user Kafka could not describe maps to
    its error in ``unreadable``."""

    scram: dict[str, list[tuple]] = field(default_factory=dict)  # user -> [(mechanism, iter)]
    acls: dict[str, set[tuple]] = field(default_factory=dict)  # principal -> {acl tuple}
    quotas: dict[str, dict[str, float]] = field(default_factory=dict)  # user -> {key: value}
    unreadable: dict[str, str] = field(default_factory=dict)  # user -> why

    @staticmethod
    def of(scram: dict, acls: dict, quotas: dict, principal_of=lambda p: p) -> KafkaView:
        """A view from the adapter's answers, whose values may be :class:`KafkaItemError`;
        ``principal_of`` maps a principal to its user name."""
        view = KafkaView()
        for what, answers, target, user_of in (
            ("SCRAM credentials", scram, view.scram, lambda u: u),
            ("ACLs", acls, view.acls, principal_of),
            ("quotas", quotas, view.quotas, lambda u: u),
        ):
            for name, answer in answers.items():
                if isinstance(answer, KafkaItemError):
                    view.unreadable.setdefault(
                        user_of(name), f"Kafka did not describe {what}: {answer}"
                    )
                else:
                    target[name] = answer
        return view


@dataclass(frozen=True)
class Issuing:
    """How TLS certificates are issued, the Secrets' cluster label, and the cluster CA every
    Secret carries as ``ca.crt`` (what a client trusts the brokers by; None: not known)."""

    cluster: str
    validity_days: int
    renewal_days: int
    now: datetime
    cluster_ca: bytes | None = None


@dataclass(frozen=True)
class UserPlan:
    secret: dict | None = None  # the user's current Secret when this agent wrote it, else None
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


def plan_user(
    spec: UserSpec,
    owner: dict,
    secret: dict | None,
    kafka: KafkaView,
    issuing: Issuing,
    password: str | Refused | None = None,
    ca: cred.ClientsCa | Refused | None = None,
) -> UserPlan:
    """What makes Kafka and the user's Secret match ``spec``. ``owner`` is the ConfigMap (its
    uid owns the Secret, its namespace holds it); ``password`` the referenced password (None
    when the spec has no reference); ``ca`` the clients CA (needed by TLS users only)."""
    uid, namespace = st.meta(owner).get("uid"), st.meta(owner).get("namespace")
    current = secret
    if current is not None and not cred.owned_by(current, uid):
        if spec.has_secret:
            raise Refused(
                "SecretConflict",
                f"a Secret named {spec.name} already exists and was not written for this "
                "ConfigMap; delete or rename it, or rename the user",
            )
        current = None  # not ours: leave it alone
    has_scram = any(m == SCRAM_SHA_512 for m, _ in kafka.scram.get(spec.name, []))
    plan: dict = {"secret": current}
    data = None
    if spec.auth == SCRAM:
        if spec.password_ref is not None:
            if isinstance(password, Refused) or password is None:
                raise password or Refused("PasswordSecretNotFound", "the password was not read")
            chosen = password
        elif spec.password_inline is not None:
            chosen = spec.password_inline
        else:
            chosen = cred.secret_password(current) or cred.generate_password()
        edited = cred.edited_by_others(current)
        plan["password"] = chosen
        plan["upsert"] = not has_scram or edited or chosen != cred.secret_password(current)
        data = cred.scram_data(spec.name, chosen, issuing.cluster_ca)
    elif spec.auth == TLS:
        if isinstance(ca, Refused) or ca is None:
            raise ca or Refused("ClientsCaMissing", "the clients CA was not read")
        plan["force_renew"] = FORCE_RENEW in st.annotations(owner)
        reason = "renewal asked for (kairn.dev/force-renew)" if plan["force_renew"] else None
        existing = (current or {}).get("data") if current else None
        if current is not None and "user.crt" not in (existing or {}):
            existing = None  # a SCRAM Secret before: issue
        reason = reason or cred.tls_renewal_reason(
            existing, ca, spec.name, issuing.now, issuing.renewal_days
        )
        if reason:
            plan["renewed"] = reason
            data = cred.tls_data(ca, spec.name, issuing.now, issuing.validity_days)
        else:
            data = dict(existing)
        data.update(cred.ca_data(ca, issuing.cluster_ca))
    plan["delete_scram"] = spec.auth != SCRAM and has_scram
    if data is not None:
        body = cred.secret_body(
            spec.name,
            namespace,
            issuing.cluster,
            owner,
            data,
            spec.secret_labels,
            spec.secret_annotations,
            (current or {}).get("metadata", {}).get("resourceVersion"),
        )
        if cred.secret_differs(current, body) or cred.edited_by_others(current):
            plan["secret_wanted"] = body  # (written again to own its data once more)
    elif current is not None:
        plan["delete_secret"] = True
    wanted = {acl_of(spec.principal, r) for r in spec.acls}
    have = kafka.acls.get(spec.principal, set())
    return UserPlan(
        **plan,
        acl_create=sorted(wanted - have),
        acl_delete=sorted(have - wanted),
        acl_count=len(wanted),
        quota_ops=quota_changes(kafka.quotas.get(spec.name, {}), spec.quotas),
    )


def quota_changes(current: dict[str, float], wanted: dict[str, float]) -> dict:
    """The ops that turn ``current`` into ``wanted`` ({key: value or None to remove})."""
    ops: dict[str, float | None] = {}
    for k in QUOTA_KEYS:
        have, want = current.get(k), wanted.get(k)
        if want is None and have is not None:
            ops[k] = None
        elif want is not None and have != want:
            ops[k] = want
    for k in current:
        if k not in QUOTA_KEYS:
            ops[k] = None  # a key kairn does not know: not part of the spec
    return ops


# ---- resolved inputs ------------------------------------------------------------------------
def referenced_password(ref: PasswordRef, secret: dict | None, namespace: str) -> str | Refused:
    """The password ``ref`` points at in ``secret`` (as read), or why it cannot be used."""
    if secret is None:
        return Refused(
            "PasswordSecretNotFound",
            f"the password Secret {ref.secret} does not exist in {namespace}",
        )
    data = secret.get("data") or {}
    if ref.key not in data:
        return Refused(
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
        return Refused(
            "InvalidPassword",
            f"the key {ref.key!r} of Secret {ref.secret} is empty or not UTF-8 text",
        )
    return value


def clients_ca_material(
    cert_secret: dict | None, key_secret: dict | None, names: tuple[str, str]
) -> tuple[bytes, bytes] | Refused:
    """(ca.crt, ca.key) from the clients CA Secrets ``names`` (as read), or why not."""
    if not cert_secret or not key_secret:
        return Refused(
            "ClientsCaMissing",
            f"the clients CA Secrets {names[0]} and {names[1]} are not there yet (the "
            "kairn-certs hook creates them)",
        )
    ca_crt = cred.unb64((cert_secret.get("data") or {}).get("ca.crt"))
    ca_key = cred.unb64((key_secret.get("data") or {}).get("ca.key"))
    if not ca_crt or not ca_key:
        return Refused("ClientsCaMissing", "the clients CA Secrets lack ca.crt or ca.key")
    return ca_crt, ca_key


# ---- the status of a Ready user ------------------------------------------------------------
def ready_message(spec: UserSpec, plan: UserPlan) -> str:
    parts = [f"user {spec.name}"]
    if spec.auth == SCRAM:
        parts.append(f"SCRAM-SHA-512 credentials in Secret {spec.name}")
    elif spec.auth == TLS:
        parts.append(f"certificate CN={spec.name} in Secret {spec.name}")
    elif spec.auth is not None:
        parts.append(f"authenticated by {spec.auth}")
    n = plan.acl_count
    parts.append(f"{n} ACL{'s' if n != 1 else ''}")
    parts.append(f"{len(spec.quotas)} quota{'s' if len(spec.quotas) != 1 else ''}")
    return ", ".join(parts)


def status_extra(spec: UserSpec, plan: UserPlan) -> dict:
    extra = {
        "username": spec.name,
        "authentication": spec.auth,
        "secret": spec.name if spec.has_secret else None,
    }
    if spec.auth == TLS:
        data = (plan.secret_wanted or plan.secret or {}).get("data")
        extra["certificateExpires"] = cred.cert_expiry(data or {})
    return extra


# ---- deletion -------------------------------------------------------------------------------
def removal_failures(
    users: list[str],
    scram: dict[str, KafkaItemError | None],
    acls: dict[str, KafkaItemError | None],
    described: dict[str, dict | KafkaItemError],
    quotas: dict[str, KafkaItemError | None],
) -> dict[str, str]:
    """{user: why} for the deleted users Kafka did not let go of: its SCRAM credential, its
    principal's ACLs (keyed by principal), its quotas could not be described or removed."""
    failed: dict[str, str] = {}
    for u in users:
        for what, err in (
            ("SCRAM credential", scram.get(u)),
            ("ACLs", acls.get(f"User:{u}")),
            ("quotas", described.get(u) if isinstance(described.get(u), KafkaItemError) else None),
            ("quotas", quotas.get(u)),
        ):
            if err is not None:
                failed.setdefault(u, f"{what}: {err}")
    return failed


def quota_removals(users: list[str], described: dict[str, dict | KafkaItemError]) -> dict:
    """The quota ops that remove every quota of the deleted ``users`` Kafka described."""
    wanted = set(users)
    return {
        u: dict.fromkeys(q)
        for u, q in described.items()
        if u in wanted and q and not isinstance(q, KafkaItemError)
    }
