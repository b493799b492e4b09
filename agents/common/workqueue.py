"""A work queue with client-go's semantics (k8s.io/client-go/util/workqueue).

- ``add(key)``: a key already waiting is not added twice, so a burst of changes to one key
  collapses into one reconcile.
- A key handed out by ``get_batch`` is *processing* until ``done(key)``; adding it meanwhile
  marks it dirty, and ``done`` puts it back once. So one key is never reconciled twice at once.
- ``add_after(key, seconds)``: delayed add; ``add_rate_limited(key)``: delayed add with a
  per-key exponential backoff (``forget(key)`` resets it after a success).
- ``get_batch(n, linger, timeout)``: up to ``n`` keys, waiting ``linger`` seconds after the
  first one for more, so that one reconcile can batch requests.

Pure (a lock and a condition, an injectable clock); unit-tested without I/O.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable


class WorkQueue:
    def __init__(
        self,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._dirty: set = set()
        self._processing: set = set()
        self._delayed: list = []  # heap of (when, seq, key)
        self._seq = itertools.count()
        self._failures: dict = {}
        self._shutdown = False
        self.base_delay, self.max_delay, self.clock = base_delay, max_delay, clock

    # ---- adding ---------------------------------------------------------------------------
    def add(self, key: Hashable) -> None:
        with self._cond:
            self._add_locked(key)

    def add_many(self, keys) -> None:
        with self._cond:
            for k in keys:
                self._add_locked(k)

    def _add_locked(self, key) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            heapq.heappush(self._delayed, (self.clock() + delay, next(self._seq), key))
            self._cond.notify()

    def backoff(self, key: Hashable) -> float:
        """The delay the next ``add_rate_limited(key)`` would use."""
        n = self._failures.get(key, 0)
        return min(self.max_delay, self.base_delay * (2**n))

    def add_rate_limited(self, key: Hashable) -> float:
        """Adds ``key`` after its backoff, and doubles the backoff; returns the delay."""
        with self._cond:
            delay = min(self.max_delay, self.base_delay * (2 ** self._failures.get(key, 0)))
            self._failures[key] = self._failures.get(key, 0) + 1
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    # ---- taking ---------------------------------------------------------------------------
    def _promote_due_locked(self) -> float | None:
        """Moves due delayed keys into the queue; returns seconds until the next one."""
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self._add_locked(key)
        return (self._delayed[0][0] - now) if self._delayed else None

    def get_batch(
        self, max_items: int = 1, linger: float = 0.0, timeout: float | None = None
    ) -> list:
        """Up to ``max_items`` keys (marked processing), or [] after ``timeout`` seconds or on
        shutdown. After the first key it waits up to ``linger`` seconds to fill the batch."""
        deadline = None if timeout is None else self.clock() + timeout
        with self._cond:
            while True:
                next_due = self._promote_due_locked()
                if self._queue or self._shutdown:
                    break
                wait = next_due
                if deadline is not None:
                    left = deadline - self.clock()
                    if left <= 0:
                        return []
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)
            if self._shutdown and not self._queue:
                return []
            if linger > 0 and len(self._queue) < max_items:
                end = self.clock() + linger
                while len(self._queue) < max_items and not self._shutdown:
                    left = end - self.clock()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                    self._promote_due_locked()
            batch = []
            while self._queue and len(batch) < max_items:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                batch.append(key)
            return batch

    def done(self, key: Hashable) -> None:
        """Marks ``key`` processed; if it was added meanwhile it is queued again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    # ---- state ----------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def delayed(self) -> int:
        with self._cond:
            return len(self._delayed)

    def idle(self) -> bool:
        """Nothing waiting and nothing processing (delayed keys do not count)."""
        with self._cond:
            return not self._queue and not self._processing

    def shut_down(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown
