"""Pure decisions for KRaft mode: the metadata mode, the controllers' order, may this controller
restart now, is the quorum healthy.

The rules follow Strimzi's KafkaRoller / KafkaQuorumCheck, made stricter where the roll must
never leave the quorum short: a controller may restart only while every *other* voter is caught
up, not merely a majority of them.

"Caught up" is measured in time, not in records: a voter is caught up when it reached the
leader's log end within the last ``CAUGHT_UP_MS`` of the leader's clock (DescribeQuorum's
lastCaughtUpTimestamp). Lag 0 in records would flap: the leader appends a no-op record every
500 ms (metadata.max.idle.interval.ms), so a healthy follower asked between a write and its
next fetch is a record or two behind. A record bound alone would pass a follower that stopped
fetching just after a write. 2000 ms is Kafka's controller.quorum.fetch.timeout.ms default,
the bound Strimzi uses too: a follower that has not caught up for that long is one the leader
would soon stop counting on.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import CONTROLLER_ID_BASE, KRAFT, ZOOKEEPER_MODE, QuorumView, Restart, Voter
from .plan import health_rank

CAUGHT_UP_MS = 2000


# ---- which mode -------------------------------------------------------------------------------
def metadata_mode(controllers_deployed: bool, kafka_kraft: bool | None) -> tuple[str, list[str]]:
    """The metadata mode from what the cluster shows: a controller StatefulSet, and whether the
    brokers answer as KRaft brokers (None: Kafka not reachable). When the two disagree the
    mode cannot be trusted: a problem names both, and the brokers' answer is used."""
    platform = KRAFT if controllers_deployed else ZOOKEEPER_MODE
    if kafka_kraft is None:
        return platform, []
    kafka = KRAFT if kafka_kraft else ZOOKEEPER_MODE
    if kafka == platform:
        return kafka, []
    deployed = "a controller StatefulSet" if controllers_deployed else "no controller StatefulSet"
    return kafka, [f"the brokers run in {kafka} mode but the release has {deployed}"]


# ---- order ------------------------------------------------------------------------------------
def node_id(ordinal: int) -> int:
    return CONTROLLER_ID_BASE + ordinal


def controller_next(pending: Sequence[Restart], leader: int | None) -> Restart | None:
    """The next controller to restart: broken or unready ones first, then followers by ordinal,
    the quorum leader last. Called again before every step, with the leader read afresh."""
    if not pending:
        return None
    return min(
        pending,
        key=lambda r: (node_id(r.pod.ordinal) == leader, health_rank(r.pod), r.pod.ordinal),
    )


# ---- caught up --------------------------------------------------------------------------------
def _now_ms(q: QuorumView) -> int:
    # the leader reports its own entry with its current time; the latest timestamp is the
    # leader's "now" without trusting this machine's clock
    stamps = [v.last_fetch_ms for v in q.voters] + [v.last_caught_up_ms for v in q.voters]
    return max(stamps, default=-1)


def behind(v: Voter, q: QuorumView) -> str | None:
    """Why voter ``v`` is not caught up, or None."""
    if v.last_caught_up_ms < 0:
        return f"controller node {v.node_id} has never caught up with the leader"
    if v.node_id == q.leader:
        return None
    ago = _now_ms(q) - v.last_caught_up_ms
    if ago > CAUGHT_UP_MS:
        lag = max(q.high_watermark - v.log_end_offset, 0)
        return (
            f"controller node {v.node_id} is not caught up ({lag} records behind the high "
            f"watermark, last caught up {ago / 1000:.1f}s ago)"
        )
    return None


def quorum_problems(q: QuorumView, replicas: int) -> list[str]:
    """A healthy quorum: a leader, every controller pod a voter, every voter caught up."""
    if q.leader < 0:
        return ["the metadata quorum has no leader"]
    ids = {v.node_id for v in q.voters}
    out = [
        f"controller node {node_id(i)} is not a voter of the metadata quorum"
        for i in range(replicas)
        if node_id(i) not in ids
    ]
    out += [why for v in sorted(q.voters, key=lambda v: v.node_id) if (why := behind(v, q))]
    return out


def controller_blockers(ordinal: int, q: QuorumView) -> list[str]:
    """Why restarting controller ``ordinal`` now could leave the quorum short; empty when it may
    go. With it gone the others must still be a majority of the voters, and every one of them
    caught up (so none is about to fall out, and the next election has a full log to pick)."""
    me = node_id(ordinal)
    if q.leader < 0:
        return ["the metadata quorum has no leader"]
    if len(q.voters) <= 1:
        return []  # a single controller: no restart of it can keep a quorum
    others = [v for v in q.voters if v.node_id != me]
    out = [why for v in sorted(others, key=lambda v: v.node_id) if (why := behind(v, q))]
    majority = len(q.voters) // 2 + 1
    caught_up = len(others) - len(out)
    if caught_up < majority:
        out.append(
            f"without controller node {me} the quorum would have {caught_up} caught-up voters "
            f"of {len(q.voters)}, below a majority of {majority}"
        )
    return out


def rejoined(ordinal: int, q: QuorumView, replicas: int) -> str | None:
    """What is still missing after controller ``ordinal`` restarted: it is a voter again, caught
    up, and the quorum as a whole healthy; None when it is back."""
    me = q.voter(node_id(ordinal))
    if me is None:
        return f"controller node {node_id(ordinal)} is not a voter yet"
    problems = quorum_problems(q, replicas)
    return "; ".join(problems) or None
