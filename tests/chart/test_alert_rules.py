"""The PrometheusRule the chart renders is valid Prometheus rules (`promtool check rules`) and
every alert fires from a series and stays quiet for a healthy one (`promtool test rules` with
tests/chart/promtool/kairn_alerts_test.yaml). `make setup` takes promtool from Debian."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from tests.chart.helpers import BIN, ROOT, find, render, run

PROMTOOL = BIN / "promtool"
UNIT_TESTS = ROOT / "tests" / "chart" / "promtool" / "kairn_alerts_test.yaml"


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    """rules.yaml (the rendered groups) beside a copy of the unit tests, which name it."""
    folder = tmp_path_factory.mktemp("promtool")
    rule = find(render("helm3", "metrics"), "PrometheusRule", "kairn")
    (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(UNIT_TESTS, folder / UNIT_TESTS.name)
    return folder


def alerts(folder) -> set[str]:
    groups = yaml.safe_load((folder / "rules.yaml").read_text())["groups"]
    return {r["alert"] for g in groups for r in g["rules"]}


def test_promtool_checks_the_rules(rules):
    proc = run([PROMTOOL, "check", "rules", rules / "rules.yaml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", proc.stdout)
    assert found and int(found.group(1)) == len(alerts(rules)), proc.stdout


def test_promtool_unit_tests_fire_every_alert(rules):
    proc = run([PROMTOOL, "test", "rules", rules / UNIT_TESTS.name])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    # each alert has at least one case where it fires
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == alerts(rules)


def test_a_wrong_expectation_fails_the_unit_tests(rules, tmp_path):
    """promtool compares labels and annotations exactly: the suite would notice a change."""
    shutil.copy(rules / "rules.yaml", tmp_path / "rules.yaml")
    text = UNIT_TESTS.read_text().replace("summary: 3 Kafka", "summary: 4 Kafka")
    (tmp_path / UNIT_TESTS.name).write_text(text)
    proc = run([PROMTOOL, "test", "rules", tmp_path / UNIT_TESTS.name])
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr


KRAFT_UNIT_TESTS = ROOT / "tests" / "chart" / "promtool" / "kraft_alerts_test.yaml"


@pytest.fixture(scope="module")
def kraft_rules(tmp_path_factory):
    """The KRaft-mode rules (chart/ci/kraft.yaml) beside a copy of their unit tests."""
    folder = tmp_path_factory.mktemp("promtool-kraft")
    rule = find(render("helm3", "kraft"), "PrometheusRule", "kairn")
    (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(KRAFT_UNIT_TESTS, folder / KRAFT_UNIT_TESTS.name)
    return folder


def test_kraft_rules_have_the_controllers_and_no_zookeeper(kraft_rules):
    groups = yaml.safe_load((kraft_rules / "rules.yaml").read_text())["groups"]
    assert [g["name"] for g in groups] == ["kairn-agents", "kairn-kafka", "kairn-controllers"]
    proc = run([PROMTOOL, "check", "rules", kraft_rules / "rules.yaml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_fire_every_controller_alert(kraft_rules):
    proc = run([PROMTOOL, "test", "rules", kraft_rules / KRAFT_UNIT_TESTS.name])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tests = yaml.safe_load(KRAFT_UNIT_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    groups = yaml.safe_load((kraft_rules / "rules.yaml").read_text())["groups"]
    (controllers,) = [g for g in groups if g["name"] == "kairn-controllers"]
    assert fired == {r["alert"] for r in controllers["rules"]}
