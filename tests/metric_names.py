"""The metric names that the chart's alerts and Grafana dashboard query (for the tests that
check each one against real scrapes)."""

from __future__ import annotations

import json
import re

from devtools.chart import CHART, helm_template

# every kairn, broker and ZooKeeper series is named with one of these prefixes
NAME = re.compile(r"(?<![\w])((?:kafka|zookeeper|kairn)_[a-z0-9_]+)")
DASHBOARD = CHART / "files" / "grafana" / "kairn.json"


def alert_expressions() -> list[str]:
    docs = helm_template(
        "kairn", "monitoring-test", {"metrics": {"prometheusRule": {"enabled": True}}}
    )
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    return [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]


def dashboard_expressions() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if v.get("definition")]
    return exprs


def used_names() -> dict[str, set[str]]:
    """metric name -> where it is used ('alerts', 'dashboard')."""
    used: dict[str, set[str]] = {}
    for where, exprs in (("alerts", alert_expressions()), ("dashboard", dashboard_expressions())):
        for e in exprs:
            for name in NAME.findall(e):
                used.setdefault(name, set()).add(where)
    return used
