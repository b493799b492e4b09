"""The user spec: parsing and validation (pure; no I/O).

``data.spec`` holds YAML with the fields of Strimzi's ``KafkaUser`` v1beta2 ``spec`` that kairn
supports. The user name is the ConfigMap's name (as a KafkaUser's name is its user name).

```yaml
authentication:
  type: scram-sha-512            # or tls, or tls-external (no credentials are made)
  password:                      # scram-sha-512 only; a password is generated when absent
    valueFrom:
      secretKeyRef: {name: my-secret, key: password}
authorization:
  type: simple
  acls:
    - resource: {type: topic, name: orders, patternType: prefix}
      operations: [Read, Describe]     # or the older single `operation`
      host: "*"                        # default "*"
      type: allow                      # or deny; default allow
quotas: {producerByteRate: 1048576, consumerByteRate: 2097152,
         requestPercentage: 55, controllerMutationRate: 10}
template:
  secret: {metadata: {labels: {...}, annotations: {...}}}
```

:func:`parse` returns a :class:`UserSpec` or a :class:`SpecError` whose message a person can
act on; it never raises.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from agents.common.spec_base import SpecError, raw_hash, read_document, spec_hash, spec_reader

from .acls import (
    CLUSTER_NAME,
    OPERATION_LABELS,
    OPERATIONS,
    PATTERNS,
    RESOURCE_LABELS,
    RESOURCE_TYPES,
    VALID_OPERATIONS,
    AclRule,
)

__all__ = ["AclRule", "SpecError", "UserSpec", "parse", "raw_hash", "spec_hash", "spec_of"]

FIELDS = ("authentication", "authorization", "quotas", "template")
SCRAM, TLS, TLS_EXTERNAL = "scram-sha-512", "tls", "tls-external"
AUTH_TYPES = (SCRAM, TLS, TLS_EXTERNAL)
# X.509 caps a common name at 64 characters, so TLS user names are capped too
MAX_CN = 64
# Kafka stores SCRAM users and quota entities as ZooKeeper nodes; keep names to what
# Kubernetes allows for a Secret (the user's Secret is named after the user)
MAX_NAME = 253
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

# Strimzi quota names -> Kafka client-quota keys, and whether the value is an integer
QUOTAS = {
    "producerByteRate": ("producer_byte_rate", True),
    "consumerByteRate": ("consumer_byte_rate", True),
    "requestPercentage": ("request_percentage", True),
    "controllerMutationRate": ("controller_mutation_rate", False),
}
QUOTA_KEYS = tuple(k for k, _ in QUOTAS.values())
MAX_QUOTA = 2**63 - 1


@dataclass(frozen=True)
class PasswordRef:
    secret: str
    key: str


@dataclass(frozen=True)
class UserSpec:
    name: str
    auth: str | None = None  # scram-sha-512 | tls | tls-external | None
    password_ref: PasswordRef | None = None
    password_inline: str | None = field(default=None, repr=False)
    acls: tuple[AclRule, ...] = ()  # no authorization: the user has no ACLs
    quotas: dict[str, float] = field(default_factory=dict)  # Kafka key -> value
    secret_labels: dict[str, str] = field(default_factory=dict)
    secret_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def principal(self) -> str:
        return f"User:{self.name}"

    @property
    def hash(self) -> str:
        # never the password itself: the hash lands in the status annotation
        return spec_hash(
            {
                "name": self.name,
                "auth": self.auth,
                "passwordRef": [self.password_ref.secret, self.password_ref.key]
                if self.password_ref
                else None,
                "passwordInline": self.password_inline is not None,
                "acls": [list(a.__dict__.values()) for a in self.acls],
                "quotas": self.quotas,
                "labels": self.secret_labels,
                "annotations": self.secret_annotations,
            }
        )

    @property
    def has_secret(self) -> bool:
        return self.auth in (SCRAM, TLS)


class _Invalid(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def _fail(message: str, reason: str = "InvalidSpec"):
    raise _Invalid(reason, message[:600])


def _mapping(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(f"{what} must be a mapping, got {type(value).__name__}")
    return value


def _only(doc: dict, allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(str(k) for k in doc if k not in allowed)
    if unknown:
        _fail(
            f"unknown field(s) in {what}: {', '.join(unknown)}; allowed: {', '.join(allowed)}",
            "UnknownField",
        )


def _string(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        _fail(f"{what} must be a non-empty string, got {value!r}"[:200])
    return value


def validate_user_name(name: str, auth: str | None = None) -> str | None:
    """Why ``name`` cannot be a Kafka user (None when it can)."""
    if not name:
        return "the user name is empty"
    if len(name) > MAX_NAME or not K8S_NAME.match(name):
        return (
            f"user name {name!r} is not a valid Kubernetes object name, so its Secret cannot "
            "be written; use lower-case letters, digits, '-' and '.'"
        )
    if auth == TLS and len(name) > MAX_CN:
        return (
            f"user name {name!r} is {len(name)} characters long; a TLS user's name is its "
            f"certificate's common name, which X.509 limits to {MAX_CN} characters"
        )
    return None


def _authentication(doc) -> tuple[str | None, PasswordRef | None, str | None]:
    if doc is None:
        return None, None, None
    auth = _mapping(doc, "authentication")
    _only(auth, ("type", "password"), "authentication")
    typ = auth.get("type")
    if typ not in AUTH_TYPES:
        _fail(
            f"authentication.type must be one of {', '.join(AUTH_TYPES)}, got {typ!r}"[:300],
            "InvalidAuthentication",
        )
    if "password" not in auth or auth["password"] is None:
        return typ, None, None
    if typ != SCRAM:
        _fail(
            f"authentication.password is only for scram-sha-512 users, not {typ}",
            "InvalidAuthentication",
        )
    pw = auth["password"]
    if isinstance(pw, str):
        pw = {"value": pw}
    pw = _mapping(pw, "authentication.password")
    _only(pw, ("value", "valueFrom"), "authentication.password")
    inline, ref = pw.get("value"), pw.get("valueFrom")
    if inline is not None and ref is not None:
        _fail(
            "authentication.password has both an inline value and valueFrom; give one of them "
            "(valueFrom.secretKeyRef keeps the password out of the ConfigMap)",
            "InvalidAuthentication",
        )
    if ref is not None:
        ref = _mapping(ref, "authentication.password.valueFrom")
        _only(ref, ("secretKeyRef",), "authentication.password.valueFrom")
        skr = _mapping(ref.get("secretKeyRef"), "authentication.password.valueFrom.secretKeyRef")
        _only(skr, ("name", "key"), "authentication.password.valueFrom.secretKeyRef")
        name = _string(skr.get("name"), "authentication.password.valueFrom.secretKeyRef.name")
        key = _string(skr.get("key"), "authentication.password.valueFrom.secretKeyRef.key")
        return typ, PasswordRef(name, key), None
    if inline is not None:
        if not isinstance(inline, str) or not inline:
            _fail(
                "authentication.password.value must be a non-empty string", "InvalidAuthentication"
            )
        return typ, None, inline
    _fail(
        "authentication.password needs valueFrom.secretKeyRef (or value)", "InvalidAuthentication"
    )
    return typ, None, None  # pragma: no cover


def _acl(i: int, rule) -> list[AclRule]:
    where = f"authorization.acls[{i}]"
    rule = _mapping(rule, where)
    _only(rule, ("resource", "type", "host", "operation", "operations"), where)
    res = _mapping(rule.get("resource"), f"{where}.resource")
    if not res:
        _fail(f"{where}.resource is missing", "InvalidAcl")
    rtype_raw = res.get("type")
    rtype = RESOURCE_TYPES.get(str(rtype_raw).lower()) if isinstance(rtype_raw, str) else None
    if rtype is None:
        _fail(
            f"{where}.resource.type {rtype_raw!r} is not a resource type; use one of "
            "topic, group, cluster, transactionalId",
            "InvalidAcl",
        )
    if rtype == "CLUSTER":
        _only(res, ("type",), f"{where}.resource (a cluster resource has no name)")
        name, pattern = CLUSTER_NAME, "LITERAL"
    else:
        _only(res, ("type", "name", "patternType"), f"{where}.resource")
        name = _string(res.get("name"), f"{where}.resource.name")
        ptype = res.get("patternType", "literal")
        pattern = PATTERNS.get(str(ptype).lower()) if isinstance(ptype, str) else None
        if pattern is None:
            _fail(f"{where}.resource.patternType {ptype!r} is not literal or prefix", "InvalidAcl")
    perm_raw = rule.get("type", "allow")
    perm = {"allow": "ALLOW", "deny": "DENY"}.get(str(perm_raw).lower())
    if perm is None or not isinstance(perm_raw, str):
        _fail(f"{where}.type {perm_raw!r} is not allow or deny", "InvalidAcl")
    host = rule.get("host", "*")
    host = _string(host, f"{where}.host")
    if "operation" in rule and "operations" in rule:
        _fail(f"{where} has both operation and operations; use operations", "InvalidAcl")
    ops_raw = rule.get("operations") if "operations" in rule else [rule.get("operation")]
    if not isinstance(ops_raw, list) or not ops_raw:
        _fail(f"{where}.operations must be a non-empty list", "InvalidAcl")
    out = []
    for op_raw in ops_raw:
        op = OPERATIONS.get(op_raw.lower()) if isinstance(op_raw, str) else None
        if op is None:
            _fail(
                f"{where}: {op_raw!r} is not an ACL operation; use one of "
                + ", ".join(OPERATION_LABELS.values()),
                "InvalidAcl",
            )
        if op not in VALID_OPERATIONS[rtype]:
            allowed = ", ".join(OPERATION_LABELS[o] for o in sorted(VALID_OPERATIONS[rtype]))
            _fail(
                f"{where}: {OPERATION_LABELS[op]} does not apply to a "
                f"{RESOURCE_LABELS[rtype]} resource; use one of {allowed}",
                "InvalidAcl",
            )
        out.append(AclRule(rtype, name, pattern, op, perm, host))
    return out


def _authorization(doc) -> tuple[AclRule, ...]:
    if doc is None:
        return ()
    authz = _mapping(doc, "authorization")
    _only(authz, ("type", "acls"), "authorization")
    if authz.get("type") != "simple":
        _fail(
            f"authorization.type must be simple, got {authz.get('type')!r}"[:200],
            "InvalidAuthorization",
        )
    acls = authz.get("acls") or []
    if not isinstance(acls, list):
        _fail("authorization.acls must be a list", "InvalidAcl")
    rules: set[AclRule] = set()
    for i, rule in enumerate(acls):
        rules.update(_acl(i, rule))
    return tuple(sorted(rules))


def _quotas(doc) -> dict[str, float]:
    q = _mapping(doc, "quotas")
    _only(q, tuple(QUOTAS), "quotas")
    out: dict[str, float] = {}
    for name, value in q.items():
        if value is None:
            continue
        key, integer = QUOTAS[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(f"quotas.{name} must be a number, got {value!r}"[:200], "InvalidQuota")
        if value != value or value < 0 or value > MAX_QUOTA:
            _fail(f"quotas.{name} must be between 0 and {MAX_QUOTA}, got {value}", "InvalidQuota")
        if integer and (isinstance(value, float) and not value.is_integer()):
            _fail(f"quotas.{name} must be a whole number, got {value}", "InvalidQuota")
        out[key] = float(value)
    return dict(sorted(out.items()))


def _string_map(value, what: str) -> dict[str, str]:
    m = _mapping(value, what)
    out = {}
    for k, v in m.items():
        if not isinstance(k, str) or not isinstance(v, str | int | float | bool):
            _fail(f"{what} must map strings to strings")
        out[k] = v if isinstance(v, str) else json.dumps(v)
    return dict(sorted(out.items()))


def _template(doc) -> tuple[dict[str, str], dict[str, str]]:
    t = _mapping(doc, "template")
    _only(t, ("secret",), "template")
    s = _mapping(t.get("secret"), "template.secret")
    _only(s, ("metadata",), "template.secret")
    m = _mapping(s.get("metadata"), "template.secret.metadata")
    _only(m, ("labels", "annotations"), "template.secret.metadata")
    labels = _string_map(m.get("labels"), "template.secret.metadata.labels")
    for k in labels:
        if k.startswith("kairn.dev/"):
            _fail(f"template.secret.metadata.labels: {k} is kept by kairn")
    return labels, _string_map(m.get("annotations"), "template.secret.metadata.annotations")


def parse(text: str | None, name: str) -> UserSpec | SpecError:
    """Parses and validates ``data.spec``; ``name`` is the ConfigMap's (the user's) name."""
    try:
        return _parse(text, name)
    except _Invalid as e:
        return SpecError(e.reason, e.message)
    except Exception as e:  # a spec gives a spec or an error, whatever it holds
        return SpecError("InvalidSpec", f"spec could not be read: {e}"[:500])


def _parse(text: str | None, name: str) -> UserSpec:
    doc = read_document(text, "user", FIELDS)
    if isinstance(doc, SpecError):
        _fail(doc.message, doc.reason)
    auth, ref, inline = _authentication(doc.get("authentication"))
    problem = validate_user_name(name, auth)
    if problem:
        _fail(problem, "InvalidUserName")
    acls = _authorization(doc.get("authorization"))
    quotas = _quotas(doc.get("quotas"))
    labels, annotations = _template(doc.get("template"))
    return UserSpec(name, auth, ref, inline, acls, quotas, labels, annotations)


# the parsed spec of a user ConfigMap, parses cached (a resync parses nothing again)
spec_of = spec_reader(parse)
