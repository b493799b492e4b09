"""Tenants: namespaces that declare topics and users under a name prefix of their own (pure).

The release namespace is the admin namespace: what it declares is not restricted here. Every
namespace listed in the chart's ``tenants`` value is a tenant with a prefix (``<namespace>.``
unless set). A tenant may:

- declare topics whose names start with its prefix;
- declare users whose names start with its prefix, and not a super user's name;
- grant its users ACLs on topics, groups and transactional ids whose names start with its
  prefix (literal names, or prefixed patterns that start with it); on the cluster only
  ``IdempotentWrite``: producers before Kafka 2.8 need it for idempotence, and it reads or
  changes nothing of anyone else. No ``*`` resource (it is outside every prefix);
- give its users quotas no higher than the tenant's ceiling, when the tenant has one (a user
  without a quota that the ceiling sets is unlimited, so above it).

Each rule gives a (reason, message) that names it; None means allowed. The chart refuses
overlapping prefixes at render time; :func:`parse_tenants` refuses them again, since the list
arrives in a ConfigMap anyone with access to the release namespace can edit.

The list reaches the agents as the ``tenants.yaml`` of the ConfigMap ``<fullname>-tenants``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

# Strimzi's quota names (the spec's and the ceiling's) -> Kafka's client-quota keys
CEILING_KEYS = {
    "producerByteRate": "producer_byte_rate",
    "consumerByteRate": "consumer_byte_rate",
    "requestPercentage": "request_percentage",
}
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PREFIX = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_PREFIX = 200
# the only cluster operation a tenant's user may hold (see the module's docstring)
CLUSTER_OPERATIONS = frozenset({"IDEMPOTENT_WRITE"})
NAMED_RESOURCES = {"TOPIC": "topic", "GROUP": "group", "TRANSACTIONAL_ID": "transactional id"}

Refusal = tuple[str, str]


class TenantsError(ValueError):
    """The tenant list cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Tenant:
    namespace: str
    prefix: str
    quota_ceiling: dict[str, float] = field(default_factory=dict, hash=False)  # Kafka keys


def _collision_form(prefix: str) -> str:
    # Kafka refuses a topic whose name differs from another's only in '.' versus '_'
    return prefix.replace("_", ".")


def parse_tenants(text: str | None, admin_namespace: str) -> tuple[Tenant, ...]:
    """The tenants of ``tenants.yaml``; TenantsError when the list cannot be used as a whole."""
    try:
        doc = yaml.safe_load(text or "") or []
    except yaml.YAMLError as e:
        raise TenantsError(f"tenants.yaml is not YAML: {e}") from None
    if not isinstance(doc, list):
        raise TenantsError("tenants.yaml must be a list of {namespace, prefix}")
    tenants: list[Tenant] = []
    for i, item in enumerate(doc):
        where = f"tenants[{i}]"
        if not isinstance(item, dict):
            raise TenantsError(f"{where} must be a mapping with namespace and prefix")
        unknown = set(item) - {"namespace", "prefix", "quotaCeiling"}
        if unknown:
            names = ", ".join(sorted(map(str, unknown)))
            raise TenantsError(f"{where} has unknown fields: {names}")
        ns = item.get("namespace")
        if not isinstance(ns, str) or not _NAMESPACE.match(ns) or len(ns) > 63:
            raise TenantsError(f"{where}.namespace {ns!r} is not a namespace name")
        if ns == admin_namespace:
            raise TenantsError(
                f"{where}: {ns} is the release namespace, which is the admin namespace already"
            )
        prefix = item.get("prefix", f"{ns}.")
        if (
            not isinstance(prefix, str)
            or not _PREFIX.match(prefix)
            or len(prefix) > MAX_PREFIX
            or prefix.startswith(("__", "."))
        ):
            raise TenantsError(
                f"{where}.prefix {prefix!r} must be 1-{MAX_PREFIX} of [a-zA-Z0-9._-], not "
                "starting with '__' or '.' (Kafka's internal names)"
            )
        tenants.append(Tenant(ns, prefix, _ceiling(item.get("quotaCeiling"), where)))
    _check_disjoint(tenants)
    return tuple(tenants)


def _ceiling(doc, where: str) -> dict[str, float]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise TenantsError(f"{where}.quotaCeiling must be a mapping")
    out = {}
    for name, value in doc.items():
        if name not in CEILING_KEYS:
            raise TenantsError(
                f"{where}.quotaCeiling.{name} is not one of {', '.join(CEILING_KEYS)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise TenantsError(f"{where}.quotaCeiling.{name} must be a number above 0")
        out[CEILING_KEYS[name]] = float(value)
    return out


def _check_disjoint(tenants: list[Tenant]) -> None:
    seen: dict[str, Tenant] = {}
    for t in tenants:
        if t.namespace in seen:
            raise TenantsError(f"namespace {t.namespace} is listed twice in tenants")
        for other in seen.values():
            a, b = _collision_form(t.prefix), _collision_form(other.prefix)
            if a.startswith(b) or b.startswith(a):
                raise TenantsError(
                    f"the prefixes of tenants {other.namespace} ({other.prefix!r}) and "
                    f"{t.namespace} ({t.prefix!r}) overlap: one tenant could declare the "
                    "other's topics; give them prefixes where neither starts with the other"
                )
        seen[t.namespace] = t


# ---- the rules -------------------------------------------------------------------------------
def topic_refusal(tenant: Tenant | None, topic: str) -> Refusal | None:
    """Why ``tenant`` may not declare ``topic`` (None: it may; no tenant: the admin may)."""
    if tenant is None or topic.startswith(tenant.prefix):
        return None
    return (
        "OutsideTenantPrefix",
        f"namespace {tenant.namespace} may only declare topics whose names start with "
        f"{tenant.prefix!r}; name it {tenant.prefix}{topic}, or ask an admin to declare "
        f"{topic} from the release namespace",
    )


def user_refusal(
    tenant: Tenant | None,
    name: str,
    acls: Iterable,
    quotas: dict[str, float],
    super_users: Iterable[str] = (),
) -> Refusal | None:
    """Why ``tenant`` may not declare the user ``name`` with ``acls`` (items with
    ``resource_type``, ``name``, ``pattern``, ``operation``) and ``quotas`` (Kafka's keys)."""
    if tenant is None:
        return None
    if not name.startswith(tenant.prefix):
        return (
            "OutsideTenantPrefix",
            f"namespace {tenant.namespace} may only declare users whose names start with "
            f"{tenant.prefix!r}; name the ConfigMap {tenant.prefix}{name}",
        )
    if f"User:{name}" in set(super_users) or f"User:CN={name}" in set(super_users):
        return ("ReservedUserName", f"{name} is a super user; a tenant may not declare it")
    for rule in acls:
        refusal = acl_refusal(tenant, rule)
        if refusal is not None:
            return refusal
    for key, ceiling in sorted(tenant.quota_ceiling.items()):
        value = quotas.get(key)
        if value is None or value > ceiling:
            label = next(k for k, v in CEILING_KEYS.items() if v == key)
            have = "none (unlimited)" if value is None else f"{value:g}"
            return (
                "QuotaAboveCeiling",
                f"namespace {tenant.namespace} allows quotas.{label} up to {ceiling:g}; "
                f"this user has {have}: set quotas.{label} to at most {ceiling:g}",
            )
    return None


def acl_refusal(tenant: Tenant, rule) -> Refusal | None:
    """Why ``tenant`` may not hold the ACL ``rule``."""
    if rule.resource_type == "CLUSTER":
        if rule.operation in CLUSTER_OPERATIONS:
            return None
        return (
            "TenantAclRefused",
            f"namespace {tenant.namespace} may hold no cluster ACL but IdempotentWrite; "
            f"{rule.operation} on the cluster reaches every tenant's resources",
        )
    kind = NAMED_RESOURCES.get(rule.resource_type)
    if kind is None:
        return (
            "TenantAclRefused",
            f"namespace {tenant.namespace} may hold ACLs on topics, groups and transactional "
            f"ids only, not on {rule.resource_type}",
        )
    if rule.name.startswith(tenant.prefix):
        return None
    shown = "every " + kind if rule.name == "*" else f"{kind} {rule.name!r}"
    what = "names starting with" if rule.pattern == "PREFIXED" else "the name"
    return (
        "TenantAclRefused",
        f"namespace {tenant.namespace} may only hold ACLs on resources under "
        f"{tenant.prefix!r}; an ACL on {shown} ({what} {rule.name!r}) reaches outside it",
    )


@dataclass(frozen=True)
class Tenancy:
    """Who may declare what: the admin namespace and the tenants."""

    admin_namespace: str
    tenants: tuple[Tenant, ...] = ()

    def namespaces(self) -> list[str]:
        return [self.admin_namespace, *(t.namespace for t in self.tenants)]

    def tenant_of(self, namespace: str | None) -> Tenant | None:
        """The tenant of ``namespace``; None for the admin namespace (and a bare key)."""
        for t in self.tenants:
            if t.namespace == namespace:
                return t
        return None
