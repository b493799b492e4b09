"""Adapters of the migration hooks: the controllers' /metrics (the JMX exporter's text, parsed
with prometheus_client's parser), ZooKeeper's znodes read and deleted with kazoo over mutual
TLS (as agents/roller/zk.py reads /controller_epoch), and one broker config read."""

from __future__ import annotations

import urllib.request
from collections.abc import Sequence

from agents.roller.zk import TlsFiles, kazoo_client

from .signals import ControllerReading, reading

METRICS_TIMEOUT = 5.0


def parse_metrics(text: str) -> dict[str, float]:
    """Sample name -> value of the exporter's text (labels dropped: the controllers' gauges
    carry none; a name seen twice keeps its first sample)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, float(s.value))
    return out


def parse_addresses(spec: str | None) -> list[str]:
    """KAIRN_CONTROLLER_METRICS: `host:port,...` in ordinal order."""
    return [a.strip() for a in (spec or "").split(",") if a.strip()]


class ControllerMetrics:
    """Each controller's /metrics (plain HTTP on the exporter's port, as Prometheus reads it)."""

    def __init__(self, addresses: Sequence[str], timeout: float = METRICS_TIMEOUT):
        self.addresses, self.timeout = list(addresses), timeout

    def read(self) -> list[ControllerReading]:
        out = []
        for i, addr in enumerate(self.addresses):
            try:
                with urllib.request.urlopen(f"http://{addr}/metrics", timeout=self.timeout) as r:
                    text = r.read().decode(errors="replace")
                out.append(reading(i, parse_metrics(text)))
            except Exception as e:  # one unreadable controller is a finding, not a crash
                first = str(e).splitlines()[0] if str(e) else ""
                out.append(ControllerReading(i, error=f"{type(e).__name__}: {first}"[:200]))
        return out


class Znodes:
    """The znodes the migration reads and changes: /cluster/id, /controller, /controller_epoch,
    /migration. A
    fresh kazoo session per call: the hooks call it a few times per run, never in a tight loop
    for long, and a session must not outlive a ZooKeeper node's restart."""

    def __init__(self, nodes: Sequence[tuple[str, int]], tls: TlsFiles):
        self.nodes, self.tls = list(nodes), tls

    def _session(self, fn):
        zk = kazoo_client(self.nodes, self.tls)
        zk.start(timeout=15)
        try:
            return fn(zk)
        finally:
            zk.stop()
            zk.close()

    def read(self, path: str) -> bytes | None:
        from kazoo.exceptions import NoNodeError

        def get(zk):
            try:
                return zk.get(path)[0]
            except NoNodeError:
                return None

        return self._session(get)

    def read_many(self, *paths: str) -> dict[str, bytes | None]:
        from kazoo.exceptions import NoNodeError

        def get(zk):
            out = {}
            for p in paths:
                try:
                    out[p] = zk.get(p)[0]
                except NoNodeError:
                    out[p] = None
            return out

        return self._session(get)

    def write(self, path: str, data: bytes) -> None:
        """Set a znode's data, creating it if absent."""
        from kazoo.exceptions import NoNodeError

        def put(zk):
            try:
                zk.set(path, data)
            except NoNodeError:
                zk.create(path, data)

        self._session(put)

    def delete(self, path: str) -> bool:
        """Delete ``path`` (no children expected); False when it did not exist."""
        from kazoo.exceptions import NoNodeError

        def rm(zk):
            try:
                zk.delete(path)
                return True
            except NoNodeError:
                return False

        return self._session(rm)


def broker_setting(kafka, broker: int, key: str) -> str | None:
    """One broker config as the broker reports it, whatever its source (the file, a dynamic
    config or Kafka's default): e.g. inter.broker.protocol.version, whose default the roller's
    broker_config leaves out."""
    from kafka.admin import ConfigResource, ConfigResourceType

    def read(admin):
        res = [ConfigResource(ConfigResourceType.BROKER, str(broker), {key: None})]
        described = admin.describe_configs(res, config_filter="all")["broker"][str(broker)]
        return (described.get(key) or {}).get("value")

    return kafka._call(read)
