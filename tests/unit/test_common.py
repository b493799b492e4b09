"""Pure parts of agents.common: the work queue, fingerprints, redaction, settings."""

from __future__ import annotations

import io
import json
import threading

import pytest
from kafka.errors import ClusterAuthorizationFailedError
from kafka.protocol.metadata import ApiVersionsResponse

from agents.common import logs
from agents.common.informer import fingerprint
from agents.common.kafka_mode import KRAFT, ZOOKEEPER, mode_of, mode_of_answer
from agents.common.metrics import Metrics
from agents.common.settings import Settings, base_parser
from agents.common.status import paused, status_of
from agents.common.workqueue import WorkQueue


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_burst_collapses_into_one():
    q = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get_batch(10, timeout=0) == ["a", "b"]
    assert q.get_batch(10, timeout=0) == []


def test_key_never_handed_out_twice_at_once():
    q = WorkQueue()
    q.add("a")
    assert q.get_batch(1, timeout=0) == ["a"]
    q.add("a")  # changed while being reconciled
    q.add("a")
    assert q.get_batch(1, timeout=0) == []  # still processing: not handed out
    q.done("a")
    assert q.get_batch(1, timeout=0) == ["a"]  # once more, once
    q.done("a")
    assert q.get_batch(1, timeout=0) == []
    assert q.idle()


def test_batches_are_bounded_and_ordered():
    q = WorkQueue()
    q.add_many(str(i) for i in range(10))
    assert q.get_batch(4, timeout=0) == ["0", "1", "2", "3"]
    assert q.get_batch(100, timeout=0) == [str(i) for i in range(4, 10)]


def test_add_after_and_rate_limit():
    clock = FakeClock()
    q = WorkQueue(base_delay=1.0, max_delay=4.0, clock=clock)
    assert q.add_rate_limited("a") == 1.0
    assert q.add_rate_limited("a") == 2.0
    assert q.add_rate_limited("a") == 4.0
    assert q.add_rate_limited("a") == 4.0  # capped
    assert q.get_batch(1, timeout=0) == []
    clock.t = 1.5
    assert q.get_batch(5, timeout=0) == ["a"]  # three delayed copies of one key: one item
    q.done("a")
    clock.t = 10
    assert q.get_batch(5, timeout=0) == ["a"]
    q.done("a")
    assert q.get_batch(5, timeout=0) == []
    q.forget("a")
    assert q.backoff("a") == 1.0


def test_get_waits_for_a_key_and_shutdown_releases():
    q = WorkQueue()
    got = []
    t = threading.Thread(target=lambda: got.append(q.get_batch(5, timeout=5)))
    t.start()
    q.add("x")
    t.join(5)
    assert got == [["x"]]
    t = threading.Thread(target=lambda: got.append(q.get_batch(5)))
    t.start()
    q.shut_down()
    t.join(5)
    assert got[-1] == []
    q.add("y")
    assert len(q) == 0


def _cm(**kw):
    obj = {
        "metadata": {
            "name": "t",
            "uid": "u1",
            "resourceVersion": "1",
            "labels": {"kairn.dev/type": "topic"},
            "annotations": {},
        },
        "data": {"spec": "partitions: 1"},
    }
    obj["metadata"].update(kw)
    return obj


def test_fingerprint_ignores_what_agents_write():
    a = _cm()
    b = _cm(
        resourceVersion="2",
        labels={"kairn.dev/type": "topic", "kairn.dev/state": "Ready"},
        annotations={"kairn.dev/status": "{}"},
        finalizers=["kairn.dev/topic"],
    )
    assert fingerprint(a) == fingerprint(b)
    c = _cm(annotations={"kairn.dev/managed": "false"})
    assert fingerprint(a) != fingerprint(c)
    d = _cm(deletionTimestamp="2026-01-01T00:00:00Z")
    assert fingerprint(a) != fingerprint(d)
    e = _cm()
    e["data"] = {"spec": "partitions: 2"}
    assert fingerprint(a) != fingerprint(e)
    assert fingerprint(None) is None


def test_status_and_pause_readers():
    assert status_of(_cm()) == {}
    assert status_of(_cm(annotations={"kairn.dev/status": "not json"})) == {}
    assert status_of(_cm(annotations={"kairn.dev/status": '{"state": "Ready"}'})) == {
        "state": "Ready"
    }
    assert paused(_cm(annotations={"kairn.dev/managed": "false"}))
    assert paused(_cm(labels={"kairn.dev/managed": "False"}))
    assert not paused(_cm(labels={"kairn.dev/managed": "true"}))


def test_json_logs_redact_secrets():
    buf = io.StringIO()
    log = logs.setup_logging("kairn-test", "DEBUG", stream=buf)
    log.info("hello", password="hunter2", user="alice", nested={"token": "t"}, key="k")
    rec = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert rec["msg"] == "hello" and rec["level"] == "info"
    assert rec["password"] == "***" and rec["nested"]["token"] == "***"
    assert rec["user"] == "alice" and rec["key"] == "k"


def test_settings_from_env_and_flags(monkeypatch):
    monkeypatch.setenv("KAIRN_CLUSTER", "kairn")
    monkeypatch.setenv("KAIRN_NAMESPACE", "kafka")
    monkeypatch.setenv("KAIRN_BOOTSTRAP", "b:9093")
    monkeypatch.setenv("KAIRN_TLS_CHECK_HOSTNAME", "false")
    monkeypatch.setenv("KAIRN_RESYNC_SECONDS", "30")
    s = Settings.from_args(base_parser("x", "y").parse_args(["--http-port", "0"]))
    assert (s.cluster, s.namespace, s.bootstrap) == ("kairn", "kafka", "b:9093")
    assert s.tls_check_hostname is False and s.resync_seconds == 30 and s.http_port == 0


def test_settings_name_what_is_missing(monkeypatch):
    for v in ("KAIRN_CLUSTER", "KAIRN_NAMESPACE", "KAIRN_BOOTSTRAP"):
        monkeypatch.delenv(v, raising=False)
    with pytest.raises(ValueError, match="KAIRN_BOOTSTRAP"):
        Settings.from_args(base_parser("x", "y").parse_args(["--cluster", "c", "--namespace", "n"]))


def test_metrics_names():
    m = Metrics("topic")
    m.reconciled("ready")
    m.kafka_request("create_topics", True)
    text = m.render().decode()
    for name in (
        "kairn_reconciliations_total",
        "kairn_reconcile_duration_seconds",
        "kairn_resources",
        "kairn_kafka_requests_total",
        "kairn_watch_restarts_total",
        "kairn_queue_depth",
        "kairn_last_full_sync_timestamp_seconds",
    ):
        assert name in text


# ---- keys and the shared spec parts --------------------------------------------------------
def test_keys_are_names_or_namespace_slash_name():
    from agents.common.keys import join_key, name_of, split_key

    assert split_key("alice", "kafka") == ("kafka", "alice")
    assert split_key("team-a/alice", "kafka") == ("team-a", "alice")
    assert name_of("team-a/alice") == name_of("alice") == "alice"
    assert join_key("kafka", "alice", home="kafka") == "alice"
    assert join_key("team-a", "alice", home="kafka") == "team-a/alice"
    assert split_key(join_key("team-a", "alice", "kafka"), "kafka") == ("team-a", "alice")


def test_read_document_says_why_a_spec_is_not_a_mapping_of_known_fields():
    from agents.common.spec_base import SpecError, read_document

    fields = ("a", "b")
    assert read_document("a: 1", "thing", fields) == {"a": 1}
    assert read_document("", "thing", fields) == {}
    missing = read_document(None, "thing", fields)
    assert missing == SpecError(
        "InvalidSpec", "data.spec is missing: put the thing spec (YAML) there"
    )
    assert read_document("a: [", "thing", fields).reason == "InvalidYAML"
    assert read_document("- 1", "thing", fields).message.endswith("got a list")
    unknown = read_document("c: 1\na: 2", "thing", fields)
    assert unknown == SpecError("UnknownField", "unknown field(s) in spec: c; allowed: a, b")
    # a safe loader: no Python objects
    assert read_document("a: !!python/object/apply:os.getcwd []", "thing", fields).reason == (
        "InvalidYAML"
    )


def test_spec_reader_parses_each_text_and_name_once():
    from agents.common.spec_base import spec_reader

    calls = []

    def parse(text, name):
        calls.append((text, name))
        return (text, name)

    spec_of = spec_reader(parse)
    obj = {"metadata": {"name": "n"}, "data": {"spec": "x: 1"}}
    assert spec_of(obj) == spec_of(obj) == ("x: 1", "n")
    assert spec_of({"metadata": {"name": "n"}}) == (None, "n")
    assert calls == [("x: 1", "n"), (None, "n")]


def api_versions(features=(), epoch=0, error_code=0) -> ApiVersionsResponse:
    F = ApiVersionsResponse.FinalizedFeatureKey
    return ApiVersionsResponse(
        error_code=error_code,
        api_keys=[],
        throttle_time_ms=0,
        supported_features=[],
        finalized_features_epoch=epoch,
        finalized_features=[F(name=n, max_version_level=1, min_version_level=1) for n in features],
        zk_migration_ready=False,
    )


def test_the_metadata_mode_is_read_from_the_finalized_features():
    """As the brokers answer: Kafka 3.9 in ZooKeeper mode finalizes no feature; Kafka 4.4 in
    KRaft mode finalizes metadata.version (33) among others."""
    assert mode_of([]) == ZOOKEEPER
    assert mode_of(["group.version", "metadata.version"]) == KRAFT
    assert mode_of_answer(api_versions()) == ZOOKEEPER
    assert mode_of_answer(api_versions(["kraft.version", "metadata.version"], 37)) == KRAFT
    # an epoch of -1: the broker does not know the features, which only ZooKeeper mode does
    assert mode_of_answer(api_versions(["metadata.version"], -1)) == ZOOKEEPER
    with pytest.raises(ClusterAuthorizationFailedError):
        mode_of_answer(api_versions(error_code=ClusterAuthorizationFailedError.errno))
