"""What this agent's writes left in Kafka a moment ago, for a read that does not show them
yet (pure, apart from the clock).

Why: a Kafka read may lag a write Kafka already accepted. In KRaft mode a broker answers
CreateTopics, CreatePartitions and IncrementalAlterConfigs once the active controller
committed them, but serves Metadata and DescribeConfigs from its own copy of the metadata
log, which applies the records a moment later (in ZooKeeper mode the brokers' metadata
follows the controller's UpdateMetadata the same way). A pass right after another (a requeue,
two changes in a row) would see the old topic: create it again (Kafka answers
TOPIC_ALREADY_EXISTS, a Pending that is not true), add partitions it already has (Kafka
answers INVALID_PARTITIONS, an Error that is not true) or set a config again.

So for :data:`WINDOW` seconds after Kafka accepted a write, :meth:`RecentWrites.behind` tells a
read that does not show a topic or its partitions yet (the topic is looked at again shortly,
its status left as it is), and :meth:`RecentWrites.overlay` puts the config values Kafka
accepted into the state read. After the window the read decides again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .diff import TopicState

WINDOW = 15.0  # seconds a write is trusted over a read; reads lag by far less


@dataclass
class Left:
    """What Kafka holds for one topic after writes it accepted."""

    at: float
    exists: bool = False  # created
    partitions: int = 0  # at least this many partitions
    config: dict[str, str | None] = field(default_factory=dict)  # key -> value (None: removed)


class RecentWrites:
    """:class:`Left` per topic for :data:`WINDOW` seconds (used by the one reconcile thread)."""

    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.monotonic):
        self.window, self.clock = window, clock
        self._left: dict[str, Left] = {}

    def _get(self, topic: str) -> Left | None:
        left = self._left.get(topic)
        if left is not None and self.clock() - left.at >= self.window:
            del self._left[topic]
            return None
        return left

    def _entry(self, topic: str) -> Left:
        left = self._get(topic) or Left(self.clock())
        left.at = self.clock()
        self._left[topic] = left
        return left

    def created(self, topic: str, partitions: int, config: dict[str, str]) -> None:
        left = self._entry(topic)
        left.exists, left.partitions = True, max(left.partitions, partitions)
        left.config.update(config)

    def grown(self, topic: str, partitions: int) -> None:
        left = self._entry(topic)
        left.exists, left.partitions = True, max(left.partitions, partitions)

    def altered(self, topic: str, config: dict[str, str | None]) -> None:
        left = self._entry(topic)
        left.exists = True
        left.config.update(config)

    def behind(self, topic: str, state: TopicState | None) -> str | None:
        """Why the read ``state`` of ``topic`` is older than what Kafka accepted lately (None:
        it is not)."""
        left = self._get(topic)
        if left is None or not left.exists:
            return None
        if state is None:
            return "created a moment ago; not in the brokers' metadata yet"
        if state.partition_count < left.partitions:
            return (
                f"{left.partitions} partitions a moment ago; the brokers' metadata shows "
                f"{state.partition_count} yet"
            )
        return None

    def overlay(self, topic: str, state: TopicState) -> bool:
        """Puts the config values Kafka accepted lately into ``state``; True when the read
        said otherwise."""
        left = self._get(topic)
        stale = False
        for key, value in (left.config if left else {}).items():
            if state.config.get(key) != value:
                stale = True
                if value is None:
                    state.config.pop(key, None)
                else:
                    state.config[key] = value
        return stale
