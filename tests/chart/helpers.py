"""Rendering the chart for the chart tier: values matrix, Helm binaries, manifest walking."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
BIN = ROOT / ".tools" / "bin"
HELMS = {"helm3": BIN / "helm", "helm4": BIN / "helm4"}
# The values matrix: the defaults plus every chart/ci/*.yaml file.
MATRIX = ["default", *sorted(p.stem for p in (CHART / "ci").glob("*.yaml"))]
# The cases in KRaft mode (kafka.metadata.mode: kraft), and those with ZooKeeper
KRAFT_CASES = ["kraft"]
ZOOKEEPER_MATRIX = [c for c in MATRIX if c not in KRAFT_CASES]
KUBE_VERSIONS = ["1.29.0", "1.34.0"]
RELEASE, NAMESPACE = "kairn", "kairn-test"

WORKLOADS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"}


def values_args(case: str) -> list[str]:
    return [] if case == "default" else ["-f", str(CHART / "ci" / f"{case}.yaml")]


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)


@functools.cache
def render_text(helm: str, case: str, *extra: str) -> str:
    """`helm template` output (hooks and test pods included)."""
    proc = run(
        [
            HELMS[helm],
            "template",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            *values_args(case),
            *extra,
        ]
    )
    assert proc.returncode == 0, f"{helm} template {case} failed:\n{proc.stderr}"
    return proc.stdout


def render(helm: str, case: str, *extra: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(render_text(helm, case, *extra)) if d]


def pod_specs(docs: list[dict]) -> Iterator[tuple[str, dict]]:
    """(`Kind/name`, pod spec) of every workload and bare pod."""
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in WORKLOADS:
            yield name, d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield name, d["spec"]


def containers(spec: dict) -> Iterator[dict]:
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])
    yield from spec.get("ephemeralContainers", [])


def find(docs: list[dict], kind: str, name: str) -> dict:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"{kind}/{name} not rendered")
