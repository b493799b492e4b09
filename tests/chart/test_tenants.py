"""Tenants as the chart renders them: each bad tenant list is refused at render time with a
message that names the value, the namespaces and what to do; a good one reaches the agents
through the <fullname>-tenants ConfigMap only, so adding a tenant restarts nothing."""

from __future__ import annotations

import pytest
import yaml

from devtools.chart import helm_template

RELEASE, NAMESPACE = "kairn", "kafka"


def render(tenants: list, **values) -> list[dict]:
    return helm_template(RELEASE, NAMESPACE, {"tenants": tenants, **values})


def refusal(tenants: list) -> str:
    with pytest.raises(RuntimeError) as failed:
        render(tenants)
    return str(failed.value)


def one(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize(
    ("tenants", "message"),
    [
        pytest.param(
            [{"prefix": "x."}],
            "tenants[0].namespace is missing: give the Kubernetes namespace",
            id="namespace-missing",
        ),
        pytest.param(
            [{"namespace": "Team_A"}],
            'tenants[0].namespace "Team_A" is not a Kubernetes namespace name: use at most 63 '
            "lowercase letters",
            id="namespace-not-a-dns-label",
        ),
        pytest.param(
            [{"namespace": "a" * 64}],
            f'tenants[0].namespace "{"a" * 64}" is not a Kubernetes namespace name',
            id="namespace-too-long",
        ),
        pytest.param(
            [{"namespace": NAMESPACE}],
            f'tenants[0].namespace "{NAMESPACE}" is the release namespace, which is the '
            "unrestricted admin namespace already: remove it from tenants",
            id="release-namespace",
        ),
        pytest.param(
            [{"namespace": "team-a"}, {"namespace": "team-b"}, {"namespace": "team-a"}],
            'tenants[0] and tenants[2] both name namespace "team-a": list each namespace once',
            id="namespace-twice",
        ),
        pytest.param(
            [{"namespace": "team-a", "prefix": ""}],
            'tenants[0].prefix of namespace "team-a" is empty: a tenant needs a prefix for its '
            'Kafka names; leave prefix out for the default "team-a."',
            id="prefix-empty",
        ),
        pytest.param(
            [{"namespace": "team-a", "prefix": "p" * 201}],
            'tenants[0].prefix of namespace "team-a" is 201 characters long: use at most 200',
            id="prefix-too-long",
        ),
        pytest.param(
            [{"namespace": "team-a", "prefix": "team a/"}],
            'tenants[0].prefix "team a/" of namespace "team-a" has characters that Kafka topic '
            "names cannot have: use only letters, digits, '.', '_' and '-'",
            id="prefix-characters",
        ),
        pytest.param(
            [{"namespace": "team-a", "prefix": "__team."}],
            'tenants[0].prefix "__team." of namespace "team-a" starts with "__", as Kafka\'s '
            "internal names do",
            id="prefix-double-underscore",
        ),
        pytest.param(
            [{"namespace": "team-a", "prefix": ".team"}],
            'tenants[0].prefix ".team" of namespace "team-a" starts with ".", as Kafka\'s '
            "internal names do",
            id="prefix-dot",
        ),
        pytest.param(
            [
                {"namespace": "team", "prefix": "team."},
                {"namespace": "team-a", "prefix": "team.a."},
            ],
            'tenants[0].prefix "team." (namespace "team") and tenants[1].prefix "team.a." '
            '(namespace "team-a") overlap: one starts with the other',
            id="prefixes-overlap",
        ),
        pytest.param(
            [
                {"namespace": "team-a", "prefix": "team_a."},
                {"namespace": "team-b", "prefix": "team.a"},
            ],
            'tenants[0].prefix "team_a." (namespace "team-a") and tenants[1].prefix "team.a" '
            '(namespace "team-b") overlap',
            id="prefixes-collide-in-kafka",
        ),
        pytest.param(
            [{"namespace": "team-a", "prefix": "pay."}, {"namespace": "team-b", "prefix": "pay."}],
            'tenants[0].prefix "pay." (namespace "team-a") and tenants[1].prefix "pay." '
            '(namespace "team-b") overlap',
            id="prefixes-equal",
        ),
    ],
)
def test_a_bad_tenant_list_is_refused_with_what_to_do(tenants, message):
    assert message in refusal(tenants)


@pytest.mark.parametrize(
    ("ceiling", "message"),
    [
        ({"producerByteRate": 0}, "/tenants/0/quotaCeiling/producerByteRate"),
        ({"requestPercentage": -5}, "/tenants/0/quotaCeiling/requestPercentage"),
        ({"consumerByteRate": "fast"}, "/tenants/0/quotaCeiling/consumerByteRate"),
        ({"controllerMutationRate": 1}, "additional properties 'controllerMutationRate'"),
    ],
)
def test_a_quota_ceiling_is_a_number_above_zero_per_known_quota(ceiling, message):
    assert message in refusal([{"namespace": "team-a", "quotaCeiling": ceiling}])


def test_prefixes_that_only_share_a_start_are_accepted():
    docs = render([{"namespace": "team"}, {"namespace": "team-a"}, {"namespace": "teams"}])
    listed = yaml.safe_load(one(docs, "ConfigMap", "kairn-tenants")["data"]["tenants.yaml"])
    assert [t["prefix"] for t in listed] == ["team.", "team-a.", "teams."]


def test_the_agents_get_the_tenants_through_their_configmap():
    docs = render(
        [{"namespace": "team-a"}, {"namespace": "payments", "prefix": "pay."}],
    )
    cm = one(docs, "ConfigMap", "kairn-tenants")
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["labels"]["kairn.dev/cluster"] == RELEASE
    assert cm["metadata"]["labels"]["kairn.dev/type"] == "tenants"
    assert yaml.safe_load(cm["data"]["tenants.yaml"]) == [
        {"namespace": "team-a", "prefix": "team-a."},
        {"namespace": "payments", "prefix": "pay."},
    ]
    containers = one(docs, "Deployment", "kairn-agents")["spec"]["template"]["spec"]["containers"]
    topic, user = containers[:2]  # then the rebalance ConfigMaps' server
    assert env(topic)["KAIRN_TENANTS_CONFIGMAP"] == env(user)["KAIRN_TENANTS_CONFIGMAP"]
    assert env(user)["KAIRN_TENANTS_CONFIGMAP"] == "kairn-tenants"


@pytest.mark.parametrize(
    "kafka_config",
    [{}, {"super.users": "User:kairn-kafka;User:kairn-agents;User:ops"}],
    ids=["default", "overridden"],
)
def test_the_user_agent_knows_the_brokers_super_users(kafka_config):
    docs = render([], kafka={"config": kafka_config})
    props = one(docs, "ConfigMap", "kairn-kafka-config")["data"]["server.properties"]
    (super_users,) = [
        line.split("=", 1)[1] for line in props.splitlines() if line.startswith("super.users=")
    ]
    user = one(docs, "Deployment", "kairn-agents")["spec"]["template"]["spec"]["containers"][1]
    assert user["name"] == "user-agent"
    assert env(user)["KAIRN_SUPER_USERS"] == super_users
    assert super_users == kafka_config.get("super.users", "User:kairn-kafka;User:kairn-agents")


def test_adding_a_tenant_restarts_nothing():
    """The agents' Deployment and the StatefulSets render the same with and without a tenant:
    a `helm upgrade` that adds one rolls no pod."""
    pods = {"Deployment", "StatefulSet"}

    def workloads(tenants: list) -> dict:
        return {(d["kind"], d["metadata"]["name"]): d for d in render(tenants) if d["kind"] in pods}

    before = workloads([])
    after = workloads([{"namespace": "team-a"}, {"namespace": "payments", "prefix": "pay."}])
    assert set(before) == {
        ("Deployment", "kairn-agents"),
        ("StatefulSet", "kairn-kafka"),
        ("StatefulSet", "kairn-zookeeper"),
    }
    assert after == before


def test_tenant_rbac_is_namespaced():
    docs = render([{"namespace": "team-a"}, {"namespace": "team-b"}])
    assert not [d for d in docs if d["kind"].startswith("Cluster")]
    roles = {
        (d["kind"], d["metadata"]["namespace"])
        for d in docs
        if d["kind"] in {"Role", "RoleBinding"} and d["metadata"]["name"] == "kairn-agents"
    }
    assert roles == {
        (k, ns) for k in ("Role", "RoleBinding") for ns in (NAMESPACE, "team-a", "team-b")
    }
