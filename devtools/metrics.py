"""Scrapes of the harness pods' /metrics (the JMX exporter java agent of brokers and ZooKeeper
nodes, loaded the way the chart loads it), for tests and benchmarks."""

from __future__ import annotations

import re
import time
import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from devtools.cluster import LocalCluster


@dataclass
class Scrape:
    text: str
    seconds: float  # from the request to the last byte

    @property
    def size(self) -> int:
        return len(self.text.encode())

    def samples(self) -> dict[str, list]:
        """sample name -> its samples (a counter's samples end in _total, a histogram's in
        _bucket, _count and _sum, as Prometheus stores them)."""
        out: dict[str, list] = {}
        for family in text_string_to_metric_families(self.text):
            for s in family.samples:
                out.setdefault(s.name, []).append(s)
        return out

    def families(self) -> list[str]:
        """Metric family names as the exposition declares them (a counter's with _total)."""
        return sorted(re.findall(r"(?m)^# TYPE (\S+) ", self.text))

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``; KeyError when there is
        no such sample."""
        found = [
            s.value
            for s in self.samples().get(name, [])
            if all(s.labels.get(k) == v for k, v in labels.items())
        ]
        if not found:
            raise KeyError(f"no sample {name}{labels or ''} in the scrape")
        return sum(found)


def metrics_port(cluster: LocalCluster, kind: str) -> int:
    """The http-metrics port of a component's main container, as the chart rendered it."""
    sts = cluster.rendering()[("StatefulSet", f"{cluster.fullname}-{kind}")]
    for c in sts["spec"]["template"]["spec"]["containers"]:
        for p in c.get("ports", []):
            if p["name"] == "http-metrics":
                return p["containerPort"]
    raise LookupError(f"the {kind} pods expose no http-metrics port (metrics.jmx.enabled off?)")


def scrape(cluster: LocalCluster, kind: str, i: int, timeout: float = 10) -> Scrape:
    url = f"http://{cluster.address(kind, i)}:{metrics_port(cluster, kind)}/metrics"
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        text = r.read().decode()
    return Scrape(text, time.perf_counter() - started)
