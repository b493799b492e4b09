"""One user's failure decides that user alone: the user agent's phases with fakes of Kafka and
the API server, each failing one item of a batch. (The real parts run in
tests/e2e/test_user_agent.py and tests/integration/test_user_agent_kafka.py.)"""

from __future__ import annotations

import base64
import copy
import json

import pytest
import yaml
from kubernetes.client import ApiException

from agents.common import status as st
from agents.pki import issue as pki
from agents.user_agent import credentials as cred
from agents.user_agent import sync as sync_module
from agents.user_agent.kafka_lanes import KafkaItemError
from agents.user_agent.reconciler import FINALIZER, UserReconciler

NS = "kafka"
REFUSED = KafkaItemError(42, "refused by Kafka")
DENIED = KafkaItemError(31, "not described")


class Resp:
    def __init__(self, obj=None):
        self.data = json.dumps(obj or {}).encode()

    def drain_conn(self):
        pass


class FakeAdmin:
    """What Kafka holds, and the items it refuses."""

    def __init__(self):
        self.scram: dict[str, list] = {}
        self.acls: dict[str, set] = {}
        self.quotas: dict[str, dict] = {}
        self.undescribed: set[str] = set()  # users (or principals) Kafka will not describe
        self.refused_acls: set[str] = set()  # principals whose ACL writes Kafka refuses

    def describe_scram(self, users=None):
        out = {u: v for u, v in self.scram.items() if users is None or u in users}
        out.update({u: DENIED for u in users or () if u in self.undescribed})
        return out

    def describe_acls_of(self, principals):
        return {p: DENIED if p in self.undescribed else self.acls.get(p, set()) for p in principals}

    def describe_acls(self, principal=None):
        return dict(self.acls)

    def describe_quotas(self, users=None):
        out = {u: q for u, q in self.quotas.items() if users is None or u in users}
        out.update({u: DENIED for u in users or () if u in self.undescribed})
        return out

    def alter_quotas(self, changes, validate_only=False):
        return dict.fromkeys(changes)

    def alter_scram(self, upserts=None, deletes=()):
        for u in upserts or {}:
            self.scram[u] = [(2, 4096)]
        for u in deletes:
            self.scram.pop(u, None)
        return dict.fromkeys([*(upserts or {}), *deletes])

    def create_acls(self, acls):
        return [REFUSED if a[3] in self.refused_acls else None for a in acls]

    def delete_acls(self, acls):
        return [None for _ in acls]

    def delete_principal_acls(self, principals):
        return dict.fromkeys(principals)


class FakeKafka:
    def __init__(self, admin):
        self.admin = admin

    def call(self, api, fn):
        return fn(self.admin)


class FakeCore:
    """ConfigMaps (finalizer and annotation patches) and Secrets, with failures per name."""

    def __init__(self, cms: dict):
        self.cms, self.secrets = cms, {}
        self.failing_reads: set[str] = set()
        self.failing_patches: set[str] = set()  # annotation removals that fail
        self.vanishing: set[str] = set()  # Secrets someone deletes just before the agent does
        self.rv = 10

    def patch_namespaced_config_map(self, name, namespace, ops, _preload_content=False):
        obj = self.cms[name]
        m = obj["metadata"]
        for op in ops:
            if op["op"] == "add" and op["path"].startswith("/metadata/finalizers"):
                m.setdefault("finalizers", []).append(FINALIZER)
            elif op["op"] == "remove" and op["path"].startswith("/metadata/finalizers"):
                m["finalizers"] = [f for f in m.get("finalizers", []) if f != FINALIZER]
            elif op["op"] == "remove" and op["path"].startswith("/metadata/annotations/"):
                if name in self.failing_patches:
                    raise ApiException(status=500, reason="etcd is tired")
                m.get("annotations", {}).pop("kairn.dev/force-renew", None)
        self.rv += 1
        m["resourceVersion"] = str(self.rv)
        return Resp(copy.deepcopy(obj))

    def read_namespaced_secret(self, name, namespace, _preload_content=False):
        if name in self.failing_reads:
            raise ApiException(status=500, reason="etcd is tired")
        if name not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        return Resp(self.secrets[name])

    def list_namespaced_secret(self, namespace, _preload_content=False, **kw):
        return Resp({"items": copy.deepcopy(list(self.secrets.values())), "metadata": {}})

    def create_namespaced_secret(self, namespace, body, field_manager=None, _preload_content=False):
        self.secrets[body["metadata"]["name"]] = copy.deepcopy(body)
        return Resp(body)

    def replace_namespaced_secret(self, name, namespace, body, **kw):
        self.secrets[name] = copy.deepcopy(body)
        return Resp(body)

    def delete_namespaced_secret(self, name, namespace, _preload_content=False):
        if self.secrets.pop(name, None) is None or name in self.vanishing:
            raise ApiException(status=404, reason="Not Found")
        return Resp()


class FakeReporter:
    def __init__(self):
        self.written: dict[str, tuple] = {}

    def report_each(self, items):
        for obj, state, reason, message, _hash, extra in items:
            self.written[obj["metadata"]["name"]] = (state, reason, message, extra)
        return [None] * len(items)

    def forget(self, name):
        self.written.pop(name, None)


def cm(name: str, spec: dict, **meta) -> dict:
    m = {"name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": "1", **meta}
    return {"metadata": m, "data": {"spec": yaml.safe_dump(spec)}}


SCRAM = {"authentication": {"type": "scram-sha-512"}}


def acl_spec(topic: str) -> dict:
    acl = {"resource": {"type": "topic", "name": topic}, "operations": ["Write"]}
    return {**SCRAM, "authorization": {"type": "simple", "acls": [acl]}}


class World:
    def __init__(self):
        self.cms: dict[str, dict] = {}
        self.core, self.admin, self.reporter = FakeCore(self.cms), FakeAdmin(), FakeReporter()
        self.rec = UserReconciler(
            FakeKafka(self.admin), self.reporter, self.core, self.cms.get, "kairn", NS
        )


@pytest.fixture
def world():
    w = World()
    yield w
    w.rec.close()


def outcomes(rec, keys) -> dict[str, str]:
    return {k: o.result for k, o in rec.reconcile(keys).items()}


def test_each_user_of_a_batch_fails_alone(world):
    w = world
    cms, core, admin, reporter, rec = w.cms, w.core, w.admin, w.reporter, w.rec
    for name, spec in (
        ("ok", acl_spec("a")),
        ("undescribed", SCRAM),
        ("unread", SCRAM),
        ("acl-refused", acl_spec("b")),
    ):
        cms[name] = cm(name, spec)
    admin.undescribed = {"undescribed"}
    admin.refused_acls = {"User:acl-refused"}
    core.failing_reads = {"unread"}
    assert outcomes(rec, list(cms)) == {
        "ok": "ready",
        "undescribed": "retry",
        "unread": "retry",
        "acl-refused": "error",
    }
    assert reporter.written["ok"][:2] == (st.READY, "UserReady")
    state, reason, message, _ = reporter.written["acl-refused"]
    assert (state, reason) == (st.ERROR, "KafkaRefused") and "refused by Kafka" in message
    assert "undescribed" not in reporter.written and "unread" not in reporter.written
    assert "ok" in core.secrets and "undescribed" not in admin.scram
    # once Kafka and the API server answer, the retried users go through
    admin.undescribed, core.failing_reads = set(), set()
    assert outcomes(rec, ["undescribed", "unread"]) == {"undescribed": "ready", "unread": "ready"}


def test_a_plan_that_fails_unexpectedly_holds_up_no_one_else(world, monkeypatch):
    w = world
    cms, rec = w.cms, w.rec
    cms["a"], cms["b"] = cm("a", SCRAM), cm("b", SCRAM)
    real = sync_module.plan_user

    def plan_user(spec, *args):
        if spec.name == "b":
            raise ValueError("surprise")
        return real(spec, *args)

    monkeypatch.setattr(sync_module, "plan_user", plan_user)
    assert outcomes(rec, ["a", "b"]) == {"a": "ready", "b": "retry"}


def test_force_renew_not_cleared_is_retried_not_ready(world):
    w = world
    cms, core, reporter, rec = w.cms, w.core, w.reporter, w.rec
    cms["a"] = cm("a", SCRAM, annotations={"kairn.dev/force-renew": "true"})
    cms["b"] = cm("b", SCRAM)
    cms["a"]["data"]["spec"] = yaml.safe_dump({"authentication": {"type": "tls"}})
    pair = pki.new_ca("kairn-clients-ca", cred.now_utc(), 800)
    core.secrets["kairn-clients-ca-cert"] = {"data": {"ca.crt": cred.b64(pki.cert_pem(pair.cert))}}
    core.secrets["kairn-clients-ca"] = {"data": {"ca.key": cred.b64(pki.key_pem(pair.key))}}
    core.failing_patches = {"a"}
    assert outcomes(rec, ["a", "b"]) == {"a": "retry", "b": "ready"}
    assert "a" not in reporter.written
    core.failing_patches = set()
    assert outcomes(rec, ["a"]) == {"a": "ready"}
    assert set(core.secrets["a"]["data"]) == {  # (no cluster CA file here: no ca.crt)
        "clients-ca.crt",
        "user.crt",
        "user.key",
        "user.p12",
        "user.password",
    }
    assert "kairn.dev/force-renew" not in cms["a"]["metadata"]["annotations"]


def test_the_clients_ca_unread_or_unreadable_holds_up_tls_users_only(world):
    w = world
    cms, core, reporter, rec = w.cms, w.core, w.reporter, w.rec
    cms["tls"] = cm("tls", {"authentication": {"type": "tls"}})
    cms["scram"] = cm("scram", SCRAM)
    core.failing_reads = {"kairn-clients-ca-cert"}
    assert outcomes(rec, ["tls", "scram"]) == {"tls": "retry", "scram": "ready"}
    core.failing_reads = set()
    junk = base64.b64encode(b"junk").decode()
    core.secrets["kairn-clients-ca-cert"] = {"data": {"ca.crt": junk}}
    core.secrets["kairn-clients-ca"] = {"data": {"ca.key": junk}}
    out = rec.reconcile(["tls"])["tls"]
    assert (out.result, out.requeue_after) == ("pending", sync_module.CA_WAIT)
    assert reporter.written["tls"][:2] == (st.PENDING, "ClientsCaInvalid")


def test_a_deleted_user_kafka_could_not_describe_keeps_its_finalizer(world):
    w = world
    cms, core, admin, rec = w.cms, w.core, w.admin, w.rec
    cms["a"], cms["b"] = cm("a", SCRAM), cm("b", SCRAM)
    assert outcomes(rec, ["a", "b"]) == {"a": "ready", "b": "ready"}
    for name in ("a", "b"):
        cms[name]["metadata"]["deletionTimestamp"] = "2026-06-01T00:00:00Z"
    admin.undescribed = {"b"}
    core.vanishing = {"a"}  # gone by the time the agent deletes it: counts as deleted
    assert outcomes(rec, ["a", "b"]) == {"a": "ready", "b": "retry"}
    assert cms["a"]["metadata"]["finalizers"] == [] and "a" not in core.secrets
    assert cms["b"]["metadata"]["finalizers"] == [FINALIZER] and "b" in core.secrets
    admin.undescribed = set()
    assert outcomes(rec, ["b"]) == {"b": "ready"}
    assert "b" not in core.secrets and "b" not in admin.scram


class LaggingAdmin(FakeAdmin):
    """Kafka whose reads show the state of before the writes until ``catch_up()`` (a KRaft
    broker's copy of the metadata log behind the controller's commit), counting writes."""

    def __init__(self):
        super().__init__()
        self.writes: list[str] = []
        self.seen = (dict(self.scram), {}, {})

    def catch_up(self):
        self.seen = (
            copy.deepcopy(self.scram),
            copy.deepcopy(self.acls),
            copy.deepcopy(self.quotas),
        )

    def describe_scram(self, users=None):
        return {u: v for u, v in self.seen[0].items() if users is None or u in users}

    def describe_acls_of(self, principals):
        return {p: set(self.seen[1].get(p, set())) for p in principals}

    def describe_acls(self, principal=None):
        return copy.deepcopy(self.seen[1])

    def describe_quotas(self, users=None):
        return {u: dict(q) for u, q in self.seen[2].items() if users is None or u in users}

    def alter_scram(self, upserts=None, deletes=()):
        self.writes.append("scram")
        return super().alter_scram(upserts, deletes)

    def create_acls(self, acls):
        self.writes.append("create_acls")
        for a in acls:
            self.acls.setdefault(a[3], set()).add(a)
        return [None for _ in acls]

    def delete_acls(self, acls):
        self.writes.append("delete_acls")
        for a in acls:
            self.acls.get(a[3], set()).discard(a)
        return [None for _ in acls]

    def delete_principal_acls(self, principals):
        self.writes.append("delete_principal_acls")
        for p in principals:
            self.acls.pop(p, None)
        return dict.fromkeys(principals)

    def alter_quotas(self, changes, validate_only=False):
        if not validate_only:
            self.writes.append("quotas")
            for u, ops in changes.items():
                q = self.quotas.setdefault(u, {})
                for k, v in ops.items():
                    if v is None:
                        q.pop(k, None)
                    else:
                        q[k] = v
                if not q:
                    self.quotas.pop(u)
        return dict.fromkeys(changes)


def lagging_world(clock) -> World:
    w = World()
    w.rec.close()
    w.admin = LaggingAdmin()
    w.rec = UserReconciler(FakeKafka(w.admin), w.reporter, w.core, w.cms.get, "kairn", NS)
    w.rec.recent.clock = clock
    return w


@pytest.mark.parametrize("batch", [1, 30], ids=["small-batch", "large-batch"])
def test_a_pass_right_after_writes_kafka_does_not_show_yet_writes_nothing_again(batch):
    """Reads that lag accepted writes (docs/kraft.md): the second pass trusts the first
    pass's writes, so it neither writes again nor reports from the stale read; once the
    window is over, the read decides again and drift made in Kafka is set right."""
    now = [1000.0]
    w = lagging_world(lambda: now[0])
    try:
        spec = {**acl_spec("orders"), "quotas": {"producerByteRate": 1024}}
        names = [f"u{i}" for i in range(batch)]
        for name in names:
            w.cms[name] = cm(name, spec)
        assert set(outcomes(w.rec, names).values()) == {"ready"}
        assert w.admin.writes == ["scram", "create_acls", "quotas"]
        first = {n: w.reporter.written[n] for n in names}

        w.admin.writes.clear()  # Kafka's reads still show nothing of the first pass
        now[0] += 1
        assert set(outcomes(w.rec, names).values()) == {"ready"}
        assert w.admin.writes == []
        assert {n: w.reporter.written[n][:3] for n in names} == {n: v[:3] for n, v in first.items()}

        w.admin.catch_up()  # the reads show the writes; someone removes a quota by hand
        w.admin.quotas.pop(names[0])
        w.admin.catch_up()
        now[0] += 1
        assert set(outcomes(w.rec, names).values()) == {"ready"}
        assert w.admin.writes == []  # within the window the write stands
        now[0] += w.rec.recent.window
        assert set(outcomes(w.rec, names).values()) == {"ready"}
        assert w.admin.writes == ["quotas"]  # the read decides again: the drift is set right
        assert w.admin.quotas[names[0]] == {"producer_byte_rate": 1024.0}
    finally:
        w.rec.close()


def test_a_user_deleted_right_after_its_quotas_were_set_loses_them_too():
    """The deletion's read of the quotas may not show quotas set a moment ago: what the
    agent's own writes left is removed as well."""
    now = [1000.0]
    w = lagging_world(lambda: now[0])
    try:
        w.cms["u"] = cm("u", {**acl_spec("orders"), "quotas": {"producerByteRate": 1024}})
        assert outcomes(w.rec, ["u"]) == {"u": "ready"}
        w.cms["u"]["metadata"]["deletionTimestamp"] = "2026-06-01T00:00:00Z"
        now[0] += 1
        assert outcomes(w.rec, ["u"]) == {"u": "ready"}
        assert w.admin.quotas == {} and w.admin.acls == {} and w.admin.scram == {}
    finally:
        w.rec.close()
