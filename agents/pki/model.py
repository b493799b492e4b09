"""What kairn-certs manages: the desired set, Secret names and keys (docs/wiring.md), SANs."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from agents.common.settings import DEFAULT_CERT_RENEWAL_DAYS, DEFAULT_CERT_VALIDITY_DAYS

# Annotations and labels kairn-certs reads or writes.
GENERATION = "kairn.dev/ca-generation"  # on <kind>-ca-cert: generation of the signing CA
FORCE_REPLACE = "kairn.dev/force-replace"  # on <kind>-ca, set by a person: start a replacement
RENEWED_AT = "kairn.dev/renewed-at"  # on component Secrets: JSON {pod: time material changed}
MANAGED_BY = {"app.kubernetes.io/managed-by": "kairn-certs"}

KINDS = ("cluster", "clients")
LEAF_KEYS = ("crt", "key", "p12", "password")
# The private key of a replacement CA while it is trusted but not yet signing (see plan.py).
NEXT_KEY = "ca-next.key"


@dataclass(frozen=True)
class Secret:
    """A Secret as kairn-certs sees it: data (decoded bytes), metadata, and the version the store
    returned, so that a replace fails instead of overwriting a concurrent change."""

    data: Mapping[str, bytes]
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    resource_version: str | None = None
    type: str = "Opaque"  # kept as found: Kubernetes refuses to change a Secret's type


@dataclass(frozen=True)
class Desired:
    fullname: str
    namespace: str
    zookeeper_replicas: int = 3
    kafka_replicas: int = 3
    cluster_domain: str = "cluster.local"
    validity_days: int = DEFAULT_CERT_VALIDITY_DAYS
    renewal_days: int = DEFAULT_CERT_RENEWAL_DAYS
    ca_validity_days: int = 5 * 365  # like Strimzi: CAs live five years, leaves one
    kafka_extra_sans: tuple[str, ...] = ()  # e.g. external listener names; Kafka only
    controller_replicas: int = 0  # KRaft controllers; 0 in ZooKeeper mode
    # during the migration the cluster id is ZooKeeper's: the preflight hook writes the KRaft
    # cluster Secret (agents/migration), this hook only checks it once it exists
    kraft_cluster_from_zookeeper: bool = False
    controller_extra_sans: tuple[str, ...] = ()  # KRaft controllers only
    release: str = ""  # when set, written Secrets get the label kairn.dev/cluster: <release>

    @property
    def labels(self) -> dict[str, str]:
        return {**MANAGED_BY, **({"kairn.dev/cluster": self.release} if self.release else {})}

    @property
    def renewal(self) -> timedelta:
        return timedelta(days=self.renewal_days)

    def ca_cert_secret(self, kind: str) -> str:
        return f"{self.fullname}-{kind}-ca-cert"

    def ca_key_secret(self, kind: str) -> str:
        return f"{self.fullname}-{kind}-ca"

    @property
    def agents_secret(self) -> str:
        return f"{self.fullname}-agents-cert"

    @property
    def agents_cn(self) -> str:
        return f"{self.fullname}-agents"

    @property
    def kraft_secret(self) -> str:
        """The KRaft cluster id and initial voters (agents/pki/kraft.py); KRaft mode only."""
        return f"{self.fullname}-kraft-cluster"

    def components(self) -> list[Component]:
        found = [self._component("zookeeper"), self._component("kafka")]
        return found + ([self._component("controller")] if self.controller_replicas else [])

    def _component(self, name: str) -> Component:
        f, ns, dom = self.fullname, self.namespace, self.cluster_domain
        headless, service, n, extra = {
            "zookeeper": (
                f"{f}-zookeeper-nodes",
                f"{f}-zookeeper-client",
                self.zookeeper_replicas,
                (),
            ),
            "kafka": (
                f"{f}-kafka-brokers",
                f"{f}-kafka-bootstrap",
                self.kafka_replicas,
                self.kafka_extra_sans,
            ),
            # KRaft controllers: no Service but their headless one; reached by pod name only
            "controller": (
                f"{f}-kafka-controllers",
                None,
                self.controller_replicas,
                self.controller_extra_sans,
            ),
        }[name]
        shared = (
            [service, f"{service}.{ns}", f"{service}.{ns}.svc", f"{service}.{ns}.svc.{dom}"]
            if service
            else []
        )
        shared += ["localhost", *extra]
        pods = {}
        for i in range(n):
            pod = f"{f}-{name}-{i}"
            own = [f"{pod}.{headless}.{ns}.svc.{dom}", f"{pod}.{headless}.{ns}.svc"]
            own += [f"{pod}.{headless}.{ns}", f"{pod}.{headless}"]
            pods[pod] = split_sans([*own, *shared, "127.0.0.1"])
        # Kafka brokers also accept users signed by the clients CA, so they trust both CAs.
        trusts = KINDS if name == "kafka" else ("cluster",)
        # Controllers carry the brokers' CN: one principal, the brokers' super user, for every
        # node of the cluster (StandardAuthorizer checks controller-to-controller requests too).
        cn = f"{f}-kafka" if name == "controller" else f"{f}-{name}"
        return Component(name, headless, cn, pods, trusts)


@dataclass(frozen=True)
class Component:
    """A StatefulSet's certificates: one Secret (named after the headless Service) holding
    `<pod>.crt|key|p12|password` for every pod, all with the same CN."""

    name: str
    secret: str
    cn: str
    pods: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]  # pod -> (DNS SANs, IP SANs)
    trusts: tuple[str, ...]


def split_sans(names: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IPs) in first-seen order, without duplicates."""
    dns, ips = [], []
    for n in dict.fromkeys(names):
        try:
            ips.append(str(ipaddress.ip_address(n)))
        except ValueError:
            dns.append(n)
    return tuple(dns), tuple(ips)
