"""The topic spec: parsing and validation (pure; no I/O).

``data.spec`` holds YAML with the fields of Strimzi's ``KafkaTopic`` v1beta2 ``spec`` that
kairn supports: ``topicName`` (defaults to the ConfigMap's name), ``partitions``, ``replicas``
and ``config``. :func:`parse` returns a :class:`TopicSpec` or a :class:`SpecError` whose
message a person can act on; it never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agents.common.spec_base import SpecError, raw_hash, read_document, spec_hash

__all__ = ["SpecError", "TopicSpec", "parse", "raw_hash", "spec_hash", "validate_topic_name"]

FIELDS = ("topicName", "partitions", "replicas", "config")
TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_NAME = 249
MAX_REPLICAS = 32767
MAX_PARTITIONS = 1_000_000
CONFIG_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int | None = None
    replicas: int | None = None
    config: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return spec_hash(
            {
                "topicName": self.name,
                "partitions": self.partitions,
                "replicas": self.replicas,
                "config": self.config,
            }
        )


def validate_topic_name(name: str) -> str | None:
    """Kafka's own rules for topic names; None when valid."""
    if not name:
        return "the topic name is empty"
    if len(name) > MAX_NAME:
        return f"the topic name is {len(name)} characters long; Kafka allows at most {MAX_NAME}"
    if name in (".", ".."):
        return f"{name!r} is not a valid topic name"
    if not TOPIC_NAME.match(name):
        bad = sorted({c for c in name if not re.match(r"[a-zA-Z0-9._-]", c)})
        return (
            f"topic name {name!r} has characters Kafka refuses ({''.join(bad)!r}); "
            "use letters, digits, '.', '_' and '-'"
        )
    return None


def _config_value(key: str, value) -> tuple[str | None, str | None]:
    """(value as Kafka wants it, error)."""
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None, f"config {key}: {value} is not a number Kafka accepts"
        text = repr(value)
        return (text[:-2] if text.endswith(".0") else text), None
    if isinstance(value, str):
        return value, None
    if isinstance(value, list):
        items = []
        for item in value:
            if isinstance(item, bool | dict | list) or item is None:
                return None, f"config {key}: list items must be strings or numbers"
            items.append(str(item))
        return ",".join(items), None
    if value is None:
        return None, f"config {key} has no value; remove the key to use Kafka's default"
    return None, f"config {key}: a {type(value).__name__} is not a valid value"


def _int_field(doc: dict, name: str, lo: int, hi: int) -> tuple[int | None, str | None]:
    if name not in doc or doc[name] is None:
        return None, None
    v = doc[name]
    if isinstance(v, bool) or not isinstance(v, int):
        return None, f"{name} must be an integer, got {type(v).__name__} {v!r}"[:300]
    if not lo <= v <= hi:
        return None, f"{name} must be between {lo} and {hi}, got {v}"
    return v, None


def parse(text: str | None, default_name: str) -> TopicSpec | SpecError:
    """Parses and validates ``data.spec``; ``default_name`` is the ConfigMap's name."""
    try:
        return _parse(text, default_name)
    except Exception as e:  # a spec must give a spec or an error, whatever it holds
        return SpecError("InvalidSpec", f"spec could not be read: {e}"[:500])


def _parse(text: str | None, default_name: str) -> TopicSpec | SpecError:
    doc = read_document(text, "topic", FIELDS)
    if isinstance(doc, SpecError):
        return doc
    name = doc.get("topicName")
    if name is None:
        name = default_name
    if not isinstance(name, str):
        return SpecError("InvalidSpec", f"topicName must be a string, got {name!r}"[:300])
    problem = validate_topic_name(name)
    if problem:
        return SpecError("InvalidTopicName", problem)
    partitions, err = _int_field(doc, "partitions", 1, MAX_PARTITIONS)
    if err:
        return SpecError("InvalidSpec", err)
    replicas, err = _int_field(doc, "replicas", 1, MAX_REPLICAS)
    if err:
        return SpecError("InvalidSpec", err)
    raw_config = doc.get("config") or {}
    if not isinstance(raw_config, dict):
        return SpecError(
            "InvalidSpec",
            "config must be a mapping of key: value, got " + type(raw_config).__name__,
        )
    config: dict[str, str] = {}
    for k, v in raw_config.items():
        if not isinstance(k, str) or not CONFIG_KEY.match(k):
            return SpecError("InvalidConfig", f"config key {k!r} is not a Kafka config name"[:300])
        value, err = _config_value(k, v)
        if err:
            return SpecError("InvalidConfig", err[:500])
        config[k] = value
    return TopicSpec(name, partitions, replicas, dict(sorted(config.items())))
