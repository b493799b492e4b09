"""Every command the chart runs in the kairn image exists in it: a console script of the
package (pyproject.toml, plus the fixed command names of the design) or a binary the Dockerfile
installs. Commands in the Apache Kafka image are its own scripts or bash."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.chart.helpers import KRAFT_CASES, MATRIX, ROOT, containers, pod_specs, render

FIXED_COMMANDS = {"kairn-topic-agent", "kairn-user-agent", "kairn-roller", "kairn-certs"}
KAFKA_SCRIPTS = {
    "/opt/kafka/bin/kafka-server-start.sh",
    "/opt/kafka/bin/zookeeper-server-start.sh",
    "/opt/kafka/bin/kafka-storage.sh",
    "/bin/bash",
}


def console_scripts() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project.get("scripts", {}))


def dockerfile_binaries() -> set[str]:
    """Binaries of the final image that the chart may call: stunnel from the stunnel4 package
    installed in the last stage, python3 from the python base image of that stage, and cp of
    the Debian coreutils under it (the init container that copies the JMX exporter agent)."""
    text = (ROOT / "Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]
    found = set()
    if re.search(r"apt-get install[^\n]*(\\\n[^\n]*)*\bstunnel4=", final):
        found |= {"stunnel", "stunnel4"}
    if re.match(r"(python|\$\{BASE_REPOSITORY\}):3\.11\.\d+-slim-(bookworm|trixie)", final):
        found |= {"python3", "cp"}
    return found


def commands(spec: dict):
    for c in containers(spec):
        if c.get("command"):
            yield c["image"], c["command"][0]
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            exec_ = c.get(probe, {}).get("exec")
            if exec_:
                yield c["image"], exec_["command"][0]


def test_dockerfile_provides_the_sidecar_binaries():
    assert {"stunnel", "python3"} <= dockerfile_binaries()


@pytest.mark.parametrize("case", MATRIX)
def test_every_command_exists_in_its_image(case):
    allowed_kairn = FIXED_COMMANDS | console_scripts() | dockerfile_binaries()
    seen = set()
    for name, spec in pod_specs(render("helm3", case)):
        for image, cmd in commands(spec):
            seen.add(cmd)
            if "/kairn/kairn" in image or "kairn/kairn:" in image:
                assert cmd in allowed_kairn, f"{name}: {cmd} is not in the kairn image"
            else:
                assert "apache/kafka" in image, f"{name}: unexpected image {image}"
                assert cmd in KAFKA_SCRIPTS, f"{name}: {cmd} is not in the Kafka image"
    # KRaft mode has no TLS sidecar: its brokers' readiness check runs in a python3 sidecar
    assert ({"python3"} if case in KRAFT_CASES else {"stunnel"}) | {"kairn-certs"} <= seen


def test_declared_console_scripts_point_into_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, target in project.get("scripts", {}).items():
        module = target.split(":")[0]
        assert module.startswith("agents."), f"{name} -> {target}"
        path = ROOT / (module.replace(".", "/") + ".py")
        package = ROOT / module.replace(".", "/") / "__init__.py"
        assert path.exists() or package.exists(), f"{name}: {module} not found"
