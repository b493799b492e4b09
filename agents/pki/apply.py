"""Carrying out a Plan: the new content of every Secret it changes, and the restart marks.

Restart marks: every component Secret (`<fullname>-kafka-brokers`, `<fullname>-zookeeper-nodes`,
`<fullname>-agents-cert`) carries the annotation `kairn.dev/renewed-at`, a JSON object mapping a
pod name (for the agents Deployment: `<fullname>-agents`) to the time its TLS material last
changed: its own certificate, or a CA bundle it trusts. A pod that started before that time runs
with old material and needs a restart; `pods_needing_restart` answers that from the Secrets and
the pods' start times, so the marks never need clearing and a pod that restarted for any other
reason is not restarted again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from . import issue, kraft
from .model import FORCE_REPLACE, GENERATION, NEXT_KEY, RENEWED_AT, Desired, Secret
from .plan import CAAction, CreateKRaftCluster, DropEntries, IssueLeaf, Plan, same_certs


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Work:
    """Mutable copies of the Secrets; `result()` returns only those that changed."""

    def __init__(self, secrets: Mapping[str, Secret], labels: Mapping[str, str]):
        self.old, self.labels = secrets, labels
        self.data = {n: dict(s.data) for n, s in secrets.items()}
        self.ann = {n: dict(s.annotations) for n, s in secrets.items()}

    def d(self, name: str) -> dict[str, bytes]:
        self.ann.setdefault(name, {})
        return self.data.setdefault(name, {})

    def a(self, name: str) -> dict[str, str]:
        self.data.setdefault(name, {})
        return self.ann.setdefault(name, {})

    def result(self) -> dict[str, Secret]:
        out = {}
        for n, data in self.data.items():
            old = self.old.get(n)
            if old is None and not data:
                continue  # looked at, never written
            if old and data == dict(old.data) and self.ann[n] == dict(old.annotations):
                continue
            labels = {**(old.labels if old else {}), **self.labels}
            rv, kind = (old.resource_version, old.type) if old else (None, "Opaque")
            out[n] = Secret(data, self.ann[n], labels, rv, kind)
        return out


def execute(plan: Plan, desired: Desired, secrets: Mapping[str, Secret], now: datetime):
    """{name: Secret} for every Secret to create or replace (resource_version None: create)."""
    if plan.errors:
        raise ValueError("a plan with errors is not carried out")
    w = _Work(secrets, desired.labels)
    cas = {a.kind for a in plan.actions if isinstance(a, CAAction)}
    signers, trust_changed = {}, set()
    for kind in ("cluster", "clients"):
        acts = [a for a in plan.actions if isinstance(a, CAAction) and a.kind == kind]
        before = w.d(desired.ca_cert_secret(kind)).get("ca.crt")
        signers[kind] = _do_ca(w, desired, kind, acts, now) if kind in cas else None
        if w.d(desired.ca_cert_secret(kind)).get("ca.crt") != before:
            trust_changed.add(kind)
    if signers["cluster"] is None:
        signers["cluster"] = _signing(w, desired, "cluster")
    bundle = issue.load_certs(w.d(desired.ca_cert_secret("cluster"))["ca.crt"])
    renewed: set[str] = set()
    for a in plan.actions:
        if isinstance(a, IssueLeaf):
            _issue(w, a, signers["cluster"], desired, now)
            renewed.add(desired.agents_cn if a.prefix == "user" else a.prefix)
    agents = w.d(desired.agents_secret)
    if agents and not same_certs(agents.get("ca.crt", b""), bundle):
        agents["ca.crt"] = issue.cert_pem(*bundle)
    _mark(w, desired, renewed, trust_changed, now)
    for a in plan.actions:
        if isinstance(a, CreateKRaftCluster):
            w.d(a.secret).update(kraft.cluster_data(a.controllers))
        elif isinstance(a, DropEntries):
            _drop(w, a)
    return w.result()


def _drop(w: _Work, a: DropEntries) -> None:
    """A removed pod's certificate and key leave the Secret; its renewal mark too, so that a
    pod of that name created by a later scale-out starts without one."""
    data = w.d(a.secret)
    for k in a.keys:
        data.pop(k, None)
    ann = w.a(a.secret)
    marks = _marks(ann)
    if any(p in marks for p in a.pods):
        for p in a.pods:
            marks.pop(p, None)
        ann[RENEWED_AT] = json.dumps(marks, sort_keys=True, separators=(",", ":"))


def _signing(w: _Work, d: Desired, kind: str) -> issue.KeyPair:
    return issue.signing_ca(
        w.d(d.ca_cert_secret(kind))["ca.crt"], w.d(d.ca_key_secret(kind))["ca.key"]
    )


def _do_ca(w: _Work, d: Desired, kind: str, acts: list[CAAction], now) -> issue.KeyPair:
    cert_s, key_s = d.ca_cert_secret(kind), d.ca_key_secret(kind)
    cd, kd, ca_ann = w.d(cert_s), w.d(key_s), w.a(cert_s)
    gen = int(ca_ann.get(GENERATION, "0"))
    for a in acts:
        if a.what == "create":
            old = issue.load_key(kd["ca.key"]) if "ca.key" in kd else None
            signer = issue.new_ca(f"{d.fullname}-{kind}-ca-v0", now, d.ca_validity_days, old)
            kd["ca.key"], bundle, gen = issue.key_pem(signer.key), [signer.cert], 0
            continue
        signer = _signing(w, d, kind)
        bundle = issue.load_certs(cd["ca.crt"])
        if a.what == "renew":
            new = issue.new_ca(signer.cert.subject, now, d.ca_validity_days, signer.key)
            bundle = [new.cert if c == signer.cert else c for c in bundle]
            signer = new
        elif a.what == "replace":
            nxt = issue.new_ca(f"{d.fullname}-{kind}-ca-v{gen + 1}", now, d.ca_validity_days)
            kd[NEXT_KEY] = issue.key_pem(nxt.key)
            bundle.append(nxt.cert)
        elif a.what == "promote":
            nkey = issue.load_key(kd.pop(NEXT_KEY))
            cert = next(c for c in bundle if issue.key_matches(c, nkey))
            signer, gen = issue.KeyPair(cert, nkey), gen + 1
            kd["ca.key"] = issue.key_pem(nkey)
            bundle = [cert, *(c for c in bundle if c != cert)]
        elif a.what == "drop":
            bundle = [signer.cert]
        w.a(key_s).pop(FORCE_REPLACE, None)  # any step consumes a person's request
    if all(a.what == "clear-annotation" for a in acts):
        return signer  # the bundle is unchanged: leave ca.crt and ca.p12 byte for byte
    # The signing CA first: a reader that takes the first certificate gets the issuer.
    bundle = [signer.cert, *(c for c in bundle if c != signer.cert)]
    cd.setdefault("ca.password", issue.new_password())
    cd["ca.crt"] = issue.cert_pem(*bundle)
    cd["ca.p12"] = issue.truststore_p12(bundle, cd["ca.password"])
    ca_ann[GENERATION] = str(gen)
    return signer


def _issue(w: _Work, a: IssueLeaf, ca: issue.KeyPair, d: Desired, now) -> None:
    pair = issue.issue_leaf(ca, a.cn, a.dns, a.ips, now, d.validity_days)
    data = w.d(a.secret)
    password = data.get(f"{a.prefix}.password") or issue.new_password()
    alias = a.cn if a.prefix == "user" else a.prefix
    data[f"{a.prefix}.crt"] = issue.cert_pem(pair.cert)
    data[f"{a.prefix}.key"] = issue.key_pem(pair.key)
    data[f"{a.prefix}.p12"] = issue.keystore_p12(alias, pair, [ca.cert], password)
    data[f"{a.prefix}.password"] = password


def _mark(w: _Work, d: Desired, renewed: set[str], trust_changed: set[str], now) -> None:
    owners = [(c.secret, list(c.pods), c.trusts) for c in d.components()]
    owners.append((d.agents_secret, [d.agents_cn], ("cluster",)))
    for secret, pods, trusts in owners:
        hit = [p for p in pods if p in renewed or trust_changed & set(trusts)]
        if not hit:
            continue
        ann = w.a(secret)
        marks = _marks(ann)
        marks.update(dict.fromkeys(hit, _ts(now)))
        ann[RENEWED_AT] = json.dumps(marks, sort_keys=True, separators=(",", ":"))


def renewed_at(secrets: Mapping[str, Secret]) -> dict[str, datetime]:
    """Pod (or `<fullname>-agents`) -> when its TLS material last changed."""
    out = {}
    for s in secrets.values():
        for pod, t in _marks(s.annotations).items():
            out[pod] = datetime.fromisoformat(t.replace("Z", "+00:00"))
    return out


def _marks(annotations: Mapping[str, str]) -> dict[str, str]:
    # A mark edited into something unreadable is dropped rather than failing the run: the worst
    # outcome is one pod not restarted for a change that the next renewal marks again.
    try:
        marks = json.loads(annotations.get(RENEWED_AT) or "{}")
        for t in marks.values():
            datetime.fromisoformat(t.replace("Z", "+00:00"))
        return marks if isinstance(marks, dict) else {}
    except (ValueError, AttributeError, TypeError):
        return {}


def pods_needing_restart(
    secrets: Mapping[str, Secret], started_at: Mapping[str, datetime]
) -> list[str]:
    """The pods (keys of `started_at`: pod name -> start time, timezone-aware; the agents
    Deployment as `<fullname>-agents` -> its oldest pod's start) that started before their TLS
    material last changed, sorted by name. Pods without a mark need nothing."""
    marks = renewed_at(secrets)
    return sorted(p for p, t in started_at.items() if p in marks and t < marks[p])
