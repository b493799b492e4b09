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
``DeleteAclsRequest``, ``DescribeClusterRequest``). SCRAM writes and every read go to the
controller named by DescribeCluster; a NOT_CONTROLLER answer (the controller moved) refreshes
it and retries. Quota and ACL writes, which every broker of a ZooKeeper-mode cluster stores
itself, are spread over the brokers to go faster. A request-level error raises the matching
``kafka.errors`` exception; per-item errors are returned as :class:`KafkaItemError` so the
caller can mark that one user, and an answer that leaves an item out is an error too.

The network clients have no I/O thread: each call drives the network on the calling thread,
each client under its own lock (callers: the reconcile worker and the /readyz check).

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
from concurrent.futures import ThreadPoolExecutor
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
PER_REQUEST = 50  # users per write request


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


class _Lane:
    """One network client (its own connection to each broker), used by one thread at a time."""

    def __init__(self, client_config: dict, timeout_ms: int):
        self.lock = threading.Lock()
        self.client = KafkaNetClient(**client_config)
        try:
            self.client.check_version(timeout_ms=timeout_ms)  # bootstraps: fails fast
        except Exception:
            self.client.close()
            raise


class UserAdmin:
    def __init__(self, client_config: dict, timeout_ms: int = 30000, lanes: int = 1):
        """``client_config``: kafka-python connection settings (bootstrap_servers, security
        and TLS files), e.g. :func:`agents.common.kafka_admin.client_kwargs`.

        ``lanes``: how many requests may be in flight at once. A broker works on one request
        of a connection at a time, and ZooKeeper-mode writes wait for ZooKeeper, so large
        batches are split into up to ``lanes`` requests on separate connections: SCRAM
        writes all to the controller, quota and ACL writes spread over the brokers (in
        ZooKeeper mode every broker writes those to ZooKeeper itself; the ACLs of one resource
        always go to the same broker, whose authorizer serializes them)."""
        self.timeout_ms, self.max_lanes = timeout_ms, max(1, lanes)
        self._config = client_config
        self._lanes = [_Lane(client_config, timeout_ms)]
        self._lanes_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.max_lanes, thread_name_prefix="kafka-lane")
        self._controller: int | None = None
        self._brokers: list[int] = []

    # ---- plumbing -------------------------------------------------------------------------
    def _lane(self, i: int) -> _Lane:
        with self._lanes_lock:
            while len(self._lanes) <= i:
                self._lanes.append(_Lane(self._config, self.timeout_ms))
            return self._lanes[i]

    def _send(self, node_id, request, lane: int = 0):
        ln = self._lane(lane)
        with ln.lock:
            return ln.client.send_and_receive(node_id, request, timeout_ms=self.timeout_ms)

    def _any_node(self):
        node = self._lanes[0].client.least_loaded_node(bootstrap_fallback=True)
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
        self._brokers = sorted(b.broker_id for b in response.brokers)
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

    def brokers(self) -> list[int]:
        """Broker ids, the controller first (so a single request goes to the controller,
        whose caches the reads come from)."""
        if not self._brokers:
            self.describe_cluster()
        ctl = self._controller
        return (
            [ctl] + [b for b in self._brokers if b != ctl]
            if ctl in self._brokers
            else self._brokers
        )

    def _to_controller(self, request, codes_of, lane: int = 0):
        """Sends ``request`` to the controller; when any code ``codes_of(response)`` gives is
        NOT_CONTROLLER, finds the controller again and resends (once)."""
        response = self._send(self.controller_id(), request, lane)
        if NOT_CONTROLLER in codes_of(response):
            response = self._send(self.controller_id(refresh=True), request, lane)
            if NOT_CONTROLLER in codes_of(response):
                raise Errors.NotControllerError("the controller moved twice; try again")
        return response

    def _fan_out(self, chunks: list, fn, most: int | None = None) -> list:
        """``fn(lane, chunk)`` for each chunk; chunk i runs on lane i % lanes (at most
        ``most`` lanes), the lanes concurrently and each lane's chunks one after the other.
        Results in order; any exception is raised once every lane has stopped."""
        lanes = min(self.max_lanes, len(chunks), most or self.max_lanes)
        if lanes <= 1:
            return [fn(0, c) for c in chunks]
        results: list = [None] * len(chunks)

        def run_lane(lane: int) -> None:
            for i in range(lane, len(chunks), lanes):
                results[i] = fn(lane, chunks[i])

        futures = [self._pool.submit(run_lane, lane) for lane in range(lanes)]
        for f in futures:
            f.exception()
        for f in futures:
            f.result()
        return results

    @staticmethod
    def _split(items: list, per_request: int = PER_REQUEST) -> list[list]:
        """``items`` in chunks of at most ``per_request``: requests stay short, so a slow
        ZooKeeper does not push one past the request timeout."""
        return [items[i : i + per_request] for i in range(0, len(items), per_request)]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lanes_lock:
            for ln in self._lanes:
                with ln.lock:
                    ln.client.close()

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
        entries = [("u", x) for x in ups] + [("d", x) for x in dels]

        def send(lane: int, chunk: list):
            req = AlterUserScramCredentialsRequest(
                deletions=[x for k, x in chunk if k == "d"],
                upsertions=[x for k, x in chunk if k == "u"],
            )
            return self._to_controller(req, lambda r: [x.error_code for x in r.results], lane)

        out: dict[str, KafkaItemError | None] = {}
        for response in self._fan_out(self._split(entries), send):
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
        brokers = self.brokers()

        def send(lane: int, chunk: list):
            req = AlterClientQuotasRequest(entries=chunk, validate_only=validate_only)
            response = self._send(brokers[lane % len(brokers)], req, lane)
            if len(response.entries) != len(chunk):
                raise Errors.KafkaError("AlterClientQuotas answered a different number of entries")
            return response

        out: dict[str, KafkaItemError | None] = {}
        for response in self._fan_out(self._split(entries), send):
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

    @staticmethod
    def _acl_chunks(acls: list[tuple], per_request: int = 4 * PER_REQUEST) -> list[list[int]]:
        """Indexes of ``acls`` in chunks of about ``per_request``, the ACLs of one resource
        (type, name, pattern) always in the same chunk, so concurrent chunks sent to
        different brokers never update the same resource."""
        groups: dict[tuple, list[int]] = {}
        for i, a in enumerate(acls):
            groups.setdefault(a[:3], []).append(i)
        chunks: list[list[int]] = [[]]
        for g in groups.values():
            if chunks[-1] and len(chunks[-1]) + len(g) > per_request:
                chunks.append([])
            chunks[-1].extend(g)
        return [c for c in chunks if c]

    def _acl_write(self, acls: list[tuple], build, results_of) -> list[KafkaItemError | None]:
        brokers = self.brokers()

        def send(lane: int, idx: list[int]):
            response = self._send(brokers[lane % len(brokers)], build([acls[i] for i in idx]), lane)
            results = results_of(response)
            if len(results) != len(idx):
                raise Errors.KafkaError(f"answered {len(results)} results for {len(idx)} ACLs")
            return results

        chunks = self._acl_chunks(acls)
        out: list[KafkaItemError | None] = [None] * len(acls)
        # one lane per broker: a broker's authorizer writes ACLs one request at a time, so a
        # second lane to it would only hold another of its request threads
        answers = self._fan_out(chunks, send, most=len(brokers))
        for idx, results in zip(chunks, answers, strict=True):
            for i, err in zip(idx, results, strict=True):
                out[i] = err
        return out

    def create_acls(self, acls: list[tuple]) -> list[KafkaItemError | None]:
        """Creates each ACL tuple; one result per ACL, in order."""
        if not acls:
            return []
        C = CreateAclsRequest.AclCreation

        def build(chunk):
            return CreateAclsRequest(
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
                    for rt, name, pt, principal, host, op, perm in chunk
                ]
            )

        return self._acl_write(
            acls, build, lambda r: [_item_error(x.error_code, x.error_message) for x in r.results]
        )

    def delete_acls(self, acls: list[tuple]) -> list[KafkaItemError | None]:
        """Deletes each exact ACL tuple (an ACL already gone counts as done); one result per
        ACL, in order."""
        if not acls:
            return []
        F = DeleteAclsRequest.DeleteAclsFilter

        def build(chunk):
            return DeleteAclsRequest(
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
                    for rt, name, pt, principal, host, op, perm in chunk
                ]
            )

        def results_of(response):
            out = []
            for r in response.filter_results:
                err = _item_error(r.error_code, r.error_message)
                for m in r.matching_acls:
                    err = err or _item_error(m.error_code, m.error_message)
                out.append(err)
            return out

        return self._acl_write(acls, build, results_of)

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
