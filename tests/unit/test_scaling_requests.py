"""Rebalances on demand (agents/scaling/requests.py): the spec, the dry-run proposal, the
approval, and the pass of `kairn-roller rebalance --requests` over the ConfigMaps."""

from __future__ import annotations

import argparse
import json

import pytest

from agents.scaling import cli
from agents.scaling.plan import replica_counts
from agents.scaling.requests import Request, handle, parse
from agents.scaling.run import MemoryRecord, Rebalancer, Settings

from .test_scaling_run import FakeKafka, round_robin


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("mode: full", Request("full")),
        ("", Request("full")),
        ("mode: add-brokers\nbrokers: [4, 3, 3]", Request("add-brokers", (3, 4))),
        ("mode: remove-brokers\nbrokers: [2]", Request("remove-brokers", (2,))),
        ("mode: sideways", "mode 'sideways' is not one of full, add-brokers, remove-brokers"),
        ("mode: add-brokers", "mode add-brokers needs brokers"),
        ("mode: full\nbrokers: [1]", "mode full levels every broker: leave brokers out"),
        ("mode: remove-brokers\nbrokers: [a]", "brokers must be a list of broker ids"),
        ("goals: [x]", "unknown field(s) goals: a rebalance has mode and brokers"),
        ("[", "spec is not YAML: while parsing a flow node"),
    ],
)
def test_the_spec(text, want):
    assert parse(text) == want


def configmap(spec: str, status: dict | None = None, approve: bool = False) -> dict:
    annotations = {}
    if status is not None:
        annotations["kairn.dev/status"] = json.dumps(status)
    if approve:
        annotations["kairn.dev/approve"] = "true"
    return {"metadata": {"name": "grow", "annotations": annotations}, "data": {"spec": spec}}


def run_handle(kafka, cm):
    return handle(
        cm,
        kafka.snapshot,
        kafka.ongoing,
        lambda: Rebalancer(kafka, MemoryRecord(), Settings(poll=0), lambda *a, **k: None),
        throttle=1000,
    )


def test_an_unapproved_request_shows_its_plan_and_moves_nothing():
    kafka = FakeKafka(round_robin("t", 12, 3, 3), [0, 1, 2, 3])
    out = run_handle(kafka, configmap("mode: add-brokers\nbrokers: [3]"))
    assert (out.state, out.reason) == ("Pending", "ProposalReady")
    plan = out.extra["plan"]
    assert plan["partitionsToMove"] == 9 and plan["replicasToCopy"] == 9
    assert all(3 in m["to"] for m in plan["moves"][:9])
    assert "kairn.dev/approve" in out.message and not kafka.started
    # shown again unchanged: nothing to write
    cm = configmap("mode: add-brokers\nbrokers: [3]", {"state": "Pending", **out.extra,
                                                      "reason": "ProposalReady"})  # fmt: skip
    assert run_handle(kafka, cm) is None


def test_an_approved_request_runs_once():
    kafka = FakeKafka(round_robin("t", 12, 3, 3), [0, 1, 2, 3])
    out = run_handle(kafka, configmap("mode: full", approve=True))
    assert (out.state, out.reason) == ("Ready", "Rebalanced")
    assert replica_counts(kafka.layout, [0, 1, 2, 3]) == {0: 9, 1: 9, 2: 9, 3: 9}
    done = configmap("mode: full", {"state": "Ready", **out.extra})
    assert run_handle(kafka, done) is None


def test_a_request_that_cannot_be_done_is_an_error():
    kafka = FakeKafka(round_robin("t", 3, 3, 3), [0, 1, 2])
    out = run_handle(kafka, configmap("mode: remove-brokers\nbrokers: [2]", approve=True))
    assert (out.state, out.reason) == ("Error", "CannotRebalance")
    assert "replication factor 3" in out.message and not kafka.started
    out = run_handle(kafka, configmap("mode: add-brokers\nbrokers: [7]"))
    assert out.state == "Error" and "broker(s) 7 not registered" in out.message


class ConfigMaps:
    def __init__(self, *cms):
        self.cms = {cm["metadata"]["name"]: cm for cm in cms}
        self.reports = []

    def list(self):
        return list(self.cms.values())

    def report(self, cm, outcome, approved_done):
        self.reports.append((cm["metadata"]["name"], outcome.state, approved_done))
        ann = cm["metadata"]["annotations"]
        ann["kairn.dev/status"] = json.dumps(
            {"state": outcome.state, "reason": outcome.reason, **outcome.extra}
        )
        if approved_done:
            ann.pop("kairn.dev/approve", None)


class ClosingKafka(FakeKafka):
    def close(self):
        pass


def test_a_pass_proposes_then_runs_after_approval():
    kafka = ClosingKafka(round_robin("t", 12, 3, 3), [0, 1, 2, 3])
    cms = ConfigMaps(configmap("mode: add-brokers\nbrokers: [3]"))
    args = argparse.Namespace(once=True, interval=0)

    def serve():
        return cli.serve_requests(args, lambda *a, **k: None, kafka=kafka,
                                  record=MemoryRecord(), configmaps=cms, sleep=lambda _: None)  # fmt: skip

    assert serve() == 0 and cms.reports == [("grow", "Pending", False)]
    assert serve() == 0 and len(cms.reports) == 1  # nothing changed: nothing written
    cms.cms["grow"]["metadata"]["annotations"]["kairn.dev/approve"] = "true"
    assert serve() == 0 and cms.reports[-1] == ("grow", "Ready", True)
    assert replica_counts(kafka.layout, [3]) == {3: 9}
    assert serve() == 0 and len(cms.reports) == 2


class Stop(BaseException):  # as a SIGTERM would end it; the loop catches Exception
    pass


def test_the_server_loop_survives_a_failed_pass_and_waits_on_the_watch_between_passes():
    kafka = ClosingKafka(round_robin("t", 12, 3, 3), [0, 1, 2, 3])
    cms = ConfigMaps(configmap("mode: add-brokers\nbrokers: [3]"))
    listing, waits, logged = cms.list, [], []

    def flaky_list():
        if not waits:
            raise OSError("API server away")
        return listing()

    def wait(seconds):
        waits.append(seconds)
        if len(waits) == 3:
            raise Stop

    cms.list, cms.wait = flaky_list, wait
    args = argparse.Namespace(once=False, interval=7)
    with pytest.raises(Stop):
        cli.serve_requests(args, lambda m, **kv: logged.append(m), kafka=kafka,
                           record=MemoryRecord(), configmaps=cms, sleep=lambda _: None)  # fmt: skip
    assert logged[0] == "rebalance requests not listed"
    assert waits == [7, 7, 7]  # the watch, not a sleep, between passes
    assert cms.reports == [("grow", "Pending", False)]  # proposed once, then nothing new
