"""JSON schemas for the prometheus-operator kinds the chart renders: the part of the
monitoring.coreos.com/v1 CRD schemas (ServiceMonitor, PodMonitor, PrometheusRule) that the chart
uses, with
unknown fields refused, so a typo fails offline as it would fail against the CRD."""

from __future__ import annotations

_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _LABELS,
        "annotations": _LABELS,
    },
    "additionalProperties": False,
}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?"
    r"(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}


_ENDPOINTS = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {
            "port": {"type": "string"},
            "path": {"type": "string"},
            "interval": _DURATION,
        },
        "additionalProperties": False,
    },
}
_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": _LABELS},
    "additionalProperties": False,
}


def _object(kind: str, spec: dict) -> dict:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


SCHEMAS = {
    "ServiceMonitor": _object(
        "ServiceMonitor",
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {"selector": _SELECTOR, "endpoints": _ENDPOINTS},
            "additionalProperties": False,
        },
    ),
    "PodMonitor": _object(
        "PodMonitor",
        {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {"selector": _SELECTOR, "podMetricsEndpoints": _ENDPOINTS},
            "additionalProperties": False,
        },
    ),
    "PrometheusRule": _object(
        "PrometheusRule",
        {
            "type": "object",
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": _DURATION,
                                        "labels": _LABELS,
                                        "annotations": _LABELS,
                                    },
                                    "additionalProperties": False,
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    ),
}
