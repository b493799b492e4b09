"""What the image carries, and what it must not: every command the chart runs is on PATH for
the chart's user under the chart's security context; no pip, no compiler, no package cache;
the SBOM `make image` writes lists the Debian and Python packages with versions."""

from __future__ import annotations

import json

import pytest

from devtools.kube.podman import IMAGE_STATE

from .conftest import chart_version

COMMANDS = ["kairn-topic-agent", "kairn-user-agent", "kairn-roller", "kairn-certs"]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_agent_command_starts_under_the_charts_security_context(pods, command):
    # the Job's container, with --help: the entry point imports everything it needs
    c = pods.container("Job", "kairn-certs", "certs", replace={"command": [command, "--help"]})
    done = c.run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "usage" in done.stdout.lower()


def test_user_root_and_build_tools(pods):
    script = (
        "id -u; id -g; "
        "for t in pip pip3 gcc cc make apt-get; do command -v $t >/dev/null && echo has:$t; done; "
        "ls /var/cache/apt/archives/*.deb /var/lib/apt/lists 2>/dev/null | grep -v '^/var/lib/apt/lists:$' | grep -v partial || true; "
        "/opt/kairn/bin/python -m pip --version 2>/dev/null && echo has:venv-pip; "
        "touch /should-fail 2>/dev/null && echo root-writable; "
        "stunnel -version 2>&1 | grep '^stunnel '"
    )
    c = pods.container("Job", "kairn-certs", "certs", replace={"command": ["sh", "-c", script]})
    done = c.run()
    lines = done.stdout.split()
    assert lines[:2] == ["10001", "10001"], done.stdout
    found = [x for x in lines if x.startswith("has:") and x != "has:apt-get"]
    assert not found, f"build tools in the image: {found}"
    assert ".deb" not in done.stdout, done.stdout
    assert "root-writable" not in done.stdout
    assert "stunnel 5.68" in done.stdout + done.stderr


def test_sbom_lists_debian_and_python_packages():
    bom = json.loads((IMAGE_STATE / f"kairn-{chart_version()}.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX"
    purls = [c.get("purl", "") for c in bom["components"]]
    assert any(p.startswith("pkg:deb/debian/stunnel4@3:5.68-2") for p in purls), purls
    assert any(p.startswith("pkg:deb/debian/libssl3@") for p in purls)
    for dist in ("kafka-python", "kubernetes", "cryptography", "kazoo", "waitress"):
        assert any(p.startswith(f"pkg:pypi/{dist}@") for p in purls), dist
    assert not any(p.startswith(("pkg:pypi/pip@", "pkg:pypi/setuptools@")) for p in purls)
    assert any("jmx_prometheus_javaagent@" in p for p in purls)
    assert bom["metadata"]["component"]["name"] == "kairn-agents"
