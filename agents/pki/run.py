"""One kairn-certs run: read the Secrets, plan, carry out, write. The only place with I/O
besides the store itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from .apply import execute
from .model import KINDS, Desired, Secret
from .plan import CAAction, CreateKRaftCluster, DropEntries, IssueLeaf, Plan, SyncTrust, plan
from .store import SecretStore


class PlanError(Exception):
    """The Secrets cannot be handled as they are; the message names the Secret and the key."""


def secret_names(d: Desired) -> list[str]:
    """Every Secret kairn-certs reads, in the order it writes them: CA keys first, then CA
    certificates, then leaves, so that a run that dies half-way leaves a state the next run
    either completes or names."""
    names = [d.ca_key_secret(k) for k in KINDS] + [d.ca_cert_secret(k) for k in KINDS]
    names += [c.secret for c in d.components()] + [d.agents_secret]
    return names + ([d.kraft_secret] if d.controller_replicas else [])


def describe(a) -> dict:
    """A log record for an action: names and reasons only, never data."""
    if isinstance(a, CAAction):
        return {"action": f"ca-{a.what}", "ca": a.kind, "reason": a.reason}
    if isinstance(a, IssueLeaf):
        return {"action": "issue", "secret": a.secret, "entry": a.prefix, "reason": a.reason}
    if isinstance(a, CreateKRaftCluster):
        return {"action": "create-kraft-cluster", "secret": a.secret, "reason": a.reason}
    if isinstance(a, DropEntries):  # key names only
        return {"action": "drop", "secret": a.secret, "pods": list(a.pods), "reason": a.reason}
    assert isinstance(a, SyncTrust)
    return {"action": "sync-trust", "secret": a.secret, "reason": a.reason}


def run(
    store: SecretStore,
    desired: Desired,
    now: datetime,
    steps: Mapping[str, str] | None = None,
    dry_run: bool = False,
    log: Callable[..., None] = lambda msg, **kv: None,
    pods: Callable[[], list[str]] | None = None,
) -> tuple[Plan, dict[str, Secret]]:
    """Plan and (unless dry_run) write. Returns the plan and the Secrets written. ``pods``
    lists the namespace's pod names (certificates of pods a scale-in removed are dropped);
    when it fails, nothing is dropped and the run goes on."""
    names = secret_names(desired)
    current = {n: s for n in names if (s := store.get(n)) is not None}
    existing = None
    if pods is not None:
        try:
            existing = pods()
        except Exception as e:  # certificates of removed pods wait for the next run
            log("pods not listed", level="warning", error=type(e).__name__)
    p = plan(desired, current, now, steps or {}, existing)
    for w in p.warnings:
        log("warning", level="warning", detail=w)
    if p.errors:
        raise PlanError("; ".join(p.errors))
    for a in p.actions:
        log("planned", **describe(a))
    if dry_run or not p.actions:
        return p, {}
    changed = execute(p, desired, current, now)
    written = {}
    for n in sorted(changed, key=names.index):
        s = changed[n]
        written[n] = store.replace(n, s) if s.resource_version else store.create(n, s)
        log("written", secret=n, keys=sorted(s.data), resource_version=written[n].resource_version)
    return p, written
