"""kairn-roller in KRaft mode: the pure rules (mode, controller order, quorum checks,
metadata.version) and the roll loop driven by in-memory stand-ins."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.roller import cli, quorum
from agents.roller import metadata_version as mv
from agents.roller.kraft_roll import KRaftRoller
from agents.roller.model import (
    CONTROLLER,
    KAFKA,
    KRAFT,
    ZOOKEEPER_MODE,
    Features,
    KafkaView,
    Partition,
    PodInfo,
    QuorumView,
    Restart,
    Voter,
)
from agents.roller.plan import kafka_problems
from agents.roller.run import RollError, Settings

NOW = 1_000_000


def voter(node, leo=100, ago=100):
    return Voter(node, leo, NOW - ago, NOW - ago)


def quorum_of(leader=102, hw=100, **ago):
    """Voters 100-102, each caught up ``ago[f"v{id}"]`` ms before the leader's now."""
    voters = tuple(
        voter(n, hw, ago.get(f"v{n}", 0 if n == leader else 100)) for n in range(100, 103)
    )
    return QuorumView(leader, 3, hw, voters)


def pod(i, rev="r2", ready=True, running=True, kind="controller"):
    return PodInfo(f"kairn-{kind}-{i}", i, f"uid-{i}", rev, ready, running)


# ---- mode -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("deployed", "kafka", "mode", "problem"),
    [
        (True, True, KRAFT, False),
        (False, False, ZOOKEEPER_MODE, False),
        (True, None, KRAFT, False),  # Kafka not reachable: the platform's answer
        (False, None, ZOOKEEPER_MODE, False),
        (True, False, ZOOKEEPER_MODE, True),  # they disagree: refused, the brokers' word
        (False, True, KRAFT, True),
    ],
)
def test_metadata_mode_from_what_the_cluster_shows(deployed, kafka, mode, problem):
    got, problems = quorum.metadata_mode(deployed, kafka)
    assert got == mode and bool(problems) == problem
    if problem:
        assert "mode" in problems[0] and "controller StatefulSet" in problems[0]


# ---- order ------------------------------------------------------------------------------------
def test_controllers_followers_first_leader_last_broken_first():
    rs = [Restart(pod(i), "x") for i in range(3)]
    assert quorum.controller_next(rs, leader=100).pod.ordinal == 1
    assert quorum.controller_next(rs[:1], leader=100).pod.ordinal == 0
    rs[2] = Restart(pod(2, ready=False, running=False), "x")
    assert quorum.controller_next(rs, leader=101).pod.ordinal == 2
    assert quorum.controller_next([], leader=101) is None


@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True),
    st.one_of(st.none(), st.integers(100, 106)),
    st.lists(st.booleans(), min_size=7, max_size=7),
)
def test_controller_order_the_leader_last_broken_followers_first(ordinals, leader, broken):
    rs = [Restart(pod(i, running=not broken[i], ready=not broken[i]), "x") for i in ordinals]
    order, left = [], list(rs)
    while left:
        r = quorum.controller_next(left, leader)
        order.append(r)
        left.remove(r)
    ids = [quorum.node_id(r.pod.ordinal) for r in order]
    if leader in ids:
        assert ids[-1] == leader
    followers = [r for r in order if quorum.node_id(r.pod.ordinal) != leader]
    running = [r.pod.running for r in followers]
    assert running == sorted(running)  # broken followers before running ones


# ---- may a controller go ----------------------------------------------------------------------
def test_a_follower_may_go_when_every_other_voter_is_caught_up():
    assert quorum.controller_blockers(0, quorum_of()) == []
    assert quorum.controller_blockers(2, quorum_of()) == []  # the leader: the others caught up


def test_a_lagging_or_dead_voter_blocks_every_other_controller():
    q = quorum_of(v101=5000)  # 101 last caught up 5 s ago
    blocked = quorum.controller_blockers(0, q)
    assert any("controller node 101 is not caught up" in b for b in blocked), blocked
    assert any("below a majority of 2" in b for b in blocked), blocked
    # the lagging one itself may go: the other two are caught up and a majority
    assert quorum.controller_blockers(1, q) == []


def test_no_leader_blocks_and_a_single_controller_may_always_go():
    assert quorum.controller_blockers(0, quorum_of(leader=-1)) == [
        "the metadata quorum has no leader"
    ]
    single = QuorumView(100, 1, 10, (voter(100, 10, 0),))
    assert quorum.controller_blockers(0, single) == []


def test_a_voter_that_never_caught_up_blocks():
    q = QuorumView(100, 1, 10, (voter(100, 10, 0), voter(101), Voter(102, 0, -1, -1)))
    assert "never caught up" in quorum.controller_blockers(1, q)[0]


@settings(max_examples=300)
@given(
    st.integers(1, 7),
    st.data(),
)
def test_never_a_restart_that_leaves_fewer_than_a_majority_caught_up(n, data):
    """Whatever the quorum looks like: when a controller may go, the voters left are a
    majority, all caught up (the rule is stricter than a bare majority)."""
    leader = data.draw(st.one_of(st.just(-1), st.integers(100, 99 + n)))
    agos = data.draw(st.lists(st.integers(-1, 10_000), min_size=n, max_size=n))
    voters = tuple(
        Voter(100 + i, 50, NOW, -1 if a < 0 else NOW - a)
        if 100 + i != leader
        else voter(100 + i, 50, 0)
        for i, a in enumerate(agos)
    )
    q = QuorumView(leader, 1, 50, voters)
    me = data.draw(st.integers(0, n - 1))
    if quorum.controller_blockers(me, q) or n == 1:
        return
    others = [v for v in voters if v.node_id != 100 + me]
    caught = [v for v in others if quorum.behind(v, q) is None]
    assert leader >= 0
    assert caught == others
    assert len(caught) >= n // 2 + 1


def test_quorum_problems_and_rejoined():
    assert quorum.quorum_problems(quorum_of(), 3) == []
    assert quorum.quorum_problems(quorum_of(leader=-1), 3) == ["the metadata quorum has no leader"]
    two = QuorumView(100, 1, 10, (voter(100, 10, 0), voter(101, 10)))
    assert quorum.quorum_problems(two, 3) == [
        "controller node 102 is not a voter of the metadata quorum"
    ]
    assert quorum.rejoined(2, two, 3) == "controller node 102 is not a voter yet"
    lagging = quorum_of(v100=9000)
    assert "controller node 100 is not caught up" in quorum.rejoined(0, lagging, 3)
    assert quorum.rejoined(0, quorum_of(), 3) is None


def test_kraft_kafka_problems_name_fenced_brokers_and_need_no_broker_controller():
    view = KafkaView(-1, frozenset({0, 1, 2}), fenced=frozenset({1}))
    assert kafka_problems(view, 3, kraft=True) == ["brokers [1] are fenced"]
    assert "no active Kafka controller" in kafka_problems(view, 3)


# ---- metadata.version -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "level"),
    [("", None), ("  ", None), ("33", 33), ("4.4-IV2", 33), ("4.4", 33), ("4.4.0", 33),
     ("4.0", 25), ("3.3-IV3", 7), ("4.5-IV0", 34)],
)  # fmt: skip
def test_metadata_version_values(value, level):
    assert mv.resolve(value) == level


@pytest.mark.parametrize("value", ["latest", "4.9", "4.4-IV9", "v4.4", "4.4-iv2"])
def test_metadata_version_values_refused(value):
    with pytest.raises(ValueError, match="is not a feature level"):
        mv.resolve(value)


def test_metadata_version_steps_and_refusals():
    every = {0: (7, 33), 1: (7, 33), 2: (7, 33)}
    assert mv.step(None, 25) is None and mv.step(25, 25) is None
    assert mv.step(33, 25) == "upgrade" and mv.step(21, 25) == "downgrade"
    assert mv.problems(None, Features(25, every)) == []
    assert mv.problems(33, Features(25, every)) == []
    old = {0: (7, 33), 1: (7, 25), 2: (7, 27)}
    (why,) = mv.problems(33, Features(25, old))
    assert "brokers [1, 2]" in why and "25 (4.0-IV3), 27 (4.1-IV1)" in why
    assert "roll every node" in why
    (why,) = mv.problems(21, Features(25, every), "InvalidUpdateVersionError: no")
    assert why.startswith("Kafka refuses lowering metadata.version from 25 (4.0-IV3) to 21")
    assert mv.problems(33, Features(None, {}))[0].startswith("metadata.version is not finalized")


@given(
    st.integers(7, 40), st.integers(7, 40), st.dictionaries(st.integers(0, 5), st.integers(7, 40))
)
def test_a_raise_is_refused_exactly_when_some_broker_cannot_run_it(wanted, finalized, tops):
    features = Features(finalized, {n: (7, t) for n, t in tops.items()})
    refused = bool(mv.problems(wanted, features))
    assert refused == (wanted > finalized and any(t < wanted for t in tops.values()))


# ---- the roll loop with in-memory stand-ins ---------------------------------------------------
class FakeKRaft:
    """Three controllers (100-102) and three brokers that come back instantly; the quorum
    leader moves when it is restarted."""

    def __init__(self, leader=102, come_back=True, finalized=25, top=33):
        self.rev = {CONTROLLER: "c2", KAFKA: "k2"}
        self.pods_ = {
            c: [pod(i, rev="c1" if c == CONTROLLER else "k1", kind=c) for i in range(3)]
            for c in (CONTROLLER, KAFKA)
        }
        self.leader, self.come_back = leader, come_back
        self.lagging: set[int] = set()
        self.deleted: list[str] = []
        self.events: list[tuple[str, str]] = []
        self.finalized, self.top = finalized, top
        self.updates: list[tuple[int, bool, bool]] = []

    # Platform
    def deployed(self, c):
        return c in (CONTROLLER, KAFKA)

    def pods(self, c):
        return list(self.pods_[c])

    def update_revision(self, c):
        return self.rev[c]

    def replicas(self, c):
        return 3

    def delete_pod(self, c, p):
        # the roller must never take a controller while another voter lags
        if c == CONTROLLER:
            assert not (self.lagging - {100 + p.ordinal}), (p.name, self.lagging)
        self.deleted.append(p.name)
        new = PodInfo(p.name, p.ordinal, p.uid + "'", self.rev[c], self.come_back, self.come_back)
        self.pods_[c][p.ordinal] = new
        if c == CONTROLLER and 100 + p.ordinal == self.leader:
            self.leader = 100 + (p.ordinal + 1) % 3

    def event(self, c, reason, message, warning=False):
        self.events.append((c, reason))

    def cert_renewed(self, c, pods):
        return set()

    def config_only(self, c, r, u):
        return False

    def desired_broker_config(self, b):
        return None

    # Kafka
    def view(self, with_partitions=True):
        parts = (Partition("t", 0, 0, (0, 1, 2), (0, 1, 2)),)
        return KafkaView(0, frozenset({0, 1, 2}), parts, {"t": 2})

    def quorum(self):
        return QuorumView(
            self.leader,
            1,
            100,
            tuple(
                voter(n, 100, 9000 if n in self.lagging else (0 if n == self.leader else 100))
                for n in range(100, 103)
            ),
        )

    def features(self):
        return Features(self.finalized, {b: (7, self.top) for b in range(3)})

    def update_metadata_version(self, level, downgrade, validate_only):
        self.updates.append((level, downgrade, validate_only))
        if downgrade:
            raise RuntimeError("InvalidUpdateVersionError: downgrade refused")
        if not validate_only:
            self.finalized = level


def kraft_roller(fk, clock=None, **settings):
    logs = []
    extra = {"clock": clock, "sleep": clock.advance} if clock else {"sleep": lambda s: None}
    r = KRaftRoller(
        fk,
        fk,
        None,
        Settings(**{"pod_timeout": 5, "poll": 0.01, **settings}),
        lambda *a, **k: logs.append((a, k)),
        **extra,
    )
    return r, logs


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def advance(self, s):
        self.t += s


def test_kraft_roll_controllers_followers_then_leader_then_brokers():
    fk = FakeKRaft(leader=100)
    r, _ = kraft_roller(fk)
    r.roll()
    assert fk.deleted == [
        "kairn-controller-1",
        "kairn-controller-2",
        "kairn-controller-0",  # the leader, last
        "kairn-kafka-0",  # brokers by ordinal: none is saved for last
        "kairn-kafka-1",
        "kairn-kafka-2",
    ]
    assert [reason for _, reason in fk.events].count("Restarting") == 6
    assert fk.updates == []  # no metadata.version asked


def test_kraft_roll_waits_for_a_lagging_voter_and_stops_cleanly():
    fk = FakeKRaft(leader=102)
    fk.lagging = {101}
    clock = Clock()
    r, _ = kraft_roller(fk, clock, pod_timeout=10)
    # 101 lags: only 101 itself may go (the other two are caught up); then 100 must wait for it
    fk.pods_[CONTROLLER][1] = pod(1, rev="c2")  # 101 is already current: nobody restarts it
    with pytest.raises(RollError) as e:
        r.roll()
    assert fk.deleted == []
    assert e.value.pod == "kairn-controller-0"
    assert "controller node 101 is not caught up" in e.value.reason


def test_kraft_roll_continues_once_the_voter_catches_up():
    fk = FakeKRaft(leader=102)
    fk.lagging = {101}
    fk.pods_[CONTROLLER][1] = pod(1, rev="c2")
    clock = Clock()

    def sleep(s):
        clock.advance(s)
        if clock.t > 3:
            fk.lagging = set()

    r = KRaftRoller(
        fk, fk, None, Settings(pod_timeout=30, poll=0.01), lambda *a, **k: None, sleep, clock
    )
    r.roll()
    assert fk.deleted[:2] == ["kairn-controller-0", "kairn-controller-2"]
    assert clock.t > 3


def test_kraft_roll_a_controller_that_does_not_come_back_stops_the_roll():
    fk = FakeKRaft(leader=102, come_back=False)
    clock = Clock()
    r, _ = kraft_roller(fk, clock, pod_timeout=3)
    with pytest.raises(RollError) as e:
        r.roll()
    assert fk.deleted == ["kairn-controller-0"]
    assert e.value.pod == "kairn-controller-0" and "not Ready" in e.value.reason
    assert r.component_of(e.value.pod) == CONTROLLER


def test_kraft_roll_raises_metadata_version_after_every_node():
    fk = FakeKRaft()
    r, _ = kraft_roller(fk, metadata_version=33)
    r.roll()
    assert len(fk.deleted) == 6
    assert fk.updates == [(33, False, True), (33, False, False)]  # validated, then applied
    assert fk.finalized == 33
    assert fk.events[-1] == (KAFKA, "MetadataVersion")


def test_kraft_roll_refuses_an_unsupported_metadata_version_after_the_roll():
    fk = FakeKRaft(top=30)
    r, _ = kraft_roller(fk, metadata_version=33)
    with pytest.raises(RollError) as e:
        r.roll()
    assert "not supported by brokers [0, 1, 2]" in e.value.reason
    assert fk.finalized == 25 and all(v for _, _, v in fk.updates)


def test_kraft_preflight_healthy_then_each_problem():
    fk = FakeKRaft()
    fk.rev = {CONTROLLER: "c1", KAFKA: "k1"}
    r, _ = kraft_roller(fk)
    assert r.preflight() == []
    fk.lagging = {100}
    assert any("controller node 100 is not caught up" in p for p in r.preflight())
    fk.lagging = set()
    r.s.metadata_version = 21
    (why,) = r.preflight()
    assert why.startswith("Kafka refuses lowering metadata.version") and "refused" in why
    r.s.metadata_version = 34
    (why,) = r.preflight()
    assert "not supported by brokers [0, 1, 2]" in why


def test_cli_picks_the_kraft_roller_and_needs_no_zookeeper(tmp_path, capsys, monkeypatch):
    for f in ("ca", "crt", "key"):
        (tmp_path / f).write_text("x")
    fk = FakeKRaft()
    fk.rev = {CONTROLLER: "c1", KAFKA: "k1"}
    monkeypatch.delenv("KAIRN_ZOOKEEPER_NODES", raising=False)

    class FakeKafka:
        def __init__(self, *a, **k):
            pass

        def kraft(self):
            return True

        def close(self):
            pass

        def __getattr__(self, name):
            return getattr(fk, name)

    monkeypatch.setattr(cli, "Kafka", FakeKafka)
    argv = ["--bootstrap", "b:9093", "--tls-ca-file", str(tmp_path / "ca"),
            "--tls-cert-file", str(tmp_path / "crt"), "--tls-key-file", str(tmp_path / "key")]  # fmt: skip
    assert cli.main([*argv, "preflight"], platform=fk) == 0
    assert cli.main([*argv, "--metadata-version", "4.9", "preflight"], platform=fk) == 2
    assert "is not a feature level" in capsys.readouterr().err.splitlines()[-1]
    assert cli.main([*argv, "--metadata-version", "4.5", "preflight"], platform=fk) == 1
    assert "kairn-roller: preflight: metadata.version 34 (4.5-IV0) is not supported" in (
        capsys.readouterr().err
    )
    FakeKafka.kraft = lambda self: False  # brokers in ZooKeeper mode, controllers deployed
    assert cli.main([*argv, "preflight"], platform=fk) == 1
    assert "the brokers run in zookeeper mode but the release has a controller StatefulSet" in (
        capsys.readouterr().err
    )
