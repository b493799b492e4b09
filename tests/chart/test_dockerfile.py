"""The image's Dockerfile: hadolint clean, multi-stage, pinned, non-root, no build tools shipped."""

from __future__ import annotations

import re

from tests.chart.helpers import ROOT, run

DOCKERFILE = ROOT / "Dockerfile"


def stages() -> list[str]:
    return re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.M)[1:]


def test_hadolint_is_clean():
    proc = run(
        [ROOT / ".venv" / "bin" / "hadolint", "--config", ROOT / ".hadolint.yaml", DOCKERFILE]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def test_multi_stage_on_a_pinned_slim_python():
    """Every stage on one pinned tag of the slim python image; its repository is a build
    argument (make image may swap in a stand-in with that tag where no registry serves it)."""
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(bases) >= 2
    assert len(set(bases)) == 1, bases
    assert re.fullmatch(r"\$\{BASE_REPOSITORY\}:3\.11\.\d+-slim-\w+", bases[0]), bases
    default = re.search(r"^ARG BASE_REPOSITORY=(\S+)$", text, re.M)
    assert default and default.group(1) == "python"
    assert text.index(default.group(0)) < text.index("FROM ")


def test_final_stage_is_non_root_and_lean():
    final = stages()[-1]
    users = re.findall(r"^USER (\S+)$", final, re.M)
    assert users and re.fullmatch(r"\d+(:\d+)?", users[-1]), users
    assert int(users[-1].split(":")[0]) >= 1000
    assert not re.search(r"build-essential|gcc|g\+\+|make\b|-dev\b", final)
    # upstream version and Debian revision pinned; only the security suffix left open
    assert re.search(r"'stunnel4=3:5\.68-2\+deb12u\*'", final), "stunnel4 pinned from Debian"
    assert "--no-install-recommends" in final and "rm -rf /var/lib/apt/lists" in final
    assert "apt-get clean" in final
    assert "COPY --from=build" in final


def test_runtime_dependencies_only_and_pinned():
    build = stages()[0]
    assert "-c constraints.txt" in build
    for dep in (
        "kubernetes",
        "kafka-python",
        "prometheus-client",
        "flask",
        "waitress",
        "cryptography",
        "pyyaml",
        "kazoo",
    ):
        assert dep in build
    for dev in ("pytest", "ruff", "hypothesis", "hadolint"):
        assert dev not in build
    # each runtime dependency has an exact pin in requirements.txt
    reqs = (ROOT / "requirements.txt").read_text()
    for dep in (
        "kubernetes",
        "kafka-python",
        "prometheus-client",
        "flask",
        "waitress",
        "cryptography",
        "pyyaml",
        "kazoo",
    ):
        assert re.search(rf"^{re.escape(dep)}==\S+$", reqs, re.M), dep
