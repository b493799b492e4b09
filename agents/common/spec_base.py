"""What the agents' spec parsers share (pure; no I/O).

- :class:`SpecError`: what a parser returns for a spec that cannot be used, with a reason
  (the status ``reason``) and a message a person can act on.
- :func:`spec_hash` (of a parsed spec) and :func:`raw_hash` (of the text, when it does not
  parse): the ``specHash`` of the status annotation.
- :func:`read_document`: ``data.spec`` as a mapping of known fields, or the SpecError that
  says why it is not one (missing, not YAML, not a mapping, unknown fields).
- :func:`spec_reader`: ``spec_of(obj)`` for a parser, with the parses cached by text and name,
  so a resync of thousands of unchanged ConfigMaps parses nothing again.

Usage (see agents/user_agent/spec.py)::

    def parse(text, name) -> UserSpec | SpecError:
        doc = read_document(text, "user", FIELDS)
        if isinstance(doc, SpecError):
            return doc
        ...

    spec_of = spec_reader(parse)          # spec_of(configmap) -> UserSpec | SpecError
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import yaml

try:  # libyaml when present: ten times faster for thousands of ConfigMaps
    SafeLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    SafeLoader = yaml.SafeLoader

MAX_YAML_MESSAGE = 600
PARSE_CACHE = 32768  # parsed specs kept (one per ConfigMap is enough)

S = TypeVar("S")


@dataclass(frozen=True)
class SpecError:
    reason: str
    message: str


def spec_hash(value) -> str:
    """A short stable hash of a JSON-able value (what the status annotation records)."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def raw_hash(text: str | None) -> str:
    """The hash of a spec's text, for a spec that does not parse."""
    return hashlib.sha256((text or "").encode()).hexdigest()[:16]


def raw_spec(obj: dict) -> str | None:
    """The text of a ConfigMap's ``data.spec`` (None when absent)."""
    return (obj.get("data") or {}).get("spec")


def read_document(text: str | None, kind: str, fields: tuple[str, ...]) -> dict | SpecError:
    """``text`` loaded with a safe loader: a mapping whose keys are all in ``fields`` (an empty
    document is an empty mapping), or the SpecError saying why not. ``kind`` names the spec in
    the message about a missing ``data.spec`` ("topic", "user")."""
    if text is None:
        return SpecError("InvalidSpec", f"data.spec is missing: put the {kind} spec (YAML) there")
    try:
        doc = yaml.load(text, Loader=SafeLoader)  # a safe loader
    except yaml.YAMLError as e:
        detail = str(e).replace("\n", " ")
        return SpecError("InvalidYAML", f"data.spec is not valid YAML: {detail}"[:MAX_YAML_MESSAGE])
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        return SpecError(
            "InvalidSpec", f"data.spec must be a mapping of fields, got a {type(doc).__name__}"
        )
    unknown = sorted(str(k) for k in doc if k not in fields)
    if unknown:
        return SpecError(
            "UnknownField",
            f"unknown field(s) in spec: {', '.join(unknown)}; allowed: {', '.join(fields)}",
        )
    return doc


def spec_reader(parse: Callable[[str | None, str], S]) -> Callable[[dict], S]:
    """``spec_of(obj)``: ``parse(data.spec, the ConfigMap's name)``, cached by both (a parse
    is pure, so the same text and name always give the same answer)."""
    cached = lru_cache(maxsize=PARSE_CACHE)(parse)

    def spec_of(obj: dict) -> S:
        return cached(raw_spec(obj), (obj.get("metadata") or {})["name"])

    spec_of.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return spec_of
