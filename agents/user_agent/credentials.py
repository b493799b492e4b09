"""A user's credentials and the Secret that carries them (pure, apart from key generation).

The Secret is named after the user and laid out as Strimzi lays it out:

- SCRAM-SHA-512: ``password`` and ``sasl.jaas.config``;
- TLS: ``user.crt``, ``user.key`` (PKCS#8 PEM), ``user.p12`` (a PKCS#12 keystore with the
  key, the certificate and the clients CA), ``user.password`` (the keystore's password) and
  ``clients-ca.crt`` (the clients CA, which Strimzi calls ``ca.crt``);
- both: ``ca.crt``, the cluster CA that signs the brokers, so that a client (a tenant's in
  its own namespace too) needs nothing else to connect. Strimzi puts the clients CA there for
  TLS users; a client has no use for it, and one key for the truststore serves both kinds.

It carries the labels ``kairn.dev/cluster`` and ``kairn.dev/user`` and an owner reference to
its ConfigMap (so Kubernetes removes it with the ConfigMap); a Secret without that owner
reference is never changed or deleted.
"""

from __future__ import annotations

import base64
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from agents.pki import issue as pki

USER_LABEL = "kairn.dev/user"
CLUSTER_LABEL = "kairn.dev/cluster"
MANAGED_BY = "app.kubernetes.io/managed-by"
PASSWORD_LENGTH = 32
_ALNUM = string.ascii_letters + string.digits


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """``length`` alphanumeric characters, a letter first."""
    return secrets.choice(string.ascii_letters) + "".join(
        secrets.choice(_ALNUM) for _ in range(length - 1)
    )


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def jaas_config(user: str, password: str) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{_jaas_quote(user)}" password="{_jaas_quote(password)}";'
    )


def b64(value: bytes | str) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def unb64(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None


def scram_data(user: str, password: str, cluster_ca: bytes | None = None) -> dict[str, str]:
    """The ``data`` of a SCRAM user's Secret (base64 values)."""
    data = {"password": b64(password), "sasl.jaas.config": b64(jaas_config(user, password))}
    if cluster_ca:
        data["ca.crt"] = b64(cluster_ca)
    return data


def secret_password(secret: dict | None) -> str | None:
    """The ``password`` a user's Secret holds (None when absent or unreadable)."""
    if not secret:
        return None
    raw = unb64((secret.get("data") or {}).get("password"))
    try:
        return raw.decode() if raw else None
    except UnicodeDecodeError:
        return None


# ---- TLS ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientsCa:
    """The clients CA: the pair that signs, and the bundle users trust (``ca.crt``)."""

    signer: pki.KeyPair
    bundle: bytes

    @staticmethod
    def load(ca_crt: bytes, ca_key: bytes) -> ClientsCa:
        return ClientsCa(pki.signing_ca(ca_crt, ca_key), ca_crt)


def tls_data(ca: ClientsCa, user: str, now: datetime, days: int) -> dict[str, str]:
    """A fresh key and certificate (``CN=<user>``, signed by the clients CA) as Secret data."""
    pair = pki.issue_leaf(ca.signer, user, [], [], now, days)
    password = pki.new_password()
    return {
        "user.crt": b64(pki.cert_pem(pair.cert)),
        "user.key": b64(pki.key_pem(pair.key)),
        "user.p12": b64(pki.keystore_p12(user, pair, [ca.signer.cert], password)),
        "user.password": b64(password),
    }


def ca_data(ca: ClientsCa, cluster_ca: bytes | None) -> dict[str, str]:
    """The CA bundles of a TLS user's Secret."""
    data = {"clients-ca.crt": b64(ca.bundle)}
    if cluster_ca:
        data["ca.crt"] = b64(cluster_ca)
    return data


def tls_renewal_reason(
    data: dict | None, ca: ClientsCa, user: str, now: datetime, renewal_days: int
) -> str | None:
    """Why the TLS material in ``data`` must be issued again (None: it is good)."""
    if not data:
        return "no certificate yet"
    crt, key = unb64(data.get("user.crt")), unb64(data.get("user.key"))
    p12, p12_password = unb64(data.get("user.p12")), unb64(data.get("user.password"))
    if not crt or not key or not p12 or not p12_password:
        return "the Secret lacks part of the certificate"
    try:
        cert = pki.load_certs(crt)[0]
        private = pki.load_key(key)
        pki.load_p12(p12, p12_password)
    except Exception:
        return "the certificate, key or keystore in the Secret cannot be read"
    if pki.common_name(cert) != user:
        return "the certificate names another user"
    if not pki.key_matches(cert, private):
        return "the key does not match the certificate"
    if not pki.signed_by(cert, ca.signer.cert):
        return "the certificate is not signed by the current clients CA"
    if cert.not_valid_after_utc - now <= timedelta(days=renewal_days):
        return f"the certificate expires within {renewal_days} days"
    if cert.not_valid_before_utc > now + timedelta(minutes=5):
        return "the certificate is not valid yet"
    return None


def cert_expiry(data: dict | None) -> str | None:
    try:
        cert = pki.load_certs(unb64(data.get("user.crt")))[0]
    except Exception:
        return None
    return cert.not_valid_after_utc.isoformat().replace("+00:00", "Z")


# ---- the Secret object -----------------------------------------------------------------------
FIELD_MANAGER = "kairn-user-agent"


def edited_by_others(secret: dict | None) -> bool:
    """Whether someone other than the agent set keys of the Secret's ``data`` (its
    managedFields name another manager of ``f:data``): a password typed in by hand is then
    the user's password."""
    if not secret:
        return False
    for mf in (secret.get("metadata") or {}).get("managedFields") or []:
        if mf.get("manager") != FIELD_MANAGER and "f:data" in (mf.get("fieldsV1") or {}):
            return True
    return False


def owned_by(secret: dict | None, owner_uid: str | None) -> bool:
    """Whether ``secret`` is the one this agent wrote for the ConfigMap with ``owner_uid``."""
    if not secret or not owner_uid:
        return False
    refs = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid and r.get("kind") == "ConfigMap" for r in refs)


def secret_body(
    name: str,
    namespace: str,
    cluster: str,
    owner: dict,
    data: dict[str, str],
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    resource_version: str | None = None,
) -> dict:
    om = owner.get("metadata") or {}
    meta = {
        "name": name,
        "namespace": namespace,
        "labels": {
            **(labels or {}),
            CLUSTER_LABEL: cluster,
            USER_LABEL: name,
            MANAGED_BY: "kairn-user-agent",
        },
        "annotations": dict(annotations or {}),
        "ownerReferences": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": om.get("name"),
                "uid": om.get("uid"),
                "controller": True,
            }
        ],
    }
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}


def secret_differs(current: dict | None, wanted: dict) -> bool:
    """Whether writing ``wanted`` over ``current`` would change anything that matters."""
    if current is None:
        return True
    cm, wm = current.get("metadata") or {}, wanted["metadata"]
    if (current.get("data") or {}) != wanted["data"]:
        return True
    labels = cm.get("labels") or {}
    if any(labels.get(k) != v for k, v in wm["labels"].items()):
        return True
    ann = cm.get("annotations") or {}
    if any(ann.get(k) != v for k, v in wm["annotations"].items()):
        return True
    refs = cm.get("ownerReferences") or []
    return [r.get("uid") for r in refs] != [r["uid"] for r in wm["ownerReferences"]]


def now_utc() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)
