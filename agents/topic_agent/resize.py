"""Replication-factor changes of declared topics, by throttled partition reassignment.

A topic whose spec asks for another replication factor goes through three states, kept in
its status annotation (``reassigning``) so that a kill at any line is resumed:

1. ``start``: the new replica lists are planned (pure, :func:`replicas_for_factor`), the status
   says ``reassigning: true`` (written *before* Kafka is touched), then the throttles are set
   and the reassignment starts. A topic Kafka refuses is put back (its throttles removed) and
   becomes ``Error``.
2. ``check``: while Kafka lists a reassignment of the topic, it stays ``Pending``.
3. Once it is over, the throttles are removed (the brokers' rates too, when nothing else is
   moving), each answer checked; only then does the status say ``reassigning: false``, and
   the topic is reconciled again from a fresh state. A removal Kafka did not confirm is
   retried with the record kept, so a throttle never outlives the reassignment.

Only topics of this agent's ConfigMaps are touched; another owner's reassignment of the same
topic (the rebalancer's) makes its change wait, those of other topics do not.
"""

from __future__ import annotations

from agents.common.controller import Outcome
from agents.common.logs import get_logger
from agents.common.reassignment import Reassignments, moves, replicas_for_factor
from agents.common.status import ERROR, PENDING

from .diff import applied

log = get_logger("kairn.topic-agent")


class ReplicationFactorChanges:
    def __init__(self, reassignments: Reassignments, throttle_bytes: int):
        self.reassignments, self.throttle_bytes = reassignments, throttle_bytes

    def start(self, items: list, batch) -> None:
        """Starts the replication-factor change of ``items`` (planned, not reassigning)."""
        # only a reassignment of the same topic makes it wait (a new one would replace it);
        # the rebalancer's moves of other topics run alongside
        busy = self.reassignments.ongoing()
        for it in [it for it in items if it.spec.name in busy]:
            batch.report(
                it,
                PENDING,
                "WaitingForReassignment",
                f"another partition reassignment of {it.spec.name} is in progress; its "
                "replication factor changes after it",
                outcome=Outcome("pending", requeue_after=10),
            )
        items = [it for it in items if it.spec.name not in busy]
        if not items:
            return
        brokers = self.reassignments.brokers()
        targets, planned = {}, []
        for it in items:
            new = replicas_for_factor(it.state.partitions, it.spec.replicas, brokers)
            if isinstance(new, str):
                batch.report(it, ERROR, "ReplicationFactorChange", new)
                continue
            targets.update(moves(it.spec.name, it.state.partitions, new))
            planned.append(it)
        for it in planned:  # the record first: a kill from here on is resumed by check()
            batch.report(
                it,
                PENDING,
                "ReassigningReplicas",
                f"changing the replication factor of {it.spec.name} to {it.spec.replicas} "
                f"(replication throttled to {self.throttle_bytes} B/s)",
                {"reassigning": True, **applied(it.spec)},
                outcome=Outcome("pending", requeue_after=2),
            )
        recorded = [it for it in planned if it.key not in batch.flush()]
        if not recorded:
            return
        names = {it.spec.name for it in recorded}
        started = self.reassignments.start(
            {tp: r for tp, r in targets.items() if tp.topic in names}, brokers, self.throttle_bytes
        )
        refused = [it for it in recorded if started.get(it.spec.name)]
        for it in recorded:
            if it not in refused:
                log.info(
                    "reassignment started",
                    name=it.key,
                    topic=it.spec.name,
                    replicas=it.spec.replicas,
                )
        if refused:
            undone = self.reassignments.finish([it.spec.name for it in refused], None)
            for it in refused:
                why = started[it.spec.name]
                if undone.get(it.spec.name):
                    log.warning("reassignment refused", name=it.key, error=why)
                    batch.retry(it.key)  # still recorded as reassigning: check() cleans up
                else:
                    batch.report(
                        it,
                        ERROR,
                        "ReplicationFactorChange",
                        f"Kafka refused the reassignment of {it.spec.name}: {why}",
                        {"reassigning": False},
                    )

    def check(self, items: list, batch) -> None:
        """Items recorded as reassigning: Pending while Kafka moves them; once it is done,
        their throttles go, and they are reconciled again."""
        ongoing = self.reassignments.ongoing()
        finished = [it for it in items if it.spec.name not in ongoing]
        for it in items:
            if it.spec.name in ongoing:
                batch.report(
                    it,
                    PENDING,
                    "ReassigningReplicas",
                    f"the replication factor of {it.spec.name} is being changed",
                    {"reassigning": True},
                    outcome=Outcome("pending", 2),
                )
        if not finished:
            return
        brokers = None if ongoing else self.reassignments.brokers()
        removed = self.reassignments.finish([it.spec.name for it in finished], brokers)
        for it in finished:
            why = removed.get(it.spec.name)
            if why:
                log.warning("throttle not removed", name=it.key, topic=it.spec.name, error=why)
                batch.retry(it.key)
                continue
            log.info("reassignment finished", name=it.key, topic=it.spec.name)
            # reconciled again at once: the rest of the spec is compared with a fresh state
            batch.report(
                it,
                PENDING,
                "ReassignmentFinished",
                f"replicas of {it.spec.name} moved; throttle removed",
                {"reassigning": False},
                outcome=Outcome("pending", requeue_after=0.1),
            )
