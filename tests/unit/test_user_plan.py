"""The user agent's plan for one user from what Kubernetes and Kafka hold (pure: no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from agents.pki import issue as pki
from agents.user_agent import credentials as cred
from agents.user_agent.acls import acl_of
from agents.user_agent.kafka_lanes import KafkaItemError
from agents.user_agent.kafka_users import SCRAM_SHA_512
from agents.user_agent.plan import (
    Issuing,
    KafkaView,
    Refused,
    clients_ca_material,
    plan_user,
    quota_removals,
    referenced_password,
    removal_failures,
)
from agents.user_agent.spec import AclRule, PasswordRef, parse

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
CM = {"metadata": {"name": "alice", "namespace": "ns", "uid": "uid-1", "annotations": {}}}


@pytest.fixture(scope="module")
def ca():
    pair = pki.new_ca("kairn-clients-ca", NOW - dt.timedelta(days=1), 800)
    return cred.ClientsCa.load(pki.cert_pem(pair.cert), pki.key_pem(pair.key))


class Planner:
    """plan_user with the agent's issuing rules and a clock the test can move."""

    def __init__(self):
        self.now = lambda: NOW

    def issuing(self) -> Issuing:
        return Issuing("kairn", 365, 30, self.now())


@pytest.fixture
def rec():
    return Planner()


def item(doc, obj=CM, secret=None) -> tuple:
    return parse(yaml.safe_dump(doc), obj["metadata"]["name"]), obj, secret


def plan(rec, it, scram=None, acls=None, quotas=None, ca=None, password=None):
    spec, obj, secret = it
    view = KafkaView(scram or {}, acls or {}, quotas or {})
    return plan_user(spec, obj, secret, view, rec.issuing(), password, ca)


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


# ---- resolved inputs: a referenced password, the clients CA ----------------------------------
REF = {
    "authentication": {
        "type": "scram-sha-512",
        "password": {"valueFrom": {"secretKeyRef": {"name": "pw", "key": "k"}}},
    }
}


def test_a_referenced_password_is_read_from_its_secret():
    ref = PasswordRef("pw", "k")
    assert referenced_password(ref, {"data": {"k": cred.b64("Own1")}}, "ns") == "Own1"
    missing = referenced_password(ref, None, "ns")
    assert missing.reason == "PasswordSecretNotFound" and "does not exist in ns" in missing.message
    no_key = referenced_password(ref, {"data": {"other": cred.b64("x")}}, "ns")
    assert no_key.reason == "PasswordSecretNotFound" and "(it has: other)" in no_key.message
    empty = referenced_password(ref, {"data": {"k": cred.b64(b"\xff")}}, "ns")
    assert empty.reason == "InvalidPassword"


def test_the_resolved_password_is_used_or_its_refusal_raised(rec):
    it = plan(rec, item(REF), password="Own1")
    assert it.upsert and it.password == "Own1"
    with pytest.raises(Refused) as e:
        plan(rec, item(REF), password=Refused("PasswordSecretNotFound", "gone"))
    assert e.value.reason == "PasswordSecretNotFound" and not e.value.waits
    # a Secret someone else wrote is found first, as before the password is looked at
    foreign = {"metadata": {"name": "alice", "ownerReferences": []}, "data": {}}
    with pytest.raises(Refused) as e:
        plan(rec, item(REF, secret=foreign), password=Refused("PasswordSecretNotFound", "gone"))
    assert e.value.reason == "SecretConflict"


def test_a_tls_user_waits_for_the_clients_ca(rec):
    names = ("kairn-clients-ca-cert", "kairn-clients-ca")
    missing = clients_ca_material(None, {"data": {}}, names)
    assert missing.reason == "ClientsCaMissing" and "kairn-clients-ca-cert" in missing.message
    lacking = clients_ca_material({"data": {}}, {"data": {"ca.key": cred.b64("k")}}, names)
    assert lacking.reason == "ClientsCaMissing" and "lack ca.crt" in lacking.message
    both = {"data": {"ca.crt": cred.b64("c"), "ca.key": cred.b64("k")}}
    assert clients_ca_material(both, both, names) == (b"c", b"k")
    with pytest.raises(Refused) as e:
        plan(rec, item({"authentication": {"type": "tls"}}), ca=missing)
    assert e.value.waits


# ---- per-item answers of Kafka ----------------------------------------------------------------
def test_a_user_kafka_could_not_describe_is_unreadable_not_empty():
    refused = KafkaItemError(35, "nope")
    view = KafkaView.of(
        {"alice": [(SCRAM_SHA_512, 4096)], "bob": refused},
        {"User:alice": set(), "User:carol": refused},
        {"alice": {}, "dave": refused},
        lambda p: p.removeprefix("User:"),
    )
    assert view.scram == {"alice": [(SCRAM_SHA_512, 4096)]} and view.acls == {"User:alice": set()}
    assert set(view.unreadable) == {"bob", "carol", "dave"}
    assert "SCRAM credentials" in view.unreadable["bob"] and "nope" in view.unreadable["bob"]
    assert "ACLs" in view.unreadable["carol"] and "quotas" in view.unreadable["dave"]


def test_a_deleted_user_kafka_did_not_let_go_of_is_retried():
    users = ["a", "b", "c", "d", "e"]
    err = KafkaItemError(42, "refused")
    described = {"a": {"producer_byte_rate": 1.0}, "d": err, "e": {"request_percentage": 2.0}}
    assert quota_removals(users, described) == {
        "a": {"producer_byte_rate": None},
        "e": {"request_percentage": None},
    }
    failed = removal_failures(
        users,
        scram={"a": None, "b": err, "c": None, "d": None, "e": None},
        acls={"User:a": None, "User:b": None, "User:c": err, "User:d": None, "User:e": None},
        described=described,
        quotas={"a": None, "e": err},
    )
    assert set(failed) == {"b", "c", "d", "e"}
    assert failed["b"].startswith("SCRAM credential:") and failed["c"].startswith("ACLs:")
    assert failed["d"].startswith("quotas:") and failed["e"].startswith("quotas:")
