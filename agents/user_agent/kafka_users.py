"""The Kafka requests of the user agent, sent to the active controller, every result checked.

Why not ``KafkaAdminClient`` for these: kafka-python 3.0.12 sends AlterUserScramCredentials to
the least-loaded broker. In ZooKeeper mode only the active controller accepts it; the others
answer NOT_CONTROLLER with a null message, which ``alter_user_scram_credentials`` reports as
success (``{user: None}``) although nothing was stored. kafka-python also has no public
client-quotas API, and its ``create_acls`` drops the message of a refused ACL.

So :class:`UserAdmin` speaks the protocol itself through kafka-python's public network client,
``kafka.net.KafkaNetClient`` (``send_and_receive(node_id, request)``), with the request classes
of ``kafka.protocol.admin`` (``AlterUserScramCredentialsRequest``,
``DescribeUserScramCredentialsRequest``, ``DescribeClientQuotasRequest``,
``AlterClientQuotasRequest``, ``DescribeAclsRequest``, ``CreateAclsRequest``,
``DeleteAclsRequest``, ``DescribeClusterRequest``). Every request goes to the controller named
by DescribeCluster; a NOT_CONTROLLER answer (the controller moved) refreshes it and retries.
A request-level error raises the matching ``kafka.errors`` exception; per-item errors are
returned as :class:`KafkaItemError` so the caller can mark that one user.

The client has no I/O thread: each call drives the network on the calling thread, under a
lock (callers: the reconcile worker and the /readyz check).

Methods: ``describe_cluster``, ``describe_scram``, ``alter_scram``, ``describe_quotas``,
``alter_quotas``, ``describe_acls``, ``create_acls``, ``delete_acls``, ``close``. It is a
drop-in "admin" for :class:`agents.common.kafka_admin.KafkaAccess` (which counts requests and
reconnects after failures).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import kafka.errors as Errors
from kafka.admin import (
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourceType,
)
from kafka.net import KafkaNetClient
from kafka.protocol.admin import (
    AlterClientQuotasRequest,
    AlterUserScramCredentialsRequest,
    CreateAclsRequest,
    DeleteAclsRequest,
    DescribeAclsRequest,
    DescribeClientQuotasRequest,
    DescribeClusterRequest,
    DescribeUserScramCredentialsRequest,
)

from .spec import QUOTA_KEYS, AclRule

SCRAM_SHA_512 = 2  # the mechanism id of SCRAM-SHA-512 in the protocol
ITERATIONS = 4096
NOT_CONTROLLER = Errors.NotControllerError.errno
RESOURCE_NOT_FOUND = Errors.ResourceNotFoundError.errno
# DescribeClientQuotas match types
MATCH_EXACT, MATCH_ANY = 0, 2


@dataclass(frozen=True)
class KafkaItemError:
    """Kafka refused one item of a request."""

    code: int
    message: str

    @property
    def name(self) -> str:
        return Errors.for_code(self.code).__name__

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


def _item_error(code: int, message: str | None) -> KafkaItemError | None:
    return KafkaItemError(code, message or Errors.for_code(code).description) if code else None


def _raise_for(code: int, message: str | None, what: str) -> None:
    if code:
        raise Errors.for_code(code)(f"{what}: {message or ''}".rstrip(": "))


def salted_password(password: str, salt: bytes, iterations: int = ITERATIONS) -> bytes:
    """SCRAM's SaltedPassword (RFC 5802, Hi() = PBKDF2) for SHA-512."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


def acl_of(principal: str, r: AclRule) -> tuple:
    """The protocol's view of an ACL: (resource_type, name, pattern, principal, host, op, perm)
    as ints and strings."""
    return (
        int(ResourceType[r.resource_type]),
        r.name,
        int(ACLResourcePatternType[r.pattern]),
        principal,
        r.host,
        int(ACLOperation[r.operation]),
        int(ACLPermissionType[r.permission]),
    )


def rule_of(acl: tuple) -> AclRule | None:
    """The :class:`AclRule` of a protocol ACL tuple (None for kinds a spec cannot declare)."""
    rtype, name, pattern, _principal, host, op, perm = acl
    try:
        return AclRule(
            ResourceType(rtype).name,
            name,
            ACLResourcePatternType(pattern).name,
            ACLOperation(op).name,
            ACLPermissionType(perm).name,
            host,
        )
    except ValueError:
        return None


class UserAdmin:
    def __init__(self, client_config: dict, timeout_ms: int = 30000):
        """``client_config``: kafka-python connection settings (bootstrap_servers, security
        and TLS files), e.g. :func:`agents.common.kafka_admin.client_kwargs`."""
        self.timeout_ms = timeout_ms
        self._lock = threading.RLock()
        self._client = KafkaNetClient(**client_config)
        self._controller: int | None = None
        try:
            self._client.check_version(timeout_ms=timeout_ms)  # bootstraps: fails fast
        except Exception:
            self._client.close()
            raise

    # ---- plumbing -------------------------------------------------------------------------
    def _send(self, node_id, request):
        with self._lock:
            return self._client.send_and_receive(node_id, request, timeout_ms=self.timeout_ms)

    def _any_node(self):
        node = self._client.least_loaded_node(bootstrap_fallback=True)
        if node is None:
            raise Errors.NodeNotReadyError("no broker to ask")
        return node

    def describe_cluster(self) -> dict:
        """{'controller_id': int, 'brokers': [{'broker_id', 'host', 'port'}], 'cluster_id'}"""
        response = self._send(self._any_node(), DescribeClusterRequest())
        _raise_for(response.error_code, response.error_message, "DescribeCluster")
        if response.controller_id is None or response.controller_id < 0:
            raise Errors.NodeNotReadyError("the cluster has no active controller")
        self._controller = response.controller_id
        return {
            "cluster_id": response.cluster_id,
            "controller_id": response.controller_id,
            "brokers": [
                {"broker_id": b.broker_id, "host": b.host, "port": b.port} for b in response.brokers
            ],
        }

    def controller_id(self, refresh: bool = False) -> int:
        if self._controller is None or refresh:
            self.describe_cluster()
        return self._controller

    def _to_controller(self, request, codes_of):
        """Sends ``request`` to the controller; when any code ``codes_of(response)`` gives is
        NOT_CONTROLLER, finds the controller again and resends (once)."""
        with self._lock:
            response = self._send(self.controller_id(), request)
            if NOT_CONTROLLER in codes_of(response):
                response = self._send(self.controller_id(refresh=True), request)
                if NOT_CONTROLLER in codes_of(response):
                    raise Errors.NotControllerError("the controller moved twice; try again")
            return response

    def close(self) -> None:
        with self._lock:
            self._client.close()

    # ---- SCRAM credentials ----------------------------------------------------------------
    def describe_scram(self, users: Iterable[str] | None = None) -> dict[str, list[tuple]]:
        """{user: [(mechanism, iterations), ...]} for users with credentials (every user when
        ``users`` is None; users without any are left out)."""
        names = None if users is None else sorted(set(users))
        if names == []:
            return {}
        req = DescribeUserScramCredentialsRequest(
            users=None
            if names is None
            else [DescribeUserScramCredentialsRequest.UserName(name=n) for n in names]
        )
        response = self._to_controller(
            req, lambda r: [r.error_code, *(x.error_code for x in r.results)]
        )
        _raise_for(response.error_code, response.error_message, "DescribeUserScramCredentials")
        out: dict[str, list[tuple]] = {}
        for r in response.results:
            if r.error_code == RESOURCE_NOT_FOUND:
                continue
            _raise_for(r.error_code, r.error_message, f"DescribeUserScramCredentials {r.user}")
            out[r.user] = [(c.mechanism, c.iterations) for c in r.credential_infos]
        return out

    def alter_scram(
        self, upserts: dict[str, str] | None = None, deletes: Iterable[str] = ()
    ) -> dict[str, KafkaItemError | None]:
        """Sets the SCRAM-SHA-512 password of each user in ``upserts`` ({user: password}) and
        deletes the credential of each user in ``deletes``; {user: None or the error}.
        Deleting a credential that does not exist counts as done."""
        upserts = upserts or {}
        deletes = sorted(set(deletes) - set(upserts))
        if not upserts and not deletes:
            return {}
        ups = []
        for user, password in sorted(upserts.items()):
            salt = os.urandom(32)
            ups.append(
                AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
                    name=user,
                    mechanism=SCRAM_SHA_512,
                    iterations=ITERATIONS,
                    salt=salt,
                    salted_password=salted_password(password, salt),
                )
            )
        dels = [
            AlterUserScramCredentialsRequest.ScramCredentialDeletion(
                name=u, mechanism=SCRAM_SHA_512
            )
            for u in deletes
        ]
        req = AlterUserScramCredentialsRequest(deletions=dels, upsertions=ups)
        response = self._to_controller(req, lambda r: [x.error_code for x in r.results])
        out: dict[str, KafkaItemError | None] = {}
        for r in response.results:
            if r.user in deletes and r.error_code == RESOURCE_NOT_FOUND:
                out[r.user] = None
            else:
                out[r.user] = _item_error(r.error_code, r.error_message)
        for user in [*upserts, *deletes]:
            if user not in out:  # an answer without the user is no proof it was stored
                out[user] = KafkaItemError(-1, "Kafka's answer did not mention this user")
        return out

    # ---- client quotas --------------------------------------------------------------------
    def describe_quotas(self, users: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """{user: {key: value}} of the quotas set for user entities alone (no client id);
        every such user when ``users`` is None."""
        C = DescribeClientQuotasRequest.ComponentData
        if users is None:
            reqs = [
                DescribeClientQuotasRequest(
                    components=[C(entity_type="user", match_type=MATCH_ANY, match=None)],
                    strict=True,
                )
            ]
        else:
            reqs = [
                DescribeClientQuotasRequest(
                    components=[C(entity_type="user", match_type=MATCH_EXACT, match=u)],
                    strict=True,
                )
                for u in sorted(set(users))
            ]
        out: dict[str, dict[str, float]] = {}
        for req in reqs:
            response = self._to_controller(req, lambda r: [r.error_code])
            _raise_for(response.error_code, response.error_message, "DescribeClientQuotas")
            for e in response.entries or []:
                ents = {x.entity_type: x.entity_name for x in e.entity}
                if set(ents) != {"user"} or ents["user"] is None:
                    continue  # <default> or user+client-id entities: not ours
                out[ents["user"]] = {v.key: v.value for v in e.values}
        return out

    def alter_quotas(
        self, changes: dict[str, dict[str, float | None]], validate_only: bool = False
    ) -> dict[str, KafkaItemError | None]:
        """Sets (value) or removes (None) quota keys per user; {user: None or the error}."""
        if not changes:
            return {}
        E = AlterClientQuotasRequest.EntryData
        entries = []
        for user, ops in sorted(changes.items()):
            entries.append(
                E(
                    entity=[E.EntityData(entity_type="user", entity_name=user)],
                    ops=[
                        E.OpData(key=k, value=0.0 if v is None else float(v), remove=v is None)
                        for k, v in sorted(ops.items())
                    ],
                )
            )
        req = AlterClientQuotasRequest(entries=entries, validate_only=validate_only)
        response = self._to_controller(req, lambda r: [e.error_code for e in r.entries])
        out: dict[str, KafkaItemError | None] = {}
        for e in response.entries:
            user = next((x.entity_name for x in e.entity if x.entity_type == "user"), None)
            out[user] = _item_error(e.error_code, e.error_message)
        for user in changes:
            if user not in out:
                out[user] = KafkaItemError(-1, "Kafka's answer did not mention this user")
        return out

    @staticmethod
    def quota_changes(current: dict[str, float], wanted: dict[str, float]) -> dict:
        """The ops that turn ``current`` into ``wanted`` ({key: value or None to remove})."""
        ops: dict[str, float | None] = {}
        for k in QUOTA_KEYS:
            have, want = current.get(k), wanted.get(k)
            if want is None and have is not None:
                ops[k] = None
            elif want is not None and have != want:
                ops[k] = want
        for k in current:
            if k not in QUOTA_KEYS:
                ops[k] = None  # a key kairn does not know: not part of the spec
        return ops

    # ---- ACLs -----------------------------------------------------------------------------
    def describe_acls(self, principal: str | None = None) -> dict[str, set[tuple]]:
        """{principal: {acl tuple}} (see :func:`acl_of`) of every ACL, or of one principal."""
        req = DescribeAclsRequest(
            resource_type_filter=int(ResourceType.ANY),
            resource_name_filter=None,
            pattern_type_filter=int(ACLResourcePatternType.ANY),
            principal_filter=principal,
            host_filter=None,
            operation=int(ACLOperation.ANY),
            permission_type=int(ACLPermissionType.ANY),
        )
        response = self._to_controller(req, lambda r: [r.error_code])
        _raise_for(response.error_code, response.error_message, "DescribeAcls")
        out: dict[str, set[tuple]] = {}
        for res in response.resources:
            for a in res.acls:
                out.setdefault(a.principal, set()).add(
                    (
                        res.resource_type,
                        res.resource_name,
                        res.pattern_type,
                        a.principal,
                        a.host,
                        a.operation,
                        a.permission_type,
                    )
                )
        return out

    def create_acls(self, acls: list[tuple]) -> list[KafkaItemError | None]:
        """Creates each ACL tuple; one result per ACL, in order."""
        if not acls:
            return []
        C = CreateAclsRequest.AclCreation
        req = CreateAclsRequest(
            creations=[
                C(
                    resource_type=rt,
                    resource_name=name,
                    resource_pattern_type=pt,
                    principal=principal,
                    host=host,
                    operation=op,
                    permission_type=perm,
                )
                for rt, name, pt, principal, host, op, perm in acls
            ]
        )
        response = self._to_controller(req, lambda r: [x.error_code for x in r.results])
        results = [_item_error(r.error_code, r.error_message) for r in response.results]
        if len(results) != len(acls):
            raise Errors.KafkaError(
                f"CreateAcls answered {len(results)} results for {len(acls)} ACLs"
            )
        return results

    def delete_acls(self, acls: list[tuple]) -> list[KafkaItemError | None]:
        """Deletes each exact ACL tuple (an ACL already gone counts as done); one result per
        ACL, in order."""
        if not acls:
            return []
        F = DeleteAclsRequest.DeleteAclsFilter
        req = DeleteAclsRequest(
            filters=[
                F(
                    resource_type_filter=rt,
                    resource_name_filter=name,
                    pattern_type_filter=pt,
                    principal_filter=principal,
                    host_filter=host,
                    operation=op,
                    permission_type=perm,
                )
                for rt, name, pt, principal, host, op, perm in acls
            ]
        )
        response = self._to_controller(req, lambda r: [x.error_code for x in r.filter_results])
        out: list[KafkaItemError | None] = []
        for r in response.filter_results:
            err = _item_error(r.error_code, r.error_message)
            for m in r.matching_acls:
                err = err or _item_error(m.error_code, m.error_message)
            out.append(err)
        if len(out) != len(acls):
            raise Errors.KafkaError(f"DeleteAcls answered {len(out)} results for {len(acls)}")
        return out

    def delete_principal_acls(self, principals: list[str]) -> dict[str, KafkaItemError | None]:
        """Deletes every ACL of each principal (one request); {principal: None or the error}."""
        if not principals:
            return {}
        F = DeleteAclsRequest.DeleteAclsFilter
        req = DeleteAclsRequest(
            filters=[
                F(
                    resource_type_filter=int(ResourceType.ANY),
                    resource_name_filter=None,
                    pattern_type_filter=int(ACLResourcePatternType.ANY),
                    principal_filter=p,
                    host_filter=None,
                    operation=int(ACLOperation.ANY),
                    permission_type=int(ACLPermissionType.ANY),
                )
                for p in principals
            ]
        )
        response = self._to_controller(req, lambda r: [x.error_code for x in r.filter_results])
        if len(response.filter_results) != len(principals):
            raise Errors.KafkaError("DeleteAcls answered a different number of results")
        out: dict[str, KafkaItemError | None] = {}
        for p, r in zip(principals, response.filter_results, strict=True):
            err = _item_error(r.error_code, r.error_message)
            for m in r.matching_acls:
                err = err or _item_error(m.error_code, m.error_message)
            out[p] = err
        return out
