"""Writes chart/values.schema.json from chart/values.yaml, or checks that it is up to date.

values.yaml is where a value is described: its default gives the JSON type and its
`## @param <path> <description>` comment the description (the convention of Bitnami's
readme-generator, which the chart README's parameter table follows). What a default cannot tell
(ranges, enums, patterns, what a free-form map holds) is in BY_NAME and by_path() below, and the
shapes that several values share are the schema's $defs (DEFS), referenced instead of copied.

    .venv/bin/python scripts/values_schema.py          # rewrite chart/values.schema.json
    .venv/bin/python scripts/values_schema.py --check  # exit 1 with a diff when it is stale

tests/chart/test_values_docs.py fails when the committed schema differs from this output.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "chart"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
PORTS = CHART / "files" / "ports.yaml"

PARAM = re.compile(r"^\s*## @param (\S+) (.+)$", re.M)
ZOOKEEPER_SIZES = [1, 3, 5, 7, 9]  # a quorum is a majority: an odd number of nodes


BOOLEAN, STRING, OBJECT = {"type": "boolean"}, {"type": "string"}, {"type": "object"}
ID = {"type": "integer", "minimum": 0}
# Kubernetes quantity syntax (resource.Quantity), as the Kubernetes OpenAPI schema gives it
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def enum(*values: str) -> dict:
    return {"type": "string", "enum": list(values)}


def closed(description: str | None = None, **properties: dict) -> dict:
    """An object with these properties and no other."""
    head = {"description": description} if description else {}
    return {**head, "type": "object", "properties": properties, "additionalProperties": False}


def collection(description: str, kind: str, of: dict) -> dict:
    """A list of ``of`` (kind "array") or a map of names to ``of`` (kind "object")."""
    inner = "items" if kind == "array" else "additionalProperties"
    return {"description": description, "type": kind, inner: of}


STRING_MAP = ref("stringMap")
# The security contexts list the Kubernetes 1.34 fields and refuse any other key: a misspelt
# key (readOnlyRootFileSystem) would otherwise be dropped without a word, and the pod would run
# without the setting.
SECURITY_COMMON = {
    "runAsUser": ID,
    "runAsGroup": ID,
    "runAsNonRoot": BOOLEAN,
    "seccompProfile": ref("seccompProfile"),
    "appArmorProfile": OBJECT,
    "seLinuxOptions": OBJECT,
    "windowsOptions": OBJECT,
}

DEFS = {
    "image": closed(
        "An image: <registry>/<repository>:<tag>, or @<digest> when set",
        registry=STRING,
        repository={**STRING, "minLength": 1},
        tag={"type": ["string", "number"]},
        digest={**STRING, "pattern": "^$|^sha256:[a-f0-9]{64}$"},
        pullPolicy=enum("Always", "IfNotPresent", "Never"),
        pullSecrets=ref("stringList"),
    ),
    "resources": closed(
        "Resources of a container (requests and limits)",
        requests=ref("resourceList"),
        limits=ref("resourceList"),
        claims=ref("objectList"),
    ),
    "resourceList": collection(
        "Quantities by resource name (cpu, memory, ephemeral-storage, ...)",
        "object",
        {"type": ["string", "number"], "pattern": QUANTITY},
    ),
    "podSecurityContext": closed(
        "A Kubernetes PodSecurityContext",
        **SECURITY_COMMON,
        fsGroup=ID,
        fsGroupChangePolicy=enum("OnRootMismatch", "Always"),
        supplementalGroups={"type": "array", "items": ID},
        supplementalGroupsPolicy=enum("Merge", "Strict"),
        seLinuxChangePolicy=STRING,
        sysctls=ref("objectList"),
    ),
    "containerSecurityContext": closed(
        "A Kubernetes (container) SecurityContext",
        **SECURITY_COMMON,
        allowPrivilegeEscalation=BOOLEAN,
        privileged=BOOLEAN,
        readOnlyRootFilesystem=BOOLEAN,
        procMount=enum("Default", "Unmasked"),
        capabilities=closed(add=ref("stringList"), drop=ref("stringList")),
    ),
    "seccompProfile": {
        **closed(
            "A Kubernetes SeccompProfile",
            type=enum("RuntimeDefault", "Unconfined", "Localhost"),
            localhostProfile=STRING,
        ),
        "required": ["type"],
    },
    "storage": closed(
        "The data volume of a StatefulSet's pods",
        ephemeral=BOOLEAN,
        size={
            **STRING,
            "pattern": r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$",
            "$comment": "a Kubernetes quantity of bytes, e.g. 20Gi",
        },
        storageClass=STRING,
    ),
    "pdb": closed(
        "A PodDisruptionBudget",
        enabled=BOOLEAN,
        maxUnavailable={"anyOf": [ID, {**STRING, "pattern": "^[0-9]+%$"}]},
    ),
    "podAntiAffinity": {
        "description": "soft: preferred on distinct nodes; hard: required; none",
        **enum("soft", "hard", "none"),
    },
    "configEntries": collection(
        "Entries of a properties file (key: value)",
        "object",
        {"type": ["string", "number", "boolean"]},
    ),
    "stringMap": collection(
        "Strings by name (labels, annotations, a node selector)", "object", STRING
    ),
    "stringList": collection("A list of strings", "array", STRING),
    "objectList": collection("A list of objects", "array", OBJECT),
    "port": {"description": "An unprivileged port", **ID, "minimum": 1024, "maximum": 65535},
    # namespace and prefix are only typed here: the templates (_tenants.tpl) check their rules,
    # with messages that say what to do, and that hold with --skip-schema-validation too
    "tenant": closed(
        "A tenant namespace: its topics and users are confined to a prefix of Kafka names",
        namespace=STRING,
        prefix=STRING,
        quotaCeiling=closed(
            "The highest quotas a user of the tenant may have",
            producerByteRate={"type": "number", "exclusiveMinimum": 0},
            consumerByteRate={"type": "number", "exclusiveMinimum": 0},
            requestPercentage={"type": "number", "exclusiveMinimum": 0},
        ),
    ),
    "interval": {
        "description": "A Prometheus duration, e.g. 30s",
        **STRING,
        "pattern": "^[0-9]+(ms|s|m|h)$",
    },
}

# Values of the same name have the same shape, wherever they are.
BY_NAME = {
    "image": ref("image"),
    "resources": ref("resources"),
    "podSecurityContext": ref("podSecurityContext"),
    "containerSecurityContext": ref("containerSecurityContext"),
    "storage": ref("storage"),
    "pdb": ref("pdb"),
    "podAntiAffinity": ref("podAntiAffinity"),
    "config": ref("configEntries"),
    "nodeSelector": STRING_MAP,
    "podLabels": STRING_MAP,
    "podAnnotations": STRING_MAP,
    "labels": STRING_MAP,
    "tolerations": ref("objectList"),
    "topologySpreadConstraints": ref("objectList"),
    "interval": ref("interval"),
    "port": ref("port"),
    "resyncSeconds": {"minimum": 10},
    "activeDeadlineSeconds": {"minimum": 30},
}


def minimum(n: int) -> dict:
    return {"minimum": n}


def not_fixed_ports(ports: dict) -> dict:
    """metrics.jmx.port: an unprivileged port that no fixed port of the chart uses, including
    the loopback quorum and election ports of every possible ZooKeeper node (base + myid)."""
    named = [(name, port) for group in ports.values() for name, port in group.items()]
    fixed = sorted(port for name, port in named if not name.endswith("Base"))
    per_node = [
        {"minimum": base + 1, "maximum": base + max(ZOOKEEPER_SIZES)}
        for name, base in named
        if name.endswith("Base")
    ]
    return {
        **ref("port"),
        "not": {"anyOf": [{"enum": fixed}, *per_node]},
        "$comment": "none of the chart's fixed ports (chart/files/ports.yaml)",
    }


def by_path(ports: dict) -> dict:
    """What only one value (or a few, named here) has."""
    return {
        "global.imagePullSecrets": ref("stringList"),
        "fullnameOverride": {"maxLength": 40},
        "clusterDomain": {"minLength": 1},
        "commonLabels": STRING_MAP,
        "commonAnnotations": STRING_MAP,
        "tls.caValidityDays": minimum(1),
        "tls.certValidityDays": minimum(1),
        "tls.renewalDays": minimum(1),
        "tls.sidecar.logLevel": {
            "enum": ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
        },
        "zookeeper.replicas": {"enum": ZOOKEEPER_SIZES},
        "zookeeper.tickTime": minimum(100),
        "zookeeper.initLimit": minimum(1),
        "zookeeper.syncLimit": minimum(1),
        "zookeeper.autopurge.snapRetainCount": minimum(3),
        "zookeeper.autopurge.purgeInterval": minimum(0),
        "zookeeper.terminationGracePeriodSeconds": minimum(0),
        "kafka.replicas": minimum(1),
        "kafka.defaultReplicationFactor": minimum(1),
        "kafka.minInsyncReplicas": minimum(1),
        "kafka.listeners.external.type": {"enum": ["NodePort", "LoadBalancer"]},
        "kafka.listeners.external.nodePortBase": {"minimum": 30000, "maximum": 32767},
        "kafka.listeners.external.advertisedHosts": ref("stringList"),
        "kafka.listeners.external.annotations": STRING_MAP,
        "kafka.listeners.external.loadBalancerSourceRanges": ref("stringList"),
        "kafka.terminationGracePeriodSeconds": minimum(30),
        "kafka.startupProbe.failureThreshold": minimum(1),
        "kafka.metadata.mode": {"enum": ["zookeeper", "migration", "kraft-brokers", "kraft"]},
        "kafka.metadata.kraftImageTag": {"minLength": 1},
        "kafka.controller.replicas": {"enum": [1, 3, 5]},
        "kafka.controller.terminationGracePeriodSeconds": minimum(10),
        "agents.logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
        "agents.serviceAccount.annotations": STRING_MAP,
        "roller.preflightDeadlineSeconds": minimum(30),
        "roller.rollDeadlineSeconds": minimum(60),
        "roller.podTimeoutSeconds": minimum(10),
        "metrics.jmx.port": not_fixed_ports(ports),
        "metrics.grafanaDashboard.namespace": {
            "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
            "maxLength": 63,
        },
        "metrics.grafanaDashboard.annotations": STRING_MAP,
        "tenants": {"items": ref("tenant")},
    }


class SchemaError(ValueError):
    pass


def json_type(value) -> dict:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, kind):
            return {"type": name}
    return {"type": "array" if isinstance(value, list) else "object"}


def rule(path: str, rules: dict) -> dict:
    here = dict(BY_NAME.get(path.rsplit(".", 1)[-1], {}))
    here.update(rules.get(path, {}))
    return here


def value_schema(path: str, default, params: dict, rules: dict) -> dict:
    """The schema of one value: a documented value's type, rule and description, or a section's
    entries (documented one by one)."""
    shape = rule(path, rules)
    if path in params:
        base = {} if "$ref" in shape else json_type(default)
        return {"description": params[path], **base, **shape}
    if not isinstance(default, dict) or not default:
        raise SchemaError(f"{path} has no ## @param")
    entries = {k: f"{path}.{k}" if path else k for k in default}
    if "$ref" in shape:
        # a shared shape validates the section; its entries add their own descriptions
        missing = [p for p in entries.values() if p not in params]
        if missing:
            raise SchemaError(f"no ## @param for {missing}")
        return {**shape, "properties": {k: {"description": params[p]} for k, p in entries.items()}}
    return {
        "type": "object",
        "properties": {k: value_schema(p, default[k], params, rules) for k, p in entries.items()},
        "additionalProperties": False,
        **shape,
    }


def value_paths(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out.add(path)
        if isinstance(value, dict):
            out |= value_paths(value, f"{path}.")
    return out


def generate(values_text: str, ports: dict) -> dict:
    defaults = yaml.safe_load(values_text)
    params = dict(PARAM.findall(values_text))
    rules = by_path(ports)
    paths = value_paths(defaults)
    for name, found in (("@param", params), ("rule", rules)):
        stale = sorted(set(found) - paths)
        if stale:
            raise SchemaError(f"{name} for values that values.yaml does not have: {stale}")
    body = value_schema("", defaults, params, rules)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Generated by scripts/values_schema.py from values.yaml: do not edit.",
        "title": "kairn values",
        **body,
        "$defs": DEFS,
    }


def dump(value, indent: int = 0, column: int = 0) -> str:
    """JSON with two-space indentation, kept short: a value stays on one line when the line fits
    in 100 columns (``column`` is where the value starts), unless it is an object with
    ``properties``."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list):
        return flat
    if not (isinstance(value, dict) and "properties" in value) and column + len(flat) < 100:
        return flat
    pad = "  " * (indent + 1)
    if isinstance(value, list):
        items, brackets = [pad + dump(v, indent + 1, len(pad)) for v in value], "[]"
    else:
        keys = {k: f"{pad}{json.dumps(k)}: " for k in value}
        items = [keys[k] + dump(v, indent + 1, len(keys[k])) for k, v in value.items()]
        brackets = "{}"
    return brackets[0] + "\n" + ",\n".join(items) + "\n" + "  " * indent + brackets[1]


def render() -> str:
    ports = yaml.safe_load(PORTS.read_text())
    return dump(generate(VALUES.read_text(), ports)) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        current = SCHEMA.read_text()
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(True), text.splitlines(True), str(SCHEMA), "generated"
        )
        sys.stdout.writelines(diff)
        print(f"{SCHEMA.relative_to(ROOT)} is stale: run scripts/values_schema.py")
        return 1
    if argv:
        print(__doc__)
        return 2
    SCHEMA.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
