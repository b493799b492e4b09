"""What this agent's writes left in Kafka a moment ago, trusted over a read that does not show
them yet (pure, apart from the clock).

Why: a Kafka read may lag a write Kafka already accepted. In KRaft mode a broker answers a
write once the active controller committed it, but serves reads from its own copy of the
metadata log, which applies the record a moment later; in ZooKeeper mode the controller's
ACL cache follows the change notifications of ACLs written through the other brokers. A
pass that reads right after an earlier pass wrote (a retry, a requeue, two changes in a
row) would see the old state: it would write the same again, and could report from a stale
view. So for :data:`WINDOW` seconds after Kafka accepted a user's writes, the state they left
(:class:`Left`) stands in for what a read says about that user. After the window the read
decides again, so a change made in Kafka by hand meanwhile is set right by the next pass
after it (the resync, at the latest).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .kafka_users import ITERATIONS, SCRAM_SHA_512
from .plan import KafkaView, UserPlan

WINDOW = 15.0  # seconds a write is trusted over a read; reads lag by far less


@dataclass(frozen=True)
class Left:
    """What Kafka holds for one user after writes it accepted (None: not known)."""

    at: float
    principal: str
    scram: bool | None = None  # a SCRAM-SHA-512 credential, or none
    acls: frozenset | None = None  # every ACL of the principal
    quotas: dict | None = None  # the user's quotas


def left_by(plan: UserPlan, user: str, principal: str, view: KafkaView, at: float) -> Left:
    """The state a user's ``plan`` leaves once Kafka accepted all of it, from the ``view`` it
    was planned from."""
    had = any(m == SCRAM_SHA_512 for m, _ in view.scram.get(user, []))
    scram = True if plan.upsert else False if plan.delete_scram else had
    acls = (view.acls.get(principal, set()) - set(plan.acl_delete)) | set(plan.acl_create)
    quotas = dict(view.quotas.get(user, {}))
    for key, value in plan.quota_ops.items():
        if value is None:
            quotas.pop(key, None)
        else:
            quotas[key] = value
    return Left(at, principal, scram, frozenset(acls), quotas)


def removed(principal: str, at: float) -> Left:
    """The state of a user whose credential, ACLs and quotas Kafka removed."""
    return Left(at, principal, False, frozenset(), {})


def apply(view: KafkaView, user: str, left: Left) -> bool:
    """Puts ``left`` into ``view`` for ``user``; True when the view said otherwise."""
    stale = False
    if left.scram is not None:
        others = [c for c in view.scram.get(user, []) if c[0] != SCRAM_SHA_512]
        creds = [*others, (SCRAM_SHA_512, ITERATIONS)] if left.scram else others
        had = any(m == SCRAM_SHA_512 for m, _ in view.scram.get(user, []))
        stale |= had != left.scram
        if creds:
            view.scram[user] = creds
        else:
            view.scram.pop(user, None)
    if left.acls is not None:
        stale |= set(view.acls.get(left.principal, set())) != set(left.acls)
        if left.acls:
            view.acls[left.principal] = set(left.acls)
        else:
            view.acls.pop(left.principal, None)
    if left.quotas is not None:
        stale |= view.quotas.get(user, {}) != left.quotas
        if left.quotas:
            view.quotas[user] = dict(left.quotas)
        else:
            view.quotas.pop(user, None)
    return stale


class RecentWrites:
    """:class:`Left` per user for :data:`WINDOW` seconds (thread-safe)."""

    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.monotonic):
        self.window, self.clock = window, clock
        self._left: dict[str, Left] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.clock()

    def record(self, user: str, left: Left) -> None:
        with self._lock:
            self._left[user] = left

    def record_plans(self, plans: Iterable[tuple[str, str, UserPlan]], view: KafkaView) -> None:
        """Records what each (user, principal, plan) that changed something left, once Kafka
        accepted all of it; ``view``: what the plans were made from."""
        at = self.clock()
        for user, principal, plan in plans:
            if (
                plan.upsert
                or plan.delete_scram
                or plan.acl_create
                or plan.acl_delete
                or (plan.quota_ops)
            ):
                self.record(user, left_by(plan, user, principal, view, at))

    def left(self, users: Iterable[str]) -> dict[str, Left]:
        """{user: what its recent writes left} for those of ``users`` written lately."""
        now = self.clock()
        with self._lock:
            return {
                u: self._left[u]
                for u in users
                if u in self._left and now - self._left[u].at < self.window
            }

    def overlay(self, view: KafkaView, users: Iterable[str]) -> list[str]:
        """Puts what recent writes left into ``view`` for ``users`` (users Kafka could not
        describe stay as they are); the users whose read did not show those writes yet."""
        now = self.clock()
        with self._lock:
            self._left = {u: x for u, x in self._left.items() if now - x.at < self.window}
        recent = self.left(users)
        return sorted(
            u for u, left in recent.items() if u not in view.unreadable and apply(view, u, left)
        )
