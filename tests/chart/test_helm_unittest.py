"""The helm-unittest suites in chart/tests pass, and they are substantial."""

from __future__ import annotations

import re

import yaml

from tests.chart.helpers import BIN, CHART, ROOT, run


def test_helm_unittest_suites_pass():
    proc = run([BIN / "helm-unittest", "--color=false", CHART])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"helm-unittest failed:\n{out}"
    m = re.search(r"Tests:\s+(\d+) passed, (\d+) total", out)
    assert m, f"no test summary in helm-unittest output:\n{out}"
    passed, total = int(m.group(1)), int(m.group(2))
    assert passed == total >= 60, out


def test_suites_cover_every_template_with_many_assertions():
    suites = [yaml.safe_load(p.read_text()) for p in sorted((CHART / "tests").glob("*_test.yaml"))]
    covered = {t for s in suites for t in s.get("templates", [])}
    templates = {
        str(p.relative_to(CHART))
        for p in (CHART / "templates").rglob("*")
        if p.is_file() and not p.name.startswith("_")
    }
    assert templates <= covered, f"templates without a suite: {sorted(templates - covered)}"
    assertions = sum(len(t.get("asserts", [])) for s in suites for t in s["tests"])
    failed_cases = sum(
        1 for s in suites for t in s["tests"] for a in t.get("asserts", []) if "failedTemplate" in a
    )
    assert assertions >= 60
    assert failed_cases >= 4
    assert (ROOT / "chart" / "tests").is_dir()
