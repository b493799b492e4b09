"""values.yaml documents every value with `## @param`, the chart README's table lists them all,
and the defaults satisfy values.schema.json."""

from __future__ import annotations

import json
import re

import jsonschema
import yaml

from tests.chart.helpers import CHART

PARAM = re.compile(r"^\s*## @param (\S+) (.+)$", re.M)


def params() -> dict[str, str]:
    return dict(PARAM.findall((CHART / "values.yaml").read_text()))


def leaves(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= {path} | leaves(value, f"{path}.")
        else:
            out.add(path)
    return out


def test_every_value_is_documented():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = set(params())
    paths = leaves(values)
    assert documented <= paths, f"@param for missing values: {sorted(documented - paths)}"
    # a leaf is documented by itself or by a documented parent (e.g. a resources map)
    undocumented = [
        p
        for p in paths
        if not any(p == d or p.startswith(d + ".") for d in documented)
        and not any(d.startswith(p + ".") for d in documented)
    ]
    assert not undocumented, f"values without @param: {undocumented}"


def test_fixed_value_names_exist():
    documented = set(params())
    fixed = {
        "kafka.replicas",
        "zookeeper.replicas",
        "kafka.config",
        "kafka.listeners.external.enabled",
        "kafka.storage.size",
        "zookeeper.storage.size",
        "topicAgent.enabled",
        "topicAgent.deleteTopics",
        "userAgent.enabled",
        "roller.enabled",
        "metrics.serviceMonitor.enabled",
        "metrics.prometheusRule.enabled",
        "networkPolicy.enabled",
        "global.imageRegistry",
    }
    assert fixed <= documented


def test_readme_lists_every_parameter():
    readme = (CHART / "README.md").read_text()
    for name, description in params().items():
        assert f"| `{name}` | {description} |" in readme, name


def test_defaults_and_ci_values_satisfy_the_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(defaults, schema)
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        if prop.get("type") == "object" and "properties" in prop:
            assert prop.get("additionalProperties") is False, name
