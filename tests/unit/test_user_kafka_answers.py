"""How the user agent's Kafka adapter reads Kafka's answers item by item (no network: the
answers are built from kafka-python's own response classes)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from kafka.errors import ClusterAuthorizationFailedError
from kafka.protocol.admin import (
    AlterClientQuotasRequest,
    AlterUserScramCredentialsRequest,
    CreateAclsRequest,
    DescribeAclsResponse,
    DescribeClientQuotasResponse,
    DescribeUserScramCredentialsResponse,
)

from agents.user_agent.kafka_lanes import MISSING, KafkaItemError, item_error, missing
from agents.user_agent.kafka_users import (
    RESOURCE_NOT_FOUND,
    SCRAM_SHA_512,
    UserAdmin,
    principal_acls,
    scram_credentials,
    user_quotas,
)

AUTHZ = ClusterAuthorizationFailedError.errno

S = DescribeUserScramCredentialsResponse
Q = DescribeClientQuotasResponse
A = DescribeAclsResponse


def scram_answer(*results, error_code=0) -> S:
    return S(throttle_time_ms=0, error_code=error_code, error_message=None, results=list(results))


def scram_result(user, code=0, message=None, infos=()) -> S.DescribeUserScramCredentialsResult:
    return S.DescribeUserScramCredentialsResult(
        user=user,
        error_code=code,
        error_message=message,
        credential_infos=[S.DescribeUserScramCredentialsResult.CredentialInfo(*i) for i in infos],
    )


def quota_answer(entries, error_code=0, error_message=None) -> Q:
    return Q(
        throttle_time_ms=0, error_code=error_code, error_message=error_message, entries=entries
    )


def quota_entry(entity: dict, values: dict) -> Q.EntryData:
    E = Q.EntryData
    return E(
        entity=[E.EntityData(entity_type=t, entity_name=n) for t, n in entity.items()],
        values=[E.ValueData(key=k, value=v) for k, v in values.items()],
    )


def acl_answer(resources, error_code=0, error_message=None) -> A:
    return A(
        throttle_time_ms=0,
        error_code=error_code,
        error_message=error_message,
        resources=resources,
    )


class CannedAdmin(UserAdmin):
    """UserAdmin whose requests to the controller get canned answers, in order."""

    def __init__(self, *answers):
        self.answers, self.sent = list(answers), []

    def to_controller(self, request, codes_of, lane: int = 0):
        self.sent.append(request)
        return self.answers.pop(0)


def test_item_errors_name_kafkas_error():
    assert item_error(0, "ignored") is None
    err = item_error(AUTHZ, None)
    assert err.name == "ClusterAuthorizationFailedError" and str(err).startswith(err.name)
    assert missing().code == MISSING and "did not mention this user" in missing().message


def test_scram_credentials_per_user():
    answer = scram_answer(
        scram_result("alice", infos=[(SCRAM_SHA_512, 4096)]),
        scram_result("bob", RESOURCE_NOT_FOUND, "no credentials"),
        scram_result("carol", AUTHZ, "not allowed"),
    )
    got = scram_credentials(answer)
    assert got["alice"] == [(SCRAM_SHA_512, 4096)]
    assert "bob" not in got  # no credentials: left out
    assert got["carol"] == KafkaItemError(AUTHZ, "not allowed")


def test_describe_scram_gives_a_users_error_and_raises_a_requests_error():
    ua = CannedAdmin(scram_answer(scram_result("carol", AUTHZ, "not allowed")))
    assert isinstance(ua.describe_scram(["carol"])["carol"], KafkaItemError)
    ua = CannedAdmin(scram_answer(error_code=AUTHZ))
    with pytest.raises(ClusterAuthorizationFailedError):
        ua.describe_scram(["carol"])


def test_quotas_of_user_entities_only():
    answer = quota_answer(
        [
            quota_entry({"user": "alice"}, {"producer_byte_rate": 10.0}),
            quota_entry({"user": None}, {"producer_byte_rate": 5.0}),  # <default>
            quota_entry({"user": "bob", "client-id": "x"}, {"request_percentage": 1.0}),
        ]
    )
    assert user_quotas(answer) == {"alice": {"producer_byte_rate": 10.0}}


def test_describe_quotas_of_named_users_gives_each_users_error():
    ua = CannedAdmin(
        quota_answer([quota_entry({"user": "alice"}, {"producer_byte_rate": 10.0})]),
        quota_answer(None, AUTHZ, "not allowed"),
        quota_answer([]),
    )
    got = ua.describe_quotas(["carol", "alice", "bob"])
    assert got["alice"] == {"producer_byte_rate": 10.0}
    assert got["bob"] == KafkaItemError(AUTHZ, "not allowed") and "carol" not in got
    # one request for every user: its error is the request's
    ua = CannedAdmin(quota_answer(None, AUTHZ, "not allowed"))
    with pytest.raises(ClusterAuthorizationFailedError):
        ua.describe_quotas()


def test_acls_per_principal():
    R = A.DescribeAclsResource
    answer = acl_answer(
        [
            R(
                resource_type=2,
                resource_name="orders",
                pattern_type=3,
                acls=[
                    R.AclDescription(
                        principal="User:alice", host="*", operation=3, permission_type=3
                    )
                ],
            )
        ]
    )
    assert principal_acls(answer) == {"User:alice": {(2, "orders", 3, "User:alice", "*", 3, 3)}}
    ua = CannedAdmin(answer, acl_answer([], AUTHZ, "not allowed"), acl_answer([]))
    got = ua.describe_acls_of(["User:alice", "User:bob", "User:carol"])
    assert got["User:alice"] == {(2, "orders", 3, "User:alice", "*", 3, 3)}
    assert got["User:bob"] == KafkaItemError(AUTHZ, "not allowed")
    assert got["User:carol"] == set()
    ua = CannedAdmin(acl_answer([], AUTHZ, "not allowed"))
    with pytest.raises(ClusterAuthorizationFailedError):
        ua.describe_acls("User:bob")


class RoutedAdmin(UserAdmin):
    """UserAdmin of a cluster in ``mode`` with brokers 0-2 and controller 1, recording where
    each request goes and answering every item with no error."""

    def __init__(self, mode: str, lanes: int = 3):
        self.max_lanes, self._mode, self._controller, self._brokers = lanes, mode, 1, [0, 1, 2]
        self.sent: list[tuple[int, str]] = []
        self._pool = ThreadPoolExecutor(lanes)
        self.lock = threading.Lock()

    def send(self, node_id, request, lane: int = 0):
        with self.lock:
            self.sent.append((node_id, type(request).__name__))
        return ok_answer(request)


def ok_answer(request):
    if isinstance(request, AlterUserScramCredentialsRequest):
        names = [x.name for x in [*request.upsertions, *request.deletions]]
        return SimpleNamespace(
            results=[SimpleNamespace(user=n, error_code=0, error_message=None) for n in names]
        )
    if isinstance(request, CreateAclsRequest):
        return SimpleNamespace(
            results=[SimpleNamespace(error_code=0, error_message=None) for _ in request.creations]
        )
    if isinstance(request, AlterClientQuotasRequest):
        return SimpleNamespace(
            entries=[
                SimpleNamespace(
                    entity=e.entity
                    and [SimpleNamespace(entity_type="user", entity_name=e.entity[0].entity_name)],
                    error_code=0,
                    error_message=None,
                )
                for e in request.entries
            ]
        )
    raise AssertionError(request)


@pytest.mark.parametrize("mode", ["zookeeper", "kraft"])
def test_writes_go_where_the_clusters_mode_needs_them(mode):
    """ZooKeeper mode: SCRAM writes to the controller alone (another broker would answer
    NOT_CONTROLLER), quotas and ACLs over the brokers. KRaft mode: every broker forwards
    every write to the active controller, so every kind is spread over the brokers."""
    ua = RoutedAdmin(mode)
    try:
        users = [f"u{i:03d}" for i in range(150)]
        assert ua.alter_scram({u: "pw" for u in users}) == dict.fromkeys(users)
        scram_nodes = {n for n, what in ua.sent if what == "AlterUserScramCredentialsRequest"}
        assert scram_nodes == ({1} if mode == "zookeeper" else {0, 1, 2})
        ua.sent.clear()
        assert ua.alter_quotas({u: {"producer_byte_rate": 1.0} for u in users}) == dict.fromkeys(
            users
        )
        assert {n for n, _ in ua.sent} == {0, 1, 2}
        ua.sent.clear()
        acls = [(2, f"t{i}", 3, f"User:u{i}", "*", 3, 3) for i in range(600)]
        assert ua.create_acls(acls) == [None] * 600
        assert {n for n, _ in ua.sent} == {0, 1, 2}
    finally:
        ua._pool.shutdown()
