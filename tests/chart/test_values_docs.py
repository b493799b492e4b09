"""values.yaml documents every value with `## @param`, the chart README's table lists them all,
values.schema.json is generated from values.yaml (scripts/values_schema.py) and describes every
value with its @param text, and the defaults and the CI values satisfy it."""

from __future__ import annotations

import copy
import importlib.util
import json
import re

import jsonschema
import pytest
import yaml

from tests.chart.helpers import CHART, MATRIX, ROOT


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "values_schema", ROOT / "scripts" / "values_schema.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = load_generator()

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


def schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def test_the_committed_schema_is_the_generated_one():
    committed = (CHART / "values.schema.json").read_text()
    assert committed == generator.render(), (
        "chart/values.schema.json is stale: run .venv/bin/python scripts/values_schema.py"
    )


def test_every_value_has_its_param_description_in_the_schema():
    for path, description in params().items():
        node = schema()
        for key in path.split("."):
            node = node["properties"][key]
        assert node.get("description") == description, path


def test_shared_shapes_are_definitions_not_copies():
    text = (CHART / "values.schema.json").read_text()
    defs = schema()["$defs"]
    for name, definition in defs.items():
        assert definition.get("description"), f"$defs/{name} has no description"
        assert f'"#/$defs/{name}"' in text, f"$defs/{name} is not used"
    for path in leaves(yaml.safe_load((CHART / "values.yaml").read_text())):
        name = path.rsplit(".", 1)[-1]
        if name in {"image", "resources", "podSecurityContext", "containerSecurityContext"}:
            node = schema()
            for key in path.split("."):
                node = node["properties"][key]
            assert node["$ref"] == f"#/$defs/{name}", path


def test_every_object_refuses_unknown_keys():
    """A misspelt value fails the install instead of being ignored: every object with listed
    properties refuses others (or takes its properties from a definition that does)."""
    root = schema()

    def walk(node: dict, where: str):
        if "properties" in node:
            if "$ref" in node:
                target = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
                assert set(node["properties"]) <= set(target["properties"]), where
                assert target["additionalProperties"] is False, where
            else:
                assert node.get("additionalProperties") is False, where
            for key, child in node["properties"].items():
                walk(child, f"{where}.{key}")

    walk(root, "values")
    for name, definition in root["$defs"].items():
        walk(definition, f"$defs/{name}")


@pytest.mark.parametrize("case", MATRIX)
def test_defaults_and_ci_values_satisfy_the_schema(case):
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if case != "default":
        values = merged(values, yaml.safe_load((CHART / "ci" / f"{case}.yaml").read_text()))
    jsonschema.validate(values, schema())


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        # a value without its @param
        (
            "  ## @param kafka.heapOpts JVM heap options of the brokers\n",
            "",
            "kafka.heapOpts has no",
        ),
        # an entry of a shared shape without its @param
        (
            "    ## @param kafka.image.digest Kafka image digest; replaces the tag when set\n",
            "",
            "no ## @param for ['kafka.image.digest']",
        ),
        # a @param left behind by a removed value
        ('  heapOpts: "-Xms1g -Xmx1g"\n', "", "@param for values that values.yaml does not have"),
    ],
)
def test_the_generator_refuses_undocumented_and_unknown_values(old, new, error):
    text = (CHART / "values.yaml").read_text()
    assert text.count(old) == 1
    with pytest.raises(generator.SchemaError, match=re.escape(error)):
        generator.generate(text.replace(old, new), {})
