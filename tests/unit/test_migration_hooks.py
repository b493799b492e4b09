"""agents/migration/hooks.py driven by an in-memory cluster whose brokers, controllers and
znodes change the way Kafka's do in each phase (the parts the hooks read: pod revisions, the
controllers' gauges, /controller and /migration)."""

from __future__ import annotations

import contextlib
import json

import pytest

from agents.migration import hooks as hk
from agents.migration import signals as sg
from agents.migration.phases import (
    BROKER_KRAFT,
    BROKER_ZK,
    BROKER_ZK_MIGRATING,
    KRAFT,
    KRAFT_BROKERS,
    MIGRATION,
    ZOOKEEPER,
)
from agents.pki import kraft as pki_kraft
from agents.roller.model import (
    CONTROLLER,
    KAFKA,
    Features,
    KafkaView,
    Partition,
    PodInfo,
    QuorumView,
    Voter,
    ZkNode,
)
from agents.roller.model import ZOOKEEPER as ZK
from agents.roller.run import Settings

MODE_OF_REV = {"z": BROKER_ZK, "m": BROKER_ZK_MIGRATING, "b": BROKER_KRAFT, "k": BROKER_KRAFT}
ZK_ID = "AbCdEfGhIjKlMnOpQrStUv"
KRAFT_CLAIM = b'{"version":2,"brokerid":100,"timestamp":"1","kraftControllerEpoch":4}'


def pod(comp, i, rev):
    return PodInfo(f"kairn-{comp}-{i}", i, f"{comp}-{i}-{rev}", rev, True, True)


class World:
    """Three brokers, three ZooKeeper nodes, three controllers (when deployed)."""

    def __init__(self, label, broker_rev, kafka_rev, controllers=True, zk_state=None):
        self.label = label
        self.deployed_ = {KAFKA: True, ZK: True, CONTROLLER: controllers}
        self.rev = {KAFKA: kafka_rev, ZK: "zk1", CONTROLLER: "c1"}
        self.pods_ = {
            KAFKA: [pod(KAFKA, i, broker_rev) for i in range(3)],
            ZK: [pod(ZK, i, "zk1") for i in range(3)],
            CONTROLLER: [pod(CONTROLLER, i, "c1") for i in range(3)] if controllers else [],
        }
        self.zk_state = zk_state
        self.znodes = {
            "/cluster/id": json.dumps({"version": "1", "id": ZK_ID}).encode(),
            "/controller_epoch": b"5",  # above KRAFT_CLAIM's kraftControllerEpoch
        }
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.events: list[tuple[str, str, bool]] = []
        self.deleted: list[str] = []
        self.claims = ["data-kairn-controller-0", "data-kairn-controller-1"]
        self.leftovers: list[str] = []
        self.selectors: list[str] = []
        self.freeze_zk_state = False
        self.order: list[str] = []  # deletions of znodes and pods, in order
        # Kafka 3.9.2: a migrating broker takes a freed /controller at once (ops.html: none
        # until a broker restarts without the flag); brokers learn it after `lag` reads
        self.elect_on_delete = False
        self.lag = 0
        # a broker leading with a partition epoch ahead of ZooKeeper's until it restarts
        self.stale_leader: int | None = None

    # ---- derived Kafka state ---------------------------------------------------------------
    def modes(self):
        return [MODE_OF_REV[p.revision[0]] for p in self.pods_[KAFKA]]

    def migrating(self):
        return sum(m == BROKER_ZK_MIGRATING for m in self.modes())

    def _settle(self):
        if self.freeze_zk_state or not self.deployed_[CONTROLLER]:
            return
        if self.zk_state == 2 and self.migrating() == 3:
            self.zk_state = 1  # the migration driver copied ZooKeeper's metadata
            self.znodes["/migration"] = b'{"version":0,"kraft_controller_id":100}'
            self.znodes["/controller"] = KRAFT_CLAIM
        revs = {p.revision for p in self.pods_[CONTROLLER]}
        if self.zk_state == 1 and revs == {"c2"}:
            self.zk_state = 3

    # ---- Platform --------------------------------------------------------------------------
    def deployed(self, c):
        return self.deployed_[c]

    def labels(self, c):
        return {sg.PHASE_LABEL: self.label} if self.label else {}

    def pods(self, c):
        return list(self.pods_[c])

    def update_revision(self, c):
        return self.rev[c]

    def replicas(self, c):
        return 3

    def delete_pod(self, c, p):
        self.deleted.append(p.name)
        self.order.append(p.name)
        self.pods_[c][p.ordinal] = pod(c, p.ordinal, self.rev[c])
        if (
            c == KAFKA
            and MODE_OF_REV[self.rev[c][0]] == BROKER_ZK
            and "/controller" not in (self.znodes)
        ):
            self.znodes["/controller"] = b'{"version":2,"brokerid":%d}' % p.ordinal
        self._settle()

    def event(self, c, reason, message, warning=False):
        self.events.append((reason, message, warning))

    def cert_renewed(self, c, pods):
        return set()

    def config_only(self, c, a, b):
        return False

    def desired_broker_config(self, b):
        return None

    def leftover_pods(self, c):
        left, self.leftovers = self.leftovers, []  # gone after the first look
        return left

    def delete_claims(self, c, replicas):
        assert replicas == 3
        out, self.claims = self.claims, []
        self.order.append("claims")
        return out

    def delete_objects(self, objects):
        self.selectors.append(objects)
        self.deployed_[ZK] = False
        return [f"{k}/{n}" for k, n in objects]

    def secret_data(self, name):
        return self.secrets.get(name)

    def create_secret(self, name, data, labels):
        if name in self.secrets:
            return False
        self.secrets[name] = dict(data)
        return True

    # ---- Kafka -----------------------------------------------------------------------------
    def view(self, with_partitions=True):
        parts = (Partition("t", 0, 0, (0, 1, 2), (0, 1, 2)),)
        stale = self.stale_leader
        if stale is not None and self.pods_[KAFKA][stale].revision != self.rev[KAFKA]:
            kept_out = {p.ordinal for p in self.pods_[KAFKA] if p.revision == self.rev[KAFKA]}
            isr = tuple(b for b in (0, 1, 2) if b not in kept_out)
            parts = (Partition("t", 0, stale, (0, 1, 2), isr),)
        ctl = 100 if self.deployed_[CONTROLLER] else 0
        return KafkaView(ctl, frozenset({0, 1, 2}), parts if with_partitions else (), {"t": 2})

    def broker_config(self, b):
        return {}

    def features(self):
        return Features(21)

    def quorum(self):
        voters = tuple(Voter(100 + i, 10, 1000, 1000) for i in range(3))
        return QuorumView(100, 1, 10, voters)

    # ---- ZooKeeper -------------------------------------------------------------------------
    def status(self):
        return [
            ZkNode(i, "leader" if i == 1 else "follower", 2 if i == 1 else None) for i in (0, 1, 2)
        ]

    def read(self, path):
        return self.znodes.get(path)

    def read_many(self, *paths):
        return {p: self.znodes.get(p) for p in paths}

    def delete(self, path):
        self.order.append(path)
        existed = self.znodes.pop(path, None) is not None
        if path == "/controller" and self.elect_on_delete:
            self.znodes["/controller"] = b'{"version":2,"brokerid":1}'
        return existed

    def write(self, path, data):
        self.order.append(f"write {path}")
        self.znodes[path] = data

    def controllers_named(self):
        ctl = sg.parse_controller(self.znodes.get("/controller"))
        if not ctl.names_broker or self.lag > 0:
            self.lag -= 1
            return {b: {0, 1, 2} for b in range(3)}  # a random live broker each time
        return {b: {ctl.broker_id} for b in range(3)}

    # ---- controllers' /metrics -------------------------------------------------------------
    def metrics_read(self):
        m = self.migrating() if self.zk_state in (1, 2) else 0
        return [sg.ControllerReading(i, 100, i == 0, self.zk_state, m) for i in range(3)]


class Metrics:
    def __init__(self, w):
        self.w = w

    def read(self):
        return self.w.metrics_read()


def make(w, requested, metrics=True, ibp="3.9", version="3.9.2", timeout=30, mv=None):
    logs = []
    clock = [0.0]
    cfg = hk.Config(
        requested=requested,
        release="kairn",
        controller_replicas=3,
        kraft_secret="kairn-kraft-cluster",
        fullname="kairn",
        zookeeper_statefulset="kairn-zookeeper",
        kafka_version=version,
        ibp=ibp,
        metrics=("c0:9404", "c1:9404", "c2:9404") if metrics else (),
    )
    h = hk.Hooks(
        cfg,
        w,
        w,
        w,
        w,
        Metrics(w) if metrics else None,
        Settings(pod_timeout=timeout, poll=1.0, metadata_version=mv),
        lambda *a, **k: logs.append((a[0] if a else "", k)),
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        clock=lambda: clock[0],
    )
    h._ibp = lambda broker: "3.9-IV0"
    return h, logs


def waited(logs):
    return [(k["waited_for"], k["seconds"]) for m, k in logs if m == "waited"]


# ---- preflight ------------------------------------------------------------------------------
def test_zookeeper_to_migration_passes_and_creates_the_kraft_cluster_secret():
    w = World(ZOOKEEPER, "z1", "z1", controllers=False)
    h, _ = make(w, MIGRATION)
    assert h.preflight() == []
    s = w.secrets["kairn-kraft-cluster"]
    assert s == pki_kraft.cluster_data(3, ZK_ID)
    assert h.preflight() == [] and len(w.secrets) == 1  # a retry keeps it
    w.secrets["kairn-kraft-cluster"] = {"cluster.id": b"another"}
    (refusal,) = h.preflight()
    assert "Secret kairn-kraft-cluster" in refusal and "another" in refusal


def test_refusals_are_printed_with_an_event_and_exit_1(capsys):
    w = World(KRAFT_BROKERS, "b1", "b1", zk_state=1)
    h, _ = make(w, ZOOKEEPER)
    assert hk.run("preflight", h) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "kairn-roller: preflight: kafka.metadata.mode=zookeeper from phase kraft-brokers: roll "
        "back one phase at a time: helm upgrade --set kafka.metadata.mode=migration first, then "
        "zookeeper"
    ]
    assert [(r, warn) for r, _, warn in w.events] == [("MigrationRefused", True)]


def test_migration_to_kraft_brokers_refused_until_migrated():
    w = World(MIGRATION, "m1", "m1", zk_state=2)
    counted = w.metrics_read
    # every broker on the migration revision but the controllers counting two of them
    w.metrics_read = lambda: [r.__class__(r.ordinal, 100, r.active, 2, 2) for r in counted()]
    h, _ = make(w, KRAFT_BROKERS)
    out = h.preflight()
    assert any("ZkMigrationState PRE_MIGRATION (2), not MIGRATION (1)" in r for r in out)
    assert any("broker 0 is in ZooKeeper mode (migrating)" in r for r in out)
    w.metrics_read = counted
    w.zk_state = 1
    assert h.preflight() == []


def test_a_broker_on_an_older_revision_blocks_the_next_step():
    w = World(MIGRATION, "m1", "m1", zk_state=1)
    w.pods_[KAFKA][2] = pod(KAFKA, 2, "z0")
    h, _ = make(w, KRAFT_BROKERS)
    out = h.preflight()
    assert any("broker 2 is in an unknown mode" in r for r in out)


def test_a_broker_count_change_is_refused_with_a_phase_change():
    w = World(ZOOKEEPER, "z1", "z1", controllers=False)
    h, _ = make(w, MIGRATION)
    h.cfg = hk.Config(**{**h.cfg.__dict__, "kafka_replicas": 4})
    (refusal,) = h.preflight()
    assert "kafka.replicas would change from 3 to 4" in refusal
    assert w.secrets == {}  # refused before the Secret is written


def test_migration_phases_need_the_controllers_metrics():
    w = World(ZOOKEEPER, "z1", "z1", controllers=False)
    h, _ = make(w, MIGRATION, metrics=False)
    (refusal,) = h.preflight()
    assert "metrics.jmx.enabled=true" in refusal


def test_kafka_4_and_a_metadata_version_change_refused_during_the_migration():
    w = World(KRAFT_BROKERS, "b1", "b1", zk_state=1)
    w.znodes["/controller"] = KRAFT_CLAIM
    h, _ = make(w, KRAFT, version="4.4.0", mv=27)
    out = h.preflight()
    assert any("finalize on Kafka 3.9 first" in r for r in out)
    assert any("metadata.version would change to 27" in r for r in out)
    h, _ = make(w, KRAFT)
    assert h.preflight() == []


def test_steady_releases_keep_todays_preflight():
    w = World(ZOOKEEPER, "z1", "z1", controllers=False)
    assert make(w, ZOOKEEPER)[0].preflight() is None
    k = World(KRAFT, "k1", "k1", zk_state=3)
    k.deployed_[ZK] = False
    assert make(k, KRAFT)[0].preflight() is None
    assert hk.run("roll", make(k, KRAFT)[0]) is None


def test_an_interrupted_rollback_reruns_without_a_broker_controller():
    w = World(ZOOKEEPER, "z1", "z1", controllers=False)
    w.znodes["/migration"] = b"{}"  # /controller deleted, no broker restarted yet
    w.view = lambda with_partitions=True: KafkaView(-1, frozenset({0, 1, 2}))
    h, _ = make(w, ZOOKEEPER)
    assert h.preflight() == []


# ---- roll -----------------------------------------------------------------------------------
def test_roll_into_migration_waits_for_the_migration_then_reports_the_phase():
    w = World(MIGRATION, "z1", "m1", zk_state=2)
    h, logs = make(w, MIGRATION)
    assert hk.run("roll", h) == 0
    assert w.deleted == ["kairn-kafka-0", "kairn-kafka-1", "kairn-kafka-2"]
    assert w.zk_state == 1
    whats = [what for what, _ in waited(logs)]
    assert whats[0] == "the controller pods to be Ready"
    assert whats[-1].startswith("the metadata migrated")
    assert w.events[-1][0] == "MigrationPhase"
    # a rerun of the same upgrade restarts nothing and passes
    h, _ = make(w, MIGRATION)
    assert hk.run("roll", h) == 0 and len(w.deleted) == 3


def test_roll_into_migration_times_out_naming_the_wait(capsys):
    w = World(MIGRATION, "z1", "m1", zk_state=2)
    w.freeze_zk_state = True  # the controllers never finish the copy
    h, logs = make(w, MIGRATION, timeout=10)
    assert hk.run("roll", h) == 1
    err = capsys.readouterr().err
    assert "timed out after 10s waiting for the metadata migrated" in err
    assert "ZkMigrationState is PRE_MIGRATION (2), not MIGRATION (1)" in err
    assert w.events[-1][0] == "MigrationFailed" and w.events[-1][2]
    assert any(m == "wait timed out" for m, _ in logs)


def test_roll_into_kraft_brokers_then_finalize():
    w = World(KRAFT_BROKERS, "m1", "b1", zk_state=1)
    w.znodes["/controller"] = KRAFT_CLAIM
    h, logs = make(w, KRAFT_BROKERS)
    assert hk.run("roll", h) == 0
    assert w.migrating() == 0 and w.zk_state == 1
    assert "MigratingZkBrokerCount 0" in waited(logs)[-1][0]
    # finalize: Helm rendered the controllers without the flag (revision c2)
    w.label, w.rev[CONTROLLER] = KRAFT, "c2"
    h, logs = make(w, KRAFT)
    assert hk.run("roll", h) == 0
    assert w.zk_state == 3
    # followers first, the quorum leader (100) last
    assert [d for d in w.deleted if "controller" in d] == [
        "kairn-controller-1",
        "kairn-controller-2",
        "kairn-controller-0",
    ]
    assert w.selectors == [
        [
            ("StatefulSet", "kairn-zookeeper"),
            ("Service", "kairn-zookeeper-nodes"),
            ("Service", "kairn-zookeeper-client"),
            ("ConfigMap", "kairn-zookeeper-config"),
            ("PodDisruptionBudget", "kairn-zookeeper"),
        ]
    ]
    assert [what for what, _ in waited(logs)][-1].startswith("ZkMigrationState POST_MIGRATION")
    # the ZooKeeper objects are gone: a rerun is today's KRaft roll
    assert hk.run("roll", make(w, KRAFT)[0]) is None


def test_finalize_refuses_to_start_while_a_broker_is_a_zookeeper_broker(capsys):
    w = World(KRAFT, "b1", "k1", zk_state=1)
    w.pods_[KAFKA][1] = pod(KAFKA, 1, "m1")
    w.freeze_zk_state = True
    h, _ = make(w, KRAFT, timeout=5)
    assert hk.run("roll", h) == 1
    err = capsys.readouterr().err
    assert "waiting for before finalizing" in err and "MigratingZkBrokerCount is 1, not 0" in err
    assert not [d for d in w.deleted if "controller" in d]
    assert w.selectors == []


def test_rollback_to_zookeeper_cleans_zookeeper_and_rolls_the_brokers():
    w = World(ZOOKEEPER, "m1", "z2", controllers=False, zk_state=None)
    w.znodes.update({"/migration": b'{"kraft_controller_id":100}', "/controller": KRAFT_CLAIM})
    w.leftovers = ["kairn-controller-0"]
    h, logs = make(w, ZOOKEEPER)
    assert hk.run("roll", h) == 0
    assert w.claims == []
    assert w.order[:2] == ["claims", "/controller"]
    assert w.order[-1] == "/migration"  # last: a rerun before this line finds the revert pending
    assert sg.parse_controller(w.znodes["/controller"]).names_broker
    whats = [what for what, _ in waited(logs)]
    assert whats[1] == "the controller pods to be gone"
    assert whats[-1] == "/controller to name a broker (a ZooKeeper controller again)"
    # done: the next roll is today's
    assert hk.run("roll", make(w, ZOOKEEPER)[0]) is None


ELECTED = "a broker elected ZooKeeper controller, named by every broker"


def test_rollback_rolls_the_brokers_once_every_broker_follows_the_elected_controller():
    w = World(ZOOKEEPER, "m1", "z2", controllers=False, zk_state=None)
    w.znodes.update({"/migration": b'{"kraft_controller_id":100}', "/controller": KRAFT_CLAIM})
    w.elect_on_delete, w.lag = True, 2
    h, logs = make(w, ZOOKEEPER)
    assert hk.run("roll", h) == 0
    assert w.order[:2] == ["claims", "/controller"] and w.order[2].startswith("kairn-kafka-")
    assert (ELECTED, 2.0) in waited(logs)  # two polls saw a broker still naming random ones
    assert not [k for m, k in logs if k.get("level") == "warning"]
    assert w.znodes["/controller"] == b'{"version":2,"brokerid":1}'


def test_rollback_raises_the_controller_epoch_above_the_kraft_controllers_first():
    w = World(ZOOKEEPER, "m1", "z2", controllers=False, zk_state=None)
    w.znodes.update(
        {
            "/migration": b'{"version":0,"kraft_controller_id":101,"kraft_controller_epoch":7}',
            "/controller": KRAFT_CLAIM,  # kraftControllerEpoch 4
            "/controller_epoch": b"4",
        }
    )
    h, logs = make(w, ZOOKEEPER)
    assert hk.run("roll", h) == 0
    assert w.order[:3] == ["claims", "write /controller_epoch", "/controller"]
    assert w.znodes["/controller_epoch"] == b"7"
    raised = [k for m, k in logs if m.startswith("/controller_epoch raised")]
    assert raised == [{"step": "revert", "was": "4", "epoch": 7}]


def test_rollback_without_an_election_rolls_as_ops_html_does(capsys):
    w = World(ZOOKEEPER, "m1", "z2", controllers=False, zk_state=None)
    w.znodes.update({"/migration": b'{"kraft_controller_id":100}', "/controller": KRAFT_CLAIM})
    h, logs = make(w, ZOOKEEPER, timeout=300)
    assert hk.run("roll", h) == 0
    warned = [k for m, k in logs if k.get("level") == "warning"]
    assert warned and "timed out after 60s waiting for " + ELECTED in warned[0]["reason"]
    assert "/controller does not exist yet" in warned[0]["reason"]
    assert sorted(w.deleted) == [f"kairn-kafka-{i}" for i in range(3)]
    assert "/migration" not in w.znodes


def test_rollback_restarts_a_leader_that_keeps_rolled_back_brokers_out_of_its_isr():
    w = World(ZOOKEEPER, "m1", "z2", controllers=False, zk_state=None)
    w.znodes.update({"/migration": b'{"kraft_controller_id":100}', "/controller": KRAFT_CLAIM})
    w.elect_on_delete, w.stale_leader = True, 0  # the ZooKeeper controller, so rolled last
    h, logs = make(w, ZOOKEEPER, timeout=300)
    assert hk.run("roll", h) == 0
    # broker 1 first, never back in sync under the stale leader 0: 0 out of turn, then 2
    assert w.deleted == ["kairn-kafka-1", "kairn-kafka-0", "kairn-kafka-2"]
    warned = [k for m, k in logs if k.get("level") == "warning"]
    assert [k["pod"] for k in warned] == ["kairn-kafka-0"]
    assert "timed out after 120s" in warned[0]["stalled"]
    assert any(e[0] == "Restarting" and "out of turn" in e[1] for e in w.events)
    assert "/migration" not in w.znodes


def test_rollback_stuck_without_a_stale_leader_fails_naming_the_pod():
    class Stuck(World):
        def view(self, with_partitions=True):  # broker 1 never back in sync, leader rolled
            v = super().view(with_partitions)
            p = Partition("t", 0, 0, (0, 1, 2), (0, 2))
            return KafkaView(v.controller, v.brokers, (p,) if with_partitions else (), {"t": 2})

    w = Stuck(ZOOKEEPER, "m1", "z2", controllers=False, zk_state=None)
    w.znodes.update({"/migration": b'{"kraft_controller_id":100}', "/controller": KRAFT_CLAIM})
    w.elect_on_delete = True
    h, _ = make(w, ZOOKEEPER, timeout=300)
    assert hk.run("roll", h) == 1
    assert "/migration" in w.znodes  # the revert stays pending for a rerun
    assert w.events[-1][0] == "MigrationFailed" and "kairn-kafka-" in w.events[-1][1]


def test_rollback_rerun_after_a_kill_before_the_last_line_converges():
    w = World(ZOOKEEPER, "z2", "z2", controllers=False)
    w.znodes.update({"/migration": b"{}", "/controller": b'{"version":2,"brokerid":2}'})
    h, _ = make(w, ZOOKEEPER)
    assert hk.run("roll", h) == 0
    assert w.deleted == [] and "/migration" not in w.znodes
    assert w.znodes["/controller"] == b'{"version":2,"brokerid":2}'  # a broker's: kept


@pytest.mark.parametrize("requested", [MIGRATION, KRAFT_BROKERS])
def test_dual_phase_roll_without_metrics_fails_clearly(requested, capsys):
    w = World(requested, "m1", "m1", zk_state=1)
    h, _ = make(w, requested, metrics=False, timeout=3)
    assert hk.run("roll", h) == 1
    assert "KAIRN_CONTROLLER_METRICS is empty" in capsys.readouterr().err


# ---- the command line -----------------------------------------------------------------------
def test_cli_dispatches_migration_phases_and_keeps_todays_hooks_otherwise(
    tmp_path, capsys, monkeypatch
):
    from agents.migration import observe
    from agents.roller import cli

    for f in ("ca", "crt", "key"):
        (tmp_path / f).write_text("x")
    w = World(MIGRATION, "z1", "m1", zk_state=2)

    class FakeKafka:
        def __init__(self, bootstrap, tls, *a, **k):
            self.tls = tls

        def kraft(self):
            return False

        def close(self):
            pass

        def __getattr__(self, name):
            return getattr(w, name)

    monkeypatch.setattr(cli, "Kafka", FakeKafka)
    monkeypatch.setattr(observe, "Znodes", lambda nodes, tls: w)
    monkeypatch.setattr(observe, "ControllerMetrics", lambda addresses: Metrics(w))
    monkeypatch.setattr(observe, "broker_setting", lambda kafka, broker, key: "3.9-IV0")
    monkeypatch.setattr(cli, "ZooKeeper", lambda nodes, tls: w)
    for k in ("KAIRN_METADATA_MODE", "KAIRN_CONTROLLER_METRICS", "KAIRN_IBP"):
        monkeypatch.delenv(k, raising=False)
    argv = ["--bootstrap", "b:9093", "--tls-ca-file", str(tmp_path / "ca"),
            "--tls-cert-file", str(tmp_path / "crt"), "--tls-key-file", str(tmp_path / "key"),
            "--zookeeper-nodes", "z0:2181,z1:2181,z2:2181", "--fullname", "kairn",
            "--controller-metrics", "c0:9404,c1:9404,c2:9404"]  # fmt: skip
    # without KAIRN_METADATA_MODE: today's roller, which refuses the mix as before
    assert cli.main([*argv, "roll"], platform=w, sleep=lambda s: None) == 1
    assert "brokers run in zookeeper mode but the release has a controller" in (
        capsys.readouterr().err
    )
    assert cli.main([*argv, "--metadata-mode", "dual", "roll"], platform=w) == 2
    assert "is not a metadata mode" in capsys.readouterr().err
    monkeypatch.setenv("KAIRN_METADATA_MODE", MIGRATION)
    assert cli.main([*argv, "roll"], platform=w, sleep=lambda s: None) == 0
    assert w.zk_state == 1 and len(w.deleted) == 3
    assert cli.main([*argv, "--metadata-mode", KRAFT_BROKERS, "preflight"], platform=w) == 0


# ---- a SIGKILL at any step, then the same upgrade again -------------------------------------
class Killed(BaseException):  # not an Exception: nothing in the hooks may catch it
    pass


class Mortal(World):
    """Dies (Killed) before its ``budget``-th change: a pod, a znode, claims, objects deleted."""

    budget = 10**9

    def _spend(self):
        if self.budget <= 0:
            raise Killed
        self.budget -= 1

    def delete_pod(self, c, p):
        self._spend()
        super().delete_pod(c, p)

    def delete(self, path):
        self._spend()
        return super().delete(path)

    def delete_claims(self, c, replicas):
        self._spend()
        return super().delete_claims(c, replicas)

    def delete_objects(self, objects):
        self._spend()
        return super().delete_objects(objects)


def _kill_then_rerun(build, requested, budget):
    w = build()
    w.budget = budget
    with contextlib.suppress(Killed):
        hk.run("roll", make(w, requested)[0])
    w.budget = 10**9
    assert hk.run("roll", make(w, requested)[0]) in (0, None)
    return w


@pytest.mark.parametrize("budget", range(7))
def test_rollback_converges_after_a_kill_at_any_step(budget):
    def build():
        w = Mortal(ZOOKEEPER, "m1", "z2", controllers=False)
        w.znodes.update({"/migration": b'{"kraft_controller_id":100}', "/controller": KRAFT_CLAIM})
        return w

    w = _kill_then_rerun(build, ZOOKEEPER, budget)
    assert "/migration" not in w.znodes and w.claims == []
    assert sg.parse_controller(w.znodes["/controller"]).names_broker
    assert {p.revision for p in w.pods_[KAFKA]} == {"z2"}
    assert sorted(w.deleted) == [f"kairn-kafka-{i}" for i in range(3)]  # each broker once


@pytest.mark.parametrize("budget", range(4))
def test_migration_converges_after_a_kill_at_any_step(budget):
    w = _kill_then_rerun(lambda: Mortal(MIGRATION, "z1", "m1", zk_state=2), MIGRATION, budget)
    assert w.zk_state == 1 and w.events[-1][0] == "MigrationPhase"
    assert sorted(w.deleted) == [f"kairn-kafka-{i}" for i in range(3)]


@pytest.mark.parametrize("budget", range(5))
def test_finalize_converges_after_a_kill_at_any_step(budget):
    def build():
        w = Mortal(KRAFT, "b1", "b1", zk_state=1)
        w.rev[CONTROLLER] = "c2"
        return w

    w = _kill_then_rerun(build, KRAFT, budget)
    assert w.zk_state == 3 and not w.deployed_[ZK]
    assert {p.revision for p in w.pods_[CONTROLLER]} == {"c2"}
    assert len(w.selectors) == 1  # the kept ZooKeeper objects deleted once
