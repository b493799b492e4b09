"""The JMX exporter java agent reaches the pods: the image carries it where the chart's init
container copies it from, resolved from the same pom (one pin) as `make setup` uses for the
harness, and the harness maps that image path to the folder setup fills."""

from __future__ import annotations

import re

from devtools.podspec import IMAGE_PATHS
from tests.chart.helpers import ROOT, find, render

JAR = "/opt/kairn/jmx/jmx_prometheus_javaagent.jar"


def test_the_init_containers_copy_the_jar_the_image_carries():
    dockerfile = (ROOT / "Dockerfile").read_text()
    final = dockerfile.split("\nFROM ")[-1]
    assert re.search(rf"^COPY --from=jmx \S+ {re.escape(JAR)}$", final, re.M)
    assert "COPY tools/jmx/pom.xml" in dockerfile
    docs = render("helm3", "default")
    for sts in ("kairn-kafka", "kairn-zookeeper"):
        spec = find(docs, "StatefulSet", sts)["spec"]["template"]["spec"]
        (init,) = [c for c in spec["initContainers"] if c["name"] == "jmx-agent"]
        assert init["command"][1] == JAR


def test_setup_and_the_harness_use_the_same_jar():
    setup = (ROOT / "scripts" / "setup-jmx.sh").read_text()
    assert "tools/jmx/pom.xml" in setup and "jmx_prometheus_javaagent.jar" in setup
    assert IMAGE_PATHS["/opt/kairn/jmx"] == ROOT / ".tools" / "jmx"
    assert (ROOT / ".tools" / "jmx" / "jmx_prometheus_javaagent.jar").is_file(), "make setup"
