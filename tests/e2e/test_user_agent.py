"""kairn-user-agent against a real API server and the real TLS Kafka cluster of the harness.

Each test gets its own namespace and an agent watching it; user and topic names carry the
namespace, so tests share one Kafka cluster without meeting. Every password and key the agent
generates is collected, and the last test greps every log line the agents wrote for them."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import TopicAuthorizationFailedError
from kubernetes import client

from agents.common.logs import JsonFormatter
from agents.common.settings import Settings
from agents.pki import issue as pki
from agents.user_agent.kafka_users import UserAdmin
from agents.user_agent.main import UserAgent
from devtools.chart import helm_template
from devtools.clients import create_topic, produce, scram_kwargs
from devtools.cluster import LocalCluster

from .helpers import gone, wait_for

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "kairn"
FULLNAME = "kairn"
CA_CERT_SECRET, CA_SECRET = f"{FULLNAME}-clients-ca-cert", f"{FULLNAME}-clients-ca"

# every log file the agents of this module wrote, and every secret value they generated
LOGS: list[Path] = []
SECRET_VALUES: set[str] = set()


# ---- helpers --------------------------------------------------------------------------------
def cm_body(name: str, spec, labels=None, annotations=None) -> client.V1ConfigMap:
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec)
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={"kairn.dev/cluster": CLUSTER, "kairn.dev/type": "user", **(labels or {})},
            annotations=annotations,
        ),
        data={"spec": text},
    )


def set_spec(core, ns, name, spec) -> None:
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec)
    core.patch_namespaced_config_map(name, ns, {"data": {"spec": text}})


def status(core, ns, name) -> dict:
    cm = core.read_namespaced_config_map(name, ns)
    raw = (cm.metadata.annotations or {}).get("kairn.dev/status")
    st = json.loads(raw) if raw else {}
    st["label"] = (cm.metadata.labels or {}).get("kairn.dev/state")
    return st


def wait_state(core, ns, name, state, reason=None, timeout=90, spec_hash_changed_from=None):
    def check():
        st = status(core, ns, name)
        ok = st.get("label") == state and st.get("state") == state
        if spec_hash_changed_from is not None and st.get("specHash") == spec_hash_changed_from:
            return None
        return st if ok and (reason is None or st.get("reason") == reason) else None

    return wait_for(f"{name} to be {state} {reason or ''}", check, timeout=timeout)


def secret_data(core, ns, name) -> dict[str, bytes]:
    """The decoded data of a Secret; generated values are remembered for the log check."""
    s = core.read_namespaced_secret(name, ns)
    data = {k: base64.b64decode(v) for k, v in (s.data or {}).items()}
    for k in ("password", "user.password"):
        if k in data:
            SECRET_VALUES.add(data[k].decode())
    if "user.key" in data:
        # the key's base64 body lines: none of them may appear anywhere in a log
        for line in data["user.key"].decode().splitlines():
            if line and not line.startswith("-----"):
                SECRET_VALUES.add(line)
    return data


def scram_user(acls=None, quotas=None, **auth) -> dict:
    spec: dict = {"authentication": {"type": "scram-sha-512", **auth}}
    if acls is not None:
        spec["authorization"] = {"type": "simple", "acls": acls}
    if quotas:
        spec["quotas"] = quotas
    return spec


def topic_acl(name, ops, pattern="literal", **kw) -> dict:
    return {
        "resource": {"type": "topic", "name": name, "patternType": pattern},
        "operations": ops,
        **kw,
    }


def can_login(cluster: LocalCluster, user: str, password: str) -> bool:
    try:
        admin = KafkaAdminClient(
            **scram_kwargs(cluster, user, password),
            request_timeout_ms=10000,
            bootstrap_timeout_ms=8000,
        )
    except Exception:
        return False
    admin.close()
    return True


def can_produce(topic: str, **client_kw) -> bool:
    try:
        produce(topic, [b"x"], timeout=20, max_block_ms=20000, **client_kw)
    except TopicAuthorizationFailedError:
        return False
    return True


def kafka_view(cluster: LocalCluster, user: str) -> dict:
    """What Kafka holds for a user: SCRAM mechanisms, ACLs, quotas."""
    ua = UserAdmin(
        {"bootstrap_servers": cluster.bootstrap().split(","), **cluster.admin.ssl_kwargs()}
    )
    try:
        return {
            "scram": ua.describe_scram([user]).get(user, []),
            "acls": sorted(ua.describe_acls(f"User:{user}").get(f"User:{user}", set())),
            "quotas": ua.describe_quotas([user]).get(user, {}),
        }
    finally:
        ua.close()


def events_of(core, ns, name) -> list:
    evs = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason) for e in evs]


def wait_event(core, ns, name, kind, reason) -> None:
    """The Event is created right after the status it reports."""
    wait_for(
        f"{kind} event {reason} of {name}", lambda: (kind, reason) in events_of(core, ns, name)
    )


def put_clients_ca(core, ns, cluster: LocalCluster) -> None:
    """The clients CA Secrets as kairn-certs writes them, from the harness's own."""
    for name, keys in ((CA_CERT_SECRET, ("ca.crt",)), (CA_SECRET, ("ca.key",))):
        folder = cluster.secret_dir(name)
        data = {k: base64.b64encode((folder / k).read_bytes()).decode() for k in keys}
        core.create_namespaced_secret(
            ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=data)
        )


def agent_env(kafka_cluster: LocalCluster, kube, ns: str, **extra) -> dict:
    tls = kafka_cluster.admin.ssl_kwargs()
    env = {
        "KAIRN_CLUSTER": CLUSTER,
        "KAIRN_FULLNAME": FULLNAME,
        "KAIRN_NAMESPACE": ns,
        "KAIRN_BOOTSTRAP": kafka_cluster.bootstrap(),
        "KAIRN_TLS_CA_FILE": tls["ssl_cafile"],
        "KAIRN_TLS_CERT_FILE": tls["ssl_certfile"],
        "KAIRN_TLS_KEY_FILE": tls["ssl_keyfile"],
        "KAIRN_TLS_CHECK_HOSTNAME": "true",
        "KAIRN_HTTP_PORT": "0",
        "KAIRN_RESYNC_SECONDS": "300",
        "KAIRN_LOG_LEVEL": "DEBUG",
        "KAIRN_CLIENTS_CA_CERT_SECRET": CA_CERT_SECRET,
        "KAIRN_CLIENTS_CA_SECRET": CA_SECRET,
        "KAIRN_CERT_VALIDITY_DAYS": "365",
        "KUBECONFIG": str(kube.kubeconfig),
    }
    env.update({f"KAIRN_{k.upper()}": str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def ns(core, namespace, kafka_cluster):
    put_clients_ca(core, namespace, kafka_cluster)
    return namespace


@pytest.fixture
def start_agent(kafka_cluster, kube, ns, monkeypatch, tmp_path):
    """start_agent(**settings) -> a running in-process UserAgent for the test's namespace; its
    whole log goes to a file that the last test reads."""
    agents = []

    def start(**extra) -> UserAgent:
        for k, v in agent_env(kafka_cluster, kube, ns, **extra).items():
            monkeypatch.setenv(k, v)
        from agents.user_agent.main import parser

        settings = Settings.from_args(parser().parse_args([]))
        agent = UserAgent(settings, api=kube.api_client())
        path = tmp_path / f"agent-{len(agents)}.log"
        handler = logging.FileHandler(path)
        handler.setFormatter(JsonFormatter())
        logging.getLogger().addHandler(handler)
        LOGS.append(path)
        agent.start()
        agents.append((agent, handler))
        return agent

    yield start
    for agent, handler in agents:
        agent.stop()
        logging.getLogger().removeHandler(handler)
        handler.close()


def http_get(agent: UserAgent, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{agent.server.port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---- SCRAM users ----------------------------------------------------------------------------
def test_scram_user_produces_where_allowed_and_is_denied_elsewhere(
    core, ns, kafka_cluster, start_agent
):
    agent = start_agent()
    allowed, other = f"{ns}.orders", f"{ns}.secret"
    for t in (allowed, other):
        create_topic(kafka_cluster, t, partitions=1, rf=3)
    core.create_namespaced_config_map(
        ns, cm_body("alice", scram_user([topic_acl(f"{ns}.ord", ["Write", "Describe"], "prefix")]))
    )
    st = wait_state(core, ns, "alice", "Ready", "UserReady")
    assert st["username"] == "alice" and st["secret"] == "alice" and st["specHash"]
    data = secret_data(core, ns, "alice")
    password = data["password"].decode()
    assert len(password) == 32 and password.isalnum() and password[0].isalpha()
    assert data["sasl.jaas.config"].decode() == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="alice" password="{password}";'
    )
    secret = core.read_namespaced_secret("alice", ns)
    assert secret.metadata.labels["kairn.dev/user"] == "alice"
    assert [r.kind for r in secret.metadata.owner_references] == ["ConfigMap"]
    client_kw = scram_kwargs(kafka_cluster, "alice", password)
    wait_for("alice to produce", lambda: can_produce(allowed, **client_kw), timeout=60)
    assert not can_produce(other, **client_kw)
    wait_event(core, ns, "alice", "Normal", "UserReady")
    code, text = http_get(agent, "/metrics")
    assert code == 200
    assert f'kairn_resources{{agent="user",namespace="{ns}",state="Ready"}} 1.0' in text
    assert (
        'kairn_kafka_requests_total{agent="user",api="alter_user_scram_credentials",result="ok"}'
        in text
    )
    assert http_get(agent, "/readyz")[0] == 200


def test_removing_an_acl_revokes_access(core, ns, kafka_cluster, start_agent):
    start_agent()
    a, b = f"{ns}.a", f"{ns}.b"
    for t in (a, b):
        create_topic(kafka_cluster, t, partitions=1, rf=3)
    core.create_namespaced_config_map(
        ns, cm_body("bob", scram_user([topic_acl(a, ["Write"]), topic_acl(b, ["Write"])]))
    )
    st = wait_state(core, ns, "bob", "Ready")
    client_kw = scram_kwargs(
        kafka_cluster, "bob", secret_data(core, ns, "bob")["password"].decode()
    )
    wait_for(
        "bob to produce to a and b",
        lambda: can_produce(a, **client_kw) and can_produce(b, **client_kw),
        timeout=60,
    )
    set_spec(core, ns, "bob", scram_user([topic_acl(a, ["Write"])]))
    wait_state(core, ns, "bob", "Ready", spec_hash_changed_from=st["specHash"])
    assert len(kafka_view(kafka_cluster, "bob")["acls"]) == 1
    wait_for("bob denied on b", lambda: not can_produce(b, **client_kw), timeout=60)
    assert can_produce(a, **client_kw)


def test_password_from_a_referenced_secret(core, ns, kafka_cluster, start_agent):
    start_agent()
    own = "Own" + os.urandom(8).hex()
    SECRET_VALUES.add(own)
    core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="carol-password"),
            data={"pw": base64.b64encode(own.encode()).decode()},
        ),
    )
    ref = {"valueFrom": {"secretKeyRef": {"name": "carol-password", "key": "pw"}}}
    core.create_namespaced_config_map(ns, cm_body("carol", scram_user([], password=ref)))
    wait_state(core, ns, "carol", "Ready")
    assert secret_data(core, ns, "carol")["password"].decode() == own
    wait_for("carol to log in", lambda: can_login(kafka_cluster, "carol", own), timeout=60)


# ---- TLS users ------------------------------------------------------------------------------
def test_tls_user_connects_with_its_secret_and_force_renew(
    core, ns, kafka_cluster, start_agent, tmp_path
):
    start_agent()
    topic = f"{ns}.tls"
    create_topic(kafka_cluster, topic, partitions=1, rf=3)
    core.create_namespaced_config_map(
        ns,
        cm_body(
            "dave",
            {
                "authentication": {"type": "tls"},
                "authorization": {"type": "simple", "acls": [topic_acl(topic, ["Write"])]},
            },
        ),
    )
    st = wait_state(core, ns, "dave", "Ready")
    assert st["certificateExpires"]
    data = secret_data(core, ns, "dave")
    assert set(data) == {
        "ca.crt",
        "clients-ca.crt",
        "user.crt",
        "user.key",
        "user.p12",
        "user.password",
    }
    clients_ca = (kafka_cluster.secret_dir(CA_CERT_SECRET) / "ca.crt").read_bytes()
    assert data["clients-ca.crt"] == clients_ca
    assert data["ca.crt"] == kafka_cluster.cluster_ca_file.read_bytes()  # what clients trust
    cert = pki.load_certs(data["user.crt"])[0]
    assert pki.common_name(cert) == "dave"
    key, _ = pki.load_p12(data["user.p12"], data["user.password"])
    assert key is not None
    (tmp_path / "u.crt").write_bytes(data["user.crt"])
    (tmp_path / "u.key").write_bytes(data["user.key"])
    tls_kw = {
        "bootstrap_servers": kafka_cluster.bootstrap(),
        "security_protocol": "SSL",
        "ssl_cafile": str(kafka_cluster.cluster_ca_file),
        "ssl_certfile": str(tmp_path / "u.crt"),
        "ssl_keyfile": str(tmp_path / "u.key"),
    }
    wait_for("dave to produce over TLS", lambda: can_produce(topic, **tls_kw), timeout=60)
    assert kafka_view(kafka_cluster, "dave")["scram"] == []

    # kairn.dev/force-renew issues a new certificate and is cleared
    core.patch_namespaced_config_map(
        "dave", ns, {"metadata": {"annotations": {"kairn.dev/force-renew": "true"}}}
    )

    def renewed():
        new = secret_data(core, ns, "dave")
        return (
            new if pki.load_certs(new["user.crt"])[0].serial_number != cert.serial_number else None
        )

    new = wait_for("a new certificate", renewed, timeout=60)
    wait_for(
        "the annotation cleared",
        lambda: (
            "kairn.dev/force-renew"
            not in (core.read_namespaced_config_map("dave", ns).metadata.annotations or {})
        ),
    )
    (tmp_path / "u.crt").write_bytes(new["user.crt"])
    (tmp_path / "u.key").write_bytes(new["user.key"])
    assert can_produce(topic, **tls_kw)


# ---- quotas ---------------------------------------------------------------------------------
def test_produce_quota_is_enforced(core, ns, kafka_cluster, start_agent):
    start_agent()
    topic = f"{ns}.quota"
    create_topic(kafka_cluster, topic, partitions=1, rf=3)
    limit = 20 * 1024
    core.create_namespaced_config_map(
        ns,
        cm_body(
            "erin",
            scram_user(
                [topic_acl(topic, ["Write"])], {"producerByteRate": limit, "requestPercentage": 200}
            ),
        ),
    )
    st = wait_state(core, ns, "erin", "Ready")
    assert kafka_view(kafka_cluster, "erin")["quotas"] == {
        "producer_byte_rate": float(limit),
        "request_percentage": 200.0,
    }
    password = secret_data(core, ns, "erin")["password"].decode()
    client_kw = scram_kwargs(kafka_cluster, "erin", password)
    wait_for("erin to produce", lambda: can_produce(topic, **client_kw), timeout=60)
    producer = KafkaProducer(acks=1, linger_ms=5, batch_size=4096, **client_kw)
    payload, total = b"q" * 1024, 240 * 1024
    try:
        started = time.monotonic()
        futures = [producer.send(topic, payload) for _ in range(total // len(payload))]
        producer.flush(120)
        elapsed = time.monotonic() - started
        for f in futures:
            f.get(10)
    finally:
        producer.close(10)
    rate = total / elapsed
    print(f"produced {total} bytes in {elapsed:.1f}s: {rate:.0f} B/s under a quota of {limit} B/s")
    # the broker throttles to the quota over its sample window: far below what the
    # connection carries, and at most a first window's burst above the limit
    assert rate < 1.6 * limit

    set_spec(core, ns, "erin", scram_user([topic_acl(topic, ["Write"])]))
    wait_state(core, ns, "erin", "Ready", spec_hash_changed_from=st["specHash"])
    assert kafka_view(kafka_cluster, "erin")["quotas"] == {}

    # the control: without the quota the same connection carries the same bytes far faster
    def unthrottled_rate() -> float:
        producer = KafkaProducer(acks=1, linger_ms=20, batch_size=65536, **client_kw)
        try:
            started = time.monotonic()
            for _ in range(total // len(payload)):
                producer.send(topic, payload)
            producer.flush(120)
            return total / (time.monotonic() - started)
        finally:
            producer.close(10)

    # brokers learn of the removal through ZooKeeper: measure until it has reached them
    fast = wait_for(
        "the quota lifted", lambda: (r := unthrottled_rate()) > 3 * limit and r, timeout=90
    )
    print(f"without the quota: {fast:.0f} B/s")


# ---- deletion -------------------------------------------------------------------------------
def test_deleting_the_configmap_revokes_login_and_removes_the_secret(
    core, ns, kafka_cluster, start_agent
):
    start_agent()
    topic = f"{ns}.gone"
    create_topic(kafka_cluster, topic, partitions=1, rf=3)
    core.create_namespaced_config_map(
        ns, cm_body("frank", scram_user([topic_acl(topic, ["Write"])], {"consumerByteRate": 4096}))
    )
    wait_state(core, ns, "frank", "Ready")
    cm = core.read_namespaced_config_map("frank", ns)
    assert "kairn.dev/user" in cm.metadata.finalizers
    password = secret_data(core, ns, "frank")["password"].decode()
    wait_for("frank to log in", lambda: can_login(kafka_cluster, "frank", password), timeout=60)
    core.delete_namespaced_config_map("frank", ns)
    wait_for(
        "the ConfigMap gone", lambda: gone(lambda: core.read_namespaced_config_map("frank", ns))
    )
    assert gone(lambda: core.read_namespaced_secret("frank", ns))
    assert kafka_view(kafka_cluster, "frank") == {"scram": [], "acls": [], "quotas": {}}
    wait_for(
        "frank's login refused", lambda: not can_login(kafka_cluster, "frank", password), timeout=60
    )


def test_a_secret_deleted_or_changed_by_hand_is_set_right(core, ns, kafka_cluster, start_agent):
    start_agent()
    core.create_namespaced_config_map(ns, cm_body("nina", scram_user([])))
    wait_state(core, ns, "nina", "Ready")
    first = secret_data(core, ns, "nina")["password"].decode()
    uid = core.read_namespaced_secret("nina", ns).metadata.uid
    core.delete_namespaced_secret("nina", ns)

    def rewritten():
        s = core.read_namespaced_secret("nina", ns)
        return s if s.metadata.uid != uid else None

    wait_for("the Secret written again", rewritten, timeout=60)
    second = secret_data(core, ns, "nina")["password"].decode()
    assert second != first  # the old password was nowhere else: a new one is set
    wait_for("nina to log in", lambda: can_login(kafka_cluster, "nina", second), timeout=60)
    wait_for(
        "the old password refused", lambda: not can_login(kafka_cluster, "nina", first), timeout=60
    )

    # a password typed into the Secret becomes the user's password, as with Strimzi
    typed = "Typed" + os.urandom(6).hex()
    SECRET_VALUES.add(typed)
    core.patch_namespaced_secret(
        "nina", ns, {"data": {"password": base64.b64encode(typed.encode()).decode()}}
    )
    wait_for(
        "sasl.jaas.config to follow",
        lambda: f'password="{typed}"' in secret_data(core, ns, "nina")["sasl.jaas.config"].decode(),
        timeout=60,
    )
    wait_for("nina to log in with it", lambda: can_login(kafka_cluster, "nina", typed), timeout=60)


# ---- restarts -------------------------------------------------------------------------------
def test_a_restart_keeps_every_password(core, ns, kafka_cluster, kube, tmp_path):
    names = [f"r{i}" for i in range(6)]
    for n in names[:-1]:
        core.create_namespaced_config_map(ns, cm_body(n, scram_user([])))
    core.create_namespaced_config_map(ns, cm_body(names[-1], {"authentication": {"type": "tls"}}))
    env = {**os.environ, **agent_env(kafka_cluster, kube, ns)}
    bin_ = str(ROOT / ".venv" / "bin" / "kairn-user-agent")

    def run(label: str, until) -> None:
        path = tmp_path / f"{label}.log"
        LOGS.append(path)
        with open(path, "w") as log:
            proc = subprocess.Popen([bin_], env=env, stderr=log)
            try:
                until()
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(30) == 0

    def all_ready():
        for n in names:
            wait_state(core, ns, n, "Ready", timeout=120)

    run("first", all_ready)
    before = {n: secret_data(core, ns, n) for n in names}
    versions = {n: core.read_namespaced_secret(n, ns).metadata.resource_version for n in names}
    core.create_namespaced_config_map(ns, cm_body("late", scram_user([])))
    run("second", lambda: wait_state(core, ns, "late", "Ready", timeout=120))
    after = {n: secret_data(core, ns, n) for n in names}
    assert after == before
    assert {
        n: core.read_namespaced_secret(n, ns).metadata.resource_version for n in names
    } == versions
    for n in names[:-1]:
        assert can_login(kafka_cluster, n, before[n]["password"].decode())
    lines = [json.loads(x) for x in (tmp_path / "second.log").read_text().splitlines()]
    assert all({"ts", "level", "msg"} <= set(x) for x in lines)


# ---- bad input ------------------------------------------------------------------------------
BAD = {
    "bad-op": (
        scram_user([{"resource": {"type": "topic", "name": "t"}, "operations": ["Fly"]}]),
        "InvalidAcl",
        "'Fly' is not an ACL operation",
    ),
    "bad-resource": (
        scram_user([{"resource": {"type": "queue", "name": "t"}, "operations": ["Read"]}]),
        "InvalidAcl",
        "not a resource type",
    ),
    "no-pw-secret": (
        scram_user([], password={"valueFrom": {"secretKeyRef": {"name": "missing", "key": "pw"}}}),
        "PasswordSecretNotFound",
        "missing",
    ),
    "both-pw": (
        scram_user(
            [],
            password={"value": "inline", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
        ),
        "InvalidAuthentication",
        "both an inline value and valueFrom",
    ),
    "a" * 70: ({"authentication": {"type": "tls"}}, "InvalidUserName", "64 characters"),
    FULLNAME + "-agents": (scram_user([]), "ReservedUserName", "super user"),
    "taken": (scram_user([]), "SecretConflict", "already exists"),
    "bad-yaml": ("authentication: [", "InvalidYAML", "not valid YAML"),
}


def test_each_bad_input_is_an_error_and_changes_nothing(core, ns, kafka_cluster, start_agent):
    core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="taken"), string_data={"x": "mine"})
    )
    start_agent()
    for name, (spec, _, _) in BAD.items():
        core.create_namespaced_config_map(ns, cm_body(name, spec))
    for name, (_, reason, words) in BAD.items():
        st = wait_state(core, ns, name, "Error", reason)
        assert words in st["message"], st
        wait_event(core, ns, name, "Warning", reason)
        assert kafka_view(kafka_cluster, name) == {"scram": [], "acls": [], "quotas": {}}, name
        cm = core.read_namespaced_config_map(name, ns)
        assert not cm.metadata.finalizers
    assert core.read_namespaced_secret("taken", ns).data == {
        "x": base64.b64encode(b"mine").decode()
    }
    for name in BAD:
        if name != "taken":
            assert gone(lambda n=name: core.read_namespaced_secret(n, ns)), name

    # a bad change to a Ready user changes nothing of what it has
    topic = f"{ns}.keep"
    create_topic(kafka_cluster, topic, partitions=1, rf=3)
    core.create_namespaced_config_map(
        ns,
        cm_body("grace", scram_user([topic_acl(topic, ["Write"])], {"producerByteRate": 1000000})),
    )
    wait_state(core, ns, "grace", "Ready")
    view, data = kafka_view(kafka_cluster, "grace"), secret_data(core, ns, "grace")
    for spec, reason in (
        (
            scram_user([{"resource": {"type": "topic", "name": topic}, "operations": ["Fly"]}]),
            "InvalidAcl",
        ),
        (
            scram_user(
                [], password={"valueFrom": {"secretKeyRef": {"name": "missing", "key": "pw"}}}
            ),
            "PasswordSecretNotFound",
        ),
        (scram_user([], {"producerByteRate": -5}), "InvalidQuota"),
    ):
        set_spec(core, ns, "grace", spec)
        wait_state(core, ns, "grace", "Error", reason)
        assert kafka_view(kafka_cluster, "grace") == view
        assert secret_data(core, ns, "grace") == data
    assert can_login(kafka_cluster, "grace", data["password"].decode())


def test_pause_leaves_the_user_alone(core, ns, kafka_cluster, start_agent):
    start_agent()
    core.create_namespaced_config_map(
        ns, cm_body("heidi", scram_user([], {"producerByteRate": 5000}))
    )
    wait_state(core, ns, "heidi", "Ready")
    view = kafka_view(kafka_cluster, "heidi")
    core.patch_namespaced_config_map(
        "heidi", ns, {"metadata": {"labels": {"kairn.dev/managed": "false"}}}
    )
    wait_state(core, ns, "heidi", "Pending", "ReconciliationPaused")
    set_spec(core, ns, "heidi", scram_user([], {"producerByteRate": 9000}))
    core.patch_namespaced_config_map(
        "heidi", ns, {"metadata": {"annotations": {"kairn.dev/poke": "1"}}}
    )
    wait_state(core, ns, "heidi", "Pending", "ReconciliationPaused")
    assert kafka_view(kafka_cluster, "heidi") == view
    core.patch_namespaced_config_map(
        "heidi", ns, {"metadata": {"labels": {"kairn.dev/managed": None}}}
    )
    wait_state(core, ns, "heidi", "Ready")
    wait_for(
        "the new quota",
        lambda: kafka_view(kafka_cluster, "heidi")["quotas"] == {"producer_byte_rate": 9000.0},
    )


# ---- Kafka failures ---------------------------------------------------------------------------
def test_the_controller_broker_down_during_reconcile(core, ns, kafka_cluster, start_agent):
    """Credentials go to the active controller: with it killed, the agent retries until
    another broker has taken over, then stores the user there."""
    start_agent()
    ua = UserAdmin(
        {
            "bootstrap_servers": kafka_cluster.bootstrap().split(","),
            **kafka_cluster.admin.ssl_kwargs(),
        }
    )
    try:
        controller = ua.describe_cluster()["controller_id"]
    finally:
        ua.close()
    pod = kafka_cluster.kafka_pods[controller]
    pod.kill()
    try:
        core.create_namespaced_config_map(
            ns, cm_body("mia", scram_user([], {"producerByteRate": 7000}))
        )
        wait_state(core, ns, "mia", "Ready", timeout=240)
        view = kafka_view(kafka_cluster, "mia")
        assert view["scram"] and view["quotas"] == {"producer_byte_rate": 7000.0}
        password = secret_data(core, ns, "mia")["password"].decode()
        wait_for("mia to log in", lambda: can_login(kafka_cluster, "mia", password), timeout=60)
    finally:
        pod.start()
        kafka_cluster.wait_up()


def test_kafka_refusing_one_user_of_a_batch_leaves_the_others_ready(
    core, ns, kafka_cluster, start_agent
):
    """ZooKeeper-mode Kafka refuses an ACL whose resource name holds a '/' (the spec cannot
    know: group names may hold one). The users are made before the agent starts, so one
    batch carries them all: the refused user is Error with Kafka's refusal, the others are
    Ready with their ACLs."""
    ready = ["olga", "pete", "quinn"]
    for n in ready:
        core.create_namespaced_config_map(
            ns, cm_body(n, scram_user([topic_acl(f"{ns}.{n}", ["Read"])]))
        )
    group_acl = {"resource": {"type": "group", "name": f"{ns}/team"}, "operations": ["Read"]}
    core.create_namespaced_config_map(ns, cm_body("rita", scram_user([group_acl])))
    start_agent()
    st = wait_state(core, ns, "rita", "Error", "KafkaRefused")
    assert "an ACL of rita" in st["message"], st
    wait_event(core, ns, "rita", "Warning", "KafkaRefused")
    assert kafka_view(kafka_cluster, "rita")["acls"] == []
    for n in ready:
        assert wait_state(core, ns, n, "Ready", "UserReady")["message"].endswith("1 ACL, 0 quotas")
        assert len(kafka_view(kafka_cluster, n)["acls"]) == 1


# ---- the chart's own Role and environment ---------------------------------------------------
def test_runs_with_the_charts_role_and_environment(core, api, ns, kafka_cluster, kube, tmp_path):
    """The agent as the chart deploys it: the chart's ServiceAccount, Role and RoleBinding (so
    nothing beyond them is needed) and the chart's environment for the user-agent container,
    with only in-cluster paths and addresses replaced by the harness's."""
    docs = helm_template(CLUSTER, ns, {})
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    rbac = client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(ns, by[("ServiceAccount", f"{FULLNAME}-agents")])
    rbac.create_namespaced_role(ns, by[("Role", f"{FULLNAME}-agents")])
    rbac.create_namespaced_role_binding(ns, by[("RoleBinding", f"{FULLNAME}-agents")])
    deployment = by[("Deployment", f"{FULLNAME}-agents")]
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "user-agent"
    ]
    assert container["command"] == ["kairn-user-agent"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # every variable the chart sets is one the command reads
    from agents.user_agent.main import parser

    help_text = parser().format_help().replace("\n", " ")
    for name in env:
        assert f"[{name}]" in help_text, name
    tls = kafka_cluster.admin.ssl_kwargs()
    env.update(
        KAIRN_NAMESPACE=ns,
        KAIRN_BOOTSTRAP=kafka_cluster.bootstrap(),
        KAIRN_TLS_CA_FILE=tls["ssl_cafile"],
        KAIRN_TLS_CERT_FILE=tls["ssl_certfile"],
        KAIRN_TLS_KEY_FILE=tls["ssl_keyfile"],
        KAIRN_HTTP_PORT="0",
        KAIRN_HTTP_HOST="127.0.0.1",
    )
    kubeconfig = kube.service_account_kubeconfig(tmp_path / "kc", ns, f"{FULLNAME}-agents")
    log_path = tmp_path / "chart-role.log"
    LOGS.append(log_path)
    bin_ = str(ROOT / ".venv" / "bin" / "kairn-user-agent")
    run_env = {**os.environ, **env, "KUBECONFIG": str(kubeconfig)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([bin_], env=run_env, stderr=log)
        try:
            core.create_namespaced_config_map(
                ns, cm_body("kim", scram_user([topic_acl(f"{ns}.k", ["Read"])]))
            )
            core.create_namespaced_config_map(
                ns, cm_body("lee", {"authentication": {"type": "tls"}})
            )
            for n in ("kim", "lee"):
                wait_state(core, ns, n, "Ready", timeout=120)
                secret_data(core, ns, n)
            wait_event(core, ns, "kim", "Normal", "UserReady")
            core.delete_namespaced_config_map("kim", ns)
            wait_for(
                "kim gone",
                lambda: gone(lambda: core.read_namespaced_config_map("kim", ns)),
                timeout=60,
            )
            assert gone(lambda: core.read_namespaced_secret("kim", ns))
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    assert "forbidden" not in log_path.read_text().lower()
    assert kafka_view(kafka_cluster, "kim") == {"scram": [], "acls": [], "quotas": {}}


# ---- no secret in any log, event or annotation (keep last) ------------------------------------
def test_no_generated_secret_appears_in_logs_events_or_annotations(
    core, ns, kafka_cluster, start_agent
):
    start_agent()
    core.create_namespaced_config_map(ns, cm_body("ivan", scram_user([])))
    core.create_namespaced_config_map(ns, cm_body("judy", {"authentication": {"type": "tls"}}))
    for n in ("ivan", "judy"):
        wait_state(core, ns, n, "Ready")
        secret_data(core, ns, n)
    core.delete_namespaced_config_map("ivan", ns)
    wait_for("ivan gone", lambda: gone(lambda: core.read_namespaced_config_map("ivan", ns)))
    assert SECRET_VALUES and LOGS
    texts = [p.read_text() for p in LOGS if p.exists()]
    assert sum(len(t.splitlines()) for t in texts) > 10
    visible = json.dumps(
        [[e.message, e.reason] for e in core.list_namespaced_event(ns).items]
        + [cm.metadata.annotations for cm in core.list_namespaced_config_map(ns).items]
    )
    for value in SECRET_VALUES:
        for t in texts:
            assert value not in t
        assert value not in visible
