"""The rebalancer: carries out the plan of `plan` one batch at a time, and the scale-in guard.

Each round reads the cluster afresh, plans (deterministically, so a rerun continues where a
killed run stopped: moves already done are no longer in the plan), records the partitions of
the next batch (``Record``, a ConfigMap in the cluster) *before* it asks Kafka to move them,
waits until Kafka lists none of them as moving, removes their throttles and only then clears
the record. A run that finds a record resumes there: it waits for those partitions, cleans up,
and goes on. It never cancels a reassignment, and topics with a reassignment it did not record
(the topic agent's) are left out of its plan; when the last batch is done the preferred
leaders are elected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from agents.common.settings import DEFAULT_THROTTLE_BYTES

from . import plan as planning
from .kafka import Snapshot
from .plan import Key, name


class ScalingError(Exception):
    """The rebalance or drain cannot go on: a one-line reason."""


class KafkaPort(Protocol):
    def snapshot(self) -> Snapshot: ...
    def ongoing(self) -> set[Key]: ...
    def start(
        self, targets: dict[Key, tuple[int, ...]], brokers: Iterable[int], throttle_bytes: int
    ) -> dict[str, str | None]: ...
    def finish(self, topics: list[str], brokers: Iterable[int] | None) -> dict[str, str | None]: ...
    def elect_preferred(self, keys: Iterable[Key]) -> None: ...


class Record(Protocol):
    """The partitions of the batch this rebalancer started and has not cleaned up yet."""

    def read(self) -> list[Key]: ...
    def write(self, keys: list[Key]) -> None: ...
    def clear(self) -> None: ...


class MemoryRecord:
    def __init__(self) -> None:
        self.keys: list[Key] = []

    def read(self) -> list[Key]:
        return list(self.keys)

    def write(self, keys: list[Key]) -> None:
        self.keys = list(keys)

    def clear(self) -> None:
        self.keys = []


@dataclass
class Settings:
    throttle_bytes: int = DEFAULT_THROTTLE_BYTES
    batch_size: int = 10  # partitions moved at a time
    timeout: float = 3600.0  # the whole run
    poll: float = 1.0


class Rebalancer:
    def __init__(
        self,
        kafka: KafkaPort,
        record: Record,
        settings: Settings,
        log: Callable[..., None],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.kafka, self.record, self.s = kafka, record, settings
        self.log, self.sleep, self.clock = log, sleep, clock
        self.deadline = 0.0
        self.batches = self.partitions = self.copies = 0

    # ---- the scale-in guard ------------------------------------------------------------------
    def scale_in(self, count: int, drain: bool) -> list[str]:
        """Why shrinking to ``count`` brokers may not go ahead (empty: it may). With
        ``drain`` the brokers that go are emptied first."""
        snap = self.kafka.snapshot()
        if snap.unreadable:
            return [f"cannot tell where the replicas of {t} are: {why}" for t, why in
                    sorted(snap.unreadable.items())]  # fmt: skip
        check = planning.scale_in(snap.layout, snap.brokers, count)
        if check.safe or not check.removed:
            return []
        problems = planning.refusal(check)
        if check.capacity or not drain:
            return problems
        self.log(
            "draining brokers before the scale-in",
            step="drain",
            brokers=list(check.removed),
            partitions=len(check.held),
        )
        self.run(remove=check.removed, into=())
        after = planning.scale_in(self.kafka.snapshot().layout, snap.brokers, count)
        return planning.refusal(after)

    # ---- the rebalance -----------------------------------------------------------------------
    def run(self, remove: Iterable[int] = (), into: Iterable[int] | None = None) -> dict:
        """Moves replicas until the plan is empty; ``remove``: brokers to empty; ``into``:
        the only brokers that receive replicas while levelling (None: any)."""
        started = self.clock()
        self.deadline = started + self.s.timeout
        remove = tuple(remove)
        into = tuple(into) if into is not None else None
        self._resume()
        while True:
            snap = self.kafka.snapshot()
            ongoing = self.kafka.ongoing()
            busy = sorted({k[0] for k in ongoing})  # somebody else's: leave these topics alone
            fixed = {k for k in snap.layout if k[0] in busy}
            result = planning.rebalance(
                snap.layout, snap.brokers, remove, snap.racks, fixed, snap.sizes, into
            )
            if isinstance(result, str):
                raise ScalingError(result)
            if result.empty:
                waiting = [k for k in fixed if set(snap.layout[k]) & set(remove)]
                if not waiting:
                    break
                self._wait_others(busy, waiting)
                continue
            self._batch(result.batches(self.s.batch_size)[0], snap.brokers)
        self._elect_preferred()
        summary = {
            "batches": self.batches,
            "partitions": self.partitions,
            "replicas_copied": self.copies,
            "seconds": round(self.clock() - started, 1),
        }
        self.log("rebalance done", step="done", **summary)
        return summary

    def _batch(self, moves: tuple[planning.Move, ...], brokers: tuple[int, ...]) -> None:
        keys = [m.key for m in moves]
        self.record.write(keys)  # first: a kill from here on is resumed by _resume()
        self.log(
            "moving a batch",
            step="batch",
            batch=self.batches + 1,
            partitions={name(m.key): list(m.after) for m in moves},
            throttle_bytes=self.s.throttle_bytes,
        )
        started = self.kafka.start({m.key: m.after for m in moves}, brokers, self.s.throttle_bytes)
        refused = {t: why for t, why in started.items() if why}
        self._wait_mine(keys)
        self._clean_up(keys)
        if refused:
            raise ScalingError(
                "Kafka refused to move "
                + "; ".join(f"{t}: {why}" for t, why in sorted(refused.items()))
            )
        self.batches += 1
        self.partitions += len(moves)
        self.copies += sum(len(m.copies) for m in moves)

    def _resume(self) -> None:
        keys = self.record.read()
        if not keys:
            return
        self.log("resuming: a batch was started before", step="resume", partitions=len(keys))
        self._wait_mine(keys)
        self._clean_up(keys)

    def _wait_mine(self, keys: list[Key]) -> None:
        mine = set(keys)
        while True:
            moving = mine & self.kafka.ongoing()
            if not moving:
                return
            self._tick(f"{len(moving)} partition(s) of the batch still moving", moving)

    def _wait_others(self, topics: list[str], waiting: list[Key]) -> None:
        self._tick(
            f"{len(waiting)} partition(s) on brokers being emptied belong to topics with "
            f"another reassignment in progress ({', '.join(topics[:5])})",
            set(waiting),
        )

    def _tick(self, what: str, keys: set[Key]) -> None:
        if self.clock() >= self.deadline:
            raise ScalingError(
                f"timed out after {self.s.timeout:.0f}s: {what}: "
                + ", ".join(name(k) for k in sorted(keys)[:5])
            )
        self.log(what, step="wait", level="debug")
        self.sleep(self.s.poll)

    def _clean_up(self, keys: list[Key]) -> None:
        """Removes the batch's throttles (the brokers' rates too when nothing else moves),
        then forgets the batch. A topic that somebody else (the topic agent) started moving
        since the batch ended keeps its throttles: they are that owner's now, and its own
        finish removes them."""
        others = self.kafka.ongoing()
        taken = {k[0] for k in others}
        topics = sorted({k[0] for k in keys} - taken)
        brokers = None if others else self.kafka.snapshot().brokers
        failed = {t: why for t, why in self.kafka.finish(topics, brokers).items() if why}
        if failed:  # the record stays: the next run removes them
            raise ScalingError(
                "throttles not removed: "
                + "; ".join(f"{t}: {why}" for t, why in sorted(failed.items()))
            )
        self.record.clear()

    def _elect_preferred(self) -> None:
        snap = self.kafka.snapshot()
        keys = [
            k
            for k, reps in snap.layout.items()
            if reps and snap.leaders.get(k) != reps[0] and k not in snap.under_replicated
        ]
        if not keys:
            return
        self.log("electing preferred leaders", step="leaders", partitions=len(keys))
        self.kafka.elect_preferred(sorted(keys))
