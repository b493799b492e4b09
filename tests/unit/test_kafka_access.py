"""KafkaAccess drops its client after an error that says the client's view of the cluster is
wrong, so the next call starts from a fresh bootstrap; a request Kafka refused keeps it."""

from __future__ import annotations

import kafka.errors as Errors
import pytest

from agents.common.kafka_admin import KafkaAccess


class _Client:
    def __init__(self, n: int):
        self.n, self.closed = n, False

    def close(self) -> None:
        self.closed = True


def _access() -> tuple[KafkaAccess, list[_Client]]:
    made: list[_Client] = []

    def factory():
        made.append(_Client(len(made)))
        return made[-1]

    return KafkaAccess(settings=None, factory=factory), made


def _fail(exc):
    def fn(_client):
        raise exc

    return fn


@pytest.mark.parametrize(
    "exc",
    [Errors.UnknownBrokerIdError(2), Errors.NodeNotReadyError(1), ConnectionError("refused")],
)
def test_a_stale_view_of_the_cluster_makes_a_new_client(exc):
    access, made = _access()
    with pytest.raises(type(exc)):
        access.call("create_topics", _fail(exc))
    assert made[0].closed
    assert access.call("describe_cluster", lambda c: c.n) == 1
    assert access.last_error is None


def test_a_refused_request_keeps_the_client():
    access, made = _access()
    with pytest.raises(Errors.TopicAlreadyExistsError):
        access.call("create_topics", _fail(Errors.TopicAlreadyExistsError()))
    assert not made[0].closed
    assert access.call("describe_cluster", lambda c: c.n) == 0
