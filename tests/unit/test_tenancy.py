"""The tenancy rules (agents/common/tenancy.py): the tenant list and what a tenant may declare."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as s

from agents.common.tenancy import (
    Tenancy,
    Tenant,
    TenantsError,
    parse_tenants,
    topic_refusal,
    user_refusal,
)
from agents.user_agent.acls import OPERATIONS
from agents.user_agent.spec import UserSpec, parse

ADMIN = "kafka"
TEAM = Tenant("team-a", "team-a.")


# ---- the list ------------------------------------------------------------------------------
def test_the_prefix_defaults_to_the_namespace_and_a_dot():
    tenants = parse_tenants(
        yaml.safe_dump(
            [
                {"namespace": "team-a"},
                {
                    "namespace": "payments",
                    "prefix": "pay.",
                    "quotaCeiling": {"producerByteRate": 5},
                },
            ]
        ),
        ADMIN,
    )
    assert tenants == (
        Tenant("team-a", "team-a."),
        Tenant("payments", "pay.", {"producer_byte_rate": 5.0}),
    )
    tenancy = Tenancy(ADMIN, tenants)
    assert tenancy.namespaces() == [ADMIN, "team-a", "payments"]
    assert tenancy.tenant_of("payments").prefix == "pay."
    assert tenancy.tenant_of(ADMIN) is None and tenancy.tenant_of("elsewhere") is None


def test_no_list_is_no_tenants():
    assert parse_tenants(None, ADMIN) == () == parse_tenants("", ADMIN)


@pytest.mark.parametrize(
    "doc, words",
    [
        ("{a: [", "not YAML"),
        ("{namespace: team-a}", "must be a list"),
        ("[team-a]", "must be a mapping"),
        ("[{namespace: team-a, prefixes: {}}]", "unknown fields: prefixes"),
        ("[{namespace: Team_A}]", "is not a namespace name"),
        ("[{prefix: x.}]", "is not a namespace name"),
        ("[{namespace: kafka}]", "is the release namespace"),
        ("[{namespace: a}, {namespace: a, prefix: b.}]", "listed twice"),
        ("[{namespace: a, prefix: ''}]", "must be 1-200"),
        ("[{namespace: a, prefix: 'a*'}]", "must be 1-200"),
        ("[{namespace: a, prefix: __a}]", "Kafka's internal names"),
        ("[{namespace: a, prefix: .a}]", "Kafka's internal names"),
        ("[{namespace: a, prefix: team.}, {namespace: b, prefix: team.a.}]", "overlap"),
        ("[{namespace: a, prefix: team_a.}, {namespace: b, prefix: team.a.x}]", "overlap"),
        ("[{namespace: a, quotaCeiling: {controllerMutationRate: 1}}]", "is not one of"),
        ("[{namespace: a, quotaCeiling: {producerByteRate: 0}}]", "a number above 0"),
        ("[{namespace: a, quotaCeiling: 5}]", "must be a mapping"),
    ],
)
def test_a_list_that_cannot_be_used_says_why(doc, words):
    with pytest.raises(TenantsError, match=words):
        parse_tenants(doc, ADMIN)


# ---- topics ----------------------------------------------------------------------------------
def test_a_tenant_declares_topics_under_its_prefix_only():
    assert topic_refusal(TEAM, "team-a.orders") is None
    reason, message = topic_refusal(TEAM, "orders")
    assert reason == "OutsideTenantPrefix" and "'team-a.'" in message
    assert "team-a.orders" in message  # what to call it instead
    assert topic_refusal(TEAM, "team-b.orders") is not None
    assert topic_refusal(None, "anything") is None  # the admin namespace


# ---- users -----------------------------------------------------------------------------------
def user(name: str, acls: list[dict] = (), quotas: dict | None = None) -> UserSpec:
    doc = {"authentication": {"type": "scram-sha-512"}}
    if acls:
        doc["authorization"] = {"type": "simple", "acls": list(acls)}
    if quotas:
        doc["quotas"] = quotas
    spec = parse(yaml.safe_dump(doc), name)
    assert isinstance(spec, UserSpec), spec
    return spec


def refusal(tenant, spec: UserSpec, super_users=()):
    return user_refusal(tenant, spec.name, spec.acls, spec.quotas, super_users)


def acl(rtype: str, name: str | None = None, pattern: str = "literal", ops=("Read",)) -> dict:
    resource = {"type": rtype} if name is None else {"type": rtype, "name": name}
    if name is not None:
        resource["patternType"] = pattern
    return {"resource": resource, "operations": list(ops)}


def test_a_tenant_user_is_named_under_the_prefix_and_not_a_super_user():
    assert refusal(TEAM, user("team-a.app")) is None
    assert refusal(TEAM, user("app"))[0] == "OutsideTenantPrefix"
    assert refusal(None, user("app")) is None
    supers = ("User:team-a.root", "User:kairn-kafka")
    assert refusal(TEAM, user("team-a.root"), supers)[0] == "ReservedUserName"


@pytest.mark.parametrize(
    "rule",
    [
        acl("topic", "team-a.orders"),
        acl("topic", "team-a.", "prefix"),
        acl("topic", "team-a.orders", "prefix", ("All",)),
        acl("group", "team-a.billing"),
        acl("transactionalId", "team-a.tx", "prefix", ("Write", "Describe")),
        acl("cluster", ops=("IdempotentWrite",)),
    ],
)
def test_acls_under_the_prefix_are_allowed(rule):
    assert refusal(TEAM, user("team-a.app", [rule])) is None


@pytest.mark.parametrize(
    "rule, words",
    [
        (acl("topic", "*"), "every topic"),
        (acl("group", "*"), "every group"),
        (acl("topic", "team-", "prefix"), "names starting with 'team-'"),
        (acl("topic", "team-b.orders"), "topic 'team-b.orders'"),
        (acl("transactionalId", "tx", ops=("Write",)), "transactional id 'tx'"),
        (acl("cluster", ops=("Alter",)), "no cluster ACL but IdempotentWrite"),
        (acl("cluster", ops=("Describe",)), "no cluster ACL but IdempotentWrite"),
    ],
)
def test_acls_outside_the_prefix_are_refused_with_the_rule(rule, words):
    reason, message = refusal(TEAM, user("team-a.app", [rule]))
    assert reason == "TenantAclRefused" and words in message, message


def test_quotas_above_the_ceiling_or_missing_are_refused():
    team = Tenant("team-a", "team-a.", {"producer_byte_rate": 1000.0})
    assert refusal(team, user("team-a.app", quotas={"producerByteRate": 1000})) is None
    reason, message = refusal(team, user("team-a.app", quotas={"producerByteRate": 1001}))
    assert reason == "QuotaAboveCeiling" and "at most 1000" in message
    reason, message = refusal(team, user("team-a.app"))
    assert reason == "QuotaAboveCeiling" and "none (unlimited)" in message


# ---- the property: nothing a tenant declares reaches outside its prefix --------------------
NAMES = s.one_of(
    s.sampled_from(["*", "team-a.", "team-a", "team-", "team-b.x", "", "a"]),
    s.builds(
        lambda a, b: a + b,
        s.sampled_from(["team-a.", "team-a", "x", "*"]),
        s.text(alphabet="abc.-_*", max_size=6),
    ),
)
RULES = s.builds(
    lambda rtype, name, pattern, ops: (
        acl(rtype, name or "n", pattern, ops) if rtype != "cluster" else acl("cluster", ops=ops)
    ),
    s.sampled_from(["topic", "group", "transactionalId", "cluster"]),
    NAMES,
    s.sampled_from(["literal", "prefix"]),
    s.lists(s.sampled_from(sorted(OPERATIONS)), min_size=1, max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(s.lists(RULES, max_size=5))
def test_no_accepted_tenant_spec_grants_an_acl_outside_its_prefix(rules):
    spec = parse(
        yaml.safe_dump(
            {
                "authentication": {"type": "scram-sha-512"},
                "authorization": {"type": "simple", "acls": rules},
            }
        ),
        "team-a.app",
    )
    if not isinstance(spec, UserSpec):
        return  # the spec itself is wrong (e.g. Read on the cluster): nothing is granted
    if refusal(TEAM, spec) is not None:
        return
    for rule in spec.acls:
        if rule.resource_type == "CLUSTER":
            assert rule.operation == "IDEMPOTENT_WRITE"
        else:
            # a literal name, or every name a prefixed pattern matches, is under the prefix
            assert rule.name.startswith(TEAM.prefix), rule
