"""What a Kafka error code answered for one topic means for its ConfigMap (pure; no I/O).

Kafka answers a batch request per topic. Each per-topic answer is one of:
- done (code 0);
- ``Error``: the request, so the spec, is wrong (an invalid config, fewer partitions, a name
  Kafka refuses, a replication factor larger than the cluster): nothing changed in Kafka, and
  the message says what to do;
- ``Pending``, looked at again shortly: the topic is busy (being created or deleted, a
  reassignment running), or the cluster lacks brokers it normally has (some are down);
- retry with backoff, status untouched: Kafka is unwell or did not answer for this topic.

An answer that leaves a topic out is never success: :data:`NO_ANSWER` stands for it, and it
is retried.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import kafka.errors as Errors

NO_ANSWER = -2  # the answer did not mention this topic (not a Kafka code)
UNKNOWN_TOPIC = Errors.UnknownTopicOrPartitionError.errno
TOPIC_EXISTS = Errors.TopicAlreadyExistsError.errno
INVALID_RF = Errors.InvalidReplicationFactorError.errno
INVALID_CONFIG = Errors.InvalidConfigurationError.errno
REASSIGNMENT_IN_PROGRESS = Errors.ReassignmentInProgressError.errno
# the request is wrong, not Kafka unwell
SPEC_ERRORS = frozenset(
    e.errno
    for e in (
        Errors.InvalidTopicError,
        Errors.InvalidPartitionsError,
        Errors.InvalidReplicationAssignmentError,
        Errors.InvalidConfigurationError,
        Errors.InvalidRequestError,
        Errors.PolicyViolationError,
        Errors.InvalidRecordError,
    )
)
AUTHORIZATION = frozenset(
    {Errors.TopicAuthorizationFailedError.errno, Errors.ClusterAuthorizationFailedError.errno}
)
# the topic is busy: being created or deleted, or its partitions are moving
BUSY = frozenset({TOPIC_EXISTS, Errors.RequestTimedOutError.errno, REASSIGNMENT_IN_PROGRESS})


@dataclass(frozen=True)
class Verdict:
    action: str  # "ok" | "error" | "pending" | "retry"
    reason: str = ""
    message: str = ""
    requeue_after: float | None = None


def error_name(code: int) -> str:
    if code == NO_ANSWER:
        return "NoAnswer"
    return Errors.for_code(code).__name__


def verdict(
    code: int,
    message: str | None,
    what: str,
    topic: str,
    brokers: int | None = None,
    expected_brokers: int | None = None,
) -> Verdict:
    """The verdict on Kafka's answer ``code`` (with ``message``) to "``what`` topic ``topic``".

    ``brokers``: how many brokers the cluster has registered now; ``expected_brokers``: how
    many it is deployed with (the chart's ``kafka.replicas``), when known. They tell a
    replication factor larger than the cluster (``Error``) from brokers that are down
    (``Pending``)."""
    if code == 0:
        return Verdict("ok")
    text = f"Kafka refused to {what} topic {topic}: {error_name(code)}"
    if message:
        text += f": {message}"
    if code == NO_ANSWER:
        return Verdict("retry", "NoAnswer", f"Kafka's answer did not mention topic {topic}")
    if code == INVALID_RF:
        return _too_few_brokers(text, brokers, expected_brokers)
    if code in SPEC_ERRORS:
        return Verdict("error", "InvalidConfig" if code == INVALID_CONFIG else "KafkaRefused", text)
    if code in AUTHORIZATION:
        return Verdict(
            "error",
            "NotAuthorized",
            f"{text}. The agents' identity must be a super user of the cluster",
            requeue_after=60,
        )
    if code in BUSY:
        return Verdict("pending", "TopicBusy", text, requeue_after=1.0)
    return Verdict("retry", error_name(code), text)


def _too_few_brokers(text: str, brokers: int | None, expected: int | None) -> Verdict:
    # Error when the cluster as deployed cannot hold the spec, so `kubectl get cm -l
    # kairn.dev/state=Error` lists it; Pending while brokers it normally has are down. Both are
    # looked at again: an Error of this kind after a minute (brokers may have been added).
    if expected is not None and brokers is not None and brokers < expected:
        return Verdict(
            "pending",
            "NotEnoughBrokers",
            f"{text}. {brokers} of the cluster's {expected} brokers are up; the topic is "
            "created once they are back",
            requeue_after=5.0,
        )
    size = f"The cluster has {brokers if brokers is not None else expected} brokers"
    if brokers is None and expected is None:
        size = "The cluster has fewer brokers than that"
    return Verdict(
        "error",
        "ReplicationFactorTooLarge",
        f"{text}. {size}: lower replicas, or add brokers (kafka.replicas); it is tried "
        "again every minute",
        requeue_after=60,
    )


def parse_alter_result(result: str) -> tuple[int, str]:
    """kafka-python's alter_configs gives "OK" or ``str(KafkaError)``, "[Error 40]
    InvalidConfigurationError: message": (code, message)."""
    if result == "OK":
        return 0, ""
    m = re.match(r"\[Error (-?\d+)\] \w+: ?(.*)", result or "", re.S)
    if not m:
        return Errors.UnknownError.errno, result or ""
    return int(m.group(1)), m.group(2)
