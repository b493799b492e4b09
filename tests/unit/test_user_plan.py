"""The user agent's plan for one user from what Kubernetes and Kafka hold (pure: no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from agents.pki import issue as pki
from agents.user_agent import credentials as cred
from agents.user_agent.kafka_users import SCRAM_SHA_512, acl_of
from agents.user_agent.reconciler import Item, Refused, UserReconciler
from agents.user_agent.spec import AclRule, parse

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
CM = {"metadata": {"name": "alice", "namespace": "ns", "uid": "uid-1", "annotations": {}}}


@pytest.fixture(scope="module")
def ca():
    pair = pki.new_ca("kairn-clients-ca", NOW - dt.timedelta(days=1), 800)
    return cred.ClientsCa.load(pki.cert_pem(pair.cert), pki.key_pem(pair.key))


@pytest.fixture
def rec():
    r = UserReconciler(None, None, None, lambda k: None, "kairn", "ns", now=lambda: NOW)
    yield r
    r.close()


def item(doc, obj=CM, secret=None) -> Item:
    spec = parse(yaml.safe_dump(doc), obj["metadata"]["name"])
    it = Item(obj["metadata"]["name"], obj, spec)
    it.secret = secret
    return it


def plan(rec, it, scram=None, acls=None, quotas=None, ca=None):
    rec._plan(it, scram or {}, acls or {}, quotas or {}, {}, lambda: ca)
    return it


def our_secret(data: dict) -> dict:
    return cred.secret_body("alice", "ns", "kairn", CM, data, resource_version="7")


SCRAM = {"authentication": {"type": "scram-sha-512"}}


def test_a_new_scram_user_gets_a_password_set_then_written(rec):
    it = plan(rec, item(SCRAM))
    assert it.upsert and len(it.password) == 32
    assert cred.secret_password(it.secret_wanted) == it.password
    assert it.secret_wanted["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_a_kept_password_changes_nothing(rec):
    secret = our_secret(cred.scram_data("alice", "Kept0password"))
    it = plan(rec, item(SCRAM, secret=secret), scram={"alice": [(SCRAM_SHA_512, 4096)]})
    assert not it.upsert and it.secret_wanted is None and it.password == "Kept0password"


def test_a_credential_missing_in_kafka_is_set_again_with_the_kept_password(rec):
    secret = our_secret(cred.scram_data("alice", "Kept0password"))
    it = plan(rec, item(SCRAM, secret=secret))
    assert it.upsert and it.password == "Kept0password" and it.secret_wanted is None


def test_an_inline_password_change_is_applied(rec):
    secret = our_secret(cred.scram_data("alice", "old"))
    doc = {"authentication": {"type": "scram-sha-512", "password": {"value": "new"}}}
    it = plan(rec, item(doc, secret=secret), scram={"alice": [(SCRAM_SHA_512, 4096)]})
    assert it.upsert and it.password == "new"
    assert cred.secret_password(it.secret_wanted) == "new"


def test_a_secret_someone_else_wrote_is_a_conflict(rec):
    foreign = {"metadata": {"name": "alice", "ownerReferences": []}, "data": {}}
    with pytest.raises(Refused) as e:
        plan(rec, item(SCRAM, secret=foreign))
    assert e.value.reason == "SecretConflict"
    # a user without credentials leaves such a Secret alone
    it = plan(rec, item({"authentication": {"type": "tls-external"}}, secret=foreign))
    assert not it.delete_secret and it.secret_wanted is None


def test_leaving_scram_removes_the_credential_and_the_secret(rec):
    secret = our_secret(cred.scram_data("alice", "pw"))
    it = plan(
        rec,
        item({"authentication": {"type": "tls-external"}}, secret=secret),
        scram={"alice": [(SCRAM_SHA_512, 4096)]},
    )
    assert it.delete_scram and it.delete_secret and not it.upsert


def test_tls_issue_keep_renew(rec, ca):
    it = plan(rec, item({"authentication": {"type": "tls"}}), ca=ca)
    assert it.renewed == "no certificate yet"
    data = it.secret_wanted["data"]
    kept = plan(rec, item({"authentication": {"type": "tls"}}, secret=our_secret(data)), ca=ca)
    assert kept.renewed is None and kept.secret_wanted is None
    forced_cm = {"metadata": {**CM["metadata"], "annotations": {"kairn.dev/force-renew": "x"}}}
    forced = plan(
        rec, item({"authentication": {"type": "tls"}}, forced_cm, our_secret(data)), ca=ca
    )
    assert forced.force_renew and "force-renew" in forced.renewed
    assert forced.secret_wanted["data"]["user.crt"] != data["user.crt"]
    rec.now = lambda: NOW + dt.timedelta(days=340)
    late = plan(rec, item({"authentication": {"type": "tls"}}, secret=our_secret(data)), ca=ca)
    assert "expires within 30 days" in late.renewed


def test_acls_and_quotas_are_made_equal_to_the_spec(rec):
    doc = {
        **SCRAM,
        "authorization": {
            "type": "simple",
            "acls": [{"resource": {"type": "topic", "name": "a"}, "operations": ["Read", "Write"]}],
        },
        "quotas": {"producerByteRate": 100, "requestPercentage": 10},
    }
    p = "User:alice"
    read = acl_of(p, AclRule("TOPIC", "a", "LITERAL", "READ", "ALLOW"))
    write = acl_of(p, AclRule("TOPIC", "a", "LITERAL", "WRITE", "ALLOW"))
    extra = acl_of(p, AclRule("GROUP", "g", "LITERAL", "READ", "ALLOW"))
    it = plan(
        rec,
        item(doc),
        acls={p: {read, extra}},
        quotas={"alice": {"producer_byte_rate": 50.0, "consumer_byte_rate": 7.0}},
    )
    assert it.acl_create == [write] and it.acl_delete == [extra] and it.acl_count == 2
    assert it.quota_ops == {
        "producer_byte_rate": 100.0,
        "consumer_byte_rate": None,
        "request_percentage": 10.0,
    }


def test_a_password_typed_into_the_secret_is_set_in_kafka(rec):
    secret = our_secret(cred.scram_data("alice", "Kept0password"))
    secret["data"]["password"] = cred.b64("typed")
    secret["metadata"]["managedFields"] = [
        {"manager": "kairn-user-agent", "fieldsV1": {"f:data": {}}},
        {"manager": "kubectl-patch", "fieldsV1": {"f:data": {"f:password": {}}}},
    ]
    it = plan(rec, item(SCRAM, secret=secret), scram={"alice": [(SCRAM_SHA_512, 4096)]})
    assert it.upsert and it.password == "typed"
    assert "typed" in cred.unb64(it.secret_wanted["data"]["sasl.jaas.config"]).decode()
