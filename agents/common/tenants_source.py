"""The tenant list, read from its ConfigMap in the agent's namespace and watched, so that a
``helm upgrade`` that adds or removes a tenant takes effect without restarting the agents.

The chart renders ``<fullname>-tenants`` (labels ``kairn.dev/cluster=<release>``,
``kairn.dev/type=tenants``; ``data.tenants.yaml``). A list that cannot be used is refused as a
whole: the previous one stays, and the refusal is logged and recorded as a Warning Event on the
ConfigMap. A namespace removed from the list is no longer watched; what its ConfigMaps declared
is left in Kafka as it is, which the log and ``kairn_tenant_resources_left`` say.
"""

from __future__ import annotations

from collections.abc import Callable

from kubernetes import client

from .informer import Informer
from .logs import get_logger
from .metrics import Metrics
from .status import StatusReporter, meta
from .tenancy import Tenancy, TenantsError, parse_tenants

TENANTS_KEY = "tenants.yaml"

# called with the new tenancy; returns, per namespace no longer watched, how many resources
# it declared
OnChange = Callable[[Tenancy], dict[str, int]]


class TenantsSource:
    def __init__(
        self,
        core: client.CoreV1Api,
        cluster: str,
        namespace: str,
        configmap: str | None,
        metrics: Metrics,
        reporter: StatusReporter,
        on_change: OnChange,
        agent: str,
    ):
        """``configmap``: the tenant list's ConfigMap (None: no tenants, nothing watched)."""
        self.configmap, self.metrics, self.reporter = configmap, metrics, reporter
        self.on_change = on_change
        self.current = Tenancy(namespace)
        self.log = get_logger(f"kairn.{agent}-agent")
        self.informer = Informer(
            core,
            namespace,
            f"kairn.dev/cluster={cluster},kairn.dev/type=tenants",
            self._changed,
            metrics=metrics,
            name=f"{agent}-tenants-informer",
        )

    def __call__(self) -> Tenancy:
        return self.current

    def _changed(self, key: str, old: dict | None, new: dict | None) -> None:
        if key != self.configmap:
            return
        text = None if new is None else (new.get("data") or {}).get(TENANTS_KEY)
        try:
            tenants = parse_tenants(text, self.current.admin_namespace)
        except TenantsError as e:
            self.log.error("tenant list refused; the previous one stays", error=str(e))
            if new is not None:
                self.reporter.event(new, "TenantsRefused", str(e), warning=True)
            return
        tenancy = Tenancy(self.current.admin_namespace, tenants)
        if tenancy == self.current:
            return
        left = self.on_change(tenancy)
        self.current = tenancy
        for ns, resources in sorted(left.items()):
            self.log.warning(
                "namespace removed from the tenants: it is no longer watched, and what it "
                "declared is left in Kafka as it is",
                namespace=ns,
                resources=resources,
            )
            self.metrics.tenant_left(ns, resources)
        for t in tenants:
            self.metrics.tenant_back(t.namespace)
        self.metrics.set_tenants(len(tenants))
        self.log.info(
            "tenants",
            tenants=[f"{t.namespace}={t.prefix}" for t in tenants],
            configmap=meta(new)["name"] if new else None,
        )

    def run(self) -> None:
        if self.configmap:
            self.informer.run()

    def stop(self) -> None:
        self.informer.stop()
