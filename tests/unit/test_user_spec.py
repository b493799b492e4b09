"""The user spec, credentials and the pure parts of the Kafka adapter (no I/O)."""

from __future__ import annotations

import base64
import datetime as dt
import inspect
import string

import pytest
import yaml

from agents.pki import issue as pki
from agents.user_agent import credentials as cred
from agents.user_agent.acls import acl_of
from agents.user_agent.kafka_users import salted_password
from agents.user_agent.plan import quota_changes
from agents.user_agent.spec import AclRule, SpecError, UserSpec, parse


def ok(doc, name="alice") -> UserSpec:
    spec = parse(doc if isinstance(doc, str) else yaml.safe_dump(doc), name)
    assert isinstance(spec, UserSpec), spec
    return spec


def err(doc, name="alice") -> SpecError:
    spec = parse(doc if isinstance(doc, str) else yaml.safe_dump(doc), name)
    assert isinstance(spec, SpecError), spec
    return spec


# ---- spec -----------------------------------------------------------------------------------
def test_the_design_example_parses():
    spec = ok(
        {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [
                    {
                        "resource": {"type": "topic", "name": "orders", "patternType": "prefix"},
                        "operations": ["Read", "Describe"],
                        "host": "*",
                    },
                    {
                        "resource": {"type": "group", "name": "billing", "patternType": "literal"},
                        "operations": ["Read"],
                    },
                ],
            },
            "quotas": {
                "producerByteRate": 1048576,
                "consumerByteRate": 2097152,
                "requestPercentage": 55,
            },
        }
    )
    assert spec.auth == "scram-sha-512" and spec.principal == "User:alice"
    assert set(spec.acls) == {
        AclRule("TOPIC", "orders", "PREFIXED", "READ", "ALLOW"),
        AclRule("TOPIC", "orders", "PREFIXED", "DESCRIBE", "ALLOW"),
        AclRule("GROUP", "billing", "LITERAL", "READ", "ALLOW"),
    }
    assert spec.quotas == {
        "consumer_byte_rate": 2097152.0,
        "producer_byte_rate": 1048576.0,
        "request_percentage": 55.0,
    }


def test_every_resource_type_pattern_and_permission():
    spec = ok(
        {
            "authentication": {"type": "tls"},
            "authorization": {
                "type": "simple",
                "acls": [
                    {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
                    {
                        "resource": {"type": "transactionalId", "name": "tx-"},
                        "operation": "Write",
                        "type": "deny",
                        "host": "10.0.0.1",
                    },
                    {"resource": {"type": "TOPIC", "name": "*"}, "operations": ["all"]},
                ],
            },
            "quotas": {"controllerMutationRate": 2.5},
        }
    )
    assert spec.acls == tuple(
        sorted(
            [
                AclRule("CLUSTER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE", "ALLOW"),
                AclRule("TRANSACTIONAL_ID", "tx-", "LITERAL", "WRITE", "DENY", "10.0.0.1"),
                AclRule("TOPIC", "*", "LITERAL", "ALL", "ALLOW"),
            ]
        )
    )
    assert spec.quotas == {"controller_mutation_rate": 2.5}


def test_no_authorization_means_no_acls_and_no_quotas_means_none():
    spec = ok({"authentication": {"type": "tls-external"}})
    assert spec.acls == () and spec.quotas == {} and not spec.has_secret
    assert ok("").auth is None


@pytest.mark.parametrize(
    "doc, reason, words",
    [
        ("a: [", "InvalidYAML", "not valid YAML"),
        ("- 1", "InvalidSpec", "mapping"),
        ({"authentication": {"type": "scram-sha-512"}, "extra": 1}, "UnknownField", "extra"),
        ({"authentication": {"type": "kerberos"}}, "InvalidAuthentication", "kerberos"),
        (
            {
                "authorization": {
                    "type": "simple",
                    "acls": [{"resource": {"type": "topic", "name": "t"}, "operations": ["Fly"]}],
                }
            },
            "InvalidAcl",
            "'Fly' is not an ACL operation",
        ),
        (
            {
                "authorization": {
                    "type": "simple",
                    "acls": [{"resource": {"type": "queue", "name": "t"}, "operations": ["Read"]}],
                }
            },
            "InvalidAcl",
            "'queue' is not a resource type",
        ),
        (
            {
                "authorization": {
                    "type": "simple",
                    "acls": [{"resource": {"type": "group", "name": "g"}, "operations": ["Write"]}],
                }
            },
            "InvalidAcl",
            "does not apply to a group",
        ),
        (
            {
                "authorization": {
                    "type": "simple",
                    "acls": [
                        {
                            "resource": {"type": "topic", "name": "t", "patternType": "glob"},
                            "operations": ["Read"],
                        }
                    ],
                }
            },
            "InvalidAcl",
            "glob",
        ),
        (
            {
                "authorization": {
                    "type": "simple",
                    "acls": [
                        {"resource": {"type": "cluster", "name": "x"}, "operations": ["Alter"]}
                    ],
                }
            },
            "UnknownField",
            "name",
        ),
        ({"authorization": {"type": "opa"}}, "InvalidAuthorization", "simple"),
        ({"quotas": {"producerByteRate": -1}}, "InvalidQuota", "between"),
        ({"quotas": {"producerByteRate": 1.5}}, "InvalidQuota", "whole number"),
        ({"quotas": {"producerByteRate": "fast"}}, "InvalidQuota", "number"),
        ({"quotas": {"fetchRate": 1}}, "UnknownField", "fetchRate"),
        (
            {
                "authentication": {
                    "type": "scram-sha-512",
                    "password": {
                        "value": "inline",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                    },
                }
            },
            "InvalidAuthentication",
            "both an inline value and valueFrom",
        ),
        (
            {
                "authentication": {
                    "type": "tls",
                    "password": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                }
            },
            "InvalidAuthentication",
            "only for scram-sha-512",
        ),
        (
            {
                "authentication": {
                    "type": "scram-sha-512",
                    "password": {"valueFrom": {"secretKeyRef": {"name": "s"}}},
                }
            },
            "InvalidSpec",
            "key",
        ),
        (
            {"template": {"secret": {"metadata": {"labels": {"kairn.dev/user": "x"}}}}},
            "InvalidSpec",
            "kept by kairn",
        ),
    ],
)
def test_bad_specs_say_what_is_wrong(doc, reason, words):
    e = err(doc)
    assert e.reason == reason, e
    assert words in e.message, e


def test_user_names():
    assert err({"authentication": {"type": "tls"}}, "u" * 65).reason == "InvalidUserName"
    assert "64" in err({"authentication": {"type": "tls"}}, "u" * 65).message
    ok({"authentication": {"type": "scram-sha-512"}}, "u" * 65)
    assert err({}, "Alice").reason == "InvalidUserName"


def test_referenced_and_inline_passwords():
    ref = ok(
        {
            "authentication": {
                "type": "scram-sha-512",
                "password": {"valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}},
            }
        }
    )
    assert ref.password_ref.secret == "pw" and ref.password_ref.key == "password"
    inline = ok({"authentication": {"type": "scram-sha-512", "password": {"value": "s3cret-x"}}})
    assert inline.password_inline == "s3cret-x"
    assert "s3cret-x" not in repr(inline)


def test_the_hash_follows_the_spec_but_never_holds_the_password():
    a = ok({"authentication": {"type": "scram-sha-512", "password": {"value": "one"}}})
    b = ok({"authentication": {"type": "scram-sha-512", "password": {"value": "two"}}})
    c = ok({"authentication": {"type": "tls"}})
    assert a.hash == b.hash != c.hash


# ---- credentials ------------------------------------------------------------------------------
def test_generated_passwords():
    seen = set()
    for _ in range(200):
        p = cred.generate_password()
        assert len(p) == 32 and p[0] in string.ascii_letters and p.isalnum()
        seen.add(p)
    assert len(seen) == 200


def test_scram_secret_is_strimzis_layout():
    data = cred.scram_data("alice", "pw")
    assert set(data) == {"password", "sasl.jaas.config"}
    assert base64.b64decode(data["password"]) == b"pw"
    assert base64.b64decode(data["sasl.jaas.config"]).decode() == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="alice" password="pw";'
    )
    assert 'password="a\\"b\\\\c"' in cred.jaas_config("u", 'a"b\\c')
    assert cred.secret_password({"data": data}) == "pw"
    assert cred.secret_password(None) is None


@pytest.fixture(scope="module")
def clients_ca():
    now = dt.datetime.now(dt.UTC)
    ca = pki.new_ca("kairn-clients-ca", now, 400)
    return cred.ClientsCa.load(pki.cert_pem(ca.cert), pki.key_pem(ca.key)), now


def test_tls_material_and_renewal(clients_ca):
    ca, now = clients_ca
    data = cred.tls_data(ca, "bob", now, 365)
    assert set(data) == {"user.crt", "user.key", "user.p12", "user.password"}
    cluster_ca = b"-----BEGIN CERTIFICATE-----cluster"
    assert cred.ca_data(ca, cluster_ca) == {
        "clients-ca.crt": cred.b64(ca.bundle),
        "ca.crt": cred.b64(cluster_ca),
    }
    cert = pki.load_certs(base64.b64decode(data["user.crt"]))[0]
    assert pki.common_name(cert) == "bob" and pki.signed_by(cert, ca.signer.cert)
    key, certs = pki.load_p12(
        base64.b64decode(data["user.p12"]), base64.b64decode(data["user.password"])
    )
    assert key is not None and pki.common_name(certs[0]) == "bob"
    assert cred.tls_renewal_reason(data, ca, "bob", now, 30) is None
    assert "another user" in cred.tls_renewal_reason(data, ca, "carol", now, 30)
    later = now + dt.timedelta(days=340)
    assert "expires within 30 days" in cred.tls_renewal_reason(data, ca, "bob", later, 30)
    assert cred.tls_renewal_reason(None, ca, "bob", now, 30) == "no certificate yet"
    other = pki.new_ca("other", now, 400)
    other_ca = cred.ClientsCa.load(pki.cert_pem(other.cert), pki.key_pem(other.key))
    assert "not signed by the current clients CA" in cred.tls_renewal_reason(
        data, other_ca, "bob", now, 30
    )
    broken = {**data, "user.key": base64.b64encode(b"junk").decode()}
    assert "cannot be read" in cred.tls_renewal_reason(broken, ca, "bob", now, 30)


def test_secret_ownership_and_changes():
    owner = {"metadata": {"name": "alice", "uid": "u-1"}}
    body = cred.secret_body("alice", "ns", "kairn", owner, {"password": "eA=="}, {"team": "a"})
    assert body["metadata"]["labels"] == {
        "team": "a",
        "kairn.dev/cluster": "kairn",
        "kairn.dev/user": "alice",
        "app.kubernetes.io/managed-by": "kairn-user-agent",
    }
    assert cred.owned_by(body, "u-1") and not cred.owned_by(body, "u-2")
    assert not cred.owned_by({"metadata": {"name": "alice"}}, "u-1")
    assert not cred.secret_differs(body, body)
    assert cred.secret_differs(body, {**body, "data": {"password": "eQ=="}})
    assert cred.secret_differs(None, body)


# ---- adapter: pure parts, and the kafka-python surface it relies on ---------------------------
def test_acl_tuples_are_the_protocols_numbers():
    r = AclRule("TOPIC", "orders", "PREFIXED", "READ", "DENY", "10.0.0.1")
    t = acl_of("User:alice", r)
    assert t == (2, "orders", 4, "User:alice", "10.0.0.1", 3, 2)


def test_quota_changes():
    qc = quota_changes
    assert qc({}, {"producer_byte_rate": 10.0}) == {"producer_byte_rate": 10.0}
    assert qc({"producer_byte_rate": 10.0}, {"producer_byte_rate": 10.0}) == {}
    assert qc({"producer_byte_rate": 10.0, "request_percentage": 5.0}, {}) == {
        "producer_byte_rate": None,
        "request_percentage": None,
    }
    assert qc({"connection_creation_rate": 3.0}, {}) == {"connection_creation_rate": None}


def test_salted_password_is_pbkdf2_sha512():
    import hashlib

    assert salted_password("pw", b"salt", 4096) == hashlib.pbkdf2_hmac(
        "sha512", b"pw", b"salt", 4096
    )


def test_the_kafka_python_routes_the_adapter_uses_are_public():
    """The adapter uses kafka.net.KafkaNetClient (exported) and request classes of
    kafka.protocol.admin; this fails when kafka-python moves or renames them."""
    import kafka.net
    import kafka.protocol.admin as proto

    assert "KafkaNetClient" in kafka.net.__all__
    client = kafka.net.KafkaNetClient
    params = inspect.signature(client.send_and_receive).parameters
    assert list(params)[:4] == ["self", "node_id", "request", "timeout_ms"]
    assert "bootstrap_fallback" in inspect.signature(client.least_loaded_node).parameters
    assert "timeout_ms" in inspect.signature(client.check_version).parameters
    for name in (
        "AlterUserScramCredentialsRequest",
        "DescribeUserScramCredentialsRequest",
        "AlterClientQuotasRequest",
        "DescribeClientQuotasRequest",
        "CreateAclsRequest",
        "DeleteAclsRequest",
        "DescribeAclsRequest",
        "DescribeClusterRequest",
    ):
        assert name in proto.__all__, name
    up = proto.AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
        name="u", mechanism=2, iterations=4096, salt=b"s", salted_password=b"p"
    )
    assert up.name == "u" and up.iterations == 4096
    e = proto.AlterClientQuotasRequest.EntryData
    op = e.OpData(key="producer_byte_rate", value=1.0, remove=False)
    assert op.key == "producer_byte_rate"
    c = proto.DescribeClientQuotasRequest.ComponentData(entity_type="user", match_type=0, match="u")
    assert c.match == "u"
