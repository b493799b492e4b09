"""The Kafka requests of the user agent, every result checked.

Why not ``KafkaAdminClient`` for these: kafka-python 3.0.12 sends AlterUserScramCredentials to
the least-loaded broker. In ZooKeeper mode only the active controller accepts it; the others
answer NOT_CONTROLLER with a null message, which ``alter_user_scram_credentials`` reports as
success (``{user: None}``) although nothing was stored. kafka-python also has no public
client-quotas API, and its ``create_acls`` drops the message of a refused ACL.

So :class:`UserAdmin` speaks the protocol itself (through :class:`.kafka_lanes.LaneClient`)
with the request classes of ``kafka.protocol.admin`` (``AlterUserScramCredentialsRequest``,
``DescribeUserScramCredentialsRequest``, ``DescribeClientQuotasRequest``,
``AlterClientQuotasRequest``, ``DescribeAclsRequest``, ``CreateAclsRequest``,
``DeleteAclsRequest``, ``DescribeClusterRequest``). Where each goes follows the metadata mode
the cluster reports (see :mod:`.kafka_lanes`): in ZooKeeper mode reads and SCRAM writes go to
the controller and quota and ACL writes are spread over the brokers; in KRaft mode reads go to
one broker and every write is spread over the brokers.

Every answer is read item by item: a request-level error raises the matching
``kafka.errors`` exception; a per-item error (of a write, and of a read that names its users)
is returned as :class:`KafkaItemError` so the caller can mark that one user, and an answer
that leaves an item out is an error too.

Methods: ``describe_cluster``, ``describe_scram``, ``alter_scram``, ``describe_quotas``,
``alter_quotas``, ``describe_acls``, ``describe_acls_of``, ``create_acls``, ``delete_acls``,
``delete_principal_acls``, ``close``. It is a drop-in "admin" for
:class:`agents.common.kafka_admin.KafkaAccess` (which counts requests and reconnects after
failures).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import kafka.errors as Errors
from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourceType
from kafka.protocol.admin import (
    AlterClientQuotasRequest,
    AlterUserScramCredentialsRequest,
    CreateAclsRequest,
    DeleteAclsRequest,
    DescribeAclsRequest,
    DescribeClientQuotasRequest,
    DescribeUserScramCredentialsRequest,
)

from .kafka_lanes import PER_REQUEST, KafkaItemError, LaneClient, item_error, missing, raise_for

__all__ = ["SCRAM_SHA_512", "KafkaItemError", "UserAdmin", "salted_password"]

SCRAM_SHA_512 = 2  # the mechanism id of SCRAM-SHA-512 in the protocol
ITERATIONS = 4096
RESOURCE_NOT_FOUND = Errors.ResourceNotFoundError.errno
# DescribeClientQuotas match types
MATCH_EXACT, MATCH_ANY = 0, 2


def salted_password(password: str, salt: bytes, iterations: int = ITERATIONS) -> bytes:
    """SCRAM's SaltedPassword (RFC 5802, Hi() = PBKDF2) for SHA-512."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


# ---- answers, read item by item (pure) --------------------------------------------------------
def scram_credentials(response) -> dict[str, list[tuple] | KafkaItemError]:
    """{user: [(mechanism, iterations), ...]} of a DescribeUserScramCredentials answer; a
    user without credentials is left out, a user Kafka could not describe maps to its error."""
    out: dict[str, list[tuple] | KafkaItemError] = {}
    for r in response.results:
        if r.error_code == RESOURCE_NOT_FOUND:
            continue
        err = item_error(r.error_code, r.error_message)
        out[r.user] = err or [(c.mechanism, c.iterations) for c in r.credential_infos]
    return out


def user_quotas(response) -> dict[str, dict[str, float]]:
    """{user: {key: value}} of a DescribeClientQuotas answer, user entities alone."""
    out: dict[str, dict[str, float]] = {}
    for e in response.entries or []:
        ents = {x.entity_type: x.entity_name for x in e.entity}
        if set(ents) != {"user"} or ents["user"] is None:
            continue  # <default> or user+client-id entities: not ours
        out[ents["user"]] = {v.key: v.value for v in e.values}
    return out


def principal_acls(response) -> dict[str, set[tuple]]:
    """{principal: {acl tuple}} (see :func:`.acls.acl_of`) of a DescribeAcls answer."""
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


class UserAdmin(LaneClient):
    # ---- SCRAM credentials ----------------------------------------------------------------
    def describe_scram(
        self, users: Iterable[str] | None = None
    ) -> dict[str, list[tuple] | KafkaItemError]:
        """{user: [(mechanism, iterations), ...]} for users with credentials (every user when
        ``users`` is None; users without any are left out); a user Kafka could not describe
        maps to its :class:`KafkaItemError`."""
        names = None if users is None else sorted(set(users))
        if names == []:
            return {}
        req = DescribeUserScramCredentialsRequest(
            users=None
            if names is None
            else [DescribeUserScramCredentialsRequest.UserName(name=n) for n in names]
        )
        response = self.to_controller(
            req, lambda r: [r.error_code, *(x.error_code for x in r.results)]
        )
        raise_for(response.error_code, response.error_message, "DescribeUserScramCredentials")
        return scram_credentials(response)

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
            return self.to_broker(
                req, lambda r: [x.error_code for x in r.results], lane, controller_only=True
            )

        out: dict[str, KafkaItemError | None] = {}
        for response in self.fan_out(self.split(entries), send):
            for r in response.results:
                if r.user in deletes and r.error_code == RESOURCE_NOT_FOUND:
                    out[r.user] = None
                else:
                    out[r.user] = item_error(r.error_code, r.error_message)
        for user in [*upserts, *deletes]:
            if user not in out:  # an answer without the user is no proof it was stored
                out[user] = missing()
        return out

    # ---- client quotas --------------------------------------------------------------------
    def describe_quotas(
        self, users: Iterable[str] | None = None
    ) -> dict[str, dict[str, float] | KafkaItemError]:
        """{user: {key: value}} of the quotas set for user entities alone (no client id);
        every such user when ``users`` is None. With ``users`` each is asked for on its own,
        and a user whose request Kafka refused maps to its :class:`KafkaItemError`."""
        C = DescribeClientQuotasRequest.ComponentData

        def ask(component) -> object:
            req = DescribeClientQuotasRequest(components=[component], strict=True)
            return self.to_controller(req, lambda r: [r.error_code])

        if users is None:
            response = ask(C(entity_type="user", match_type=MATCH_ANY, match=None))
            raise_for(response.error_code, response.error_message, "DescribeClientQuotas")
            return dict(user_quotas(response))
        out: dict[str, dict[str, float] | KafkaItemError] = {}
        for user in sorted(set(users)):
            response = ask(C(entity_type="user", match_type=MATCH_EXACT, match=user))
            err = item_error(response.error_code, response.error_message)
            if err is not None:
                out[user] = err
            else:
                out.update(user_quotas(response))
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

        def send(lane: int, chunk: list):
            req = AlterClientQuotasRequest(entries=chunk, validate_only=validate_only)
            response = self.to_broker(req, lambda r: [], lane)
            if len(response.entries) != len(chunk):
                raise Errors.KafkaError("AlterClientQuotas answered a different number of entries")
            return response

        out: dict[str, KafkaItemError | None] = {}
        for response in self.fan_out(self.split(entries), send):
            for e in response.entries:
                user = next((x.entity_name for x in e.entity if x.entity_type == "user"), None)
                out[user] = item_error(e.error_code, e.error_message)
        for user in changes:
            if user not in out:
                out[user] = missing()
        return out

    # ---- ACLs -----------------------------------------------------------------------------
    def _describe_acls(self, principal: str | None):
        req = DescribeAclsRequest(
            resource_type_filter=int(ResourceType.ANY),
            resource_name_filter=None,
            pattern_type_filter=int(ACLResourcePatternType.ANY),
            principal_filter=principal,
            host_filter=None,
            operation=int(ACLOperation.ANY),
            permission_type=int(ACLPermissionType.ANY),
        )
        return self.to_controller(req, lambda r: [r.error_code])

    def describe_acls(self, principal: str | None = None) -> dict[str, set[tuple]]:
        """{principal: {acl tuple}} (see :func:`.acls.acl_of`) of every ACL, or of one
        principal; an error of the request raises."""
        response = self._describe_acls(principal)
        raise_for(response.error_code, response.error_message, "DescribeAcls")
        return principal_acls(response)

    def describe_acls_of(self, principals: Iterable[str]) -> dict[str, set[tuple] | KafkaItemError]:
        """{principal: {acl tuple}} for each principal, asked for one by one: a principal
        without ACLs maps to an empty set, one whose request Kafka refused to its error."""
        out: dict[str, set[tuple] | KafkaItemError] = {}
        for p in sorted(set(principals)):
            response = self._describe_acls(p)
            err = item_error(response.error_code, response.error_message)
            out[p] = err if err is not None else principal_acls(response).get(p, set())
        return out

    @staticmethod
    def _acl_chunks(acls: list[tuple], per_request: int = 4 * PER_REQUEST) -> list[list[int]]:
        """Indexes of ``acls`` in chunks of about ``per_request``, the ACLs of one resource
        (type, name, pattern) always in the same chunk, so concurrent chunks sent to
        different brokers never update the same resource (which ZooKeeper mode needs; KRaft
        mode does not mind)."""
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
        def send(lane: int, idx: list[int]):
            response = self.to_broker(build([acls[i] for i in idx]), lambda r: [], lane)
            results = results_of(response)
            if len(results) != len(idx):
                raise Errors.KafkaError(f"answered {len(results)} results for {len(idx)} ACLs")
            return results

        chunks = self._acl_chunks(acls)
        out: list[KafkaItemError | None] = [None] * len(acls)
        # ZooKeeper mode: one lane per broker (a broker's authorizer writes ACLs one request at
        # a time, so a second lane to it would only hold another of its request threads);
        # KRaft mode: the controller orders every write, any number of lanes
        most = len(self.brokers()) if self.writes_per_resource() else None
        answers = self.fan_out(chunks, send, most=most)
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
            acls, build, lambda r: [item_error(x.error_code, x.error_message) for x in r.results]
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
                err = item_error(r.error_code, r.error_message)
                for m in r.matching_acls:
                    err = err or item_error(m.error_code, m.error_message)
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
        response = self.to_controller(req, lambda r: [x.error_code for x in r.filter_results])
        if len(response.filter_results) != len(principals):
            raise Errors.KafkaError("DeleteAcls answered a different number of results")
        out: dict[str, KafkaItemError | None] = {}
        for p, r in zip(principals, response.filter_results, strict=True):
            err = item_error(r.error_code, r.error_message)
            for m in r.matching_acls:
                err = err or item_error(m.error_code, m.error_message)
            out[p] = err
        return out
