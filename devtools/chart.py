"""The chart as the harness renders it: `helm template` with the harness' small settings."""

from __future__ import annotations

import subprocess

import yaml

from devtools import ROOT, TOOLS

CHART = ROOT / "chart"
HELM = TOOLS / "bin" / "helm"

# Small and quick for a 2-core machine; everything else is the chart's default.
HARNESS_VALUES = {
    "zookeeper": {"heapOpts": "-Xms96m -Xmx96m"},
    "kafka": {
        "heapOpts": "-Xms384m -Xmx384m",
        "config": {
            "offsets.topic.num.partitions": 6,
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 2,
        },
    },
}


def helm_template(release: str, namespace: str, values: dict, upgrade: bool = False) -> list[dict]:
    """The chart's manifests for ``values``, as `helm install` (or `helm upgrade`) would send
    them."""
    out = subprocess.run(
        [str(HELM), "template", release, str(CHART), "--namespace", namespace, "--values", "-"]
        + (["--is-upgrade"] if upgrade else []),
        input=yaml.safe_dump(values),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"helm template failed: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = (
            deep_merge(merged[k], v)
            if isinstance(v, dict) and isinstance(merged.get(k), dict)
            else v
        )
    return merged
