"""Tenants on a real API server, with the chart's own rendered RBAC, and the real Kafka cluster.

One release namespace (the admin's) and two tenants; a namespace that is not a tenant beside
them; a third tenant added later. Both agents run as the chart's ServiceAccount (a token from
the TokenRequest API), so they can do exactly what the chart's Roles allow. The tests of this
module share that world and run in order."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient
from kubernetes import client

from agents.common.settings import Settings
from agents.topic_agent.main import TopicAgent
from agents.user_agent.main import UserAgent
from devtools.chart import helm_template
from devtools.clients import produce
from devtools.cluster import LocalCluster

from .helpers import gone, kubectl, wait_for
from .test_user_agent import agent_env, kafka_view, put_clients_ca

pytestmark = pytest.mark.kafka

RELEASE = FULLNAME = "kairn"
AGENTS = f"{FULLNAME}-agents"
TENANTS_CONFIGMAP = f"{FULLNAME}-tenants"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding")


@dataclass
class World:
    release: str
    a: str
    b: str
    outsider: str
    c: str
    pay: str  # tenant b's prefix
    kube: object
    core: client.CoreV1Api
    kafka: LocalCluster
    run_dir: Path
    tenants: list[dict] = field(default_factory=list)
    agents: list = field(default_factory=list)

    def render(self) -> list[dict]:
        return helm_template(RELEASE, self.release, {"tenants": self.tenants})

    def apply_chart_rbac(self) -> None:
        """The chart's ServiceAccount, Roles, RoleBindings and tenant list, as `helm upgrade`
        would apply them (Roles of tenants no longer listed are deleted, as Helm would)."""
        docs = [
            d
            for d in self.render()
            if d["kind"] in RBAC_KINDS
            or (d["kind"] == "ConfigMap" and d["metadata"]["name"] == TENANTS_CONFIGMAP)
        ]
        for d in docs:
            d["metadata"].setdefault("namespace", self.release)
        path = self.run_dir / f"rbac-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        out = kubectl(self.kube.kubeconfig, "apply", "-f", str(path), check=False)
        assert out.returncode == 0, out.stderr
        listed = {t["namespace"] for t in self.tenants}
        rbac = client.RbacAuthorizationV1Api(self.core.api_client)
        for ns in (self.a, self.b, self.c):
            if ns not in listed:
                for delete in (rbac.delete_namespaced_role, rbac.delete_namespaced_role_binding):
                    try:
                        delete(AGENTS, ns)
                    except client.ApiException as e:
                        if e.status != 404:
                            raise

    def user_agent_env(self) -> dict:
        deployment = next(d for d in self.render() if d["kind"] == "Deployment")
        (container,) = [
            c
            for c in deployment["spec"]["template"]["spec"]["containers"]
            if c["name"] == "user-agent"
        ]
        return {e["name"]: e["value"] for e in container["env"] if "value" in e}

    def declare(self, ns: str, kind: str, name: str, spec: dict, annotations=None) -> None:
        self.core.create_namespaced_config_map(
            ns,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(
                    name=name,
                    labels={"kairn.dev/cluster": RELEASE, "kairn.dev/type": kind},
                    annotations=annotations,
                ),
                data={"spec": yaml.safe_dump(spec)},
            ),
        )

    def status(self, ns: str, name: str) -> dict:
        cm = self.core.read_namespaced_config_map(name, ns)
        raw = (cm.metadata.annotations or {}).get("kairn.dev/status")
        return {
            **(json.loads(raw) if raw else {}),
            "label": (cm.metadata.labels or {}).get("kairn.dev/state"),
        }

    def wait_state(self, ns: str, name: str, state: str, reason: str | None = None) -> dict:
        def check():
            st = self.status(ns, name)
            ok = st["label"] == state == st.get("state")
            return st if ok and reason in (None, st.get("reason")) else None

        return wait_for(f"{ns}/{name} {state} {reason or ''}", check, timeout=120)

    def secret(self, ns: str, name: str) -> dict[str, bytes]:
        s = self.core.read_namespaced_secret(name, ns)
        return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}

    def topics(self) -> set[str]:
        admin = self.kafka.admin_client()
        try:
            return set(admin.list_topics())
        finally:
            admin.close()

    def kafka_user(self, user: str) -> dict:
        return kafka_view(self.kafka, user)

    def metrics(self, agent) -> str:
        return agent.metrics.render().decode()


@pytest.fixture(scope="module")
def world(core, kube, kafka_cluster, tmp_path_factory):
    uid = uuid.uuid4().hex[:6]
    names = {
        k: f"tn-{uid}{s}"
        for k, s in (("release", ""), ("a", "-a"), ("b", "-b"), ("outsider", "-x"), ("c", "-c"))
    }
    for ns in names.values():
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    w = World(
        **names,
        pay=f"pay-{uid}.",
        kube=kube,
        core=core,
        kafka=kafka_cluster,
        run_dir=tmp_path_factory.mktemp("tenants"),
    )
    w.tenants = [
        {"namespace": w.a},
        {"namespace": w.b, "prefix": w.pay, "quotaCeiling": {"producerByteRate": 100000}},
    ]
    w.apply_chart_rbac()
    put_clients_ca(core, w.release, kafka_cluster)
    kubeconfig = kube.service_account_kubeconfig(w.run_dir / "kc", w.release, AGENTS)
    chart_env = w.user_agent_env()
    assert chart_env["KAIRN_TENANTS_CONFIGMAP"] == TENANTS_CONFIGMAP
    env = {
        **agent_env(kafka_cluster, kube, w.release),
        "KUBECONFIG": str(kubeconfig),
        "KAIRN_TENANTS_CONFIGMAP": TENANTS_CONFIGMAP,
        "KAIRN_SUPER_USERS": chart_env["KAIRN_SUPER_USERS"],
        "KAIRN_BROKERS": "3",
    }
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    from agents.topic_agent.main import parser as topic_parser
    from agents.user_agent.main import parser as user_parser

    for cls, parser in ((TopicAgent, topic_parser), (UserAgent, user_parser)):
        w.agents.append(cls(Settings.from_args(parser().parse_args([]))).start())
    yield w
    for agent in w.agents:
        agent.stop()
    mp.undo()
    for ns in names.values():
        core.delete_namespace(ns)


def scram(acls=(), quotas=None) -> dict:
    spec: dict = {"authentication": {"type": "scram-sha-512"}}
    if acls:
        spec["authorization"] = {"type": "simple", "acls": list(acls)}
    if quotas:
        spec["quotas"] = quotas
    return spec


def acl(rtype: str, name: str | None, ops: list[str], pattern: str = "literal") -> dict:
    resource = (
        {"type": rtype} if name is None else {"type": rtype, "name": name, "patternType": pattern}
    )
    return {"resource": resource, "operations": ops}


def client_files(w: World, secret: dict[str, bytes], name: str) -> dict:
    """The Secret's files on disk, as a client pod would mount them."""
    folder = w.run_dir / name
    folder.mkdir(exist_ok=True)
    for k, v in secret.items():
        (folder / k).write_bytes(v)
    return {"ssl_cafile": str(folder / "ca.crt")}


# ---- what tenants may do --------------------------------------------------------------------
def test_each_namespace_declares_topics_and_users_and_gets_its_secrets(world):
    w = world
    topic_agent, user_agent = w.agents
    a_topic, b_topic, admin_topic = f"{w.a}.orders", f"{w.pay}orders", f"{w.release}.audit"
    w.declare(w.release, "topic", "audit", {"topicName": admin_topic, "partitions": 1})
    w.declare(w.a, "topic", a_topic, {"partitions": 2})
    w.declare(w.b, "topic", "orders", {"topicName": b_topic, "partitions": 1})
    a_user, b_user = f"{w.a}.app", f"{w.pay}app"
    w.declare(
        w.a,
        "user",
        a_user,
        scram(
            [
                acl("topic", f"{w.a}.", ["Read", "Write", "Describe"], "prefix"),
                acl("group", f"{w.a}.", ["Read"], "prefix"),
            ]
        ),
    )
    w.declare(
        w.b,
        "user",
        b_user,
        {
            "authentication": {"type": "tls"},
            "authorization": {
                "type": "simple",
                "acls": [acl("topic", b_topic, ["Write", "Describe"])],
            },
            "quotas": {"producerByteRate": 50000},
        },
    )
    for ns, name in (
        (w.release, "audit"),
        (w.a, a_topic),
        (w.b, "orders"),
        (w.a, a_user),
        (w.b, b_user),
    ):
        w.wait_state(ns, name, "Ready")
    assert {admin_topic, a_topic, b_topic} <= w.topics()

    # each Secret lands in its user's namespace, with the cluster CA, and logs in
    cluster_ca = w.kafka.cluster_ca_file.read_bytes()
    a_secret = w.secret(w.a, a_user)
    assert a_secret["ca.crt"] == cluster_ca
    assert gone(lambda: w.core.read_namespaced_secret(a_user, w.release))
    produce(
        a_topic,
        [b"from team a"],
        timeout=30,
        bootstrap_servers=w.kafka.bootstrap(9094),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=a_user,
        sasl_plain_password=a_secret["password"].decode(),
        **client_files(w, a_secret, "a"),
    )
    b_secret = w.secret(w.b, b_user)
    assert b_secret["ca.crt"] == cluster_ca and "clients-ca.crt" in b_secret
    files = client_files(w, b_secret, "b")
    produce(
        b_topic,
        [b"from payments"],
        timeout=30,
        bootstrap_servers=w.kafka.bootstrap(),
        security_protocol="SSL",
        ssl_certfile=str(w.run_dir / "b" / "user.crt"),
        ssl_keyfile=str(w.run_dir / "b" / "user.key"),
        **files,
    )

    # per-namespace counts in the metrics
    text = w.metrics(topic_agent)
    for ns in (w.release, w.a, w.b):
        assert f'kairn_resources{{agent="topic",namespace="{ns}",state="Ready"}} 1.0' in text
    assert 'kairn_tenants{agent="user"} 2.0' in w.metrics(user_agent)


def test_every_escalation_is_an_error_and_changes_nothing_in_kafka(world):
    w = world
    refused_topics = [
        (w.a, "outside", f"orders-{w.pay}x", "OutsideTenantPrefix"),
        (w.a, "stolen", f"{w.pay}stolen", "OutsideTenantPrefix"),
    ]
    for ns, cm, topic, _ in refused_topics:
        w.declare(ns, "topic", cm, {"topicName": topic, "partitions": 1})
    refused_users = [
        (w.a, f"{w.a}.wild", scram([acl("topic", "*", ["Read"])]), "TenantAclRefused"),
        (w.a, f"{w.a}.admin", scram([acl("cluster", None, ["Alter"])]), "TenantAclRefused"),
        (w.a, f"{w.a}.reach", scram([acl("topic", w.pay, ["Read"], "prefix")]), "TenantAclRefused"),
        (w.a, f"{w.a}.groups", scram([acl("group", "*", ["Read"])]), "TenantAclRefused"),
        (w.a, f"outside-{w.a}", scram(), "OutsideTenantPrefix"),
        (w.b, f"{w.pay}greedy", scram(quotas={"producerByteRate": 200000}), "QuotaAboveCeiling"),
        (w.b, f"{w.pay}unlimited", scram(), "QuotaAboveCeiling"),
    ]
    for ns, name, spec, _ in refused_users:
        w.declare(ns, "user", name, spec)
    for ns, cm, _, reason in refused_topics:
        st = w.wait_state(ns, cm, "Error", reason)
        assert ns in st["message"], st
    for ns, name, _, reason in refused_users:
        w.wait_state(ns, name, "Error", reason)
        events = w.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}")
        assert ("Warning", reason) in {(e.type, e.reason) for e in events.items}
    assert not {t for _, _, t, _ in refused_topics} & w.topics()
    for ns, name, _, _ in refused_users:
        assert w.kafka_user(name) == {"scram": [], "acls": [], "quotas": {}}
        assert gone(lambda ns=ns, name=name: w.core.read_namespaced_secret(name, ns))


def test_a_topic_or_principal_has_one_owner_across_namespaces(world):
    w = world
    shared_topic, shared_user = f"{w.a}.shared", f"{w.a}.dup"
    w.declare(w.release, "topic", "shared", {"topicName": shared_topic, "partitions": 1})
    w.declare(w.release, "user", shared_user, scram())
    w.wait_state(w.release, "shared", "Ready")
    w.wait_state(w.release, shared_user, "Ready")
    delete = {"kairn.dev/deletion-policy": "delete"}
    w.declare(w.a, "topic", "shared", {"topicName": shared_topic, "partitions": 3}, delete)
    w.declare(w.a, "user", shared_user, scram())
    st = w.wait_state(w.a, "shared", "Error", "TopicConflict")
    assert f"{w.release}/shared" in st["message"], st
    st = w.wait_state(w.a, shared_user, "Error", "UserConflict")
    assert f"{w.release}/{shared_user}" in st["message"], st
    # the younger claimant going away takes nothing of the owner's with it
    w.core.delete_namespaced_config_map("shared", w.a)
    w.core.delete_namespaced_config_map(shared_user, w.a)
    wait_for(
        "the tenant's claims gone",
        lambda: gone(lambda: w.core.read_namespaced_config_map("shared", w.a)),
    )
    assert shared_topic in w.topics()
    assert w.kafka_user(shared_user)["scram"]
    assert w.secret(w.release, shared_user)["password"]


def test_deleting_in_a_tenant_namespace_follows_the_deletion_rules(world):
    w = world
    topic, user = f"{w.a}.temp", f"{w.a}.leaving"
    w.declare(w.a, "topic", topic, {"partitions": 1}, {"kairn.dev/deletion-policy": "delete"})
    w.declare(w.a, "user", user, scram([acl("topic", topic, ["Read"])]))
    w.wait_state(w.a, topic, "Ready")
    w.wait_state(w.a, user, "Ready")
    assert w.kafka_user(user)["acls"]
    for name in (topic, user):
        w.core.delete_namespaced_config_map(name, w.a)
    wait_for("the topic deleted", lambda: topic not in w.topics(), timeout=90)
    wait_for(
        "the user removed",
        lambda: w.kafka_user(user) == {"scram": [], "acls": [], "quotas": {}},
        timeout=90,
    )
    wait_for("its Secret gone", lambda: gone(lambda: w.core.read_namespaced_secret(user, w.a)))


def test_the_agents_reach_tenant_namespaces_and_no_other(world):
    w = world
    who = f"system:serviceaccount:{w.release}:{AGENTS}"

    def can(verb: str, resource: str, *where: str) -> str:
        out = kubectl(
            w.kube.kubeconfig, "auth", "can-i", verb, resource, "--as", who, *where, check=False
        )
        return out.stdout.strip()

    for ns in (w.release, w.a, w.b):
        assert can("watch", "configmaps", "-n", ns) == "yes"
        assert can("create", "secrets", "-n", ns) == "yes"
    for verb, resource in (
        ("get", "configmaps"),
        ("list", "configmaps"),
        ("get", "secrets"),
        ("list", "secrets"),
        ("create", "events"),
    ):
        assert can(verb, resource, "-n", w.outsider) == "no", (verb, resource)
    assert can("list", "configmaps", "--all-namespaces") == "no"
    assert can("list", "secrets", "--all-namespaces") == "no"
    # a ConfigMap in a namespace that is not a tenant is never seen
    w.declare(w.outsider, "topic", "ignored", {"topicName": f"{w.outsider}.x"})
    w.declare(w.a, "topic", f"{w.a}.after", {"partitions": 1})
    w.wait_state(w.a, f"{w.a}.after", "Ready")
    assert w.status(w.outsider, "ignored") == {"label": None}
    assert f"{w.outsider}.x" not in w.topics()


def test_tenants_come_and_go_with_the_list_without_a_restart(world):
    w = world
    topic_agent, user_agent = w.agents
    threads = {t.ident for a in w.agents for t in a.controller._threads}
    # a third tenant: its Role and the list change, nothing else
    w.tenants.append({"namespace": w.c})
    w.apply_chart_rbac()
    w.declare(w.c, "topic", f"{w.c}.new", {"partitions": 1})
    w.declare(w.c, "user", f"{w.c}.app", scram())
    w.wait_state(w.c, f"{w.c}.new", "Ready")
    w.wait_state(w.c, f"{w.c}.app", "Ready")
    assert w.secret(w.c, f"{w.c}.app")["password"]
    assert {t.ident for a in w.agents for t in a.controller._threads} == threads
    assert all(t.is_alive() for a in w.agents for t in a.controller._threads)
    assert 'kairn_tenants{agent="topic"} 3.0' in w.metrics(topic_agent)

    # tenant b removed: what it declared stays in Kafka, and the agents say so
    b_user = f"{w.pay}app"
    before = w.kafka_user(b_user)
    w.tenants = [t for t in w.tenants if t["namespace"] != w.b]
    w.apply_chart_rbac()
    wait_for(
        "tenant b dropped",
        lambda: (
            'kairn_tenant_resources_left{agent="topic",'
            f'namespace="{w.b}"}} 1.0' in w.metrics(topic_agent)
        ),
    )
    assert f'kairn_tenant_resources_left{{agent="user",namespace="{w.b}"}} 3.0' in w.metrics(
        user_agent
    )
    assert f"{w.pay}orders" in w.topics()
    assert w.kafka_user(b_user) == before and before["acls"] and before["quotas"]
    assert f'namespace="{w.b}"' not in "".join(
        line for line in w.metrics(topic_agent).splitlines() if line.startswith("kairn_resources{")
    )
    # a login with tenant b's credentials still works: nothing was revoked
    admin = KafkaAdminClient(
        bootstrap_servers=w.kafka.bootstrap(),
        security_protocol="SSL",
        ssl_certfile=str(w.run_dir / "b" / "user.crt"),
        ssl_keyfile=str(w.run_dir / "b" / "user.key"),
        ssl_cafile=str(w.run_dir / "b" / "ca.crt"),
    )
    admin.close()
