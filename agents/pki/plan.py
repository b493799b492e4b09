"""The planner: what kairn-certs must issue or renew, given the Secrets and a clock. No I/O.

`plan(desired, secrets, now, steps)` reads the Secrets (name -> Secret, missing ones absent) and
returns a Plan: the actions to take, warnings, and errors. Any error means nothing is written.

Leaves (per pod, and the agents identity) are issued when missing and re-issued when they expire
within the renewal window, when their CN or SANs differ from the desired ones, or when they are
not signed by the current cluster CA. Scaling up only adds the new pods' certificates.

CAs are created when missing and otherwise never changed silently. A CA expiring within the
renewal window is an error until a person asks for a step. Steps (one per CA per run, from
`--renew-ca/--replace-ca/--promote-ca/--drop-old-ca KIND`, or the annotation
`kairn.dev/force-replace: "true"` on `<fullname>-<kind>-ca`, which means replace):

- renew: re-sign the CA certificate with the same key and subject. Every existing leaf keeps
  verifying against it, so a single roll picks it up.
- replace, in three runs, each followed by the roll of every pod, so that no pod ever meets a
  peer certificate it cannot verify (a pod reads its truststore when it starts):
  1. `--replace-ca`: a new CA (generation N+1) is created and added to `ca.crt`/`ca.p12`
     after the current one; its key waits in `ca-next.key`. Nothing is signed by it yet, and
     `ca.key` still signs, so user certificates issued meanwhile stay valid for unrolled pods.
     The roll makes every pod trust both CAs.
  2. `--promote-ca`: the new CA becomes the signing one (`ca.key`, first in `ca.crt`,
     `kairn.dev/ca-generation` N+1) and every leaf it covers is re-issued. The old CA stays
     trusted, so rolled and unrolled pods verify each other.
  3. `--drop-old-ca`: `ca.crt` keeps the signing CA only; the roll forgets the old one.
  A step asked for at the wrong moment is a warning (a value left set must not break upgrades),
  except dropping during step 1, which would untrust the CA about to sign: that is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import issue, kraft
from .model import FORCE_REPLACE, GENERATION, KINDS, LEAF_KEYS, NEXT_KEY, Desired, Secret

STEPS = ("renew", "replace", "promote", "drop")


@dataclass(frozen=True)
class CAAction:
    kind: str
    what: str  # create | renew | replace | promote | drop | repack | clear-annotation
    reason: str


@dataclass(frozen=True)
class IssueLeaf:
    secret: str
    prefix: str  # key prefix in the Secret: the pod name, or "user" for the agents identity
    cn: str
    dns: tuple[str, ...]
    ips: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class SyncTrust:
    secret: str  # a Secret holding a copy of the cluster CA bundle as `ca.crt`
    reason: str


@dataclass(frozen=True)
class CreateKRaftCluster:
    secret: str  # <fullname>-kraft-cluster: a new cluster id and the initial voters
    controllers: int
    reason: str


@dataclass(frozen=True)
class DropEntries:
    """Certificates of pods a scale-in removed (stale_pod_entries): their keys leave the
    Secret, and their renewal marks with them."""

    secret: str
    pods: tuple[str, ...]
    keys: tuple[str, ...]
    reason: str


Action = CAAction | IssueLeaf | SyncTrust | CreateKRaftCluster | DropEntries


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass
class _CA:
    """A CA as read from its two Secrets (None signing: it is about to be created)."""

    signing: issue.KeyPair | None = None
    bundle: list = field(default_factory=list)
    next: issue.KeyPair | None = None
    generation: int = 0


class Bad(Exception):
    """A malformed Secret: the message names the Secret and the key."""


def plan(
    desired: Desired,
    secrets: Mapping[str, Secret],
    now: datetime,
    steps: Mapping[str, str] | None = None,
    existing_pods: Iterable[str] | None = None,
) -> Plan:
    """``existing_pods``: the names of the namespace's pods, to drop the certificates of pods
    a scale-in removed; None (not known) drops nothing."""
    steps = steps or {}
    acts: list[Action] = []
    warns: list[str] = []
    errs: list[str] = []
    cas: dict[str, _CA] = {}
    for kind in KINDS:
        try:
            cas[kind], a, w = _plan_ca(desired, kind, secrets, now, steps.get(kind))
            acts += a
            warns += w
        except Bad as e:
            errs.append(str(e))
    if "cluster" not in cas:
        return Plan(tuple(acts), tuple(warns), tuple(errs))
    fresh = [a for a in acts if a.kind == "cluster" and a.what in ("create", "promote")]
    signer = None if fresh else cas["cluster"].signing
    why_all = f"cluster CA {fresh[0].what}d" if fresh else ""
    leaves = [
        (c.secret, pod, c.cn, sans) for c in desired.components() for pod, sans in c.pods.items()
    ]
    agents_sans = ((desired.agents_cn,), ())
    leaves.append((desired.agents_secret, "user", desired.agents_cn, agents_sans))
    for secret, prefix, cn, (dns, ips) in leaves:
        try:
            reason = why_all or _leaf_reason(
                secrets.get(secret), secret, prefix, cn, dns, ips, signer, now, desired
            )
        except Bad as e:
            errs.append(str(e))
            continue
        if reason:
            acts.append(IssueLeaf(secret, prefix, cn, dns, ips, reason))
    cluster_changed = any(isinstance(a, CAAction) and a.kind == "cluster" for a in acts)
    agents = secrets.get(desired.agents_secret)
    copy = agents.data.get("ca.crt", b"") if agents else b""
    if agents and not same_certs(copy, cas["cluster"].bundle) and not cluster_changed:
        acts.append(SyncTrust(desired.agents_secret, "ca.crt differs from the cluster CA"))
    if existing_pods is not None:
        acts += _plan_stale(desired, secrets, set(existing_pods))
    if desired.controller_replicas:
        try:
            acts += _plan_kraft(desired, secrets.get(desired.kraft_secret))
        except Bad as e:
            errs.append(str(e))
    return Plan(tuple(acts), tuple(warns), tuple(errs))


def _plan_stale(d: Desired, secrets: Mapping[str, Secret], alive: set[str]) -> list[Action]:
    """A DropEntries for each component Secret holding certificates of removed pods."""
    out: list[Action] = []
    for c in d.components():
        found = secrets.get(c.secret)
        if found is None or not c.pods:  # no pods wanted at all is another mode, not a scale-in
            continue
        keys = stale_pod_entries(found.data, f"{d.fullname}-{c.name}", len(c.pods), alive)
        if keys:
            pods = tuple(sorted({k.rpartition(".")[0] for k in keys}))
            why = f"pod(s) removed by a scale-in to {len(c.pods)}"
            out.append(DropEntries(c.secret, pods, tuple(keys), why))
    return out


def _plan_kraft(d: Desired, found: Secret | None) -> list[Action]:
    """The KRaft cluster Secret is created once and then only read: a new cluster id would make
    every formatted volume refuse to start, so a damaged one is an error for a person to fix."""
    if found is None:
        if d.kraft_cluster_from_zookeeper:
            return []
        return [CreateKRaftCluster(d.kraft_secret, d.controller_replicas, "missing")]
    for key in (kraft.CLUSTER_ID, kraft.INITIAL_CONTROLLERS):
        if not found.data.get(key):
            raise Bad(
                f"Secret {d.kraft_secret}: key {key} is missing; restore it from a backup (the "
                "volumes are formatted with it), or delete the Secret and the volumes of every "
                "controller and broker to start a new cluster"
            )
    return []


def same_certs(pem: bytes, certs: list) -> bool:
    """Whether a PEM bundle holds exactly these certificates (formatting aside)."""
    try:
        return issue.load_certs(pem) == list(certs)
    except ValueError:
        return False


def _plan_ca(d: Desired, kind: str, secrets, now, step):
    cert_name, key_name = d.ca_cert_secret(kind), d.ca_key_secret(kind)
    cs, ks = secrets.get(cert_name), secrets.get(key_name)
    if cs is None and ks is None:
        return _CA(), [CAAction(kind, "create", f"{cert_name} and {key_name} missing")], []
    if ks is None:
        raise Bad(
            f"Secret {key_name} is missing but {cert_name} exists: restore {key_name} "
            f"(the {kind} CA's key) or delete both to create a new {kind} CA"
        )
    if cs is None:
        _key(ks, key_name, "ca.key")  # a malformed key must not be silently discarded
        return _CA(), [CAAction(kind, "create", f"{cert_name} missing: new CA for the key")], []
    ca = _read_ca(cs, ks, cert_name, key_name)
    acts, warns = [], []
    if "ca.p12" not in cs.data and "ca.password" not in cs.data:
        acts.append(CAAction(kind, "repack", "ca.p12 missing (user-provided CA)"))
    else:
        _check_truststore(cs, cert_name, ca.bundle, acts, kind)
    forced = ks.annotations.get(FORCE_REPLACE) == "true"
    step = step or ("replace" if forced else None)
    phase = "trust" if ca.next else ("old-trusted" if len(ca.bundle) > 1 else "idle")
    left = ca.signing.cert.not_valid_after_utc - now
    nxt = {"trust": "--promote-ca", "old-trusted": "--drop-old-ca"}.get(phase, "--replace-ca")
    if step == "renew":
        acts.append(CAAction(kind, "renew", f"requested; {left.days} days left"))
    elif step == "replace" and phase == "idle":
        acts.append(CAAction(kind, "replace", f"requested; new CA generation {ca.generation + 1}"))
    elif step == "promote" and phase == "trust":
        acts.append(CAAction(kind, "promote", f"requested; generation {ca.generation + 1} signs"))
    elif step == "drop" and phase == "old-trusted":
        acts.append(CAAction(kind, "drop", "requested; keeping the signing CA only"))
    elif step == "drop" and phase == "trust":
        raise Bad(
            f"Secret {cert_name}: cannot drop the old {kind} CA before the new one signs; "
            f"run with --promote-ca {kind} first"
        )
    elif step:
        warns.append(f"{kind} CA: {step} not applicable now ({phase}); next step: {nxt} {kind}")
    acting = {a.what for a in acts} & {"renew", "replace", "promote"}
    if left <= d.renewal and not acting:
        raise Bad(
            f"Secret {cert_name}: the {kind} CA expires on "
            f"{ca.signing.cert.not_valid_after_utc:%Y-%m-%d} ({left.days} days left); "
            f"run with --renew-ca {kind} (same key) or {nxt} {kind}"
        )
    if forced and not any(a.what == "replace" for a in acts):
        acts.append(CAAction(kind, "clear-annotation", f"{FORCE_REPLACE} on {key_name} seen"))
    if ca.signing.cert.not_valid_after_utc < now + timedelta(days=d.validity_days):
        warns.append(
            f"{kind} CA expires {ca.signing.cert.not_valid_after_utc:%Y-%m-%d}: "
            "new leaves are cut short; plan --renew-ca or --replace-ca"
        )
    return ca, acts, warns


def _read_ca(cs: Secret, ks: Secret, cert_name: str, key_name: str) -> _CA:
    bundle = _certs(cs, cert_name, "ca.crt")
    key = _key(ks, key_name, "ca.key")
    for c in bundle:
        if not issue.is_ca(c):
            raise Bad(
                f"Secret {cert_name}: ca.crt holds a certificate that is not a CA "
                f"({issue.common_name(c)!r})"
            )
    signing = [c for c in bundle if issue.key_matches(c, key)]
    if not signing:
        raise Bad(
            f"Secret {key_name}: ca.key does not match any certificate in ca.crt of "
            f"{cert_name} (a CA's key and certificate must belong together)"
        )
    ca = _CA(issue.KeyPair(signing[0], key), bundle)
    if NEXT_KEY in ks.data:
        nkey = _key(ks, key_name, NEXT_KEY)
        match = [c for c in bundle if issue.key_matches(c, nkey) and c is not signing[0]]
        if not match:
            raise Bad(
                f"Secret {key_name}: {NEXT_KEY} matches no certificate in ca.crt of "
                f"{cert_name}; remove {NEXT_KEY} to abandon the replacement"
            )
        ca.next = issue.KeyPair(match[0], nkey)
    gen = cs.annotations.get(GENERATION, "0")
    if not gen.isdigit():
        raise Bad(f"Secret {cert_name}: annotation {GENERATION}={gen!r} is not a number")
    ca.generation = int(gen)
    return ca


def _check_truststore(cs: Secret, name: str, bundle, acts: list, kind: str) -> None:
    for k in ("ca.p12", "ca.password"):
        if k not in cs.data:
            raise Bad(f"Secret {name}: key {k} is missing")
    try:
        _, certs = issue.load_p12(cs.data["ca.p12"], cs.data["ca.password"])
    except ValueError as e:
        raise Bad(f"Secret {name}: ca.p12 does not open with ca.password ({e})") from None
    if {issue.fingerprint(c) for c in certs} != {issue.fingerprint(c) for c in bundle}:
        acts.append(CAAction(kind, "repack", "ca.p12 does not hold the certificates of ca.crt"))


def _certs(s: Secret, name: str, key: str):
    if key not in s.data:
        raise Bad(f"Secret {name}: key {key} is missing")
    try:
        return issue.load_certs(s.data[key])
    except ValueError as e:
        raise Bad(f"Secret {name}: key {key} is not a PEM certificate ({e})") from None


def _key(s: Secret, name: str, key: str):
    if key not in s.data:
        raise Bad(f"Secret {name}: key {key} is missing")
    try:
        return issue.load_key(s.data[key])
    except (ValueError, TypeError) as e:
        # The exception text of a key parser never contains key material, only its reason.
        raise Bad(f"Secret {name}: key {key} is not a PEM private key ({e})") from None


def _leaf_reason(s, name, prefix, cn, dns, ips, signer, now, d: Desired) -> str:
    """Why the leaf `prefix` in Secret `name` must be (re-)issued, or '' when it is fine."""
    keys = [f"{prefix}.{k}" for k in LEAF_KEYS]
    present = [k for k in keys if s is not None and k in s.data]
    if not present:
        return "missing"
    if len(present) < len(keys):
        missing = next(k for k in keys if k not in present)
        raise Bad(f"Secret {name}: key {missing} is missing (next to {present[0]})")
    cert = _certs(s, name, keys[0])[0]
    key = _key(s, name, keys[1])
    if not issue.key_matches(cert, key):
        raise Bad(f"Secret {name}: key {keys[1]} does not match {keys[0]}")
    try:
        p12_key, p12_certs = issue.load_p12(s.data[keys[2]], s.data[keys[3]])
    except ValueError as e:
        raise Bad(f"Secret {name}: key {keys[2]} does not open with {keys[3]} ({e})") from None
    if p12_key is None or not p12_certs or p12_certs[0] != cert:
        raise Bad(f"Secret {name}: key {keys[2]} does not hold the certificate of {keys[0]}")
    if signer is None or not issue.signed_by(cert, signer.cert):
        return "not signed by the current cluster CA"
    left = cert.not_valid_after_utc - now
    if left <= d.renewal:
        return f"expires in {left.days} days" if left.days >= 0 else "expired"
    if issue.common_name(cert) != cn:
        return f"CN is {issue.common_name(cert)!r}, want {cn!r}"
    if issue.sans(cert) != (frozenset(dns), frozenset(ips)):
        return "SANs changed"
    return ""


def stale_pod_entries(
    keys: Iterable[str], statefulset: str, replicas: int, existing_pods: Iterable[str]
) -> list[str]:
    """Keys of a per-pod certificate Secret (``<pod>.crt``, ``.key``, ``.p12``,
    ``.password``) that belong to pods a scale-in removed: an ordinal at or above
    ``replicas`` whose pod no longer exists. A pod still running (a scale-in refused or not
    applied yet) keeps its certificate, as does anything that is not a pod entry."""
    alive = set(existing_pods)
    out = []
    for k in sorted(keys):
        pod, _, suffix = k.rpartition(".")
        head, _, ordinal = pod.rpartition("-")
        if suffix not in LEAF_KEYS or head != statefulset or not ordinal.isdigit():
            continue
        if int(ordinal) >= replicas and pod not in alive:
            out.append(k)
    return out
