"""checkov over every rendering of the values matrix and over the Dockerfile; every skipped
check is justified in chart/.checkov.yaml (manifests) or in the Dockerfile itself."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from tests.chart.helpers import CHART, MATRIX, ROOT, render_text

CHECKOV = ROOT / ".tools" / "checkov-venv" / "bin" / "checkov"


def _checkov(*args) -> dict:
    proc = subprocess.run(
        [str(CHECKOV), "--output", "json", "--quiet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "BC_SKIP_DOWNLOAD": "TRUE"},
    )
    assert proc.stdout, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize("case", MATRIX)
def test_rendered_manifests_pass_checkov(case, tmp_path):
    (tmp_path / "rendered.yaml").write_text(render_text("helm3", case))
    # no-netpol turns network policies off on purpose (clusters whose CNI ignores them), so
    # "pods without a NetworkPolicy" is what that case asks for
    # (a --skip-check on the command line replaces the config file's list, so extend that list)
    skips = yaml.safe_load((CHART / ".checkov.yaml").read_text())["skip-check"]
    skips = [*skips, "CKV2_K8S_6"] if case == "no-netpol" else skips
    report = _checkov(
        "--config-file", CHART / ".checkov.yaml", "--skip-check", ",".join(skips), "-d", tmp_path
    )
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert report["summary"]["passed"] > 100  # the scan really looked at the manifests


def test_dockerfile_passes_checkov():
    report = _checkov(
        "--framework", "dockerfile", "--skip-check", "CKV_DOCKER_2", "-f", ROOT / "Dockerfile"
    )
    # CKV_DOCKER_2 (HEALTHCHECK): the image runs agents, hooks and sidecars; Kubernetes probes
    # in the chart check each of them, a Docker HEALTHCHECK is ignored by Kubernetes.
    failed = [f"{c['check_id']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert not failed, "\n".join(failed)
    assert report["summary"]["passed"] > 5
