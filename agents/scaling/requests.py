"""Rebalances on demand: a ConfigMap labelled ``kairn.dev/type: rebalance`` (Strimzi's
KafkaRebalance, without Cruise Control).

```yaml
data:
  spec: |
    mode: add-brokers        # full | add-brokers | remove-brokers
    brokers: [3, 4]          # add-brokers: the only receivers; remove-brokers: emptied
```

First the plan is computed and shown, nothing moved: state ``Pending``, reason
``ProposalReady``, the ``kairn.dev/status`` annotation holding the moves, the replicas and
bytes to copy and the time they take at the throttle. The annotation ``kairn.dev/approve:
"true"`` runs it (the rebalancer of `run`, batches, throttle, record); then ``Ready`` with
what was moved, and the approval is taken back so that a changed spec is shown again before it
runs. A spec that cannot be done (unknown mode, brokers that are not registered, too few
brokers left for a replication factor) is ``Error`` and moves nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from . import plan as planning
from .kafka import Snapshot
from .run import Rebalancer, ScalingError

TYPE = "rebalance"
APPROVE = "kairn.dev/approve"
MODES = ("full", "add-brokers", "remove-brokers")
SHOWN_MOVES = 50


@dataclass(frozen=True)
class Request:
    mode: str
    brokers: tuple[int, ...] = ()

    def scope(self) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        """(brokers to empty, the only receivers or None) for the rebalancer."""
        if self.mode == "add-brokers":
            return (), self.brokers
        if self.mode == "remove-brokers":
            return self.brokers, ()
        return (), None


def spec_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse(text: str | None) -> Request | str:
    """The request in ``data.spec``, or why it is not one."""
    try:
        spec = yaml.safe_load(text or "") or {}
    except yaml.YAMLError as e:
        return f"spec is not YAML: {str(e).splitlines()[0]}"
    if not isinstance(spec, dict):
        return "spec must be a mapping with mode and brokers"
    unknown = sorted(set(spec) - {"mode", "brokers"})
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}: a rebalance has mode and brokers"
    mode = spec.get("mode", "full")
    if mode not in MODES:
        return f"mode {mode!r} is not one of {', '.join(MODES)}"
    brokers = spec.get("brokers") or []
    if not isinstance(brokers, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) for b in brokers
    ):
        return "brokers must be a list of broker ids"
    if mode != "full" and not brokers:
        return f"mode {mode} needs brokers"
    if mode == "full" and brokers:
        return "mode full levels every broker: leave brokers out"
    return Request(mode, tuple(sorted(set(brokers))))


def propose(req: Request, snap: Snapshot, fixed: set, throttle: int) -> dict | str:
    """The status of a plan not yet approved, or why the request cannot be done."""
    missing = sorted(set(req.brokers) - set(snap.brokers))
    if missing:
        return f"broker(s) {', '.join(map(str, missing))} not registered: {list(snap.brokers)}"
    remove, into = req.scope()
    result = planning.rebalance(
        snap.layout, snap.brokers, remove, snap.racks, fixed, snap.sizes, into
    )
    if isinstance(result, str):
        return result
    copy = result.bytes_to_copy()
    return {
        "partitionsToMove": len(result.moves),
        "replicasToCopy": result.replicas_moved(),
        "bytesToCopy": copy,
        "secondsAtThrottle": round(copy / throttle, 1) if throttle else None,
        "leaderChanges": len(result.reorders),
        "moves": [
            {"partition": planning.name(m.key), "from": list(m.before), "to": list(m.after)}
            for m in (result.moves + result.reorders)[:SHOWN_MOVES]
        ],
    }


@dataclass
class Outcome:
    state: str
    reason: str
    message: str
    extra: dict


def handle(
    cm: dict,
    snapshot: Callable[[], Snapshot],
    ongoing: Callable[[], set],
    rebalancer: Callable[[], Rebalancer],
    throttle: int,
) -> Outcome | None:
    """What a rebalance ConfigMap needs now; None when it is done and unchanged."""
    meta = cm.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    text = (cm.get("data") or {}).get("spec") or ""
    digest = spec_hash(text)
    try:
        status = json.loads(annotations.get("kairn.dev/status") or "{}")
    except ValueError:
        status = {}
    approved = str(annotations.get(APPROVE, "")).strip().lower() == "true"
    same = status.get("specHash") == digest
    if same and status.get("state") in ("Ready", "Error") and not approved:
        return None
    req = parse(text)
    if isinstance(req, str):
        return Outcome("Error", "InvalidSpec", req, {"specHash": digest})
    snap = snapshot()
    busy = {k[0] for k in ongoing()}
    fixed = {k for k in snap.layout if k[0] in busy}
    proposal = propose(req, snap, fixed, throttle)
    if isinstance(proposal, str):
        return Outcome("Error", "CannotRebalance", proposal, {"specHash": digest})
    if not approved:
        if same and status.get("reason") == "ProposalReady" and status.get("plan") == proposal:
            return None
        return Outcome(
            "Pending",
            "ProposalReady",
            f"{proposal['partitionsToMove']} partition(s) to move, "
            f"{proposal['replicasToCopy']} replica(s) ({proposal['bytesToCopy']} bytes) to "
            f"copy, about {proposal['secondsAtThrottle']} s at the throttle; annotate "
            f'{APPROVE}: "true" to run it',
            {"specHash": digest, "plan": proposal},
        )
    remove, into = req.scope()
    try:
        summary = rebalancer().run(remove=remove, into=into)
    except ScalingError as e:
        return Outcome("Error", "RebalanceFailed", str(e), {"specHash": digest})
    return Outcome(
        "Ready",
        "Rebalanced",
        f"moved {summary['partitions']} partition(s), {summary['replicas_copied']} "
        f"replica(s) copied, in {summary['batches']} batch(es)",
        {"specHash": digest, "summary": summary},
    )
