"""What the agents' Kafka client (kafka-python, as pinned in constraints.txt) can still do with
Kafka 4, which removed old protocol versions (KIP-896): the agents' own adapters against a
real KRaft cluster (devtools/kraft.py: 3 controllers, 3 brokers, mutual TLS, StandardAuthorizer).
docs/kraft.md holds the table these tests back. The cluster (``kraft_cluster``, tests/conftest.py)
is the session's, shared with the agents' tests in KRaft mode."""

from __future__ import annotations

import json
import uuid

import pytest
from kafka.admin import AlterConfigOp
from kafka.errors import TopicAuthorizationFailedError
from kafka.net import KafkaNetClient
from kafka.protocol.admin import (
    AlterClientQuotasRequest,
    AlterPartitionReassignmentsRequest,
    AlterUserScramCredentialsRequest,
    CreateAclsRequest,
    CreatePartitionsRequest,
    CreateTopicsRequest,
    DeleteAclsRequest,
    DeleteTopicsRequest,
    DescribeAclsRequest,
    DescribeClientQuotasRequest,
    DescribeClusterRequest,
    DescribeConfigsRequest,
    DescribeUserScramCredentialsRequest,
    IncrementalAlterConfigsRequest,
    ListPartitionReassignmentsRequest,
)
from kafka.protocol.consumer import (
    FetchRequest,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    ListOffsetsRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata import ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest
from kafka.protocol.producer import InitProducerIdRequest, ProduceRequest
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest
from kafka.structs import TopicPartition

from agents.common.kafka_admin import KafkaAccess
from agents.common.reassignment import TOPIC_THROTTLES, Reassignments
from agents.common.settings import Settings
from agents.topic_agent.kafka_topics import TopicAdmin
from agents.user_agent.acls import acl_of
from agents.user_agent.kafka_users import SCRAM_SHA_512, UserAdmin
from agents.user_agent.spec import AclRule
from devtools.clients import consume, produce, scram_kwargs
from devtools.waiting import wait_until

# Every request the agents, hooks and test clients send, by the adapter that sends it.
USED = {
    "ApiVersions": ApiVersionsRequest,
    "Metadata": MetadataRequest,
    "CreateTopics": CreateTopicsRequest,
    "DeleteTopics": DeleteTopicsRequest,
    "CreatePartitions": CreatePartitionsRequest,
    "DescribeConfigs": DescribeConfigsRequest,
    "IncrementalAlterConfigs": IncrementalAlterConfigsRequest,
    "ListPartitionReassignments": ListPartitionReassignmentsRequest,
    "AlterPartitionReassignments": AlterPartitionReassignmentsRequest,
    "DescribeCluster": DescribeClusterRequest,
    "DescribeUserScramCredentials": DescribeUserScramCredentialsRequest,
    "AlterUserScramCredentials": AlterUserScramCredentialsRequest,
    "DescribeClientQuotas": DescribeClientQuotasRequest,
    "AlterClientQuotas": AlterClientQuotasRequest,
    "DescribeAcls": DescribeAclsRequest,
    "CreateAcls": CreateAclsRequest,
    "DeleteAcls": DeleteAclsRequest,
    "Produce": ProduceRequest,
    "InitProducerId": InitProducerIdRequest,
    "Fetch": FetchRequest,
    "ListOffsets": ListOffsetsRequest,
    "FindCoordinator": FindCoordinatorRequest,
    "JoinGroup": JoinGroupRequest,
    "SyncGroup": SyncGroupRequest,
    "Heartbeat": HeartbeatRequest,
    "LeaveGroup": LeaveGroupRequest,
    "OffsetCommit": OffsetCommitRequest,
    "OffsetFetch": OffsetFetchRequest,
    "SaslHandshake": SaslHandshakeRequest,
    "SaslAuthenticate": SaslAuthenticateRequest,
}


def client_config(cluster) -> dict:
    return {"bootstrap_servers": cluster.bootstrap().split(","), **cluster.admin.ssl_kwargs()}


@pytest.fixture(scope="module")
def kafka(kraft_cluster):
    ident = kraft_cluster.admin
    settings = Settings(
        cluster="kairn",
        namespace="kafka",
        bootstrap=kraft_cluster.bootstrap(),
        tls_ca_file=str(ident.ca_file),
        tls_cert_file=str(ident.crt),
        tls_key_file=str(ident.key),
    )
    access = KafkaAccess(settings)
    yield access
    access.close()


@pytest.fixture
def name():
    return f"k4-{uuid.uuid4().hex[:8]}"


def test_the_quorum_has_three_voters_and_a_leader(kraft_cluster):
    status = kraft_cluster.kafka_tool(
        "org.apache.kafka.tools.MetadataQuorumCommand", "describe", "--status", controllers=True
    )
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    voters = json.loads(fields["CurrentVoters"])
    assert sorted(v["id"] for v in voters) == [100, 101, 102]
    assert int(fields["LeaderId"]) in (100, 101, 102)
    assert fields["ClusterId"].strip() == kraft_cluster.cluster_id


def test_every_api_the_agents_use_has_a_version_both_sides_speak(kraft_cluster):
    """kafka-python picks the highest version both sides know; KIP-896 removed only old ones."""
    net = KafkaNetClient(**client_config(kraft_cluster))
    try:
        net.check_version(timeout_ms=30000)
        versions = net._manager.broker_version_data
        table, missing = {}, []
        for api, request in USED.items():
            broker = versions.api_versions.get(request.API_KEY)
            try:
                chosen = versions.api_version(request)
            except Exception as e:  # IncompatibleBrokerVersion names both ranges
                missing.append(f"{api}: {e}")
                chosen = None
            table[api] = {
                "client": [request.min_version, request.max_version],
                "broker": list(broker) if broker else None,
                "chosen": chosen,
            }
    finally:
        net.close()
    (kraft_cluster.run_dir / "api-versions.json").write_text(json.dumps(table, indent=1))
    assert missing == []


def test_topic_admin_creates_describes_alters_grows_and_deletes(kafka, name):
    topics = TopicAdmin(kafka)
    created = topics.create(
        {
            name: {
                "num_partitions": 2,
                "replication_factor": 3,
                "configs": {"retention.ms": "3600000"},
            }
        }
    )
    assert created[name].ok, created
    assert topics.not_usable([name]) == {}
    states, refused = topics.describe([name], {name: {"retention.ms", "cleanup.policy"}})
    assert refused == {}
    assert states[name].config == {"retention.ms": "3600000"}
    assert sorted(states[name].partitions) == [0, 1]
    assert all(len(r) == 3 for r in states[name].partitions.values())

    altered = topics.alter(
        {
            name: {
                "retention.ms": (AlterConfigOp.DELETE, None),
                "cleanup.policy": (AlterConfigOp.SET, "compact"),
            }
        }
    )
    assert altered[name].ok, altered
    keys = {name: {"retention.ms", "cleanup.policy"}}
    eventually(lambda: topics.describe([name], keys)[0][name].config, {"cleanup.policy": "compact"})
    bad = topics.alter({name: {"cleanup.policy": (AlterConfigOp.SET, "nonsense")}})
    assert not bad[name].ok and bad[name].code == 40  # INVALID_CONFIG, per topic

    assert topics.grow({name: 4})[name].ok
    eventually(lambda: sorted(partitions_of(topics, name)), [0, 1, 2, 3])
    assert topics.broker_count() == 3

    assert topics.delete([name])[name].ok
    wait_until(lambda: name not in topics.describe([name], {})[0], 30, f"{name} gone")
    assert topics.delete([name])[name].ok  # already gone counts as deleted


def test_reassignments_move_replicas_under_a_throttle(kafka, name):
    topics, moves = TopicAdmin(kafka), Reassignments(kafka)
    assert moves.brokers() == [0, 1, 2]
    assert topics.create({name: {"num_partitions": 1, "replication_factor": 2, "configs": {}}})[
        name
    ].ok
    assert topics.not_usable([name]) == {}
    produce(name, [b"x"] * 50, **client_config_kwargs(kafka))
    (current,) = topics.describe([name], {})[0][name].partitions.values()
    spare = ({0, 1, 2} - set(current)).pop()
    target = [current[0], spare]  # the leader stays, the follower moves to the third broker
    assert moves.start({TopicPartition(name, 0): target}, [0, 1, 2]) == {name: None}
    wait_until(lambda: name not in moves.ongoing(), 60, f"the reassignment of {name} to end")
    eventually(lambda: sorted(partitions_of(topics, name)[0]), sorted(target))
    throttles = {k: "*" for k in TOPIC_THROTTLES}
    eventually(
        lambda: topics.describe([name], {name: set(TOPIC_THROTTLES)})[0][name].config, throttles
    )
    assert moves.finish([name], [0, 1, 2]) == {name: None}
    eventually(lambda: topics.describe([name], {name: set(TOPIC_THROTTLES)})[0][name].config, {})
    topics.delete([name])


def partitions_of(topics: TopicAdmin, name: str) -> dict[int, list[int]]:
    return topics.describe([name], {})[0][name].partitions


def eventually(read, expected, timeout: float = 15.0):
    """Reads served by a broker come from its copy of the metadata log, which follows the
    controller's commit by a moment: a read right after a write may not show it yet (see
    docs/kraft.md). Polls ``read`` until it returns ``expected``; fails with the last value."""
    seen = []

    def same():
        seen[:] = [read()]
        return seen[0] == expected

    try:
        wait_until(same, timeout, "the write to show in a broker's read")
    except TimeoutError:
        assert seen and seen[0] == expected
    return seen[0]


def client_config_kwargs(kafka: KafkaAccess) -> dict:
    s = kafka.settings
    return {
        "bootstrap_servers": s.bootstrap,
        "security_protocol": "SSL",
        "ssl_cafile": s.tls_ca_file,
        "ssl_certfile": s.tls_cert_file,
        "ssl_keyfile": s.tls_key_file,
    }


@pytest.fixture(scope="module")
def ua(kraft_cluster):
    admin = UserAdmin(client_config(kraft_cluster), timeout_ms=30000, lanes=2)
    yield admin
    admin.close()


def test_user_admin_describes_the_cluster(ua):
    """In KRaft mode DescribeCluster names a broker as "controller" (clients never reach the
    controllers); writes sent there are forwarded to the active controller."""
    described = ua.describe_cluster()
    assert sorted(b["broker_id"] for b in described["brokers"]) == [0, 1, 2]
    assert described["controller_id"] in (0, 1, 2)


def test_user_admin_scram_credential_is_stored_and_logs_in(kraft_cluster, ua, kafka, name):
    topic = f"{name}.t"
    assert (
        TopicAdmin(kafka)
        .create({topic: {"num_partitions": 1, "replication_factor": 3, "configs": {}}})[topic]
        .ok
    )
    password = "A" + uuid.uuid4().hex
    assert ua.alter_scram({name: password}) == {name: None}
    eventually(lambda: ua.describe_scram([name]), {name: [(SCRAM_SHA_512, 4096)]})
    assert name in ua.describe_scram()
    client = scram_kwargs(kraft_cluster, name, password)
    with pytest.raises(TopicAuthorizationFailedError):
        produce(topic, [b"x"], timeout=30, max_block_ms=30000, **client)
    acl = acl_of(f"User:{name}", AclRule("TOPIC", topic, "LITERAL", "WRITE", "ALLOW"))
    assert ua.create_acls([acl]) == [None]
    wait_until(
        lambda: produce(topic, [b"x"], timeout=30, **client) is None,
        60,
        "the SCRAM user to produce",
    )
    assert ua.alter_scram({}, [name]) == {name: None}
    eventually(lambda: ua.describe_scram([name]), {})
    assert ua.alter_scram({}, [name]) == {name: None}  # already gone: done
    assert ua.delete_principal_acls([f"User:{name}"]) == {f"User:{name}": None}


def test_user_admin_quotas_are_set_read_back_and_removed(ua, name):
    ok = {name: {"producer_byte_rate": 1024.0, "request_percentage": 55.0}}
    assert ua.alter_quotas(ok, validate_only=True) == {name: None}
    assert ua.describe_quotas([name]) == {}  # validate_only stores nothing
    assert ua.alter_quotas(ok) == {name: None}
    eventually(lambda: ua.describe_quotas([name]), ok)
    assert ua.describe_quotas()[name] == ok[name]
    assert ua.alter_quotas({name: {"producer_byte_rate": None}}) == {name: None}
    eventually(lambda: ua.describe_quotas([name]), {name: {"request_percentage": 55.0}})
    assert ua.alter_quotas({name: {"request_percentage": None}}) == {name: None}
    eventually(lambda: ua.describe_quotas([name]), {})


def test_user_admin_acls_are_created_read_back_and_deleted(ua, name):
    p = f"User:{name}"
    rules = [
        AclRule("TOPIC", f"{name}.", "PREFIXED", "READ", "ALLOW"),
        AclRule("GROUP", name, "LITERAL", "READ", "ALLOW"),
        AclRule("CLUSTER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE", "ALLOW"),
        AclRule("TRANSACTIONAL_ID", name, "PREFIXED", "WRITE", "DENY", "10.0.0.1"),
    ]
    acls = [acl_of(p, r) for r in rules]
    assert ua.create_acls(acls) == [None] * 4
    eventually(lambda: ua.describe_acls(p), {p: set(acls)})
    assert ua.describe_acls_of([p]) == {p: set(acls)}
    assert ua.delete_acls(acls[:1]) == [None]
    eventually(lambda: ua.describe_acls(p), {p: set(acls[1:])})
    assert ua.delete_principal_acls([p]) == {p: None}
    eventually(lambda: ua.describe_acls(p), {})


def test_an_acks_all_idempotent_producer_and_a_group_consumer(kafka, name):
    assert (
        TopicAdmin(kafka)
        .create({name: {"num_partitions": 3, "replication_factor": 3, "configs": {}}})[name]
        .ok
    )
    values = [f"m{i}".encode() for i in range(200)]
    client = client_config_kwargs(kafka)
    produce(name, values, **client)  # acks=all, idempotent, every acknowledgement awaited
    got = consume(name, len(values), group=f"{name}-g", **client)
    assert sorted(got) == sorted(values)
